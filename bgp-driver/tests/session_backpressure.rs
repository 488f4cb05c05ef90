//! A peer that stops reading (TCP zero window, CONFORMANCE fault 11): the
//! driver stops taking commands once its queue is full, and the RFC 9687
//! send hold timer takes the session down with NOTIFICATION code 8.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tabby_bgp::capability::Capability;
use tabby_bgp::codec::{self, CodecCtx};
use tabby_bgp::fsm::{DownReason, PeerAs, SessionConfig};
use tabby_bgp::message::{Message, Open};
use tabby_bgp::notification::NotificationKind;
use tabby_bgp::types::{Asn, Family};
use tabby_bgp_driver::{ListenConfig, PeerCommand, PeerConfig, PeerEvent, Speaker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));

fn encode(m: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec::encode_message(m, &CodecCtx::default(), &mut out).expect("encode");
    out.to_vec()
}

/// Completes the handshake, then never reads again.
async fn stuck_peer(listener: TcpListener) {
    let (mut s, _) = listener.accept().await.expect("accept");
    let open = Open {
        version: 4,
        my_as: 65002,
        hold_time: 0,
        bgp_id: Ipv4Addr::new(198, 18, 0, 6),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(Asn(65002)),
        ],
        unknown_params: Vec::new(),
    };
    s.write_all(&encode(&Message::Open(open)))
        .await
        .expect("open");
    s.write_all(&encode(&Message::Keepalive)).await.expect("ka");
    // Our OPEN and KEEPALIVE.
    let mut buf = vec![0u8; 4096];
    let _ = s.read(&mut buf).await;
    // Hold the connection open without reading.
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(s);
}

#[tokio::test(flavor = "current_thread")]
async fn stuck_peer_backs_up_commands_and_trips_send_hold() {
    let listener = TcpListener::bind(SocketAddr::new(PEER, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(stuck_peer(listener));

    let speaker = Speaker::bind(&ListenConfig { addrs: vec![] }).expect("speaker");
    let mut session = SessionConfig::new(
        Asn(65001),
        PeerAs::Exact(Asn(65002)),
        Ipv4Addr::new(198, 18, 0, 5),
    );
    session.send_hold = Some(Duration::from_secs(2));
    let mut cfg = PeerConfig::new(PEER, session);
    cfg.remote_port = port;
    cfg.local_addr = Some(US);
    let mut h = speaker.add_peer(cfg).expect("peer");
    h.commands.send(PeerCommand::Start).await.expect("start");
    timeout(Duration::from_secs(10), async {
        while let Some(ev) = h.events.recv().await {
            if matches!(ev, PeerEvent::Established(_)) {
                return;
            }
        }
    })
    .await
    .expect("established");

    // Push bulk data until the driver stops taking it.
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let mut accepted = 0usize;
    let mut blocked = false;
    for _ in 0..2000 {
        let send = h
            .commands
            .send(PeerCommand::SendEncoded(vec![chunk.clone()]));
        match timeout(Duration::from_millis(500), send).await {
            Ok(Ok(())) => accepted += chunk.len(),
            Ok(Err(_)) => panic!("peer task ended"),
            Err(_) => {
                blocked = true;
                break;
            }
        }
    }
    assert!(
        blocked,
        "the command channel never pushed back ({accepted} octets taken)"
    );
    // At least the command channel's 16 commands and a write's worth
    // queued in the peer task (the sockets' buffers hold more).
    assert!(
        accepted >= 1 << 20,
        "pushed back early, after {accepted} octets"
    );

    let down = timeout(Duration::from_secs(10), async {
        while let Some(ev) = h.events.recv().await {
            if let PeerEvent::Down(d) = ev {
                return d;
            }
        }
        panic!("events ended");
    })
    .await
    .expect("send hold timer expiry");
    assert!(
        matches!(&down.reason, DownReason::NotificationSent(n)
            if n.kind() == NotificationKind::SendHoldTimerExpired),
        "{:?}",
        down.reason
    );
}
