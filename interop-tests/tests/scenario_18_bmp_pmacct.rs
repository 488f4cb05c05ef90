//! Scenario 18 (issue 19): BMP export to a real station, pmacct's `pmbmpd`
//! logging JSON. One Tabby node peers over eBGP with two BIRD 2 routers and
//! exports to the station given by `--bmp-station`. The station's record of
//! every peer and route, rebuilt from its log, must equal what `tabbyctl`
//! shows: each peer's routes (pre- and post-policy Adj-RIB-In) and the
//! Loc-RIB (RFC 9069). Then a withdrawal, a peer going down, and the station
//! killed and restarted: the resynchronisation brings the whole state back,
//! including a change made while the station was away.

mod fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;
use serde_json::Value;

const TOR_AS: u32 = 65000;
const EXT_AS: u32 = 65010;

/// prefix → next hop.
type Table = BTreeMap<String, String>;

/// What the station believes, rebuilt from its records of one BMP session.
#[derive(Debug, Default)]
struct StationView {
    /// peer address → (AS, BGP id, local address, remote port).
    peers: BTreeMap<String, (u64, String, String, u64)>,
    /// (peer address, post-policy) → routes.
    adj_in: BTreeMap<(String, bool), Table>,
    loc_rib: Table,
    stats_from: BTreeSet<String>,
}

/// The records since the station's last `log_init` (a new BMP connection).
fn last_session(records: &[Value]) -> &[Value] {
    let start = records
        .iter()
        .rposition(|r| r["event_type"] == "log_init")
        .unwrap_or(0);
    &records[start..]
}

fn replay(records: &[Value]) -> StationView {
    let mut v = StationView::default();
    for r in records {
        let peer = r["peer_ip"].as_str().unwrap_or_default().to_string();
        let is_loc = r["is_loc"] == 1;
        match r["bmp_msg_type"].as_str() {
            Some("peer_up") if !is_loc => {
                v.peers.insert(
                    peer.clone(),
                    (
                        r["peer_asn"].as_u64().unwrap_or(0),
                        r["bgp_id"].as_str().unwrap_or_default().into(),
                        r["local_ip"].as_str().unwrap_or_default().into(),
                        r["remote_port"].as_u64().unwrap_or(0),
                    ),
                );
                v.adj_in.remove(&(peer.clone(), false));
                v.adj_in.remove(&(peer, true));
            }
            Some("peer_down") => {
                v.peers.remove(&peer);
                v.adj_in.remove(&(peer.clone(), false));
                v.adj_in.remove(&(peer, true));
            }
            Some("stats") => {
                v.stats_from.insert(peer);
            }
            Some("route_monitor") => {
                let table = if is_loc {
                    &mut v.loc_rib
                } else {
                    v.adj_in.entry((peer, r["is_post"] == 1)).or_default()
                };
                let prefix = r["ip_prefix"].as_str().unwrap_or_default().to_string();
                match r["log_type"].as_str() {
                    Some("update") => {
                        let nh = r["bgp_nexthop"].as_str().unwrap_or_default().to_string();
                        table.insert(prefix, nh);
                    }
                    _ => {
                        table.remove(&prefix);
                    }
                }
            }
            _ => {}
        }
    }
    v.adj_in.retain(|_, t| !t.is_empty());
    v
}

/// What `tabbyctl routes` shows: each peer's routes and the best routes.
/// A route this node originates has no next hop of its own ("self"): the
/// station sees the router id.
fn tabbyctl_view(t: &Tabbyd, router_id: Ipv4Addr) -> Result<(BTreeMap<String, Table>, Table)> {
    let routes = ctl_json(t, &["routes"])?;
    let mut by_peer: BTreeMap<String, Table> = BTreeMap::new();
    let mut best = Table::new();
    for r in routes
        .as_array()
        .ok_or_else(|| anyhow!("routes: {routes}"))?
    {
        let prefix = r["prefix"].as_str().unwrap_or_default().to_string();
        for p in r["paths"].as_array().cloned().unwrap_or_default() {
            let source = p["source"].as_str().unwrap_or_default().to_string();
            let mut nh = p["next_hop"].as_str().unwrap_or_default().to_string();
            if source.starts_with("local:") {
                nh = router_id.to_string();
            } else {
                by_peer
                    .entry(source)
                    .or_default()
                    .insert(prefix.clone(), nh.clone());
            }
            if p["best"] == true {
                best.insert(prefix.clone(), nh);
            }
        }
    }
    Ok((by_peer, best))
}

/// The station's last session agrees with `tabbyctl` on every peer and
/// route; `peers` are the established peers with their AS.
fn station_matches(
    pm: &Pmbmpd,
    t: &Tabbyd,
    router_id: Ipv4Addr,
    peers: &[(Ipv4Addr, u32)],
) -> Result<StationView> {
    let records = pm.records()?;
    let v = replay(last_session(&records));
    let want_peers: BTreeSet<String> = peers.iter().map(|(a, _)| a.to_string()).collect();
    let got_peers: BTreeSet<String> = v.peers.keys().cloned().collect();
    ensure!(
        got_peers == want_peers,
        "station's peers {got_peers:?}, want {want_peers:?}; its last records: {:?}",
        &records[records.len().saturating_sub(4)..]
    );
    for (addr, asn) in peers {
        let (got_as, bgp_id, local, port) = &v.peers[&addr.to_string()];
        ensure!(*got_as == u64::from(*asn), "{addr}: peer_asn {got_as}");
        ensure!(*bgp_id == addr.to_string(), "{addr}: bgp_id {bgp_id}");
        ensure!(*local == router_id.to_string(), "{addr}: local_ip {local}");
        ensure!(*port == 179, "{addr}: remote_port {port}");
    }
    let (by_peer, best) = tabbyctl_view(t, router_id)?;
    ensure!(!best.is_empty(), "tabbyctl shows no route");
    for (addr, _) in peers {
        let a = addr.to_string();
        let want = by_peer.get(&a).cloned().unwrap_or_default();
        ensure!(!want.is_empty(), "tabbyctl shows no route from {a}");
        for post in [false, true] {
            let got = v
                .adj_in
                .get(&(a.clone(), post))
                .cloned()
                .unwrap_or_default();
            ensure!(
                got == want,
                "{a} {}-policy: station {got:?}, tabbyctl {want:?}",
                if post { "post" } else { "pre" }
            );
        }
    }
    for ((a, _), _) in v.adj_in.iter() {
        ensure!(want_peers.contains(a), "station still has routes of {a}");
    }
    ensure!(
        v.loc_rib == best,
        "Loc-RIB: station {:?}, tabbyctl {best:?}",
        v.loc_rib
    );
    Ok(v)
}

fn tor_conf(at: Ipv4Addr, a1: Ipv4Addr, prefixes: &[&str]) -> String {
    let mut c = Bird2Conf::new(at);
    for p in prefixes {
        c = c.blackhole(net(p));
    }
    c.peer(Bird2Peer::ebgp("node1", TOR_AS, IpAddr::V4(a1), CLUSTER_AS))
        .render()
}

#[test]
fn bmp_export_to_pmbmpd() -> Result<()> {
    need(&[Need::Bird2, Need::Pmbmpd]);
    let mut lab = Lab::new("bmp")?;
    let tor = lab.ns("tor")?;
    let ext = lab.ns("ext")?;
    let n1 = lab.ns("node-1")?;
    let mon = lab.ns("mon")?;
    let seg = lab.lan(&[&tor, &ext, &n1, &mon])?;
    let (at, ae, a1, am) = (seg.v4(&tor)?, seg.v4(&ext)?, seg.v4(&n1)?, seg.v4(&mon)?);
    let station = SocketAddr::new(IpAddr::V4(am), 1790);
    let pm = lab.start_pmbmpd(&mon, "pmbmpd", station)?;

    let mut c = Cluster::new()
        .pool("100.64.0.0/16", "Never")
        .block("node-1", "100.64.1.0/26")
        .peer("tor", IpAddr::V4(at), TOR_AS, None)
        .peer("ext", IpAddr::V4(ae), EXT_AS, None);
    c.mesh = false;
    let c = c.node(NodeSpec::v4("node-1", a1));
    let file = lab.write_file("cluster.yaml", &c.render())?;
    let tor_bird = lab.start_bird2(
        &tor,
        "tor",
        &tor_conf(at, a1, &["198.19.0.0/24", "198.19.1.0/24"]),
    )?;
    lab.start_bird2(
        &ext,
        "ext",
        &Bird2Conf::new(ae)
            .blackhole(net("198.19.2.0/24"))
            .blackhole(net("198.19.3.0/25"))
            .peer(Bird2Peer::ebgp("node1", EXT_AS, IpAddr::V4(a1), CLUSTER_AS))
            .render(),
    )?;
    let mut o = TabbydOpts::new("node-1", Datastore::File(file.clone()));
    o.no_fib = true;
    o.extra_args = vec![
        "--bmp-station".into(),
        station.to_string(),
        "--bmp-stats-interval".into(),
        "1".into(),
    ];
    let t = lab.start_tabbyd(&n1, "node-1", &o)?;
    let both = [(at, TOR_AS), (ae, EXT_AS)];
    lab.wait_for("sessions Established", T, || {
        established(&t, &[IpAddr::V4(at), IpAddr::V4(ae)])
    })?;

    // Every peer and route, as tabbyctl shows them; Statistics Reports.
    let v = lab.wait_for("the station's view equals tabbyctl's", T, || {
        let v = station_matches(&pm, &t, a1, &both)?;
        ensure!(v.loc_rib.contains_key("198.19.3.0/25"), "{:?}", v.loc_rib);
        ensure!(v.loc_rib.contains_key("100.64.1.0/26"), "own block");
        for (a, _) in &both {
            ensure!(v.stats_from.contains(&a.to_string()), "no stats from {a}");
        }
        Ok(v)
    })?;
    let init = pm.of_type("init")?;
    ensure!(
        init.last()
            .and_then(|i| i["bmp_init_info_sysname"].as_str())
            == Some("node-1"),
        "Initiation: {init:?}"
    );
    ensure!(v.loc_rib["198.19.0.0/24"] == at.to_string());

    // A withdrawal at the ToR reaches the station as one, in all three tables.
    write_atomic(&tor_bird.conf, &tor_conf(at, a1, &["198.19.0.0/24"]))?;
    tor_bird.configure()?;
    lab.wait_for("the withdrawal reaches the station", T, || {
        let v = station_matches(&pm, &t, a1, &both)?;
        ensure!(
            !v.loc_rib.contains_key("198.19.1.0/24"),
            "still in the Loc-RIB"
        );
        let withdrawn: Vec<Value> = pm
            .of_type("route_monitor")?
            .into_iter()
            .filter(|r| r["ip_prefix"] == "198.19.1.0/24" && r["log_type"] == "withdraw")
            .collect();
        ensure!(withdrawn.len() >= 3, "withdraw records: {withdrawn:?}");
        Ok(())
    })?;

    // A peer that goes away is a Peer Down, and its routes leave.
    lab.stop("ext")?;
    lab.wait_for("Peer Down for ext", T, || {
        let downs = pm.of_type("peer_down")?;
        ensure!(
            downs.iter().any(|d| d["peer_ip"] == ae.to_string()),
            "no peer_down: {downs:?}"
        );
        station_matches(&pm, &t, a1, &[(at, TOR_AS)]).map(|_| ())
    })?;

    // The station dies; a route changes meanwhile; the restarted station
    // gets everything in the resynchronisation.
    lab.kill9("pmbmpd")?;
    write_atomic(
        &tor_bird.conf,
        &tor_conf(at, a1, &["198.19.0.0/24", "198.19.4.0/24"]),
    )?;
    tor_bird.configure()?;
    lab.wait_for("tabbyd has the new route", T, || {
        best_path(&t, net("198.19.4.0/24")).map(|_| ())
    })?;
    let before = pm.records()?.len();
    lab.restart("pmbmpd")?;
    lab.wait_for("resynchronised after the station's restart", T, || {
        let records = pm.records()?;
        ensure!(records.len() > before, "nothing new logged yet");
        let v = station_matches(&pm, &t, a1, &[(at, TOR_AS)])?;
        ensure!(v.loc_rib.contains_key("198.19.4.0/24"), "{:?}", v.loc_rib);
        Ok(())
    })?;

    // A second station from the datastore (the annotation Calico's CRDs do
    // not prune), added and removed while running: it gets the whole state,
    // then Termination; the flag's station is not disturbed.
    let station2 = SocketAddr::new(IpAddr::V4(am), 1791);
    let pm2 = lab.start_pmbmpd(&mon, "pmbmpd-2", station2)?;
    let annotated = c.render().replacen(
        "metadata:\n  name: default\n",
        &format!(
            "metadata:\n  name: default\n  annotations:\n    tabby-routing.io/bmp-stations: \"{station2}\"\n"
        ),
        1,
    );
    ensure!(annotated != c.render(), "the annotation went in");
    let sessions_before = pm.of_type("init")?.len();
    write_atomic(&file, &annotated)?;
    lab.wait_for("the datastore's station has everything", T, || {
        station_matches(&pm2, &t, a1, &[(at, TOR_AS)]).map(|_| ())
    })?;
    write_atomic(&file, &c.render())?;
    lab.wait_for("Termination at the removed station", T, || {
        let term = pm2.of_type("term")?;
        ensure!(!term.is_empty(), "no term record yet");
        Ok(())
    })?;
    ensure!(
        pm.of_type("init")?.len() == sessions_before,
        "the flag's station was reconnected by a change that did not concern it"
    );

    // A clean shutdown of tabbyd ends with Termination.
    lab.stop("node-1")?;
    lab.wait_for("Termination at shutdown", T, || {
        ensure!(!pm.of_type("term")?.is_empty(), "no term record");
        Ok(())
    })?;
    Ok(())
}
