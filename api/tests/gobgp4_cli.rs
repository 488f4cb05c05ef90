//! The real `gobgp` 4.8.0 CLI (built from its Go module by
//! scripts/lab-gobgp.sh) against the GoBGP v4 compatible service backed by
//! the test core: text output checked line by line, `-j` output parsed.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{LOCAL_AS, TestCore, TestServer};
use serde_json::Value;
use tabby_api::model::SessionState;

fn gobgp_path() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/lab/gobgp4/bin/gobgp");
    assert!(
        p.exists(),
        "gobgp 4 CLI missing at {}: run `bash scripts/lab-gobgp.sh`",
        p.display()
    );
    p
}

fn gobgp_command(port: u16, args: &str) -> tokio::process::Command {
    common::gobgp_cli::command(&gobgp_path(), port, args)
}

async fn gobgp(port: u16, args: &str) -> (bool, String) {
    common::gobgp_cli::run(&gobgp_path(), port, args).await
}

async fn ok(port: u16, args: &str) -> String {
    common::gobgp_cli::ok(&gobgp_path(), port, args).await
}

/// `gobgp -j ARGS`, parsed.
async fn json(port: u16, args: &str) -> Value {
    let text = ok(port, &format!("-j {args}")).await;
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("gobgp -j {args}: {e}:\n{text}"))
}

/// Fails with the CLI's output unless it failed with `needle` in it.
async fn refused(port: u16, args: &str, needle: &str) {
    let (success, text) = gobgp(port, args).await;
    assert!(
        !success && text.contains(needle),
        "gobgp {args} should fail with {needle:?}:\n{text}"
    );
}

async fn start() -> (std::sync::Arc<TestCore>, TestServer, u16) {
    let core = TestCore::new();
    let srv = TestServer::start_with(core.clone(), |c| {
        c.gobgp_v4 = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let port = srv.gobgp_v4.expect("gobgp v4 listener").port();
    (core, srv, port)
}

/// The attribute of `path` (CLI JSON) with BGP type code `ty`.
fn attr(path: &Value, ty: u64) -> Option<&Value> {
    path["attrs"]
        .as_array()
        .expect("attrs array")
        .iter()
        .find(|a| a["type"] == ty)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_and_neighbors() {
    let (core, srv, port) = start().await;
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.add_test_peer("198.18.0.3", 64514, SessionState::Active);

    let g = ok(port, "global").await;
    assert!(g.contains(&format!("AS:        {LOCAL_AS}")), "{g}");
    assert!(g.contains("Router-ID: 198.18.0.1"), "{g}");
    assert!(
        g.contains("Listening Port: 179, Addresses: 198.18.0.1"),
        "{g}"
    );
    let gj = json(port, "global").await;
    assert_eq!(gj["asn"], LOCAL_AS, "{gj}");
    assert_eq!(gj["router_id"], "198.18.0.1", "{gj}");
    assert_eq!(gj["listen_port"], 179, "{gj}");

    let n = ok(port, "neighbor").await;
    let lines: Vec<&str> = n.lines().collect();
    assert!(
        lines[0].contains("Peer") && lines[0].contains("#Received"),
        "{n}"
    );
    let est = lines
        .iter()
        .find(|l| l.starts_with("198.18.0.2"))
        .expect("peer .2 listed");
    assert!(
        est.contains("64513") && est.contains("Establ") && est.contains("|        3         3"),
        "{est}"
    );
    let act = lines
        .iter()
        .find(|l| l.starts_with("198.18.0.3"))
        .expect("peer .3 listed");
    assert!(act.contains("Active"), "{act}");

    // -j: the CLI prints the v4 Peer messages as Go marshals them.
    let nj = json(port, "neighbor").await;
    let peers = nj.as_array().expect("a list of peers");
    assert_eq!(peers.len(), 2, "{nj}");
    let p2 = peers
        .iter()
        .find(|p| p["conf"]["neighbor_address"] == "198.18.0.2")
        .expect("peer .2 in -j");
    assert_eq!(p2["conf"]["peer_asn"], 64513, "{p2}");
    assert_eq!(p2["conf"]["local_asn"], LOCAL_AS, "{p2}");
    // PEER_TYPE_EXTERNAL is 2 in v4 (1 in v3).
    assert_eq!(p2["conf"]["type"], 2, "{p2}");
    // SESSION_STATE_ESTABLISHED, ADMIN_STATE_UP.
    assert_eq!(p2["state"]["session_state"], 6, "{p2}");
    assert_eq!(p2["state"]["admin_state"], 1, "{p2}");
    assert_eq!(p2["state"]["router_id"], "198.18.0.2", "{p2}");
    assert_eq!(p2["state"]["peer_asn"], 64513, "{p2}");
    assert_eq!(p2["timers"]["state"]["negotiated_hold_time"], 90, "{p2}");
    assert!(
        p2["timers"]["state"]["uptime"]["seconds"]
            .as_i64()
            .unwrap_or(0)
            > 0,
        "{p2}"
    );
    let afi = &p2["afi_safis"][0]["state"];
    assert_eq!(afi["family"]["afi"], 1, "{p2}");
    assert_eq!(afi["family"]["safi"], 1, "{p2}");
    assert_eq!(afi["received"], 3, "{p2}");
    assert_eq!(afi["accepted"], 3, "{p2}");
    assert_eq!(afi["advertised"], 2, "{p2}");
    let p3 = peers
        .iter()
        .find(|p| p["conf"]["neighbor_address"] == "198.18.0.3")
        .expect("peer .3 in -j");
    assert_eq!(p3["state"]["session_state"], 3, "ACTIVE: {p3}");

    let d = ok(port, "neighbor 198.18.0.2").await;
    assert!(
        d.contains("BGP neighbor is 198.18.0.2, remote AS 64513"),
        "{d}"
    );
    assert!(d.contains("BGP state = SESSION_STATE_ESTABLISHED"), "{d}");
    assert!(d.contains("remote router ID 198.18.0.2"), "{d}");
    // Capabilities are typed in v4: the CLI names them.
    assert!(d.contains("multiprotocol:"), "{d}");
    assert!(d.contains("ipv4-unicast:"), "{d}");
    assert!(d.contains("4-octet-as:"), "{d}");
    assert!(d.contains("Received:               3"), "{d}");
    let dj = json(port, "neighbor 198.18.0.2").await;
    assert_eq!(dj["conf"]["neighbor_address"], "198.18.0.2", "{dj}");
    assert_eq!(dj["state"]["session_state"], 6, "{dj}");

    refused(
        port,
        "neighbor 198.18.0.99",
        "not found neighbor 198.18.0.99",
    )
    .await;
    refused(port, "neighbor not-an-address", "").await;

    ok(port, "neighbor 198.18.0.2 reset").await;
    ok(port, "neighbor 198.18.0.2 softresetin").await;
    ok(port, "neighbor 198.18.0.2 softresetout").await;
    ok(port, "neighbor 198.18.0.2 softreset").await;
    let calls = core.calls();
    for kind in ["Hard", "SoftIn", "SoftOut", "SoftBoth"] {
        let call = format!("reset 198.18.0.2 {kind}");
        assert!(
            calls.iter().any(|c| c.starts_with(&call)),
            "no {call}: {calls:?}"
        );
    }
    refused(
        port,
        "neighbor 198.18.0.99 reset",
        "not found neighbor 198.18.0.99",
    )
    .await;

    ok(port, "neighbor 198.18.0.2 disable").await;
    let n = ok(port, "neighbor").await;
    assert!(
        n.lines()
            .any(|l| l.starts_with("198.18.0.2") && l.contains("Idle(Admin)")),
        "{n}"
    );
    ok(port, "neighbor 198.18.0.2 enable").await;
    assert!(core.state().peers.values().all(|p| p.enabled));

    // IPv6 peers are listed and shown too.
    core.add_test_peer("2001:db8::2", 64515, SessionState::Established);
    let d = ok(port, "neighbor 2001:db8::2").await;
    assert!(
        d.contains("BGP neighbor is 2001:db8::2, remote AS 64515"),
        "{d}"
    );

    // Outside the subset: UNIMPLEMENTED, with a message naming the method.
    let (success, vrf) = gobgp(port, "vrf").await;
    assert!(
        !success
            && vrf.contains("Unimplemented")
            && vrf.contains("tabbyd does not serve api.GoBgpService/ListVrf"),
        "{vrf}"
    );
    let (success, add) = gobgp(port, "neighbor add 198.18.0.4 as 65001").await;
    assert!(
        !success && add.contains("tabbyd does not serve api.GoBgpService/AddPeer"),
        "{add}"
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_rib_add_show_del() {
    let (core, srv, port) = start().await;
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.learn("198.19.7.0/24", "198.18.0.2", vec![64513, 65010], 100);
    core.learn("2001:db8:1000::/48", "198.18.0.2", vec![64513], 100);

    ok(
        port,
        "global rib add 100.64.1.0/24 nexthop 198.18.0.2 community 65000:1 med 20 local-pref 200 large-community 64512:1:2",
    )
    .await;
    let local = core.state().local.clone();
    let (key, route) = local.iter().next().expect("one local route");
    assert_eq!(
        format!("{} {}", key.0, key.1),
        "100.64.1.0/24 gobgp-api",
        "{local:?}"
    );
    assert_eq!(route.next_hop, Some("198.18.0.2".parse().expect("ip")));
    assert_eq!(route.communities, vec![65000 << 16 | 1]);
    assert_eq!(route.med, Some(20));
    assert_eq!(route.local_pref, Some(200));
    assert_eq!(route.large_communities.len(), 1);

    let rib = ok(port, "global rib -a ipv4").await;
    let line = rib
        .lines()
        .find(|l| l.contains("100.64.1.0/24"))
        .expect("added route shown");
    assert!(line.starts_with("*>"), "{line}");
    assert!(
        line.contains("198.18.0.2") && line.contains("65000:1") && line.contains("LocalPref: 200"),
        "{line}"
    );
    let learned = rib
        .lines()
        .find(|l| l.contains("198.19.7.0/24"))
        .expect("learned route shown");
    assert!(learned.contains("64513 65010"), "{learned}");

    // -j: a map of prefix → paths, each with the NLRI and the attributes
    // by their BGP type codes.
    let rj = json(port, "global rib -a ipv4").await;
    let added = &rj["100.64.1.0/24"][0];
    assert_eq!(added["nlri"]["prefix"], "100.64.1.0/24", "{rj}");
    assert_eq!(added["best"], true, "{rj}");
    assert_eq!(attr(added, 1).expect("ORIGIN")["value"], 0, "{added}");
    assert_eq!(
        attr(added, 3).expect("NEXT_HOP")["nexthop"],
        "198.18.0.2",
        "{added}"
    );
    assert_eq!(attr(added, 4).expect("MED")["metric"], 20, "{added}");
    assert_eq!(attr(added, 5).expect("LOCAL_PREF")["value"], 200, "{added}");
    assert_eq!(
        attr(added, 8).expect("COMMUNITIES")["communities"][0],
        65000u64 << 16 | 1,
        "{added}"
    );
    let learned = &rj["198.19.7.0/24"][0];
    assert_eq!(learned["peer-address"], "198.18.0.2", "{learned}");
    let segs = &attr(learned, 2).expect("AS_PATH")["as_paths"][0];
    assert_eq!(segs["asns"], serde_json::json!([64513, 65010]), "{learned}");

    let v6 = json(port, "global rib -a ipv6").await;
    let v6p = &v6["2001:db8:1000::/48"][0];
    assert_eq!(v6p["nlri"]["prefix"], "2001:db8:1000::/48", "{v6}");
    // IPv6 next hops travel in MP_REACH_NLRI (type 14).
    assert_eq!(
        attr(v6p, 14).expect("MP_REACH_NLRI")["nexthop"],
        "198.18.0.2",
        "{v6p}"
    );
    assert!(v6.get("100.64.1.0/24").is_none(), "{v6}");

    let summary = ok(port, "global rib summary").await;
    assert!(summary.contains("Destination: 2, Path: 2"), "{summary}");

    let one = json(port, "global rib 100.64.1.0/24").await;
    assert_eq!(
        one.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["100.64.1.0/24".to_string()]),
        "{one}"
    );

    // IPv6 add through MP_REACH_NLRI.
    ok(
        port,
        "global rib -a ipv6 add 2001:db8:1001::/48 nexthop 2001:db8::9",
    )
    .await;
    let v6 = json(port, "global rib -a ipv6").await;
    assert_eq!(
        attr(&v6["2001:db8:1001::/48"][0], 14).expect("MP_REACH_NLRI")["nexthop"],
        "2001:db8::9",
        "{v6}"
    );

    // Bad input is refused with a message, not a crash.
    refused(
        port,
        "global rib add 100.64.1.0/24 nexthop 2001:db8::1",
        "not of the prefix's family",
    )
    .await;
    refused(
        port,
        "global rib add 100.64.3.0/24 aspath 65001",
        "empty AS_PATH",
    )
    .await;
    refused(
        port,
        "global rib add 100.64.3.0/24 aigp metric 10",
        "not supported by tabbyd",
    )
    .await;
    refused(port, "global rib -a vpnv4", "not carried by tabbyd").await;

    ok(port, "global rib del 100.64.1.0/24").await;
    ok(port, "global rib -a ipv6 del 2001:db8:1001::/48").await;
    let rib = json(port, "global rib -a ipv4").await;
    assert!(rib.get("100.64.1.0/24").is_none(), "{rib}");
    assert!(rib.get("198.19.7.0/24").is_some(), "{rib}");
    assert!(core.state().local.is_empty());

    let adj = json(port, "neighbor 198.18.0.2 adj-in").await;
    assert_eq!(
        adj["198.19.7.0/24"][0]["nlri"]["prefix"], "198.19.7.0/24",
        "{adj}"
    );
    let adj6 = json(port, "neighbor 198.18.0.2 adj-in -a ipv6").await;
    assert!(adj6.get("2001:db8:1000::/48").is_some(), "{adj6}");
    ok(port, "global rib add 100.64.4.0/24").await;
    let out = json(port, "neighbor 198.18.0.2 adj-out").await;
    assert!(out.get("100.64.4.0/24").is_some(), "{out}");
    assert!(out.get("198.19.7.0/24").is_none(), "{out}");
    let text = ok(port, "neighbor 198.18.0.2 adj-in").await;
    assert!(text.contains("198.19.7.0/24"), "{text}");
    refused(
        port,
        "neighbor 198.18.0.99 adj-in",
        "not found neighbor 198.18.0.99",
    )
    .await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_global_rib_and_neighbor() {
    let (core, srv, port) = start().await;
    core.add_test_peer("198.18.0.2", 64513, SessionState::Active);
    core.learn("198.19.8.0/24", "198.18.0.2", vec![64513], 100);
    let spawn = |args: &str| {
        gobgp_command(port, args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn gobgp monitor")
    };
    let rib = spawn("monitor global rib");
    let current = spawn("monitor global rib --current");
    let rib_json = spawn("-j monitor global rib");
    let neigh = spawn("monitor neighbor 198.18.0.2");
    // Let them subscribe.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    ok(port, "global rib add 100.64.2.0/24 nexthop 198.18.0.2").await;
    ok(port, "global rib del 100.64.2.0/24").await;
    core.set_peer_state("198.18.0.2", SessionState::Established);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut outputs = Vec::new();
    for mut child in [rib, current, rib_json, neigh] {
        let _ = child.start_kill();
        let out = child.wait_with_output().await.expect("monitor output");
        outputs.push(String::from_utf8_lossy(&out.stdout).to_string());
    }
    let [rib_out, current_out, json_out, neigh_out] = &outputs[..] else {
        unreachable!()
    };
    assert!(
        rib_out.contains("[ROUTE] 100.64.2.0/24 via 198.18.0.2"),
        "{rib_out}"
    );
    assert!(rib_out.contains("[DELROUTE] 100.64.2.0/24"), "{rib_out}");
    assert!(!rib_out.contains("198.19.8.0/24"), "{rib_out}");
    // --current sends the table as it was first.
    assert!(
        current_out.contains("[ROUTE] 198.19.8.0/24 via 198.18.0.2"),
        "{current_out}"
    );
    let events: Vec<Value> = json_out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.len(), 2, "{json_out}");
    assert_eq!(
        events[0][0]["nlri"]["prefix"], "100.64.2.0/24",
        "{json_out}"
    );
    assert!(events[0][0].get("withdrawal").is_none(), "{json_out}");
    assert_eq!(
        events[1][0]["nlri"]["prefix"], "100.64.2.0/24",
        "{json_out}"
    );
    assert_eq!(events[1][0]["withdrawal"], true, "{json_out}");
    assert!(
        neigh_out
            .contains("[NEIGH] 198.18.0.2 fsm: SESSION_STATE_ESTABLISHED admin: ADMIN_STATE_UP"),
        "{neigh_out}"
    );
    srv.shutdown().await;
}
