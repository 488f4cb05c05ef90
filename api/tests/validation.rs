//! Bad input for every tabby.v1 RPC, through a real tonic client over a unix
//! socket: the right status code, a message that says what to fix, and a
//! server that keeps serving afterwards.

mod common;

use common::{TestCore, TestServer};
use tabby_api::model::SessionState;
use tabby_proto::v1 as pb;
use tonic::Code;

fn expect<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    hint: &str,
) {
    match r {
        Ok(v) => panic!("expected {code:?} containing {hint:?}, got OK {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "wrong code for {:?}", s.message());
            assert!(
                s.message().contains(hint),
                "message {:?} should contain {hint:?}",
                s.message()
            );
        }
    }
}

fn route(prefix: &str) -> pb::LocalRoute {
    pb::LocalRoute {
        prefix: prefix.into(),
        ..Default::default()
    }
}

fn route_via(prefix: &str, next_hop: &str) -> pb::LocalRoute {
    pb::LocalRoute {
        next_hop: next_hop.into(),
        ..route(prefix)
    }
}

fn route_of_kind(prefix: &str, kind: i32) -> pb::LocalRoute {
    pb::LocalRoute {
        kind,
        ..route(prefix)
    }
}

fn announce(owner: &str, routes: Vec<pb::LocalRoute>) -> pb::AnnounceRoutesRequest {
    pb::AnnounceRoutesRequest {
        owner: owner.into(),
        routes,
    }
}

#[tokio::test]
async fn announce_rejects_bad_routes() {
    let srv =
        TestServer::start_with(TestCore::new(), |c| c.limits.max_routes_per_request = 3).await;
    let mut c = pb::routes_client::RoutesClient::new(srv.channel().await);

    for (req, hint) in [
        (
            announce("ipam", vec![route("100.64.1.1/24")]),
            "did you mean 100.64.1.0/24",
        ),
        (
            announce("ipam", vec![route("100.64.1.0")]),
            "add the length",
        ),
        (
            announce("ipam", vec![route("not-a-prefix")]),
            "not a CIDR prefix",
        ),
        (
            announce("ipam", vec![route("100.64.1.0/33")]),
            "routes[0].prefix",
        ),
        (announce("ipam", vec![route("")]), "is empty"),
        (announce("", vec![route("100.64.1.0/24")]), "owner is empty"),
        (announce("ip am", vec![route("100.64.1.0/24")]), "use only"),
        (
            announce(&"x".repeat(65), vec![route("100.64.1.0/24")]),
            "at most 64",
        ),
        (announce("ipam", vec![]), "at least one route"),
        (
            announce("ipam", vec![route("100.64.1.0/24"), route("100.64.1.0/24")]),
            "more than once",
        ),
        // Wrong next-hop family.
        (
            announce("ipam", vec![route_via("100.64.1.0/24", "2001:db8::2")]),
            "of the prefix's family",
        ),
        (
            announce("ipam", vec![route_via("2001:db8:1000::/64", "198.18.0.2")]),
            "ipv4 but prefix",
        ),
        (
            announce("ipam", vec![route_via("100.64.1.0/24", "198.18.0")]),
            "not an IP address",
        ),
        (
            announce("ipam", vec![route_via("100.64.1.0/24", "0.0.0.0")]),
            "not a unicast",
        ),
        // HOST must be a /32 or /128.
        (
            announce(
                "ipam",
                vec![route_of_kind("100.64.1.0/24", pb::RouteKind::Host as i32)],
            ),
            "needs a /32",
        ),
        (
            announce("ipam", vec![route_of_kind("100.64.1.0/24", 42)]),
            "not a known route kind",
        ),
    ] {
        expect(c.announce_routes(req).await, Code::InvalidArgument, hint);
    }
    // Oversize.
    let many = (0..4).map(|i| route(&format!("100.64.{i}.0/24"))).collect();
    expect(
        c.announce_routes(announce("ipam", many)).await,
        Code::ResourceExhausted,
        "split the request",
    );

    // The server still works and nothing was applied.
    let ok = c
        .announce_routes(announce(
            "ipam",
            vec![route("100.64.1.0/24"), route("2001:db8:1000::/64")],
        ))
        .await
        .expect("valid announce")
        .into_inner();
    assert_eq!(ok.added, 2);
    srv.shutdown().await;
}

#[tokio::test]
async fn withdraw_and_replace_reject_bad_input() {
    let srv =
        TestServer::start_with(TestCore::new(), |c| c.limits.max_routes_per_request = 2).await;
    let mut c = pb::routes_client::RoutesClient::new(srv.channel().await);
    let w = |owner: &str, p: &[&str]| pb::WithdrawRoutesRequest {
        owner: owner.into(),
        prefixes: p.iter().map(|s| s.to_string()).collect(),
    };
    for (req, code, hint) in [
        (
            w("ipam", &["100.64.1.7/24"]),
            Code::InvalidArgument,
            "prefixes[0]",
        ),
        (
            w("ipam", &["2001:db8:1000::1/64"]),
            Code::InvalidArgument,
            "did you mean 2001:db8:1000::/64",
        ),
        (w("", &["100.64.1.0/24"]), Code::InvalidArgument, "owner"),
        (w("ipam", &[]), Code::InvalidArgument, "prefixes is empty"),
        (
            w("ipam", &["100.64.1.0/24", "100.64.2.0/24", "100.64.3.0/24"]),
            Code::ResourceExhausted,
            "at most 2",
        ),
    ] {
        expect(c.withdraw_routes(req).await, code, hint);
    }
    // Withdrawing something never announced is fine (idempotent).
    let r = c
        .withdraw_routes(w("ipam", &["100.64.9.0/24"]))
        .await
        .expect("idempotent")
        .into_inner();
    assert_eq!(r.removed, 0);

    let rep = |owner: &str, routes: Vec<pb::LocalRoute>| pb::ReplaceRoutesRequest {
        owner: owner.into(),
        routes,
    };
    for (req, code, hint) in [
        (
            rep("ipam", vec![route("100.64.1.1/24")]),
            Code::InvalidArgument,
            "host bits",
        ),
        (rep("ipam!", vec![]), Code::InvalidArgument, "owner"),
        (
            rep(
                "ipam",
                vec![
                    route("100.64.1.0/24"),
                    route("100.64.2.0/24"),
                    route("100.64.3.0/24"),
                ],
            ),
            Code::ResourceExhausted,
            "split",
        ),
    ] {
        expect(c.replace_routes(req).await, code, hint);
    }
    // Replace is idempotent and atomic per owner.
    let a = c
        .replace_routes(rep(
            "ipam",
            vec![route("100.64.1.0/24"), route("100.64.2.0/24")],
        ))
        .await
        .expect("replace")
        .into_inner();
    assert_eq!((a.added, a.removed, a.unchanged), (2, 0, 0));
    let b = c
        .replace_routes(rep(
            "ipam",
            vec![route("100.64.1.0/24"), route("100.64.2.0/24")],
        ))
        .await
        .expect("replace again")
        .into_inner();
    assert_eq!((b.added, b.removed, b.unchanged), (0, 0, 2));
    let d = c
        .replace_routes(rep("ipam", vec![route("100.64.2.0/24")]))
        .await
        .expect("shrink")
        .into_inner();
    assert_eq!((d.added, d.removed, d.unchanged), (0, 1, 1));
    srv.shutdown().await;
}

#[tokio::test]
async fn list_explain_and_watch_reject_bad_input() {
    let core = TestCore::new();
    let srv = TestServer::start(core.clone()).await;
    let mut c = pb::routes_client::RoutesClient::new(srv.channel().await);
    let list = |prefix: &str, family: pb::AddressFamily| pb::ListRoutesRequest {
        prefix: prefix.into(),
        family: family as i32,
        ..Default::default()
    };
    for (req, hint) in [
        (
            list("100.64.0.0/10", pb::AddressFamily::Ipv6),
            "drop one of the two filters",
        ),
        (
            list("100.64.0.1/10", pb::AddressFamily::Unspecified),
            "did you mean 100.64.0.0/10",
        ),
        (
            pb::ListRoutesRequest {
                family: 9,
                ..Default::default()
            },
            "address family",
        ),
        (
            pb::ListRoutesRequest {
                page_size: 1_000_000,
                ..Default::default()
            },
            "next_page_token",
        ),
        (
            pb::ListRoutesRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListRoutesRequest {
                prefix: "100.64.0.0/10".into(),
                r#match: 7,
                ..Default::default()
            },
            "PREFIX_MATCH_LONGER",
        ),
    ] {
        expect(c.list_routes(req).await, Code::InvalidArgument, hint);
    }

    for (req, code, hint) in [
        (
            pb::ExplainRouteRequest {
                prefix: "100.64.1.0/24".into(),
            },
            Code::NotFound,
            "no path",
        ),
        (
            pb::ExplainRouteRequest {
                prefix: "100.64.1.1/24".into(),
            },
            Code::InvalidArgument,
            "host bits",
        ),
        (
            pb::ExplainRouteRequest {
                prefix: String::new(),
            },
            Code::InvalidArgument,
            "prefix is empty",
        ),
    ] {
        expect(c.explain_route(req).await, code, hint);
    }

    match c
        .watch_routes(pb::WatchRoutesRequest {
            family: 5,
            resume_from_sequence: 0,
        })
        .await
    {
        Ok(_) => panic!("bad family accepted by WatchRoutes"),
        Err(s) => assert_eq!(s.code(), Code::InvalidArgument),
    }

    // Paging and filters work on good input.
    for i in 0..25 {
        core.learn(&format!("198.19.{i}.0/24"), "198.18.0.2", vec![64513], 100);
    }
    core.learn("2001:db8:1000::/48", "2001:db8::2", vec![64513], 100);
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = c
            .list_routes(pb::ListRoutesRequest {
                family: pb::AddressFamily::Ipv4 as i32,
                page_size: 10,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        assert!(page.routes.len() <= 10);
        seen.extend(page.routes.into_iter().map(|r| r.prefix));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 25, "every IPv4 route exactly once across pages");
    let longer = c
        .list_routes(pb::ListRoutesRequest {
            prefix: "198.19.0.0/20".into(),
            r#match: pb::PrefixMatch::Longer as i32,
            ..Default::default()
        })
        .await
        .expect("longer")
        .into_inner();
    assert_eq!(longer.routes.len(), 16);
    srv.shutdown().await;
}

#[tokio::test]
async fn peer_rpcs_reject_bad_input() {
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    let srv = TestServer::start(core.clone()).await;
    let mut c = pb::peers_client::PeersClient::new(srv.channel().await);

    for (req, code, hint) in [
        (
            pb::GetPeerRequest {
                address: "198.18.0.99".into(),
            },
            Code::NotFound,
            "tabbyctl peers",
        ),
        (
            pb::GetPeerRequest {
                address: "198.18.0.2/32".into(),
            },
            Code::InvalidArgument,
            "no prefix length",
        ),
        (
            pb::GetPeerRequest {
                address: String::new(),
            },
            Code::InvalidArgument,
            "address is empty",
        ),
    ] {
        expect(c.get_peer(req).await, code, hint);
    }

    let cfg = |addr: &str, asn: u32| pb::PeerConfig {
        address: addr.into(),
        remote_as: asn,
        ..Default::default()
    };
    let add = |c: pb::PeerConfig| pb::AddPeerRequest { config: Some(c) };
    for (req, code, hint) in [
        (
            pb::AddPeerRequest { config: None },
            Code::InvalidArgument,
            "config is missing",
        ),
        (add(cfg("198.18.0.3", 0)), Code::InvalidArgument, "RFC 7607"),
        (
            add(cfg("198.18.0.3", 23456)),
            Code::InvalidArgument,
            "AS_TRANS",
        ),
        (
            add(cfg("198.18.0.300", 64513)),
            Code::InvalidArgument,
            "not an IP address",
        ),
        (
            add(cfg("224.0.0.5", 64513)),
            Code::InvalidArgument,
            "not a unicast",
        ),
        (
            add(pb::PeerConfig {
                hold_time_seconds: 2,
                ..cfg("198.18.0.3", 64513)
            }),
            Code::InvalidArgument,
            "3..65535",
        ),
        (
            add(pb::PeerConfig {
                hold_time_seconds: 70_000,
                ..cfg("198.18.0.3", 64513)
            }),
            Code::InvalidArgument,
            "above 65535",
        ),
        (
            add(pb::PeerConfig {
                hold_time_seconds: 9,
                keepalive_seconds: 9,
                ..cfg("198.18.0.3", 64513)
            }),
            Code::InvalidArgument,
            "below the hold time",
        ),
        (
            add(pb::PeerConfig {
                ebgp_multihop_ttl: 300,
                ..cfg("198.18.0.3", 64513)
            }),
            Code::InvalidArgument,
            "1..255",
        ),
        (
            add(pb::PeerConfig {
                local_as: 23456,
                ..cfg("198.18.0.3", 64513)
            }),
            Code::InvalidArgument,
            "local_as",
        ),
        (
            add(pb::PeerConfig {
                families: vec![0],
                ..cfg("198.18.0.3", 64513)
            }),
            Code::InvalidArgument,
            "families[0]",
        ),
        (
            add(cfg("198.18.0.2", 64513)),
            Code::AlreadyExists,
            "delete it first",
        ),
    ] {
        expect(c.add_peer(req).await, code, hint);
    }

    expect(
        c.delete_peer(pb::DeletePeerRequest {
            address: "198.18.0.9".into(),
        })
        .await,
        Code::NotFound,
        "198.18.0.9",
    );
    expect(
        c.delete_peer(pb::DeletePeerRequest {
            address: "x".into(),
        })
        .await,
        Code::InvalidArgument,
        "not an IP address",
    );
    expect(
        c.enable_peer(pb::EnablePeerRequest {
            address: "198.18.0.9".into(),
        })
        .await,
        Code::NotFound,
        "198.18.0.9",
    );
    expect(
        c.enable_peer(pb::EnablePeerRequest {
            address: "::".into(),
        })
        .await,
        Code::InvalidArgument,
        "unicast",
    );
    expect(
        c.disable_peer(pb::DisablePeerRequest {
            address: "198.18.0.9".into(),
            reason: String::new(),
        })
        .await,
        Code::NotFound,
        "198.18.0.9",
    );
    expect(
        c.disable_peer(pb::DisablePeerRequest {
            address: "198.18.0.2".into(),
            reason: "x".repeat(256),
        })
        .await,
        Code::InvalidArgument,
        "RFC 9003",
    );
    for (req, code, hint) in [
        (
            pb::ResetPeerRequest {
                address: "198.18.0.2".into(),
                kind: 9,
                reason: String::new(),
            },
            Code::InvalidArgument,
            "RESET_KIND_HARD",
        ),
        (
            pb::ResetPeerRequest {
                address: "198.18.0.2".into(),
                kind: pb::ResetKind::SoftIn as i32,
                reason: "maint".into(),
            },
            Code::InvalidArgument,
            "only sent with a hard reset",
        ),
        (
            pb::ResetPeerRequest {
                address: "198.18.0.7".into(),
                kind: 0,
                reason: String::new(),
            },
            Code::NotFound,
            "198.18.0.7",
        ),
    ] {
        expect(c.reset_peer(req).await, code, hint);
    }

    // Good input goes through to the core.
    let p = c
        .add_peer(add(pb::PeerConfig {
            hold_time_seconds: 9,
            keepalive_seconds: 3,
            ..cfg("2001:db8::3", 64514)
        }))
        .await
        .expect("add")
        .into_inner();
    assert_eq!(
        p.config.as_ref().map(|c| c.r#type),
        Some(pb::PeerType::Api as i32)
    );
    c.reset_peer(pb::ResetPeerRequest {
        address: "198.18.0.2".into(),
        kind: pb::ResetKind::SoftOut as i32,
        reason: String::new(),
    })
    .await
    .expect("soft reset");
    assert!(
        core.calls()
            .iter()
            .any(|c| c == "reset 198.18.0.2 SoftOut "),
        "{:?}",
        core.calls()
    );
    let l = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(l.peers.len(), 2);
    srv.shutdown().await;
}

#[tokio::test]
async fn daemon_rpcs_reject_bad_input() {
    let srv = TestServer::start(TestCore::new()).await;
    let mut c = pb::daemon_client::DaemonClient::new(srv.channel().await);
    for (req, hint) in [
        (
            pb::SetLogLevelRequest {
                level: String::new(),
            },
            "level is empty",
        ),
        (
            pb::SetLogLevelRequest {
                level: "info; rm -rf".into(),
            },
            "contains",
        ),
        (
            pb::SetLogLevelRequest {
                level: "d".repeat(2000),
            },
            "at most 1024",
        ),
    ] {
        expect(c.set_log_level(req).await, Code::InvalidArgument, hint);
    }
    let prev = c
        .set_log_level(pb::SetLogLevelRequest {
            level: "info,tabby_bgp=debug".into(),
        })
        .await
        .expect("set")
        .into_inner();
    assert_eq!(prev.previous, "info");
    let st = c
        .status(pb::StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(st.log_level, "info,tabby_bgp=debug");
    assert_eq!(st.local_as, common::LOCAL_AS);
    let cfg = c
        .get_config(pb::GetConfigRequest {})
        .await
        .expect("config")
        .into_inner();
    assert!(cfg.config_json.contains("<redacted>"));
    srv.shutdown().await;
}

#[tokio::test]
async fn oversize_message_is_refused_not_fatal() {
    let srv =
        TestServer::start_with(TestCore::new(), |c| c.limits.max_message_bytes = 64 * 1024).await;
    let mut c = pb::routes_client::RoutesClient::new(srv.channel().await);
    let routes = (0..5000u32)
        .map(|i| route(&format!("100.{}.{}.0/24", 64 + i / 256, i % 256)))
        .collect();
    let r = c.announce_routes(announce("ipam", routes)).await;
    let s = r.expect_err("oversize message must be refused");
    assert!(
        matches!(s.code(), Code::ResourceExhausted | Code::OutOfRange),
        "unexpected code {:?}: {}",
        s.code(),
        s.message()
    );
    // Still serving.
    c.announce_routes(announce("ipam", vec![route("100.64.1.0/24")]))
        .await
        .expect("small announce");
    srv.shutdown().await;
}
