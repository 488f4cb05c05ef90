//! Session settings over the wire: the Peer message carries every setting
//! that decides a peer's session in ListPeers, GetPeer and WatchPeers, and
//! leaves it absent when the core has none.

mod common;

use common::{TestCore, TestServer, get_peer, list_peers, watch_peers_snapshot};
use tabby_api::convert::peer_settings_from_pb;
use tabby_api::model::{Family, GracefulRestartSettings, NextHopMode, PeerSettings, SessionState};
use tabby_proto::v1 as pb;

fn tor() -> PeerSettings {
    PeerSettings {
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
        next_hop: NextHopMode::Keep,
        source_address: Some("198.18.0.11".parse().unwrap()),
        families: vec![Family::Ipv4],
        extended_next_hop: false,
        hold_time_seconds: 60,
        keepalive_seconds: Some(20),
        graceful_restart: Some(GracefulRestartSettings {
            restart_time_seconds: 90,
            notification: true,
            forwarding_preserved: true,
        }),
        long_lived_stale_time_seconds: None,
        allowed_local_as: 2,
        reachable_by: Some("198.18.0.254".parse().unwrap()),
        filters: vec!["edge".into()],
        import_policy: Some("import 198.18.0.2".into()),
        export_policy: Some("export 198.18.0.2".into()),
    }
}

fn settings_of(p: &pb::Peer) -> Option<PeerSettings> {
    p.settings
        .as_ref()
        .map(|s| peer_settings_from_pb("settings", s).expect("valid settings"))
}

#[tokio::test]
async fn peers_carry_their_session_settings() {
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 65100, SessionState::Established);
    core.add_test_peer("2001:db8::3", 64513, SessionState::Active);
    core.state()
        .peers
        .get_mut(&"198.18.0.2".parse().unwrap())
        .unwrap()
        .settings = Some(tor());
    let srv = TestServer::start(core.clone()).await;
    let mut c = srv.peers_client().await;

    let list = list_peers(&mut c).await;
    assert_eq!(list.len(), 2);
    assert_eq!(settings_of(&list[0]), Some(tor()));
    assert_eq!(list[1].settings, None, "none known: absent");

    let one = get_peer(&mut c, "198.18.0.2").await;
    assert_eq!(settings_of(&one), Some(tor()));
    let s = one.settings.as_ref().unwrap();
    assert_eq!(s.next_hop, pb::NextHopMode::Keep as i32);
    assert_eq!(s.ttl_security_hops, 1);
    assert!(s.password_set);

    let seen = watch_peers_snapshot(&mut c, 1).await;
    assert_eq!(settings_of(&seen[0]), Some(tor()));
    srv.shutdown().await;
}
