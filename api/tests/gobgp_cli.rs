//! The real `gobgp` 3.10 CLI (Debian package gobgpd) against the
//! GoBGP-compatible service backed by the test core, checking its output.

mod common;

use std::time::Duration;

use common::{TestCore, TestServer};
use tabby_api::model::SessionState;

fn gobgp_path() -> &'static str {
    let p = "/usr/bin/gobgp";
    assert!(
        std::path::Path::new(p).exists(),
        "gobgp CLI missing: apt-get install gobgpd (scripts/install-deps.sh)"
    );
    p
}

fn gobgp_command(port: u16, args: &str) -> tokio::process::Command {
    common::gobgp_cli::command(std::path::Path::new(gobgp_path()), port, args)
}

async fn gobgp(port: u16, args: &str) -> (bool, String) {
    common::gobgp_cli::run(std::path::Path::new(gobgp_path()), port, args).await
}

async fn ok(port: u16, args: &str) -> String {
    common::gobgp_cli::ok(std::path::Path::new(gobgp_path()), port, args).await
}

async fn start() -> (std::sync::Arc<TestCore>, TestServer, u16) {
    let core = TestCore::new();
    let srv = TestServer::start_with(core.clone(), |c| {
        c.gobgp = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let port = srv.gobgp.expect("gobgp listener").port();
    (core, srv, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_and_neighbors() {
    let (core, srv, port) = start().await;
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.add_test_peer("198.18.0.3", 64514, SessionState::Active);

    let g = ok(port, "global").await;
    assert!(g.contains("AS:        64512"), "{g}");
    assert!(g.contains("Router-ID: 198.18.0.1"), "{g}");

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

    let d = ok(port, "neighbor 198.18.0.2").await;
    assert!(
        d.contains("BGP neighbor is 198.18.0.2, remote AS 64513"),
        "{d}"
    );
    assert!(d.contains("BGP state = ESTABLISHED"), "{d}");
    assert!(d.contains("remote router ID 198.18.0.2"), "{d}");
    assert!(d.contains("Received:               3"), "{d}");

    let (success, missing) = gobgp(port, "neighbor 198.18.0.99").await;
    assert!(
        !success && missing.contains("not found neighbor 198.18.0.99"),
        "{missing}"
    );

    ok(port, "neighbor add 198.18.0.4 as 65001").await;
    let n = ok(port, "neighbor").await;
    assert!(
        n.lines()
            .any(|l| l.starts_with("198.18.0.4") && l.contains("65001")),
        "{n}"
    );
    let (success, dup) = gobgp(port, "neighbor add 198.18.0.4 as 65001").await;
    assert!(!success && dup.contains("already configured"), "{dup}");
    ok(port, "neighbor del 198.18.0.4").await;
    let n = ok(port, "neighbor").await;
    assert!(!n.contains("198.18.0.4"), "{n}");
    let (success, del) = gobgp(port, "neighbor del 198.18.0.4").await;
    assert!(!success && del.contains("no peer 198.18.0.4"), "{del}");

    ok(port, "neighbor 198.18.0.2 reset").await;
    ok(port, "neighbor 198.18.0.2 softresetin").await;
    ok(port, "neighbor 198.18.0.2 softreset").await;
    let calls = core.calls();
    for kind in ["Hard", "SoftIn", "SoftBoth"] {
        let call = format!("reset 198.18.0.2 {kind}");
        assert!(
            calls.iter().any(|c| c.starts_with(&call)),
            "no {call}: {calls:?}"
        );
    }

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

    // Outside the subset: UNIMPLEMENTED, reported by the CLI.
    let (success, vrf) = gobgp(port, "vrf").await;
    assert!(
        !success && vrf.to_lowercase().contains("unimplemented"),
        "{vrf}"
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
        "global rib add 100.64.1.0/24 nexthop 198.18.0.2 community 65000:1",
    )
    .await;
    let rib = ok(port, "global rib -a ipv4").await;
    let line = rib
        .lines()
        .find(|l| l.contains("100.64.1.0/24"))
        .expect("added route shown");
    assert!(line.starts_with("*>"), "{line}");
    assert!(
        line.contains("198.18.0.2") && line.contains("65000:1"),
        "{line}"
    );
    let learned = rib
        .lines()
        .find(|l| l.contains("198.19.7.0/24"))
        .expect("learned route shown");
    assert!(learned.contains("64513 65010"), "{learned}");
    assert_eq!(
        core.state()
            .local
            .keys()
            .map(|(p, o)| format!("{p} {o}"))
            .collect::<Vec<_>>(),
        vec!["100.64.1.0/24 gobgp-api".to_string()]
    );

    let v6 = ok(port, "global rib -a ipv6").await;
    assert!(v6.contains("2001:db8:1000::/48"), "{v6}");
    assert!(!v6.contains("100.64.1.0/24"), "{v6}");

    let summary = ok(port, "global rib summary").await;
    assert!(
        summary.contains("AFI_IP") && summary.contains("Destination: 2, Path: 2"),
        "{summary}"
    );

    let one = ok(port, "global rib 100.64.1.0/24").await;
    assert!(
        one.contains("100.64.1.0/24") && !one.contains("198.19.7.0"),
        "{one}"
    );

    // Bad input is refused with a message, not a crash.
    let (success, bad) = gobgp(port, "global rib add 100.64.1.0/24 nexthop 2001:db8::1").await;
    assert!(!success && bad.contains("family"), "{bad}");

    ok(port, "global rib del 100.64.1.0/24").await;
    let rib = ok(port, "global rib -a ipv4").await;
    assert!(!rib.contains("100.64.1.0/24"), "{rib}");
    assert!(core.state().local.is_empty());

    let adj = ok(port, "neighbor 198.18.0.2 adj-in").await;
    assert!(adj.contains("198.19.7.0/24"), "{adj}");
    let out = ok(port, "neighbor 198.18.0.2 adj-out").await;
    assert!(
        out.contains("Network not in table") || !out.contains("198.19.7.0/24"),
        "{out}"
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_global_rib_and_neighbor() {
    let (core, srv, port) = start().await;
    core.add_test_peer("198.18.0.2", 64513, SessionState::Active);
    let spawn = |args: &str| {
        gobgp_command(port, args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn gobgp monitor")
    };
    let mut rib = spawn("monitor global rib");
    let mut neigh = spawn("monitor neighbor 198.18.0.2");
    // Let both subscribe.
    tokio::time::sleep(Duration::from_millis(700)).await;
    ok(port, "global rib add 100.64.2.0/24 nexthop 198.18.0.2").await;
    ok(port, "global rib del 100.64.2.0/24").await;
    core.set_peer_state("198.18.0.2", SessionState::Established);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = rib.start_kill();
    let _ = neigh.start_kill();
    let rib_out =
        String::from_utf8_lossy(&rib.wait_with_output().await.expect("rib out").stdout).to_string();
    let neigh_out =
        String::from_utf8_lossy(&neigh.wait_with_output().await.expect("neigh out").stdout)
            .to_string();
    assert!(
        rib_out.contains("[ROUTE] 100.64.2.0/24 via 198.18.0.2"),
        "{rib_out}"
    );
    assert!(rib_out.contains("[DELROUTE] 100.64.2.0/24"), "{rib_out}");
    assert!(
        neigh_out.contains("[NEIGH] 198.18.0.2 fsm: ESTABLISHED admin: UP"),
        "{neigh_out}"
    );
    srv.shutdown().await;
}
