//! Session settings over the wire: the Peer message carries every setting
//! that decides a peer's session in ListPeers, GetPeer and WatchPeers, and
//! leaves it absent when the core has none.

mod common;

use std::time::Duration;

use common::{TestCore, TestServer};
use tabby_api::convert::peer_settings_from_pb;
use tabby_api::model::{Family, GracefulRestartSettings, NextHopMode, PeerSettings, SessionState};
use tabby_proto::v1 as pb;
use tokio_stream::StreamExt;

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
    let mut c = pb::peers_client::PeersClient::new(srv.channel().await);

    let list = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .expect("list")
        .into_inner()
        .peers;
    assert_eq!(list.len(), 2);
    assert_eq!(settings_of(&list[0]), Some(tor()));
    assert_eq!(list[1].settings, None, "none known: absent");

    let one = c
        .get_peer(pb::GetPeerRequest {
            address: "198.18.0.2".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(settings_of(&one), Some(tor()));
    let s = one.settings.as_ref().unwrap();
    assert_eq!(s.next_hop, pb::NextHopMode::Keep as i32);
    assert_eq!(s.ttl_security_hops, 1);
    assert!(s.password_set);

    let mut w = c
        .watch_peers(pb::WatchPeersRequest {})
        .await
        .expect("watch")
        .into_inner();
    let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("event within 10s")
        .expect("stream open")
        .expect("event ok");
    assert_eq!(ev.kind, pb::PeerEventKind::Snapshot as i32);
    assert_eq!(settings_of(ev.peer.as_ref().unwrap()), Some(tor()));
    srv.shutdown().await;
}
