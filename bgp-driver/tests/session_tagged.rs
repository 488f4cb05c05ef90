//! Tagged peers over real loopback sockets: one speaker runs two peers
//! whose events share one channel, tagged, and sends them one shared
//! batch; each member skips the spans that came from itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tabby_bgp::attr::{AsPath, LocalPref, NextHop, Origin, PathAttributes};
use tabby_bgp::codec::{CodecCtx, UpdateBatch};
use tabby_bgp::fsm::{PeerAs, SessionConfig};
use tabby_bgp::types::{Asn, Nlri};
use tabby_bgp_driver::{
    ListenConfig, PeerCommand, PeerConfig, PeerEvent, PeerHandle, Speaker, TaggedPeer,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

const HUB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const X: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const Y: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

fn session(id: u8) -> SessionConfig {
    let mut s = SessionConfig::new(
        Asn(64512),
        PeerAs::Exact(Asn(64512)),
        Ipv4Addr::new(198, 18, 0, id),
    );
    s.connect_retry = Duration::from_secs(1);
    s
}

fn bind(addr: IpAddr) -> Speaker {
    Speaker::bind(&ListenConfig {
        addrs: vec![SocketAddr::new(addr, 0)],
    })
    .expect("bind")
}

fn announce(batch: &mut UpdateBatch, except: Option<u32>, prefix: &str) {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence([]),
        local_pref: Some(LocalPref::new(100)),
        ..PathAttributes::default()
    };
    let nlri = [Nlri::new(prefix.parse::<IpNet>().expect("prefix"))];
    let next_hop = NextHop::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
    assert_eq!(batch.announce(except, &attrs, next_hop, &nlri), Ok(1));
}

/// The next announced prefix `side` receives.
async fn next_prefix(side: &mut PeerHandle) -> IpNet {
    timeout(Duration::from_secs(10), async {
        loop {
            match side.events.recv().await {
                Some(PeerEvent::Update(u)) if !u.nlri.is_empty() => return u.nlri[0].prefix,
                Some(_) => {}
                None => panic!("peer task ended"),
            }
        }
    })
    .await
    .expect("an UPDATE within 10 s")
}

#[tokio::test(flavor = "current_thread")]
async fn tagged_peers_share_events_and_batches() {
    let hub = bind(HUB);
    let (sx, sy) = (bind(X), bind(Y));
    let hub_port = hub.local_addrs()[0].port();
    let (events_tx, mut events) = mpsc::channel::<(u8, PeerEvent)>(16);
    let mut tagged: Vec<TaggedPeer> = Vec::new();
    for (tag, (addr, speaker)) in [(2u8, (X, &sx)), (3, (Y, &sy))] {
        let mut c = PeerConfig::new(addr, session(1));
        c.remote_port = speaker.local_addrs()[0].port();
        c.local_addr = Some(HUB);
        tagged.push(
            hub.add_peer_tagged(c, tag, events_tx.clone())
                .expect("tagged peer"),
        );
    }
    let mut edge = Vec::new();
    for (addr, speaker, id) in [(X, &sx, 2u8), (Y, &sy, 3)] {
        let mut c = PeerConfig::new(HUB, session(id));
        c.remote_port = hub_port;
        c.local_addr = Some(addr);
        c.session.passive = true;
        edge.push(speaker.add_peer(c).expect("edge peer"));
    }
    for p in &tagged {
        p.commands.send(PeerCommand::Start).expect("start");
    }
    for p in &edge {
        p.commands.send(PeerCommand::Start).await.expect("start");
    }

    // Both come up, each event tagged with its peer.
    let mut ctx = None;
    let mut up = Vec::new();
    timeout(Duration::from_secs(20), async {
        while up.len() < 2 {
            match events.recv().await.expect("event") {
                (tag, PeerEvent::Established(neg)) => {
                    ctx = Some(neg.codec_ctx());
                    up.push(tag);
                }
                (tag, _) => assert!(tag == 2 || tag == 3, "unknown tag {tag}"),
            }
        }
    })
    .await
    .expect("both sessions Established within 20 s");
    up.sort_unstable();
    assert_eq!(up, vec![2, 3]);
    let ctx = ctx.expect("codec");

    // One batch for both: a route for all, then one that came from X.
    // A batch in another wire format (extended messages) is refused.
    let mut other = UpdateBatch::new(CodecCtx {
        max_message_len: 65535,
        ..ctx.clone()
    });
    announce(&mut other, None, "100.64.9.0/26");
    other.seal();
    tagged[0]
        .commands
        .send(PeerCommand::SendShared {
            batch: Arc::new(other),
            member: 2,
        })
        .expect("send");
    let refused = timeout(Duration::from_secs(10), async {
        loop {
            if let (2, PeerEvent::CommandFailed(why)) = events.recv().await.expect("event") {
                return why;
            }
        }
    })
    .await
    .expect("the foreign batch refused within 10 s");
    assert!(refused.contains("wire format"), "{refused}");

    let mut batch = UpdateBatch::new(ctx);
    announce(&mut batch, None, "100.64.1.0/26");
    announce(&mut batch, Some(2), "100.64.2.0/26");
    announce(&mut batch, None, "100.64.3.0/26");
    batch.seal();
    let batch = Arc::new(batch);
    for (p, member) in tagged.iter().zip([2, 3]) {
        p.commands
            .send(PeerCommand::SendShared {
                batch: batch.clone(),
                member,
            })
            .expect("send");
    }
    let (mut ex, mut ey) = (edge.remove(0), edge.remove(0));
    let net = |s: &str| s.parse::<IpNet>().expect("prefix");
    assert_eq!(next_prefix(&mut ex).await, net("100.64.1.0/26"));
    // X skips its own route: the next thing it sees is the third.
    assert_eq!(next_prefix(&mut ex).await, net("100.64.3.0/26"));
    assert_eq!(next_prefix(&mut ey).await, net("100.64.1.0/26"));
    assert_eq!(next_prefix(&mut ey).await, net("100.64.2.0/26"));
    assert_eq!(next_prefix(&mut ey).await, net("100.64.3.0/26"));
}
