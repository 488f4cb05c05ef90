//! BFD over the wire: the Peer message carries a peer's BFD session in
//! ListPeers, GetPeer and WatchPeers, and ExplainRoute says when paths left
//! because BFD went down, even when no path is left.

mod common;

use std::time::Duration;

use common::{TestCore, TestServer};
use tabby_api::convert::{bfd_status_from_pb, departure_from_pb};
use tabby_api::model::{BfdPhase, BfdStatus, RouteDeparture, SessionState};
use tabby_proto::v1 as pb;
use tokio_stream::StreamExt;

fn session() -> BfdStatus {
    BfdStatus {
        phase: BfdPhase::Up,
        since_unix_seconds: 1_796_658_001,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        multiplier: 3,
        negotiated_tx_us: 300_000,
        negotiated_rx_us: 300_000,
        remote_multiplier: 3,
        detection_time_us: 900_000,
        local_discriminator: 1,
        remote_discriminator: 2,
        uptime_seconds: 60,
        flaps: 1,
        last_diagnostic: "control detection time expired".into(),
        graceful: true,
        packets_in: 200,
        packets_out: 201,
        ..BfdStatus::default()
    }
}

fn bfd_of(p: &pb::Peer) -> Option<BfdStatus> {
    p.bfd
        .as_ref()
        .map(|b| bfd_status_from_pb("bfd", b).expect("valid BFD status"))
}

#[tokio::test]
async fn peers_carry_their_bfd_session() {
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.add_test_peer("2001:db8::3", 64513, SessionState::Active);
    core.set_peer_bfd("198.18.0.2", Some(session()));
    let srv = TestServer::start(core.clone()).await;
    let mut c = pb::peers_client::PeersClient::new(srv.channel().await);

    let list = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .expect("list")
        .into_inner()
        .peers;
    assert_eq!(list.len(), 2);
    assert_eq!(bfd_of(&list[0]), Some(session()));
    assert_eq!(list[1].bfd, None, "no BFD configured: absent");

    let one = c
        .get_peer(pb::GetPeerRequest {
            address: "198.18.0.2".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(bfd_of(&one), Some(session()));

    let mut w = c
        .watch_peers(pb::WatchPeersRequest {})
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event within 10s")
            .expect("stream open")
            .expect("event ok");
        assert_eq!(ev.kind, pb::PeerEventKind::Snapshot as i32);
        seen.push(ev.peer.expect("peer in a snapshot event"));
    }
    assert_eq!(bfd_of(&seen[0]), Some(session()));
    assert_eq!(seen[1].bfd, None);
    srv.shutdown().await;
}

#[tokio::test]
async fn explain_tells_when_bfd_took_the_paths_away() {
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.learn("198.19.7.0/24", "198.18.0.2", vec![64513], 100);
    let reason = "BFD went down (control detection time expired); paths withdrawn";
    core.record_departure("198.19.9.0/24", "198.18.0.3", 1_796_658_001, reason);
    let srv = TestServer::start(core.clone()).await;
    let mut c = pb::routes_client::RoutesClient::new(srv.channel().await);

    let e = c
        .explain_route(pb::ExplainRouteRequest {
            prefix: "198.19.9.0/24".into(),
        })
        .await
        .expect("a departure alone is an answer")
        .into_inner();
    assert!(e.candidates.is_empty());
    let d = departure_from_pb("departed", e.departed.as_ref().expect("departed"))
        .expect("valid departure");
    assert_eq!(
        d,
        RouteDeparture {
            peer: "198.18.0.3".parse().unwrap(),
            at_unix_seconds: 1_796_658_001,
            reason: reason.into(),
            withdrawn: true,
        }
    );

    let e = c
        .explain_route(pb::ExplainRouteRequest {
            prefix: "198.19.7.0/24".into(),
        })
        .await
        .expect("explain")
        .into_inner();
    assert_eq!(e.candidates.len(), 1);
    assert_eq!(e.departed, None);

    let err = c
        .explain_route(pb::ExplainRouteRequest {
            prefix: "198.19.10.0/24".into(),
        })
        .await
        .expect_err("neither path nor departure");
    assert_eq!(err.code(), tonic::Code::NotFound);
    srv.shutdown().await;
}
