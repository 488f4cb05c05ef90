//! The effective-config document built from derived node states: fields
//! as the session and RIB builders set them, no secret in the output.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tabby_rib::PeerId;

use super::super::{Daemon, Options};
use super::*;
use crate::metrics::Metrics;
use crate::sessions::{SessionHandle, Sessions};

/// The specs of every session spawned, in order.
type Spawned = Arc<Mutex<Vec<SessionSpec>>>;

struct Recorder(Spawned);

impl Sessions for Recorder {
    fn listen(&mut self, _addrs: Vec<SocketAddr>) -> Result<(), String> {
        Ok(())
    }

    fn spawn(&mut self, _id: PeerId, spec: SessionSpec) -> Result<SessionHandle, String> {
        self.0.lock().unwrap().push(spec);
        // Commands go nowhere: these tests look at configuration only.
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(SessionHandle::new(tx))
    }
}

fn options() -> Options {
    Options {
        node_name: "node-a".into(),
        tunnel_device: "tunl0".into(),
        deferral_time: Duration::from_secs(30),
        log_level: "info".into(),
        max_prefixes: 1000,
    }
}

/// A daemon without a kernel, its configuration read from `yaml`, and the
/// specs of the sessions it spawned.
pub(in crate::daemon) fn daemon_with(yaml: &str) -> (Daemon, Spawned) {
    let spawned = Spawned::default();
    let mut d = Daemon::new(
        options(),
        Box::new(Recorder(spawned.clone())),
        None,
        None,
        Arc::new(Metrics::default()),
        Instant::now(),
    );
    let res = topo::Resources::from_yaml_str(yaml, "test.yaml").unwrap();
    d.apply_resources(&res, Instant::now());
    (d, spawned)
}

pub(in crate::daemon) const PASSWORD: &str = "tor-secret-value";

/// node-a in a mesh with node-b, a BGPPeer that sets every session knob,
/// a pool, a block and service IPs.
pub(in crate::daemon) fn cluster() -> String {
    format!(
        "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {{name: default}}
spec:
  asNumber: 64512
  nodeToNodeMeshEnabled: true
  listenPort: 1790
  serviceClusterIPs: [{{cidr: 198.19.0.0/24}}]
  communities: [{{name: pods, value: '64512:100'}}]
  prefixAdvertisements: [{{cidr: 100.64.0.0/16, communities: [pods]}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: bgp-secrets, namespace: calico-system}}
stringData: {{tor: {PASSWORD}}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: node-a}}
spec: {{bgp: {{ipv4Address: 198.18.0.11/24, ipv6Address: 2001:db8::11/64}}}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: node-b}}
spec: {{bgp: {{ipv4Address: 198.18.0.12/24}}}}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {{name: pods}}
spec: {{cidr: 100.64.0.0/16, blockSize: 26, ipipMode: CrossSubnet}}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {{name: a}}
spec: {{node: node-a, cidr: 100.64.0.0/26, state: confirmed}}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {{name: edge}}
spec:
  exportV4: [{{action: Reject, matchOperator: In, cidr: 100.64.0.0/16, prefixLength: {{min: 28}}}}]
  importV4: [{{action: Accept, matchOperator: In, cidr: 198.51.100.0/24}}]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
  annotations:
    tabby-routing.io/bfd: '{{\"interval\":\"150ms\",\"minRx\":\"200ms\",\"multiplier\":5,\"waitForUp\":true}}'
spec:
  node: node-a
  peerIP: 198.18.0.1:1179
  asNumber: 65100
  localASNumber: 64999
  password: {{secretKeyRef: {{name: bgp-secrets, key: tor}}}}
  keepOriginalNextHop: true
  maxRestartTime: 90s
  keepaliveTime: 20s
  ttlSecurity: 1
  numAllowedLocalASNumbers: 2
  reachableBy: 198.18.0.254
  filters: [edge]
"
    )
}

fn doc_json(d: &Daemon) -> (String, Value) {
    let text = EffectiveConfig::of(d).to_json();
    let v: Value = serde_json::from_str(&text).unwrap();
    (text, v)
}

fn peer<'a>(v: &'a Value, address: &str) -> &'a Value {
    v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == address)
        .unwrap_or_else(|| panic!("no peer {address} in {v:#}"))
}

#[test]
fn every_session_setting_is_in_the_document_and_no_secret() {
    let (d, spawned) = daemon_with(&cluster());
    let (text, v) = doc_json(&d);

    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!text.to_lowercase().contains("password\":"), "{text}");
    assert_eq!(v["schema"], "tabby.effective-config/v1");
    assert_eq!(v["node_name"], "node-a");
    assert_eq!(
        v["daemon"],
        json!({"tunnel_device": "tunl0", "deferral_time_seconds": 30, "max_prefixes": 1000, "log_level": "info"})
    );
    assert_eq!(v["datastore"]["sync"], "in-sync");
    assert!(v["datastore"]["last_reconfigured_unix_seconds"].is_u64());

    let node = &v["node"];
    assert_eq!(node["as_number"], 64512);
    assert_eq!(node["router_id"], "198.18.0.11");
    assert_eq!(node["ipv4_address"], "198.18.0.11/24");
    assert_eq!(node["ipv6_address"], "2001:db8::11/64");
    assert_eq!(node["listen_port"], 1790);
    assert_eq!(node["route_reflector_cluster_id"], Value::Null);
    assert_eq!(node["node_to_node_mesh"], true);
    assert_eq!(node["decision"]["cluster_id"], "198.18.0.11");
    assert_eq!(node["decision"]["max_paths"], 8);

    let tor = peer(&v, "198.18.0.1");
    let want = json!({
        "address": "198.18.0.1",
        "port": 1179,
        "type": "node",
        "origin": "BGPPeer tor",
        "calico_node": null,
        "description": null,
        "active": true,
        "peer_as": 65100,
        "local_as": 64999,
        "internal": false,
        "passive": false,
        "route_reflector_client": false,
        "cluster_id": null,
        "ttl_security_hops": 1,
        "multihop_ttl": null,
        "password_set": true,
        "next_hop": "keep",
        "source_address": "198.18.0.11",
        "families": ["ipv4-unicast"],
        "extended_next_hop": false,
        "hold_time_seconds": 60,
        "keepalive_seconds": 20,
        "graceful_restart": {"restart_time_seconds": 90, "notification": true, "forwarding_preserved": true},
        "long_lived_stale_time_seconds": null,
        "allowed_local_as": 2,
        "reachable_by": "198.18.0.254",
        "filters": ["edge"],
        "import_policy": "import 198.18.0.1",
        "export_policy": "export 198.18.0.1",
        "bfd": {
            "desired_min_tx_ms": 150.0,
            "required_min_rx_ms": 200.0,
            "multiplier": 5,
            "multihop": false,
            "min_ttl": null,
            "passive": false,
            "wait_for_up": true,
            "graceful": false,
        },
    });
    assert_eq!(*tor, want, "{tor:#}");

    let mesh = peer(&v, "198.18.0.12");
    assert_eq!(mesh["type"], "mesh");
    assert_eq!(mesh["calico_node"], "node-b");
    assert_eq!(mesh["internal"], true);
    assert_eq!(mesh["password_set"], false);
    assert_eq!(mesh["hold_time_seconds"], 90);
    assert_eq!(mesh["keepalive_seconds"], Value::Null);
    assert_eq!(mesh["graceful_restart"]["restart_time_seconds"], 120);
    assert_eq!(mesh["bfd"], Value::Null);

    // The document's sessions are the ones the daemon started.
    let spawned = spawned.lock().unwrap();
    assert_eq!(spawned.len(), v["peers"].as_array().unwrap().len());
    for s in spawned.iter() {
        let p = peer(&v, &s.remote.ip().to_string());
        assert_eq!(p["port"], s.remote.port());
        assert_eq!(p["hold_time_seconds"], s.config.hold_time);
        assert_eq!(p["password_set"], s.md5_password.is_some());
    }

    // Every policy a peer names is in the list, with its rules.
    let policies = v["policies"].as_array().unwrap();
    for name in ["import 198.18.0.1", "export 198.18.0.1"] {
        assert!(policies.iter().any(|p| p["name"] == name), "{name}");
    }
    let export = policies
        .iter()
        .find(|p| p["name"] == "export 198.18.0.1")
        .unwrap();
    assert_eq!(export["default"], "reject");
    assert_eq!(
        export["rules"][0],
        json!({"name": "export 198.18.0.1#0", "matches": ["prefix in 100.64.0.0/16 ge 28 le 32"], "actions": [], "verdict": "reject"})
    );
    let import = policies
        .iter()
        .find(|p| p["name"] == "import 198.18.0.1")
        .unwrap();
    assert_eq!(import["default"], "accept");

    let originated = v["originated"].as_array().unwrap();
    assert!(originated.contains(&json!({
        "prefix": "100.64.0.0/26", "kind": "block", "blackhole": true, "communities": ["64512:100"]
    })));
    assert!(
        originated
            .iter()
            .any(|o| o["prefix"] == "198.19.0.0/24" && o["kind"] == "service-cluster-ip"),
        "{originated:?}"
    );
    assert_eq!(
        v["pools"][0],
        json!({
            "name": "pods", "cidr": "100.64.0.0/16", "block_size": 26, "disabled": false,
            "disable_bgp_export": false, "ipip_mode": "cross-subnet", "vxlan_mode": "never",
            "kernel_route": "tunnel-unless-next-hop-in-subnet", "kernel_route_subnet": "198.18.0.0/24"
        })
    );
    assert_eq!(
        v["static_routes"],
        json!([{"prefix": "198.18.0.1/32", "via": "198.18.0.254"}])
    );
}

#[test]
fn a_reflector_shows_its_cluster_id_on_client_sessions() {
    let yaml = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a, labels: {role: rr}}
spec: {bgp: {ipv4Address: 198.18.0.11/24, routeReflectorClusterID: 198.18.0.100}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b, labels: {role: leaf}}
spec: {bgp: {ipv4Address: 198.18.0.12/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: leaves}
spec: {nodeSelector: role == 'rr', peerSelector: role == 'leaf'}
";
    let (d, _) = daemon_with(yaml);
    let (_, v) = doc_json(&d);
    assert_eq!(v["node"]["route_reflector_cluster_id"], "198.18.0.100");
    assert_eq!(v["node"]["decision"]["cluster_id"], "198.18.0.100");
    let leaf = peer(&v, "198.18.0.12");
    assert_eq!(leaf["route_reflector_client"], true, "{leaf:#}");
    assert_eq!(leaf["cluster_id"], "198.18.0.100");
    assert_eq!(leaf["internal"], true);
}

#[test]
fn an_api_peer_is_listed_as_the_daemon_started_it() {
    let (mut d, spawned) = daemon_with(&cluster());
    let mut cfg = am::PeerConfig::new("198.18.0.99".parse().unwrap(), 65099);
    cfg.hold_time = Some(30);
    cfg.keepalive = Some(10);
    cfg.description = "lab router".into();
    cfg.ebgp_multihop_ttl = Some(5);
    d.add_api_peer(cfg.clone(), Instant::now()).unwrap();
    let started = spawned.lock().unwrap().last().cloned().unwrap();
    let state = d.state.as_ref().unwrap();
    let mine = api_session_spec(state, &cfg);
    // `api_session_spec` stands for `add_api_peer`'s own building.
    assert_eq!(mine.config, started.config);
    assert_eq!(
        (mine.remote, mine.local_address, mine.md5_password.is_some()),
        (
            started.remote,
            started.local_address,
            started.md5_password.is_some()
        )
    );
    assert_eq!(mine.ttl_security, started.ttl_security);
    assert_eq!(
        started.ttl,
        Some(5),
        "the multihop TTL asked for is applied"
    );

    let (_, v) = doc_json(&d);
    let p = peer(&v, "198.18.0.99");
    assert_eq!(p["type"], "api");
    assert_eq!(p["origin"], "API");
    assert_eq!(p["description"], "lab router");
    assert_eq!(p["hold_time_seconds"], 30);
    assert_eq!(p["keepalive_seconds"], 10);
    assert_eq!(p["multihop_ttl"], 5);
    assert_eq!(p["graceful_restart"]["restart_time_seconds"], 120);
    assert_eq!(p["export_policy"], "export 198.18.0.99");
}

#[test]
fn before_any_configuration_the_document_says_so() {
    let d = Daemon::new(
        options(),
        Box::new(Recorder(Spawned::default())),
        None,
        None,
        Arc::new(Metrics::default()),
        Instant::now(),
    );
    let (_, v) = doc_json(&d);
    assert_eq!(v["schema"], SCHEMA);
    assert_eq!(v["node"], Value::Null);
    assert_eq!(v["peers"], json!([]));
    assert_eq!(v["datastore"]["sync"], "syncing");
    assert_eq!(
        v["datastore"]["detail"], "waiting for the first read",
        "{v:#}"
    );
}
