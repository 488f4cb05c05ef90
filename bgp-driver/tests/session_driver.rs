//! The tokio driver over real loopback sockets: two speakers on 127.0.0.1
//! and 127.0.0.2 bring a session up, exchange routes, and shut down; a
//! TCP-MD5 mismatch keeps the session down.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use tabby_bgp::attr::{AsPath, Origin, PathAttributes};
use tabby_bgp::fsm::{DownReason, PeerAs, SessionConfig, State};
use tabby_bgp::message::Update;
use tabby_bgp::notification::{Cease, Notification, NotificationKind};
use tabby_bgp::types::{Asn, Family, Nlri};
use tabby_bgp_driver::{ListenConfig, PeerCommand, PeerConfig, PeerEvent, PeerHandle, Speaker};
use tokio::time::timeout;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

struct Side {
    speaker: Speaker,
    peer: PeerHandle,
}

fn session(local: u32, peer: u32, id: Ipv4Addr) -> SessionConfig {
    let mut s = SessionConfig::new(Asn(local), PeerAs::Exact(Asn(peer)), id);
    s.connect_retry = Duration::from_secs(1);
    s.hold_time = 9;
    s
}

/// Two speakers, each listening on its own loopback address, each
/// configured with the other as a peer.
fn pair(md5: (Option<&str>, Option<&str>), passive_b: bool) -> (Side, Side) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sa = Speaker::bind(&ListenConfig {
        addrs: vec![SocketAddr::new(A, 0)],
    })
    .expect("bind A");
    let sb = Speaker::bind(&ListenConfig {
        addrs: vec![SocketAddr::new(B, 0)],
    })
    .expect("bind B");
    let (pa, pb) = (sa.local_addrs()[0].port(), sb.local_addrs()[0].port());

    let mut ca = PeerConfig::new(B, session(65001, 65002, Ipv4Addr::new(198, 18, 0, 1)));
    ca.remote_port = pb;
    ca.local_addr = Some(A);
    ca.md5_password = md5.0.map(str::to_owned);
    ca.gtsm_hops = Some(1);
    let mut cb = PeerConfig::new(A, session(65002, 65001, Ipv4Addr::new(198, 18, 0, 2)));
    cb.remote_port = pa;
    cb.local_addr = Some(B);
    cb.md5_password = md5.1.map(str::to_owned);
    cb.gtsm_hops = Some(1);
    cb.session.passive = passive_b;
    let peer_a = sa.add_peer(ca).expect("peer A");
    let peer_b = sb.add_peer(cb).expect("peer B");
    (
        Side {
            speaker: sa,
            peer: peer_a,
        },
        Side {
            speaker: sb,
            peer: peer_b,
        },
    )
}

/// Waits for an event matching `f`, skipping others.
async fn wait_for(side: &mut Side, what: &str, f: impl Fn(&PeerEvent) -> bool) -> PeerEvent {
    let fut = async {
        loop {
            match side.peer.events.recv().await {
                Some(ev) if f(&ev) => return ev,
                Some(_) => {}
                None => panic!("peer task ended while waiting for {what}"),
            }
        }
    };
    timeout(Duration::from_secs(15), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits for `side`'s session to go down and returns the NOTIFICATION the
/// other side sent; fails if it went down for any other reason.
async fn wait_for_notification(side: &mut Side, what: &str) -> Notification {
    let PeerEvent::Down(down) = wait_for(side, what, |e| matches!(e, PeerEvent::Down(_))).await
    else {
        unreachable!()
    };
    let DownReason::NotificationReceived(n) = down.reason else {
        panic!("{what}: expected a NOTIFICATION, got {:?}", down.reason)
    };
    n
}

fn is_established(ev: &PeerEvent) -> bool {
    matches!(ev, PeerEvent::Established(_))
}

fn route(prefix: &str) -> Update {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: AsPath::from_sequence([Asn(65001)]),
            next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::new(prefix.parse::<IpNet>().expect("prefix"))],
        ..Update::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn session_comes_up_carries_routes_and_shuts_down() {
    let (mut a, mut b) = pair((None, None), false);
    a.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    b.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    let PeerEvent::Established(neg) = wait_for(&mut a, "A established", is_established).await
    else {
        unreachable!()
    };
    assert_eq!(neg.peer_asn, Asn(65002));
    assert_eq!(neg.hold_time, Duration::from_secs(9));
    wait_for(&mut b, "B established", is_established).await;
    let status = a.peer.status.borrow().clone();
    assert_eq!(status.state, Some(State::Established));
    assert_eq!(status.stats.established, 1);
    assert!(status.stats.received.open >= 1);

    a.peer
        .commands
        .send(PeerCommand::SendUpdates(
            vec![
                route("100.64.7.0/24"),
                Update::end_of_rib(Family::IPV4_UNICAST),
            ]
            .into(),
        ))
        .await
        .expect("cmd");
    let PeerEvent::Update(u) =
        wait_for(&mut b, "the route", |e| matches!(e, PeerEvent::Update(_))).await
    else {
        unreachable!()
    };
    assert_eq!(
        u.nlri[0].prefix,
        "100.64.7.0/24".parse::<IpNet>().expect("prefix")
    );
    wait_for(&mut b, "End-of-RIB", |e| {
        *e == PeerEvent::EndOfRib(Family::IPV4_UNICAST)
    })
    .await;

    // Survives several keepalive intervals (hold 9 s, keepalive 3 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    a.peer
        .commands
        .send(PeerCommand::Stop(Some("maintenance".into())))
        .await
        .expect("cmd");
    let n = wait_for_notification(&mut b, "B down").await;
    // Graceful restart with N bit by default: a Hard Reset carrying Cease/2.
    assert_eq!(
        n.kind(),
        NotificationKind::Cease(
            Cease::AdministrativeShutdown(Some("maintenance".into())).hard_reset()
        )
    );
}

/// A batch far larger than one write (a table dump the session encodes
/// itself) is encoded a write's worth at a time and arrives whole and in
/// order, followed by what was sent after it.
#[tokio::test(flavor = "current_thread")]
async fn a_large_batch_arrives_whole_and_in_order() {
    let (mut a, mut b) = pair((None, None), false);
    a.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    b.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    wait_for(&mut a, "A established", is_established).await;
    wait_for(&mut b, "B established", is_established).await;

    const N: u32 = 5000;
    let prefixes: Vec<String> = (0..N)
        .map(|i| format!("100.{}.{}.0/24", 64 + i / 256, i % 256))
        .collect();
    let updates: Vec<Update> = prefixes.iter().map(|p| route(p)).collect();
    a.peer
        .commands
        .send(PeerCommand::SendUpdates(updates.into()))
        .await
        .expect("cmd");
    a.peer
        .commands
        .send(PeerCommand::SendUpdates(
            vec![Update::end_of_rib(Family::IPV4_UNICAST)].into(),
        ))
        .await
        .expect("cmd");
    let mut got = Vec::new();
    let fut = async {
        loop {
            match b.peer.events.recv().await {
                Some(PeerEvent::Update(u)) => {
                    got.extend(u.nlri.iter().map(|n| n.prefix.to_string()));
                }
                Some(PeerEvent::EndOfRib(_)) => return,
                Some(_) => {}
                None => panic!("peer task ended"),
            }
        }
    };
    timeout(Duration::from_secs(15), fut)
        .await
        .expect("every route, then End-of-RIB");
    assert_eq!(got, prefixes);
}

#[tokio::test(flavor = "current_thread")]
async fn passive_peer_and_route_refresh() {
    let (mut a, mut b) = pair((None, None), true);
    b.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    a.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    wait_for(&mut a, "A established", is_established).await;
    wait_for(&mut b, "B established", is_established).await;
    b.peer
        .commands
        .send(PeerCommand::RouteRefresh(Family::IPV6_UNICAST))
        .await
        .expect("cmd");
    wait_for(
        &mut a,
        "refresh request",
        |e| matches!(e, PeerEvent::RouteRefresh(r) if r.family == Family::IPV6_UNICAST),
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn tcp_md5_same_password_comes_up() {
    let (mut a, mut b) = pair((Some("s3cret"), Some("s3cret")), false);
    a.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    b.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    wait_for(&mut a, "A established", is_established).await;
    wait_for(&mut b, "B established", is_established).await;
}

#[tokio::test(flavor = "current_thread")]
async fn tcp_md5_wrong_password_stays_down() {
    let (mut a, b) = pair((Some("s3cret"), Some("other")), false);
    a.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    b.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    let got = timeout(Duration::from_secs(4), async {
        loop {
            match a.peer.events.recv().await {
                Some(PeerEvent::StateChanged { to, .. }) if to >= State::OpenSent => return to,
                Some(_) => {}
                None => return State::Idle,
            }
        }
    })
    .await;
    assert!(
        got.is_err(),
        "no TCP session may form with a wrong key: {got:?}"
    );
    drop(b);
}

#[tokio::test(flavor = "current_thread")]
async fn unknown_addresses_are_closed() {
    use tokio::io::AsyncReadExt;
    let (a, _b) = pair((None, None), true);
    let port = a.speaker.local_addrs()[0].port();
    // 127.0.0.9 is nobody's peer.
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)), 0))
        .expect("bind");
    let mut s = sock
        .connect(SocketAddr::new(A, port))
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let n = timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "an unknown peer must get nothing but a close");
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_the_handle_deconfigures_the_peer() {
    let (a, mut b) = pair((None, None), false);
    a.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    b.peer.commands.send(PeerCommand::Start).await.expect("cmd");
    wait_for(&mut b, "B established", is_established).await;
    let Side { speaker, peer } = a;
    drop(peer.commands);
    // RFC 8538 Hard Reset carrying Cease / Peer De-configured (RFC 4486).
    let n = wait_for_notification(&mut b, "B down").await;
    assert_eq!(
        n.kind(),
        NotificationKind::Cease(Cease::PeerDeconfigured.hard_reset())
    );
    drop(speaker);
}
