//! BFD over the wire: the Peer message carries a peer's BFD session in
//! ListPeers, GetPeer and WatchPeers, and ExplainRoute says when paths left
//! because BFD went down, even when no path is left.

mod common;

use common::{TestCore, TestServer, get_peer, list_peers, watch_peers_snapshot};
use tabby_api::convert::{bfd_status_from_pb, departure_from_pb};
use tabby_api::model::{BfdPhase, BfdStatus, RouteDeparture, SessionState};
use tabby_proto::v1 as pb;
use tabby_proto::v1::routes_client::RoutesClient;
use tonic::transport::Channel;

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

async fn explain(
    c: &mut RoutesClient<Channel>,
    prefix: &str,
) -> Result<pb::ExplainRouteResponse, tonic::Status> {
    c.explain_route(pb::ExplainRouteRequest {
        prefix: prefix.into(),
    })
    .await
    .map(tonic::Response::into_inner)
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
    let mut c = srv.peers_client().await;

    let list = list_peers(&mut c).await;
    assert_eq!(list.len(), 2);
    assert_eq!(bfd_of(&list[0]), Some(session()));
    assert_eq!(list[1].bfd, None, "no BFD configured: absent");

    let one = get_peer(&mut c, "198.18.0.2").await;
    assert_eq!(bfd_of(&one), Some(session()));

    let seen = watch_peers_snapshot(&mut c, 2).await;
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
    let mut c = RoutesClient::new(srv.channel().await);

    let e = explain(&mut c, "198.19.9.0/24")
        .await
        .expect("a departure alone is an answer");
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

    let e = explain(&mut c, "198.19.7.0/24").await.expect("explain");
    assert_eq!(e.candidates.len(), 1);
    assert_eq!(e.departed, None);

    let err = explain(&mut c, "198.19.10.0/24")
        .await
        .expect_err("neither path nor departure");
    assert_eq!(err.code(), tonic::Code::NotFound);
    srv.shutdown().await;
}
