//! Diffs: one changed resource touches only what it should.

use std::net::IpAddr;

use tabby_topology::*;

fn full() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/full.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn state(text: &str) -> NodeState {
    let res = Resources::from_yaml_str(text, "inline").unwrap_or_else(|e| panic!("{e}"));
    derive(&res, "node-a").unwrap()
}

fn key(ip: &str, port: u16) -> PeerKey {
    PeerKey {
        address: ip.parse::<IpAddr>().unwrap(),
        port,
    }
}

fn edited(from: &str, to: &str) -> Vec<Change> {
    let text = full();
    assert!(text.contains(from), "fixture lacks {from:?}");
    diff(&state(&text), &state(&text.replacen(from, to, 1)))
}

#[test]
fn no_change_no_diff() {
    let text = full();
    assert_eq!(diff(&state(&text), &state(&text)), vec![]);
}

#[test]
fn password_change_resets_only_that_session() {
    let changes = edited("tor: tor-secret", "tor: tor-secret-2");
    assert_eq!(
        changes,
        vec![Change::PeerChanged {
            key: key("198.18.0.1", 1179),
            fields: vec![PeerField::Password]
        }]
    );
    assert!(changes[0].needs_reset());
}

#[test]
fn one_bgppeer_changed_touches_one_peer() {
    let changes = edited("  nextHopMode: Self", "  nextHopMode: Keep");
    assert_eq!(
        changes,
        vec![Change::PeerChanged {
            key: key("2001:db8::1", 179),
            fields: vec![PeerField::NextHop]
        }]
    );
    assert!(
        !changes[0].needs_reset(),
        "next hop is export policy: re-export, no reset"
    );
    let changes = edited("  ttlSecurity: 1", "  ttlSecurity: 2");
    assert_eq!(
        changes,
        vec![Change::PeerChanged {
            key: key("198.18.0.1", 1179),
            fields: vec![PeerField::TtlSecurity]
        }]
    );
    assert!(changes[0].needs_reset());
}

#[test]
fn filter_change_is_policy_only_and_only_where_used() {
    // `edge` is used by tor-v4 (v4 rules) and tor-v6 (v6 rules); a v4 rule change touches
    // only the v4 session, and only its policy.
    let changes = edited("prefixLength: {min: 28}", "prefixLength: {min: 27}");
    assert_eq!(
        changes,
        vec![Change::PeerChanged {
            key: key("198.18.0.1", 1179),
            fields: vec![PeerField::Filters]
        }]
    );
    assert!(!changes[0].needs_reset());
    assert!(PeerField::Filters.is_policy());
}

#[test]
fn community_change_is_a_re_export_not_a_reset() {
    let changes = edited(
        "communities: [\"65001:300\"]",
        "communities: [\"65001:301\"]",
    );
    assert_eq!(
        changes,
        vec![
            Change::OriginatedChanged("198.19.0.0/24".parse().unwrap()),
            Change::ExportBaseChanged { ipv6: false },
        ]
    );
    assert!(changes.iter().all(|c| !c.needs_reset()));
}

#[test]
fn new_block_is_originated_without_touching_peers() {
    let extra = "---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {name: a-9}\nspec: {node: node-a, cidr: 100.64.2.0/26, state: confirmed}\n";
    let text = full();
    let changes = diff(&state(&text), &state(&format!("{text}{extra}")));
    assert_eq!(
        changes,
        vec![
            Change::OriginatedAdded("100.64.2.0/26".parse().unwrap()),
            Change::ExportBaseChanged { ipv6: false },
        ]
    );
}

#[test]
fn removing_a_node_removes_its_mesh_session_only() {
    let res = Resources::from_yaml_str(&full(), "inline").unwrap();
    let mut without = res.clone();
    assert!(without.delete(Kind::Node, None, "node-c"));
    assert!(!without.delete(Kind::Node, None, "node-c"), "already gone");
    let changes = diff(
        &derive(&res, "node-a").unwrap(),
        &derive(&without, "node-a").unwrap(),
    );
    assert_eq!(changes, vec![Change::PeerRemoved(key("198.18.0.9", 1790))]);
}

#[test]
fn global_changes_are_classified() {
    let changes = edited("  logSeverityScreen: Debug", "  logSeverityScreen: Warning");
    assert_eq!(
        changes,
        vec![Change::GlobalChanged(vec![GlobalField::LogSeverity])]
    );
    assert!(!changes[0].needs_reset());
    // The node's listen port: the speaker swaps its listener, sessions stay.
    let changes = edited("  listenPort: 1791", "  listenPort: 1792");
    assert_eq!(
        changes,
        vec![Change::GlobalChanged(vec![GlobalField::ListenPort])]
    );
    assert!(!changes[0].needs_reset());
    // Global AS: every session's local AS changes (node-a has no AS of its own).
    let changes = edited("  asNumber: 65001", "  asNumber: 65005");
    assert!(changes.contains(&Change::GlobalChanged(vec![GlobalField::LocalAs])));
    assert!(changes.iter().any(
        |c| matches!(c, Change::PeerChanged { fields, .. } if fields.contains(&PeerField::LocalAs))
    ));
}

#[test]
fn pool_encapsulation_change_reprograms_the_kernel() {
    let changes = edited("  ipipMode: Always", "  ipipMode: Never");
    assert_eq!(changes, vec![Change::PoolsChanged]);
}

#[test]
fn bfd_change_is_neither_a_reset_nor_policy() {
    // Turned on for one BGPPeer: only its session changes, and only its BFD.
    let on = "  name: tor-v4\n  annotations: {tabby-routing.io/bfd: \"true\"}\n";
    let changes = edited("  name: tor-v4\n", on);
    assert_eq!(
        changes,
        vec![Change::PeerChanged {
            key: key("198.18.0.1", 1179),
            fields: vec![PeerField::Bfd]
        }]
    );
    assert!(!changes[0].needs_reset());
    assert!(!PeerField::Bfd.needs_reset());
    assert!(!PeerField::Bfd.is_policy());

    // Timers changed, or BFD turned off again: the same one field.
    let text = full().replacen("  name: tor-v4\n", on, 1);
    let slower = text.replacen("\"true\"", "'{\"interval\":\"1s\"}'", 1);
    let changes = diff(&state(&text), &state(&slower));
    assert_eq!(
        changes,
        vec![Change::PeerChanged {
            key: key("198.18.0.1", 1179),
            fields: vec![PeerField::Bfd]
        }]
    );
    let off = text.replacen("\"true\"", "\"false\"", 1);
    assert_eq!(diff(&state(&text), &state(&off)), changes);
    // Invalid: BFD off, the same change (plus nothing else).
    let bad = text.replacen("\"true\"", "\"maybe\"", 1);
    assert_eq!(diff(&state(&text), &state(&bad)), changes);

    // The mesh: every mesh session of node-a, none of the BGPPeers'.
    let changes = edited(
        "  name: default\n",
        "  name: default\n  annotations: {tabby-routing.io/bfd: enabled}\n",
    );
    let keys: Vec<PeerKey> = changes
        .iter()
        .map(|c| match c {
            Change::PeerChanged { key, fields } if fields == &[PeerField::Bfd] => *key,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            key("198.18.0.9", 1790),
            key("198.18.0.12", 1790),
            key("2001:db8::12", 1790)
        ]
    );
    assert!(changes.iter().all(|c| !c.needs_reset()));
}
