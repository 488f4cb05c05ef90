//! A peer's session settings as the API reports them (`tabbyctl peers -o
//! json`): every knob of a BGPPeer, the mesh's defaults, API peers, and the
//! same values as the peer's entry in `tabbyctl config`, never a password.

use serde_json::Value;

use super::super::effective_config::tests::{self as effective, PASSWORD};
use super::*;

const TOR: &str = "198.18.0.1";

/// The effective-config tests' cluster (node-a meshed with node-b, and a
/// top-of-rack BGPPeer that sets every session knob Calico has), with the
/// BGP port left at its default and the ToR's next hop set by
/// `nextHopMode`.
fn cluster() -> String {
    let mut yaml = effective::cluster();
    for (from, to) in [
        ("  listenPort: 1790\n", ""),
        ("keepOriginalNextHop: true", "nextHopMode: Keep"),
    ] {
        assert!(yaml.contains(from), "{from:?} is no longer in the cluster");
        yaml = yaml.replace(from, to);
    }
    yaml
}

fn settings(h: &Harness, addr: &str) -> am::PeerSettings {
    h.daemon
        .get_peer(addr.parse::<IpAddr>().unwrap(), Instant::now())
        .unwrap()
        .settings
        .expect("a configured daemon reports the settings")
}

#[test]
fn a_bgppeer_shows_every_setting_that_decides_its_session() {
    let mut h = harness(0);
    h.load(&cluster());
    let want = am::PeerSettings {
        origin: "BGPPeer tor".into(),
        calico_node: None,
        port: 1179,
        local_as: 64999,
        internal: false,
        passive: false,
        route_reflector_client: false,
        cluster_id: None,
        ttl_security_hops: Some(1),
        password_set: true,
        next_hop: am::NextHopMode::Keep,
        source_address: Some("198.18.0.11".parse().unwrap()),
        families: vec![am::Family::Ipv4],
        extended_next_hop: false,
        // keepaliveTime 20s: hold time three times that.
        hold_time_seconds: 60,
        keepalive_seconds: Some(20),
        graceful_restart: Some(am::GracefulRestartSettings {
            restart_time_seconds: 90,
            notification: true,
            forwarding_preserved: true,
        }),
        long_lived_stale_time_seconds: None,
        allowed_local_as: 2,
        reachable_by: Some("198.18.0.254".parse().unwrap()),
        filters: vec!["edge".into()],
        import_policy: Some(format!("import {TOR}")),
        export_policy: Some(format!("export {TOR}")),
    };
    assert_eq!(settings(&h, TOR), want);

    // The status carries no secret, in any form the API turns it into.
    let status = h
        .daemon
        .get_peer(TOR.parse::<IpAddr>().unwrap(), Instant::now());
    let status = status.unwrap();
    assert!(!format!("{status:?}").contains(PASSWORD));
    let message = tabby_api::convert::peer_to_pb(&status);
    assert!(message.settings.as_ref().unwrap().password_set);
    assert!(!format!("{message:?}").contains(PASSWORD));

    // The mesh peer: the defaults, in force.
    let mesh = settings(&h, "198.18.0.12");
    assert_eq!(mesh.origin, "node-to-node mesh");
    assert_eq!(mesh.calico_node.as_deref(), Some("node-b"));
    assert_eq!(
        (mesh.port, mesh.local_as, mesh.internal),
        (179, 64512, true)
    );
    assert!(!mesh.password_set);
    assert_eq!(mesh.ttl_security_hops, None);
    assert_eq!(mesh.next_hop, am::NextHopMode::Auto);
    assert_eq!((mesh.hold_time_seconds, mesh.keepalive_seconds), (90, None));
    assert_eq!(
        mesh.graceful_restart.map(|g| g.restart_time_seconds),
        Some(120)
    );
    assert_eq!(mesh.allowed_local_as, 0);
    assert!(mesh.filters.is_empty());
}

#[test]
fn an_api_peer_shows_what_the_daemon_runs_for_it() {
    let mut h = harness(0);
    h.load(&cluster());
    let mut cfg = am::PeerConfig::new("198.18.0.99".parse().unwrap(), 64512);
    cfg.hold_time = Some(30);
    cfg.keepalive = Some(10);
    cfg.passive = true;
    cfg.route_reflector_client = true;
    h.daemon.add_api_peer(cfg, Instant::now()).unwrap();
    let s = settings(&h, "198.18.0.99");
    assert_eq!(s.origin, "API");
    assert_eq!((s.port, s.local_as, s.internal), (179, 64512, true));
    assert!(s.passive && s.route_reflector_client);
    // A client of this node's reflection: the node's cluster id (its
    // router id, no routeReflectorClusterID being set).
    assert_eq!(s.cluster_id, Some("198.18.0.11".parse().unwrap()));
    assert_eq!((s.hold_time_seconds, s.keepalive_seconds), (30, Some(10)));
    assert_eq!(s.families, [am::Family::Ipv4]);
    assert!(!s.password_set);
    assert_eq!(s.export_policy.as_deref(), Some("export 198.18.0.99"));
}

/// `tabbyctl peers -o json` and `tabbyctl config` say the same of every
/// session: one derivation for both.
#[test]
fn the_settings_are_the_peers_entries_of_the_effective_config() {
    let mut h = harness(0);
    h.load(&cluster());
    let mut cfg = am::PeerConfig::new("198.18.0.99".parse().unwrap(), 65099);
    cfg.description = "lab router".into();
    h.daemon.add_api_peer(cfg, Instant::now()).unwrap();
    let doc: Value = serde_json::from_str(&h.daemon.effective_config()).unwrap();
    let entries = doc["peers"].as_array().unwrap();
    let peers = h.daemon.list_peers(Instant::now());
    assert_eq!(peers.len(), 3);
    let text = |o: Option<String>| o.map_or(Value::Null, Value::from);
    let addr = |a: Option<IpAddr>| text(a.map(|a| a.to_string()));
    for p in &peers {
        let s = p.settings.clone().unwrap();
        let e = entries
            .iter()
            .find(|e| e["address"] == p.config.address.to_string())
            .unwrap();
        let gr = s.graceful_restart.unwrap();
        let want = [
            ("origin", Value::from(s.origin.clone())),
            ("calico_node", text(s.calico_node.clone())),
            ("port", s.port.into()),
            ("local_as", s.local_as.into()),
            ("internal", s.internal.into()),
            ("passive", s.passive.into()),
            ("route_reflector_client", s.route_reflector_client.into()),
            ("cluster_id", text(s.cluster_id.map(|c| c.to_string()))),
            ("ttl_security_hops", s.ttl_security_hops.into()),
            ("password_set", s.password_set.into()),
            ("next_hop", s.next_hop.name().into()),
            ("source_address", addr(s.source_address)),
            ("extended_next_hop", s.extended_next_hop.into()),
            ("hold_time_seconds", s.hold_time_seconds.into()),
            ("keepalive_seconds", s.keepalive_seconds.into()),
            (
                "long_lived_stale_time_seconds",
                s.long_lived_stale_time_seconds.into(),
            ),
            ("allowed_local_as", s.allowed_local_as.into()),
            ("reachable_by", addr(s.reachable_by)),
            ("filters", s.filters.clone().into()),
            ("import_policy", text(s.import_policy.clone())),
            ("export_policy", text(s.export_policy.clone())),
        ];
        for (key, v) in want {
            assert_eq!(e[key], v, "{key} of {}: {e:#}", p.config.address);
        }
        assert_eq!(
            e["graceful_restart"],
            serde_json::json!({
                "restart_time_seconds": gr.restart_time_seconds,
                "notification": gr.notification,
                "forwarding_preserved": gr.forwarding_preserved,
            })
        );
        let families: Vec<String> = s
            .families
            .iter()
            .map(|f| format!("{}-unicast", f.name()))
            .collect();
        assert_eq!(e["families"], Value::from(families));
    }
}
