//! The built tabbyctl binary against a real API server (backed by the
//! api crate's test core) on a unix socket in a temp dir.

#[path = "../../api/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestCore, TestServer};
use tabby_api::Core;
use tabby_api::model::{BfdPhase, BfdStatus, SessionState};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs tabbyctl against `socket`, the arguments written as one command
/// line (`"peers show 198.18.0.2"`).
async fn tabbyctl(socket: &Path, args: &str) -> Out {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tabbyctl"))
            .arg("--api")
            .arg(format!("unix:{}", socket.display()))
            .args(args.split_whitespace())
            .env_remove("TABBY_API")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("tabbyctl finished within 20s")
    .expect("tabbyctl ran");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

async fn ok(socket: &Path, args: &str) -> String {
    let o = tabbyctl(socket, args).await;
    assert_eq!(
        o.code, 0,
        "tabbyctl {args} failed: {}{}",
        o.stdout, o.stderr
    );
    o.stdout
}

async fn fails(socket: &Path, args: &str) -> String {
    let o = tabbyctl(socket, args).await;
    assert_ne!(o.code, 0, "tabbyctl {args} should fail: {}", o.stdout);
    o.stderr
}

async fn setup() -> (std::sync::Arc<TestCore>, TestServer) {
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.add_test_peer("198.18.0.3", 64513, SessionState::Active);
    core.learn("198.19.7.0/24", "198.18.0.2", vec![64513, 65010], 100);
    core.learn("198.19.7.0/24", "198.18.0.3", vec![64513], 50);
    core.learn("2001:db8:1000::/48", "198.18.0.2", vec![64513], 100);
    let srv = TestServer::start(core.clone()).await;
    (core, srv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_peers() {
    let (_core, srv) = setup().await;
    let s = ok(&srv.socket, "status").await;
    assert!(s.contains("router id 198.18.0.1, AS 64512"), "{s}");
    assert!(s.contains("peers: 2 configured, 1 established"), "{s}");
    let header = s
        .lines()
        .find(|l| l.starts_with("PEER"))
        .expect("peer table header");
    for col in ["TYPE", "STATE", "SINCE", "IN", "OUT", "INFO"] {
        assert!(header.contains(col), "{header}");
    }
    let row = s
        .lines()
        .find(|l| l.starts_with("198.18.0.2"))
        .expect("peer row");
    assert!(
        row.contains("node-mesh") && row.contains("Established") && row.contains("2m"),
        "{row}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(&srv.socket, "-o json status").await).expect("json");
    assert_eq!(json["local_as"], 64512);
    assert_eq!(json["peers"][0]["state"], "Established");
    assert_eq!(json["peers"][0]["counters"]["prefixes_received"], 3);
    let yaml = ok(&srv.socket, "-o yaml peers").await;
    assert!(
        yaml.contains("address: 198.18.0.3") && yaml.contains("state: Active"),
        "{yaml}"
    );

    let show = ok(&srv.socket, "peers show 198.18.0.2").await;
    assert!(
        show.contains("peer 198.18.0.2 AS 64513") && show.contains("3 received"),
        "{show}"
    );
    let err = fails(&srv.socket, "peers show 198.18.0.9").await;
    assert!(err.contains("no peer 198.18.0.9"), "{err}");

    let added = ok(&srv.socket, "peers add 198.18.0.4 --as 65001 --hold-time 9").await;
    assert!(added.contains("peer 198.18.0.4 AS 65001 (api)"), "{added}");
    let err = fails(&srv.socket, "peers add 198.18.0.5 --as 0").await;
    assert!(err.contains("RFC 7607"), "{err}");
    let err = fails(&srv.socket, "peers add 198.18.0.5 --as 65001 --hold-time 2").await;
    assert!(err.contains("3..65535"), "{err}");
    let del = ok(&srv.socket, "peers del 198.18.0.4").await;
    assert!(del.contains("deleted"), "{del}");
    let reset = ok(&srv.socket, "peers reset 198.18.0.2 --soft in").await;
    assert!(reset.contains("soft reset requested"), "{reset}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_announce_withdraw_explain() {
    let (core, srv) = setup().await;
    let r = ok(&srv.socket, "routes").await;
    assert!(
        r.contains("198.19.7.0/24") && r.contains("2001:db8:1000::/48"),
        "{r}"
    );
    assert_eq!(
        r.lines().filter(|l| l.contains("198.19.7.0/24")).count(),
        2,
        "both paths: {r}"
    );
    let best = ok(&srv.socket, "routes --best 198.19.7.0/24").await;
    assert_eq!(
        best.lines().filter(|l| l.contains("198.19.7.0/24")).count(),
        1,
        "{best}"
    );
    let v6 = ok(&srv.socket, "routes -a ipv6").await;
    assert!(
        v6.contains("2001:db8:1000::/48") && !v6.contains("198.19.7.0"),
        "{v6}"
    );
    let err = fails(&srv.socket, "routes 198.19.7.1/24").await;
    assert!(err.contains("did you mean 198.19.7.0/24"), "{err}");

    let a = ok(
        &srv.socket,
        "announce 100.64.1.0/26 --kind pod-block --community 65000:100",
    )
    .await;
    assert!(a.contains("added 1"), "{a}");
    assert_eq!(core.state().local.len(), 1);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&srv.socket, "-o json routes 100.64.1.0/26").await).expect("json");
    assert_eq!(json[0]["paths"][0]["communities"][0], "65000:100");
    assert_eq!(json[0]["paths"][0]["source"], "local:tabbyctl");
    let err = fails(&srv.socket, "announce 100.64.1.0/26 --community 65000").await;
    assert!(err.contains("ASN:VALUE"), "{err}");
    let err = fails(&srv.socket, "announce 100.64.1.0/24 --kind host").await;
    assert!(err.contains("needs a /32"), "{err}");

    let e = ok(&srv.socket, "route explain 198.19.7.0/24").await;
    assert!(
        e.contains("2 candidate path(s)") && e.contains("best via 198.18.0.2"),
        "{e}"
    );

    let w = ok(&srv.socket, "withdraw 100.64.1.0/26").await;
    assert!(w.contains("removed 1"), "{w}");
    assert!(core.state().local.is_empty());
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_sessions_in_bfd_peers_status_and_explain() {
    let (core, srv) = setup().await;
    // No BFD anywhere: one line, an empty list, no BFD in status or peers.
    let t = ok(&srv.socket, "bfd").await;
    assert_eq!(t, "no peer has BFD; see the README's BFD section\n");
    assert_eq!(ok(&srv.socket, "-o json bfd").await.trim(), "[]");
    let s = ok(&srv.socket, "status").await;
    assert!(!s.contains("BFD"), "{s}");

    core.set_peer_bfd(
        "198.18.0.2",
        Some(BfdStatus {
            phase: BfdPhase::Up,
            multiplier: 3,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            negotiated_tx_us: 300_000,
            negotiated_rx_us: 300_000,
            remote_multiplier: 3,
            detection_time_us: 900_000,
            uptime_seconds: 125,
            flaps: 1,
            last_diagnostic: "control detection time expired".into(),
            ..BfdStatus::default()
        }),
    );
    core.set_peer_bfd(
        "198.18.0.3",
        Some(BfdStatus {
            phase: BfdPhase::Down,
            multiplier: 3,
            detail: "held down: waiting for BFD Up".into(),
            bgp_held: true,
            wait_for_up: true,
            ..BfdStatus::default()
        }),
    );
    let t = ok(&srv.socket, "bfd").await;
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert!(
        lines[0].starts_with("PEER") && lines[0].ends_with("INFO"),
        "{t}"
    );
    let up: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        up[..6],
        ["198.18.0.2", "Up", "300ms", "300ms", "3/3", "900ms"],
        "{t}"
    );
    assert!(
        lines[1].contains("control detection time expired") && lines[1].contains("2m5s"),
        "{t}"
    );
    assert!(
        lines[2].starts_with("198.18.0.3") && lines[2].ends_with("held down: waiting for BFD Up"),
        "{t}"
    );

    let j: serde_json::Value =
        serde_json::from_str(&ok(&srv.socket, "-o json bfd").await).expect("json");
    assert_eq!(j[0]["peer"], "198.18.0.2");
    assert_eq!(j[0]["state"], "Up");
    assert_eq!(j[0]["detection_time_us"], 900_000);
    assert_eq!(j[1]["state"], "Down");
    assert_eq!(j[1]["bgp_held"], true);
    let y = ok(&srv.socket, "-o yaml bfd").await;
    assert!(y.contains("negotiated_tx_us: 300000"), "{y}");

    let s = ok(&srv.socket, "status").await;
    assert!(s.contains("\nBFD: 1 up, 1 down\n"), "{s}");
    let header = s.lines().find(|l| l.starts_with("PEER")).expect("header");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "PEER", "TYPE", "AS", "STATE", "BFD", "SINCE", "IN", "OUT", "INFO"
        ],
        "{header}"
    );
    let row = s
        .lines()
        .find(|l| l.starts_with("198.18.0.3"))
        .expect("row");
    assert_eq!(row.split_whitespace().nth(4), Some("Down"), "{row}");
    let p: serde_json::Value =
        serde_json::from_str(&ok(&srv.socket, "-o json peers").await).expect("json");
    assert_eq!(p[0]["bfd"]["state"], "Up");
    assert_eq!(p[0]["bfd"]["negotiated_rx_us"], 300_000);
    assert!(p[0]["bfd"].get("peer").is_none(), "{p}");
    assert_eq!(p[1]["bfd"]["wait_for_up"], true);
    let show = ok(&srv.socket, "peers show 198.18.0.2").await;
    assert!(show.contains("  bfd: Up for 2m5s"), "{show}");

    // The paths left: explain says why, with no candidate left.
    core.record_departure(
        "198.19.9.0/24",
        "198.18.0.3",
        1_796_658_001,
        "BFD went down (control detection time expired); paths withdrawn",
    );
    let e = ok(&srv.socket, "route explain 198.19.9.0/24").await;
    assert!(e.contains("0 candidate path(s)"), "{e}");
    assert!(
        e.contains(
            "paths from 198.18.0.3 withdrawn at 2026-12-07T15:40:01Z: BFD went down (control detection time expired)"
        ),
        "{e}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&ok(&srv.socket, "-o json route explain 198.19.9.0/24").await)
            .expect("json");
    assert_eq!(j["departed"]["peer"], "198.18.0.3");
    assert_eq!(j["departed"]["at"], "2026-12-07T15:40:01Z");
    assert_eq!(j["departed"]["withdrawn"], true);
    let err = fails(&srv.socket, "route explain 198.19.10.0/24").await;
    assert!(err.contains("no path for 198.19.10.0/24"), "{err}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_sets_an_owners_whole_set() {
    let (core, srv) = setup().await;
    let owned = |owner: &str| -> Vec<String> {
        core.state()
            .local
            .keys()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(p, _)| p.to_string())
            .collect()
    };
    ok(&srv.socket, "announce 100.64.9.0/26 --owner other").await;
    let r = ok(
        &srv.socket,
        "replace --owner ipam 100.64.1.0/26 100.64.2.0/26 --kind pod-block",
    )
    .await;
    assert!(r.contains("added 2, updated 0, removed 0"), "{r}");
    assert_eq!(owned("ipam"), ["100.64.1.0/26", "100.64.2.0/26"]);

    // The block moves away: one kept, one removed, one added.
    let r = ok(
        &srv.socket,
        "-o json replace --owner ipam 100.64.2.0/26 100.64.3.0/26 --kind pod-block",
    )
    .await;
    let j: serde_json::Value = serde_json::from_str(&r).expect("json");
    assert_eq!(
        (&j["added"], &j["removed"], &j["unchanged"]),
        (&1.into(), &1.into(), &1.into()),
        "{j}"
    );
    assert_eq!(owned("ipam"), ["100.64.2.0/26", "100.64.3.0/26"]);

    // Idempotent: the same set again changes nothing.
    let r = ok(
        &srv.socket,
        "replace --owner ipam 100.64.2.0/26 100.64.3.0/26 --kind pod-block",
    )
    .await;
    assert!(
        r.contains("added 0, updated 0, removed 0, unchanged 2"),
        "{r}"
    );

    // An empty set needs --none; other owners are never touched.
    let err = fails(&srv.socket, "replace --owner ipam").await;
    assert!(err.contains("--none"), "{err}");
    let err = fails(&srv.socket, "replace 100.64.2.0/26").await;
    assert!(err.contains("--owner"), "{err}");
    let r = ok(&srv.socket, "replace --owner ipam --none").await;
    assert!(r.contains("removed 2"), "{r}");
    assert!(owned("ipam").is_empty());
    assert_eq!(owned("other"), ["100.64.9.0/26"]);

    let err = fails(&srv.socket, "replace --owner ipam 100.64.1.1/26").await;
    assert!(err.contains("replace failed"), "{err}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_health() {
    let (core, srv) = setup().await;
    let w = ok(&srv.socket, "watch routes -a ipv4 --count 2").await;
    let lines: Vec<&str> = w.lines().collect();
    assert!(
        lines[0].contains("snapshot") && lines[0].contains("198.19.7.0/24"),
        "{w}"
    );
    assert!(lines[1].contains("end-of-snapshot"), "{w}");
    let p = ok(&srv.socket, "-o json watch peers --count 3").await;
    let kinds: Vec<String> = p
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json line")["kind"].to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["\"snapshot\"", "\"snapshot\"", "\"end-of-snapshot\""]
    );

    // One peer is Active: not ready, exit code 1.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = tabbyctl(&srv.socket, "health").await;
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("live: yes") && o.stdout.contains("ready: no"),
        "{}",
        o.stdout
    );
    core.set_peer_state("198.18.0.3", SessionState::Established);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = tabbyctl(&srv.socket, "health").await;
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_yaml_unless_json_is_asked_for() {
    let (core, srv) = setup().await;
    let sent = core.effective_config().await.expect("test core config");
    let want: serde_json::Value = serde_json::from_str(&sent).expect("test core config is JSON");
    for args in ["config", "-o yaml config"] {
        let y = ok(&srv.socket, args).await;
        let got: serde_json::Value = serde_yaml_ng::from_str(&y).expect("YAML");
        assert_eq!(got, want, "{args}: {y}");
        assert!(!y.trim_start().starts_with('{'), "{args}: {y}");
    }
    let j = ok(&srv.socket, "-o json config").await;
    let got: serde_json::Value = serde_json::from_str(&j).expect("JSON");
    assert_eq!(got, want, "{j}");
    assert!(j.contains("\n  \""), "pretty: {j}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_tell_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("nope.sock");
    let err = fails(&missing, "status").await;
    assert!(
        err.contains("not found") && err.contains("Is tabbyd running?"),
        "{err}"
    );

    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let err = fails(&stale, "status").await;
    assert!(
        err.contains("nothing listens") && err.contains("not running"),
        "{err}"
    );

    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_tabbyctl"))
        .args(["--api", "ftp://x", "status"])
        .output()
        .await
        .expect("ran");
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unix:/path/to/tabbyd.sock"));
}
