//! Scenario 16 (issue 19): the GoBGP v4 API against a running tabbyd with a
//! BIRD 2 peer. The real `gobgp` 4.8.0 CLI, run in the node's namespace
//! against `--gobgp-v4-api`, sees BIRD Established and BIRD's route in
//! adj-in; a route it adds (community, MED) reaches BIRD with both, and its
//! delete withdraws it at BIRD.

mod fixtures;

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;
use serde_json::Value;

const TOR_AS: u32 = 65000;
const GOBGP_V4_PORT: u16 = 50072;

#[test]
fn gobgp_v4_cli_with_bird_peer() -> Result<()> {
    need(&[Need::Bird2]);
    let cli = gobgp4_cli().unwrap_or_else(|e| panic!("{e}"));
    let cli = cli.display().to_string();
    let started = Instant::now();
    let mut lab = Lab::new("scen16")?;
    let tor = lab.ns("tor")?;
    let n1 = lab.ns("node-1")?;
    let seg = lab.link(&tor, &n1)?;
    let (at, a1) = (seg.v4(&tor)?, seg.v4(&n1)?);
    let (it, i1) = (IpAddr::V4(at), IpAddr::V4(a1));

    // Inside the IP pool: Calico exports nothing else to a peer.
    let (tor_net, added) = (net("198.19.0.0/24"), net("100.64.9.0/26"));
    let mut c = Cluster::new()
        .pool("100.64.0.0/16", "Never")
        .peer("tor", it, TOR_AS, None);
    c.mesh = false;
    let c = c.node(NodeSpec::v4("node-1", a1));
    let file = lab.write_file("cluster.yaml", &c.render())?;

    let bird_conf = Bird2Conf::new(at)
        .blackhole(tor_net)
        .peer(Bird2Peer::ebgp("node1", TOR_AS, i1, CLUSTER_AS));
    let bird = lab.start_bird2(&tor, "tor", &bird_conf.render())?;

    let mut o = TabbydOpts::new("node-1", Datastore::File(file));
    o.deferral_time = Some(5);
    o.gobgp_v4_api = Some(format!("127.0.0.1:{GOBGP_V4_PORT}"));
    let _t = lab.start_tabbyd(&n1, "node-1", &o)?;

    let port = GOBGP_V4_PORT.to_string();
    let gobgp = |args: &[&str]| -> Result<String> {
        let mut argv = vec![cli.as_str(), "-p", port.as_str()];
        argv.extend_from_slice(args);
        lab.exec(&n1, &argv)
    };
    let gobgp_json = |args: &[&str]| -> Result<Value> {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let text = gobgp(&a)?;
        serde_json::from_str(text.trim()).with_context(|| format!("gobgp -j {args:?}: {text}"))
    };

    // neighbor -j: BIRD Established (SESSION_STATE_ESTABLISHED = 6).
    lab.wait_for("gobgp v4 neighbor: BIRD Established", T, || {
        bird.established("node1")?;
        let peers = gobgp_json(&["neighbor"])?;
        let p = peers
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["conf"]["neighbor_address"] == it.to_string())
            })
            .ok_or_else(|| anyhow!("BIRD not listed: {peers}"))?;
        ensure!(p["state"]["session_state"] == 6, "not Established: {p}");
        ensure!(p["conf"]["peer_asn"] == TOR_AS, "peer AS: {p}");
        Ok(())
    })?;
    let text = gobgp(&["neighbor"])?;
    ensure!(
        text.lines()
            .any(|l| l.starts_with(&it.to_string()) && l.contains("Establ")),
        "gobgp neighbor: {text}"
    );

    // adj-in: BIRD's route, with BIRD's AS first.
    lab.wait_for("gobgp v4 adj-in: BIRD's route", T, || {
        let adj = gobgp_json(&["neighbor", &it.to_string(), "adj-in"])?;
        let p = &adj[tor_net.to_string()][0];
        ensure!(p["nlri"]["prefix"] == tor_net.to_string(), "adj-in: {adj}");
        let asns = p["attrs"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == 2))
            .map(|a| a["as_paths"][0]["asns"].clone());
        ensure!(asns == Some(serde_json::json!([TOR_AS])), "AS_PATH: {adj}");
        Ok(())
    })?;

    // global rib add reaches BIRD with its community and MED.
    gobgp(&[
        "global",
        "rib",
        "add",
        &added.to_string(),
        "community",
        "64512:100",
        "med",
        "30",
    ])?;
    let rib = gobgp_json(&["global", "rib"])?;
    ensure!(
        rib[added.to_string()][0]["best"] == true,
        "global rib: {rib}"
    );
    let r = lab.wait_for("the added route at BIRD", T, || {
        bird.routes_for(added)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("not at BIRD yet"))
    })?;
    ensure!(r.as_path() == vec![CLUSTER_AS], "AS path at BIRD: {r:?}");
    ensure!(r.med() == Some(30), "MED at BIRD: {r:?}");
    ensure!(
        r.communities().contains(&(64512, 100)),
        "communities at BIRD: {r:?}"
    );
    ensure!(r.bgp_next_hop() == vec![i1], "next hop at BIRD: {r:?}");

    // global rib del withdraws it at BIRD; BIRD's own route stays.
    gobgp(&["global", "rib", "del", &added.to_string()])?;
    lab.wait_for("the route withdrawn at BIRD", T, || {
        ensure!(bird.routes_for(added)?.is_empty(), "still at BIRD");
        Ok(())
    })?;
    let rib = gobgp_json(&["global", "rib"])?;
    ensure!(rib.get(added.to_string()).is_none(), "global rib: {rib}");
    ensure!(rib.get(tor_net.to_string()).is_some(), "global rib: {rib}");

    eprintln!("scenario 16 passed in {:?}", started.elapsed());
    Ok(())
}
