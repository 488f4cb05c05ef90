//! `BGPPeer` `localWorkloadSelector` (Calico 3.31+): sessions between this node and its
//! workloads, from Felix's endpoint status files. The rules come from confd's
//! `client.go` (`localBGPPeerDataAsBGPPeers`: passive, no source address, AS, local AS and
//! filters from the BGPPeer, the first IPv4 and IPv6 address of the endpoint, no reverse
//! peering), `local_bgp_peer_watcher.go` (files without `bgpPeerName` are not peers) and
//! the BGPPeer CRD's validation rules. The files here are written for these tests, in the
//! format of Felix's `epstatusfile.WorkloadEndpointStatus`.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use tabby_topology::*;

/// node-a (198.18.0.11, 2001:db8::11) and node-b, AS 64512, no mesh; a BGPFilter that
/// accepts only 100.65.0.0/16 and 2001:db8:1100::/40 from workloads.
const CLUSTER: &str = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a, labels: {workload-bgp: 'on'}}
spec: {bgp: {ipv4Address: 198.18.0.11/24, ipv6Address: '2001:db8::11/64'}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b}
spec: {bgp: {ipv4Address: 198.18.0.12/24, ipv6Address: '2001:db8::12/64'}}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: from-workloads}
spec:
  importV4: [{action: Accept, matchOperator: In, cidr: 100.65.0.0/16}, {action: Reject}]
  importV6: [{action: Accept, matchOperator: In, cidr: '2001:db8:1100::/40'}, {action: Reject}]
";

fn bgp_peer(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

fn load(peers: &[(&str, &str)]) -> Resources {
    let docs: String = peers.iter().map(|(n, s)| bgp_peer(n, s)).collect();
    Resources::from_yaml_str(&format!("{CLUSTER}{docs}"), "inline").unwrap()
}

/// An endpoint status file as Felix writes it (compact JSON, `omitempty` fields left out).
fn status(v4: &[&str], v6: &[&str], peer: &str) -> String {
    let list = |l: &[&str]| {
        l.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut fields = vec![
        "\"ifaceName\":\"cali0123456789a\"".to_string(),
        "\"mac\":\"ee:ee:ee:ee:ee:ee\"".to_string(),
    ];
    if !v4.is_empty() {
        fields.push(format!("\"ipv4Nets\":[{}]", list(v4)));
    }
    if !v6.is_empty() {
        fields.push(format!("\"ipv6Nets\":[{}]", list(v6)));
    }
    if !peer.is_empty() {
        fields.push(format!("\"bgpPeerName\":\"{peer}\""));
    }
    format!("{{{}}}", fields.join(","))
}

/// Felix's file name for a Kubernetes pod's endpoint.
fn file_name(pod: &str) -> String {
    format!("k8s workloads%2F{pod} eth0")
}

/// Writes `files` into `<prefix>/endpoint-status` and reads the directory as tabbyd does.
fn endpoints(prefix: &Path, files: &[(&str, String)]) -> LocalEndpoints {
    let dir = endpoint_status_dir(prefix);
    std::fs::create_dir_all(&dir).unwrap();
    for (pod, text) in files {
        std::fs::write(dir.join(file_name(pod)), text).unwrap();
    }
    LocalEndpoints::read_dir(&dir, None).unwrap()
}

fn key(ip: &str) -> PeerKey {
    PeerKey {
        address: ip.parse::<IpAddr>().unwrap(),
        port: 179,
    }
}

fn workload_peers(state: &NodeState) -> Vec<&Peer> {
    state
        .peers
        .values()
        .filter(|p| p.origin.contains("local workload"))
        .collect()
}

#[test]
fn each_workload_gets_a_passive_session_per_family_with_the_bgppeers_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let res = load(&[(
        "workloads",
        "{localWorkloadSelector: \"bgp == 'yes'\", asNumber: 65010, localASNumber: 64600, \
         filters: [from-workloads], sourceAddress: UseNodeIP, keepaliveTime: 10s, \
         nextHopMode: Self, ttlSecurity: 2}",
    )]);
    let eps = endpoints(
        tmp.path(),
        &[
            (
                "vr-1",
                status(
                    &["198.19.0.5/32", "198.19.0.6/32"],
                    &["2001:db8:1000::5/128"],
                    "workloads",
                ),
            ),
            ("vr-2", status(&["198.19.0.7/32"], &[], "workloads")),
            // Felix writes a file for every workload; most name no BGPPeer.
            ("plain", status(&["198.19.0.8/32"], &[], "")),
        ],
    );
    let state = derive(&res.with_local_endpoints(eps), "node-a").unwrap();
    assert!(state.warnings.is_empty(), "{:?}", state.warnings);

    let mut addresses: Vec<String> = workload_peers(&state)
        .iter()
        .map(|p| p.key.address.to_string())
        .collect();
    addresses.sort();
    // The first address of each list: 198.19.0.6 is not a peer.
    assert_eq!(
        addresses,
        ["198.19.0.5", "198.19.0.7", "2001:db8:1000::5"],
        "{:#?}",
        state.peers
    );

    let v4 = &state.peers[&key("198.19.0.5")];
    assert_eq!(v4.kind, PeerKind::Workload);
    assert_eq!(v4.peer_as, 65010);
    assert_eq!(v4.local_as, 64600);
    assert_eq!(v4.local_as_override, Some(64600));
    assert!(v4.passive, "the workload connects");
    assert_eq!(v4.source_address, None, "confd: source address None");
    // confd carries none of these for workload peers, whatever the BGPPeer says.
    assert_eq!(v4.ttl_security, None);
    assert_eq!(v4.keepalive_time, None);
    assert_eq!(v4.next_hop, NextHop::Auto);
    assert_eq!(v4.password, None);
    assert!(!v4.internal && !v4.rr_client);
    assert_eq!(v4.calico_node, None);
    assert_eq!(
        v4.origin,
        "BGPPeer workloads, local workload k8s workloads%2Fvr-1 eth0"
    );
    assert_eq!(v4.filters, ["from-workloads"]);
    assert_eq!(v4.import_rules.len(), 2);
    assert_eq!(
        v4.import_rules[0].matches,
        [Match::Prefix(PrefixMatch::within(
            "100.65.0.0/16".parse().unwrap()
        ))]
    );

    let v6 = &state.peers[&key("2001:db8:1000::5")];
    assert!(v6.passive);
    assert_eq!(v6.peer_as, 65010);
    assert_eq!(v6.origin, v4.origin);
    assert_eq!(
        v6.import_rules[0].matches,
        [Match::Prefix(PrefixMatch::within(
            "2001:db8:1100::/40".parse().unwrap()
        ))],
        "the IPv6 session takes the IPv6 rules"
    );
    // The export chain is every peer's: Calico's base rules after the BGPPeer's.
    let export = state.export_policy(v4);
    assert_eq!(export.rules.len(), state.export_base_v4.len());
}

#[test]
fn only_bgppeers_that_apply_to_this_node_give_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let res = load(&[
        (
            "on-b",
            "{node: node-b, localWorkloadSelector: all(), asNumber: 65010}",
        ),
        (
            "by-label",
            "{nodeSelector: \"workload-bgp == 'on'\", localWorkloadSelector: all(), asNumber: 65011}",
        ),
    ]);
    let eps = endpoints(
        tmp.path(),
        &[
            ("for-b", status(&["198.19.0.5/32"], &[], "on-b")),
            ("gone", status(&["198.19.0.6/32"], &[], "no-such-peer")),
            ("labelled", status(&["198.19.0.7/32"], &[], "by-label")),
        ],
    );
    let res = res.with_local_endpoints(eps);
    let a = derive(&res, "node-a").unwrap();
    let peers = workload_peers(&a);
    assert_eq!(peers.len(), 1, "{:#?}", a.peers);
    assert_eq!(peers[0].key, key("198.19.0.7"));
    assert_eq!(peers[0].kind, PeerKind::Workload);
    assert_eq!(peers[0].peer_as, 65011);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);

    // node-b's own BGPPeer applies there (these files would be node-b's own in practice).
    let b = derive(&res, "node-b").unwrap();
    let keys: Vec<PeerKey> = workload_peers(&b).iter().map(|p| p.key).collect();
    assert_eq!(keys, [key("198.19.0.5")]);
    // No reverse peering: node-b gets nothing from node-a's workload BGPPeer.
    assert!(b.peers.values().all(|p| p.origin != "BGPPeer by-label"));
}

#[test]
fn invalid_workload_bgppeers_are_reported_and_skipped_others_still_derive() {
    let tmp = tempfile::tempdir().unwrap();
    let res = load(&[
        (
            "with-ip",
            "{localWorkloadSelector: all(), peerIP: 198.18.0.1, asNumber: 65010}",
        ),
        (
            "with-selector",
            "{localWorkloadSelector: all(), peerSelector: all()}",
        ),
        ("no-as", "{localWorkloadSelector: all()}"),
        (
            "bad-selector",
            "{localWorkloadSelector: \"a ==\", asNumber: 65010}",
        ),
        ("good", "{localWorkloadSelector: all(), asNumber: 65010}"),
        ("tor", "{peerIP: 198.18.0.1, asNumber: 65000}"),
    ]);
    let problems = res.problems.join("\n");
    for (name, field) in [
        ("with-ip", "spec.peerIP"),
        ("with-selector", "spec.peerSelector"),
        ("no-as", "spec.asNumber"),
        ("bad-selector", "spec.localWorkloadSelector"),
    ] {
        assert!(
            problems.contains(&format!("BGPPeer '{name}': field {field}")),
            "{name}: {problems}"
        );
        assert!(!res.bgp_peers.contains_key(name));
    }
    let eps = endpoints(
        tmp.path(),
        &[
            ("a", status(&["198.19.0.5/32"], &[], "with-ip")),
            ("b", status(&["198.19.0.6/32"], &[], "no-as")),
            ("c", status(&["198.19.0.7/32"], &[], "good")),
        ],
    );
    let state = derive(&res.with_local_endpoints(eps), "node-a").unwrap();
    let keys: Vec<PeerKey> = workload_peers(&state).iter().map(|p| p.key).collect();
    assert_eq!(keys, [key("198.19.0.7")]);
    assert!(
        state.peers.contains_key(&key("198.18.0.1")),
        "the ToR stays"
    );
}

#[test]
fn a_malformed_file_is_reported_and_skipped_and_its_last_good_contents_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let res = load(&[(
        "workloads",
        "{localWorkloadSelector: all(), asNumber: 65010}",
    )]);
    let good = endpoints(
        tmp.path(),
        &[
            ("ok", status(&["198.19.0.5/32"], &[], "workloads")),
            ("later-cut", status(&["198.19.0.6/32"], &[], "workloads")),
        ],
    );
    assert!(good.problems.is_empty());
    // Caught mid-write, and one that never was valid.
    let dir = endpoint_status_dir(tmp.path());
    std::fs::write(dir.join(file_name("later-cut")), "{\"ifaceName\":\"cali").unwrap();
    std::fs::write(dir.join(file_name("junk")), "not json").unwrap();
    let now = LocalEndpoints::read_dir(&dir, Some(&good)).unwrap();
    assert_eq!(now.problems.len(), 2, "{:?}", now.problems);
    assert!(
        now.problems
            .iter()
            .any(|p| p.contains("later-cut") && p.contains("last good contents stay"))
    );
    let state = derive(&res.with_local_endpoints(now), "node-a").unwrap();
    let mut keys: Vec<PeerKey> = workload_peers(&state).iter().map(|p| p.key).collect();
    keys.sort();
    assert_eq!(keys, [key("198.19.0.5"), key("198.19.0.6")]);
    assert_eq!(state.warnings.len(), 2, "{:?}", state.warnings);
    assert!(state.warnings.iter().any(|w| w.contains("junk")));

    // Without a previous read, the malformed file is just skipped.
    let fresh = LocalEndpoints::read_dir(&dir, None).unwrap();
    assert_eq!(fresh.endpoints.len(), 1);
}

#[test]
fn an_endpoint_whose_first_address_is_not_a_cidr_is_skipped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let res = load(&[(
        "workloads",
        "{localWorkloadSelector: all(), asNumber: 65010}",
    )]);
    let eps = endpoints(
        tmp.path(),
        &[
            (
                "bad",
                status(&["198.19.0.5"], &["2001:db8:1000::5/128"], "workloads"),
            ),
            ("good", status(&[], &["2001:db8:1000::6/128"], "workloads")),
        ],
    );
    let state = derive(&res.with_local_endpoints(eps), "node-a").unwrap();
    let keys: Vec<PeerKey> = workload_peers(&state).iter().map(|p| p.key).collect();
    assert_eq!(keys, [key("2001:db8:1000::6")]);
    assert_eq!(state.warnings.len(), 1, "{:?}", state.warnings);
    assert!(state.warnings[0].contains("ipv4Nets[0] '198.19.0.5'"));
}

#[test]
fn an_ibgp_workload_of_a_route_reflector_is_its_client() {
    let tmp = tempfile::tempdir().unwrap();
    let text = CLUSTER.replace(
        "metadata: {name: node-a, labels: {workload-bgp: 'on'}}\nspec: {bgp: {",
        "metadata: {name: node-a, labels: {workload-bgp: 'on'}}\nspec: {bgp: {routeReflectorClusterID: 198.18.0.100, ",
    ) + &bgp_peer("workloads", "{localWorkloadSelector: all(), asNumber: 64512}");
    let res = Resources::from_yaml_str(&text, "inline").unwrap();
    let eps = endpoints(
        tmp.path(),
        &[("rr-client", status(&["198.19.0.5/32"], &[], "workloads"))],
    );
    let state = derive(&res.with_local_endpoints(eps), "node-a").unwrap();
    let p = &state.peers[&key("198.19.0.5")];
    assert!(p.internal && p.rr_client && p.passive);
}

#[test]
fn a_missing_directory_is_no_endpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let eps = LocalEndpoints::read_dir(&tmp.path().join("endpoint-status"), None).unwrap();
    assert_eq!(eps, LocalEndpoints::default());
}

#[tokio::test]
async fn the_watcher_reports_files_appearing_changing_and_going() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = endpoint_status_dir(tmp.path());
    let mut w = EndpointStatusWatcher::new(dir.clone()).with_interval(Duration::from_millis(20));
    let first = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    assert!(first.endpoints.is_empty(), "no directory yet");

    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(file_name("vr-1"));
    std::fs::write(&f, status(&["198.19.0.5/32"], &[], "workloads")).unwrap();
    let added = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    assert_eq!(added.endpoints.len(), 1);

    std::fs::write(&f, status(&["198.19.0.9/32"], &[], "workloads")).unwrap();
    let changed = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    let ep = changed.endpoints.values().next().unwrap();
    assert_eq!(ep.ipv4_nets, ["198.19.0.9/32"]);

    std::fs::remove_file(&f).unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    assert!(gone.endpoints.is_empty());
}
