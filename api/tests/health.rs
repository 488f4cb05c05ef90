//! grpc.health.v1 readiness/liveness from the core, server reflection, socket
//! handling (mode, stale socket, socket in use).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{TestCore, TestServer};
use tabby_api::model::SessionState;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn status(c: &mut HealthClient<tonic::transport::Channel>, svc: &str) -> i32 {
    c.check(HealthCheckRequest {
        service: svc.into(),
    })
    .await
    .expect("health check")
    .into_inner()
    .status
}

/// Polls until `svc` reports `want` (the reporter runs every 50 ms here).
async fn wait_for(c: &mut HealthClient<tonic::transport::Channel>, svc: &str, want: ServingStatus) {
    for _ in 0..100 {
        if status(c, svc).await == want as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{svc} never became {want:?}");
}

#[tokio::test]
async fn readiness_follows_peers_and_liveness_follows_core() {
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.add_test_peer("198.18.0.3", 64513, SessionState::Connect);
    let srv = TestServer::start(core.clone()).await;
    let mut h = HealthClient::new(srv.channel().await);

    wait_for(&mut h, "liveness", ServingStatus::Serving).await;
    wait_for(&mut h, "readiness", ServingStatus::NotServing).await;
    wait_for(&mut h, "", ServingStatus::NotServing).await;

    core.set_peer_state("198.18.0.3", SessionState::Established);
    wait_for(&mut h, "readiness", ServingStatus::Serving).await;
    wait_for(&mut h, "", ServingStatus::Serving).await;

    core.state().gr_pending = true;
    wait_for(&mut h, "readiness", ServingStatus::NotServing).await;
    core.state().gr_pending = false;

    core.set_live(false);
    wait_for(&mut h, "liveness", ServingStatus::NotServing).await;
    wait_for(&mut h, "readiness", ServingStatus::NotServing).await;
    wait_for(&mut h, "tabby.v1.Routes", ServingStatus::NotServing).await;

    let unknown = h
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await;
    assert_eq!(
        unknown.expect_err("unknown service").code(),
        tonic::Code::NotFound
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn reflection_lists_and_describes_services() {
    let srv = TestServer::start(TestCore::new()).await;
    let mut r = ServerReflectionClient::new(srv.channel().await);
    let reqs = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "tabby.v1.Routes".into(),
            )),
        },
    ];
    let mut s = r
        .server_reflection_info(tokio_stream::iter(reqs))
        .await
        .expect("reflection")
        .into_inner();
    let list = s.next().await.expect("answer").expect("ok");
    let Some(MessageResponse::ListServicesResponse(l)) = list.message_response else {
        panic!("expected a service list, got {list:?}");
    };
    let names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
    for want in [
        "tabby.v1.Routes",
        "tabby.v1.Peers",
        "tabby.v1.Daemon",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let file = s.next().await.expect("answer").expect("ok");
    let Some(MessageResponse::FileDescriptorResponse(f)) = file.message_response else {
        panic!("expected a file descriptor, got {file:?}");
    };
    assert!(!f.file_descriptor_proto.is_empty());
    srv.shutdown().await;
}

#[tokio::test]
async fn socket_mode_stale_socket_and_socket_in_use() {
    let srv = TestServer::start(TestCore::new()).await;
    let mode = std::fs::metadata(&srv.socket)
        .expect("socket exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660, "socket must be rw for owner and group only");

    // A second server on the same path must refuse, leaving the first alone.
    let err = tabby_api::bind(
        TestCore::new(),
        tabby_api::ApiConfig {
            unix_socket: Some(srv.socket.clone()),
            ..Default::default()
        },
    )
    .await
    .expect_err("socket in use");
    assert!(err.to_string().contains("in use"), "{err}");
    let mut h = HealthClient::new(srv.channel().await);
    assert!(status(&mut h, "liveness").await >= 0);

    // After shutdown the socket file is gone; a stale file is replaced.
    let path = srv.socket.clone();
    let dir = tempfile::tempdir().expect("dir");
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind stale"));
    assert!(stale.exists(), "a closed listener leaves its file behind");
    srv.shutdown().await;
    assert!(!path.exists(), "socket removed on shutdown");
    let again =
        TestServer::start_with(TestCore::new(), |c| c.unix_socket = Some(stale.clone())).await;
    let mut h = HealthClient::new(common::unix_channel(&stale).await);
    assert!(status(&mut h, "liveness").await >= 0);
    again.shutdown().await;
}

#[tokio::test]
async fn no_tcp_listener_unless_configured() {
    let srv = TestServer::start(TestCore::new()).await;
    assert!(srv.tcp.is_none());
    assert!(srv.gobgp.is_none());
    srv.shutdown().await;
}

#[tokio::test]
async fn socket_group_is_applied() {
    use std::os::unix::fs::MetadataExt;
    // 65534 is "nogroup" on Debian; any gid works for root.
    let srv = TestServer::start_with(TestCore::new(), |c| c.unix_socket_group = Some(65534)).await;
    let meta = std::fs::metadata(&srv.socket).expect("socket exists");
    assert_eq!(meta.gid(), 65534);
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    srv.shutdown().await;
}
