//! Scenario 12 (issue 15): BFD guarding a top-of-rack eBGP session.
//!
//! BIRD 2 is the ToR (its `protocol bfd` at 100 ms and `bfd on` on the
//! session); the Tabby node's BGPPeer carries the `tabby-routing.io/bfd`
//! annotation at 100 ms × 3, so the Detection Time is 300 ms.
//!
//! 1. BGP Established, BFD Up on both sides, the ToR's prefix in the node's
//!    kernel.
//! 2. The link goes silent: an nftables rule in the node's namespace drops
//!    every packet in and out of its interface (the lab kernel has no
//!    `sch_netem`). Tabby's BFD goes Down with "Control Detection Time
//!    Expired", the BGP session closes with Cease / BFD Down, and the ToR's
//!    route leaves the node's kernel — timed from the rule's insertion to the
//!    route's removal (without BFD it stays for the 90 s hold time).
//! 3. The link returns: BFD Up, BGP Established and the route back; the
//!    ToR's BIRD received the NOTIFICATION's subcode when the link healed
//!    (it went out over a dead link, so BIRD's log may only show its own
//!    BFD-triggered close: both are accepted, the local one is checked).
//! 4. `/metrics` counts the failure and the session up again.
//!
//! Needs root, BIRD 2 and nftables.

mod fixtures;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;

const TOR_AS: u32 = 65000;
const NODE_AS: u32 = 65001;
const METRICS_PORT: u16 = 9465;

fn need_nft() {
    assert!(
        std::path::Path::new("/usr/sbin/nft").is_file(),
        "scenario 12 needs nftables (apt-get install nftables)"
    );
}

#[test]
fn bfd_takes_a_dead_tor_link_out_of_the_kernel_in_under_a_second() -> Result<()> {
    need(&[Need::Bird2]);
    need_nft();
    let mut lab = Lab::new("scen12")?;
    let tor = lab.ns("tor")?;
    let node = lab.ns("node-1")?;
    let seg = lab.link(&tor, &node)?;
    let (at, an) = (seg.v4(&tor)?, seg.v4(&node)?);
    let it = IpAddr::V4(at);
    let ifname = seg.ifname(&node)?.to_string();
    let tor_net = net("198.19.0.0/24");

    let mut c = Cluster::new()
        .pool("100.64.0.0/16", "Never")
        .block("node-1", "100.64.1.0/26")
        .doc(&format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\n  annotations:\n    tabby-routing.io/bfd: '{{\"interval\":\"100ms\",\"multiplier\":3}}'\nspec:\n  peerIP: {at}\n  asNumber: {TOR_AS}\n"
        ));
    c.mesh = false;
    let mut s = NodeSpec::v4("node-1", an);
    s.asn = Some(NODE_AS);
    let c = c.node(s);
    let file = lab.write_file("cluster.yaml", &c.render())?;

    let mut node1 = Bird2Peer::ebgp("node1", TOR_AS, IpAddr::V4(an), NODE_AS);
    node1.extra.push("bfd on;".into());
    let mut conf = Bird2Conf::new(at).blackhole(tor_net).peer(node1);
    conf.extra.push_str(
        "protocol bfd {\n  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n}\n",
    );
    let bird = lab.start_bird2(&tor, "tor", &conf.render())?;

    let mut o = TabbydOpts::new("node-1", Datastore::File(file));
    o.deferral_time = Some(2);
    o.metrics = Some(format!("127.0.0.1:{METRICS_PORT}"));
    let t = lab.start_tabbyd(&node, "node-1", &o)?;

    // 1. Up everywhere.
    lab.wait_for("BGP Established, BFD Up", T, || {
        bird.established("node1")?;
        established(&t, &[it])?;
        let p = peer_bfd(&t, it)?;
        ensure!(p["state"] == "Up", "Tabby's BFD: {p}");
        let s = bird.cmd("show bfd sessions")?;
        ensure!(
            s.lines()
                .any(|l| l.contains(&an.to_string()) && l.contains("Up")),
            "BIRD's BFD:\n{s}"
        );
        Ok(())
    })?;
    let p = peer_bfd(&t, it)?;
    ensure!(p["negotiated_tx_us"] == 100_000, "negotiated TX: {p}");
    ensure!(p["detection_time_us"] == 300_000, "detection time: {p}");
    wait_kernel(&lab, &node, &[(tor_net, Want::Via(it))])?;

    // 2. The link goes silent.
    let rule = format!(
        "add table inet scen12; \
         add chain inet scen12 in {{ type filter hook input priority 0; policy accept; }}; \
         add chain inet scen12 out {{ type filter hook output priority 0; policy accept; }}; \
         add rule inet scen12 in iifname \"{ifname}\" drop; \
         add rule inet scen12 out oifname \"{ifname}\" drop"
    );
    lab.exec(&node, &["nft", &rule])?;
    let dropped_at = Instant::now();
    let gone_after = loop {
        let k = lab.kernel_routes_proto(&node, TABBY_PROTO)?;
        if !k.iter().any(|r| r.dst == tor_net) {
            break dropped_at.elapsed();
        }
        ensure!(
            dropped_at.elapsed() < Duration::from_secs(10),
            "the ToR's route is still in the kernel 10 s after the link went silent"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    eprintln!(
        "scenario 12: first dropped packet -> kernel route removed: {} ms (Detection Time 300 ms)",
        gone_after.as_millis()
    );
    // Detection Time plus scheduling slack on a loaded two-core machine;
    // the hold time alone would take 90 s.
    ensure!(
        gone_after < Duration::from_millis(1500),
        "route removed only after {gone_after:?}"
    );
    let p = peer(&t, it)?;
    ensure!(p["state"] != "Established", "BGP still up: {p}");
    let b = &p["bfd"];
    ensure!(b["state"] == "Down", "BFD: {b}");
    ensure!(b["flaps"] == 1, "BFD flaps: {b}");
    ensure!(
        b["last_diagnostic"]
            .as_str()
            .is_some_and(|d| d.to_lowercase().contains("detection time")),
        "diagnostic: {b}"
    );
    let err = &p["last_error"];
    ensure!(
        err.to_string().to_lowercase().contains("bfd"),
        "Tabby's last NOTIFICATION is not Cease / BFD Down: {p}"
    );
    let explained = ctl_json(&t, &["route", "explain", &tor_net.to_string()])?;
    let d = &explained["departed"];
    ensure!(
        d["peer"] == it.to_string() && d["reason"].as_str().is_some_and(|r| r.contains("BFD")),
        "route explain does not say BFD took the route: {explained}"
    );

    // 3. The link returns.
    lab.exec(&node, &["nft", "delete table inet scen12"])?;
    lab.wait_for("BFD Up and BGP Established again", T, || {
        established(&t, &[it])?;
        let p = peer_bfd(&t, it)?;
        ensure!(p["state"] == "Up", "{p}");
        Ok(())
    })?;
    wait_kernel(&lab, &node, &[(tor_net, Want::Via(it))])?;

    // 4. Prometheus.
    let text = lab.in_ns(&node, || scrape_metrics(METRICS_PORT))??;
    for want in [
        "tabby_bfd_sessions{state=\"up\"} 1".to_string(),
        format!("tabby_bfd_transitions_total{{peer=\"{it}\",to=\"down\"}} 1"),
        format!("tabby_bfd_transitions_total{{peer=\"{it}\",to=\"up\"}} 2"),
    ] {
        ensure!(
            text.lines().any(|l| l == want),
            "/metrics lacks `{want}`:\n{text}"
        );
    }
    // The packet counters reach /metrics once a second.
    lab.wait_for("BFD packet counters in /metrics", T, || {
        let text = lab.in_ns(&node, || scrape_metrics(METRICS_PORT))??;
        for name in [
            "tabby_bfd_packets_sent_total",
            "tabby_bfd_packets_received_total",
        ] {
            let n: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .ok_or_else(|| anyhow!("/metrics lacks {name}"))?;
            ensure!(n > 10, "{name} is {n}");
        }
        Ok(())
    })?;
    Ok(())
}

/// The `bfd` object of `tabbyctl -o json bfd` for `addr`.
fn peer_bfd(t: &Tabbyd, addr: IpAddr) -> Result<serde_json::Value> {
    let list = ctl_json(t, &["bfd"])?;
    let a = addr.to_string();
    list.as_array()
        .and_then(|l| l.iter().find(|p| p["peer"].as_str() == Some(a.as_str())))
        .cloned()
        .ok_or_else(|| anyhow!("tabbyctl bfd has no session to {addr}: {list}"))
}
