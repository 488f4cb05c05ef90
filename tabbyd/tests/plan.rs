//! `tabbyd plan` as an operator's CI runs it: the real binary on a cluster
//! file, its document and its exit status.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The daemon tests' cluster: two mesh nodes, a pool, node-a's block and a
/// top-of-rack BGPPeer.
const BASE: &str = include_str!("fixtures/cluster.yaml");

/// The cluster with BFD on the top-of-rack BGPPeer (`value` is the
/// annotation) and a keepalive time of 10 s.
fn cluster(value: &str) -> String {
    BASE.replace(
        "metadata: {name: tor}\nspec: {peerIP: 198.18.0.1, asNumber: 65000}",
        &format!(
            "metadata: {{name: tor, annotations: {{tabby-routing.io/bfd: '{value}'}}}}\n\
             spec: {{peerIP: 198.18.0.1, asNumber: 65000, keepaliveTime: 10s}}"
        ),
    )
}

struct Plan {
    status: i32,
    stdout: String,
    stderr: String,
}

fn plan(cluster: &str, args: &[&str]) -> Plan {
    let dir = std::env::temp_dir().join(format!("tabbyd-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: PathBuf = dir.join(format!("{}.yaml", args.join("_").replace('/', "_")));
    std::fs::write(&file, cluster).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tabbyd"))
        .arg("plan")
        .args(args)
        .arg("--datastore")
        .arg(format!("file:{}", file.display()))
        .env_remove("TABBY_DATASTORE")
        .env_remove("CALICO_ENDPOINT_STATUS_PATH_PREFIX")
        .output()
        .expect("tabbyd runs");
    Plan {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(p: &Plan) -> Value {
    serde_json::from_str(&p.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", p.stdout, p.stderr))
}

fn peer<'a>(doc: &'a Value, address: &str) -> &'a Value {
    doc["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == address)
        .unwrap_or_else(|| panic!("no peer {address}: {doc:#}"))
}

#[test]
fn a_clean_cluster_plans_every_session_and_exits_0() {
    let p = plan(&cluster("true"), &["--node", "node-a", "-o", "json"]);
    assert_eq!(p.status, 0, "{}", p.stderr);
    let doc = json(&p);
    assert_eq!(doc["schema"], "tabby.effective-config/v1");
    assert_eq!(doc["node_name"], "node-a");
    assert_eq!(doc["node"]["router_id"], "198.18.0.11");
    let tor = peer(&doc, "198.18.0.1");
    assert_eq!(tor["peer_as"], 65000);
    assert_eq!(tor["keepalive_seconds"], 10);
    assert_eq!(tor["active"], true);
    assert_eq!(tor["bfd"]["multiplier"], 3);
    let mesh = peer(&doc, "198.18.0.12");
    assert_eq!(mesh["type"], "mesh");
    assert_eq!(doc["originated"][0]["prefix"], "100.64.0.0/26");
    assert_eq!(doc["datastore"]["warnings"], Value::Array(vec![]));
}

#[test]
fn yaml_is_the_default_output() {
    let p = plan(&cluster("true"), &["--node", "node-b"]);
    assert_eq!(p.status, 0, "{}", p.stderr);
    let doc: Value = serde_yaml_ng::from_str(&p.stdout).expect("YAML");
    assert_eq!(doc["node_name"], "node-b");
    assert_eq!(peer(&doc, "198.18.0.11")["calico_node"], "node-a");
}

#[test]
fn what_cannot_be_honoured_is_listed_and_exits_1() {
    let p = plan(
        &cluster(r#"{"interval":"1ms"}"#),
        &["--node", "node-a", "-o", "json"],
    );
    assert_eq!(p.status, 1, "{}", p.stderr);
    let doc = json(&p);
    let warnings = doc["datastore"]["warnings"].to_string();
    assert!(warnings.contains("BGPPeer 'tor'"), "{warnings}");
    assert!(warnings.contains("tabby-routing.io/bfd"), "{warnings}");
    // The session is still planned, without BFD.
    assert_eq!(peer(&doc, "198.18.0.1")["bfd"], Value::Null);
}

#[test]
fn an_unknown_node_is_an_error_and_exits_2() {
    let p = plan(&cluster("true"), &["--node", "node-z"]);
    assert_eq!(p.status, 2, "{}", p.stdout);
    assert!(p.stderr.contains("node-z"), "{}", p.stderr);
    assert!(p.stdout.is_empty());
}

#[test]
fn an_unreadable_datastore_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_tabbyd"))
        .args([
            "plan",
            "--node",
            "node-a",
            "--datastore",
            "file:/nonexistent/tabby/cluster.yaml",
            "--timeout-seconds",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/tabby/cluster.yaml"), "{err}");
}

#[test]
fn calico_router_id_is_read_as_calico_node_reads_it() {
    let cluster = cluster("true");
    let run = |value: &str| {
        let dir = std::env::temp_dir().join(format!("tabbyd-plan-rid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cluster.yaml");
        std::fs::write(&file, &cluster).unwrap();
        Command::new(env!("CARGO_BIN_EXE_tabbyd"))
            .args(["plan", "--node", "node-a", "-o", "json", "--datastore"])
            .arg(format!("file:{}", file.display()))
            .env("CALICO_ROUTER_ID", value)
            .output()
            .unwrap()
    };
    let doc =
        |out: &std::process::Output| -> Value { serde_json::from_slice(&out.stdout).unwrap() };
    let fixed = run("198.18.9.9");
    assert_eq!(fixed.status.code(), Some(0));
    assert_eq!(doc(&fixed)["node"]["router_id"], "198.18.9.9");
    let hashed = run("hash");
    assert_eq!(hashed.status.code(), Some(0));
    assert_eq!(
        doc(&hashed)["node"]["router_id"],
        tabby_topology::hash_router_id("node-a").to_string()
    );
    let bad = run("not-an-id");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("CALICO_ROUTER_ID"));
}

/// A cluster with workload BGPPeers (`localWorkloadSelector`).
const WORKLOADS: &str = include_str!("fixtures/workload-peers.yaml");

#[test]
fn workload_peers_are_planned_from_felixs_endpoint_status_files() {
    let prefix = std::env::temp_dir().join(format!("tabbyd-plan-felix-{}", std::process::id()));
    let dir = prefix.join("endpoint-status");
    std::fs::create_dir_all(&dir).unwrap();
    // As Felix writes them: one per workload endpoint; bgpPeerName is its choice.
    std::fs::write(
        dir.join("k8s routers%2Fvr-1 eth0"),
        r#"{"ifaceName":"cali1a2b3c4d5e6","ipv4Nets":["198.19.0.5/32"],"ipv6Nets":["2001:db8:1000::5/128"],"bgpPeerName":"virtual-routers"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("k8s routers%2Fvr-2 eth0"),
        r#"{"ifaceName":"cali2a2b3c4d5e6","ipv4Nets":["198.19.0.6/32"],"bgpPeerName":"node-b-only"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("k8s default%2Fweb eth0"),
        r#"{"ifaceName":"cali3a2b3c4d5e6","ipv4Nets":["198.19.0.7/32"]}"#,
    )
    .unwrap();
    let prefix_arg = prefix.display().to_string();
    let args = [
        "--node",
        "node-a",
        "-o",
        "json",
        "--endpoint-status-path-prefix",
        prefix_arg.as_str(),
    ];
    let p = plan(WORKLOADS, &args);
    assert_eq!(p.status, 0, "{}\n{}", p.stderr, p.stdout);
    let doc = json(&p);
    for address in ["198.19.0.5", "2001:db8:1000::5"] {
        let w = peer(&doc, address);
        assert_eq!(w["peer_as"], 65010, "{w:#}");
        assert_eq!(w["local_as"], 64512);
        assert_eq!(w["passive"], true);
        assert_eq!(w["type"], "workload");
        assert_eq!(w["filters"], serde_json::json!(["workload-routes"]));
        assert_eq!(
            w["origin"],
            "BGPPeer virtual-routers, local workload k8s routers%2Fvr-1 eth0"
        );
    }
    // vr-2's BGPPeer is node-b's; the third workload has none.
    let addresses: Vec<&str> = doc["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["address"].as_str())
        .collect();
    assert!(!addresses.contains(&"198.19.0.6"), "{addresses:?}");
    assert!(!addresses.contains(&"198.19.0.7"), "{addresses:?}");

    // A file Felix is halfway through writing is reported: exit 1, the rest planned.
    std::fs::write(dir.join("k8s routers%2Fvr-3 eth0"), r#"{"ifaceName":"cali"#).unwrap();
    let p = plan(WORKLOADS, &args);
    assert_eq!(p.status, 1, "{}", p.stderr);
    let doc = json(&p);
    let warnings = doc["datastore"]["warnings"].to_string();
    assert!(warnings.contains("vr-3"), "{warnings}");
    assert_eq!(peer(&doc, "198.19.0.5")["passive"], true);

    // Without the files, no workload session.
    let empty = prefix.join("none");
    let p = plan(
        WORKLOADS,
        &[
            "--node",
            "node-a",
            "-o",
            "json",
            "--endpoint-status-path-prefix",
            &empty.display().to_string(),
        ],
    );
    assert_eq!(p.status, 0, "{}", p.stderr);
    let doc = json(&p);
    assert!(
        doc["peers"].as_array().unwrap().iter().all(|p| p["origin"]
            .as_str()
            .is_some_and(|o| !o.contains("workload"))),
        "{doc:#}"
    );
    std::fs::remove_dir_all(&prefix).unwrap();
}
