//! Workloads shared by the RIB benches.
#![allow(dead_code)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net};
use tabby_bgp::attr::{AsPath, Community, Med, Origin};
use tabby_bgp::message::Update;
use tabby_bgp::{Asn, Nlri, PathAttributes};
use tabby_rib::*;

pub const PEERS: u32 = 10;
pub const PREFIXES: u32 = 100_000;
/// Prefixes per attribute set (a full table averages about this).
pub const PER_SET: u32 = 10;

/// The i-th /27 of 100.64.0.0/10 (LAB address plan).
pub fn prefix27(i: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x6440_0000u32 + (i << 5)), 27).expect("valid /27"))
}

pub fn peer_addr(p: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, p as u8 + 1))
}

/// 10 eBGP peers, each announcing the same 100k prefixes, 10 per UPDATE
/// with one attribute set per UPDATE; paths differ per peer in their first
/// AS and length, so attributes are shared within a peer's UPDATE only.
pub fn ingest_updates() -> Vec<(PeerId, Update)> {
    let mut out = Vec::new();
    for p in 0..PEERS {
        let nh = match peer_addr(p) {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => unreachable!(),
        };
        for set in 0..PREFIXES / PER_SET {
            let origin_as = 64600 + (set % 3000);
            let mut path = vec![Asn(65001 + p), Asn(64700 + (set % 97))];
            if (set + p) % 3 == 0 {
                path.push(Asn(64900 + (set % 13)));
            }
            path.push(Asn(origin_as));
            let attributes = PathAttributes {
                origin: Some(Origin::Igp),
                as_path: AsPath::from_sequence(path),
                next_hop: Some(nh),
                med: if set % 4 == 0 {
                    Some(Med::new(set % 50))
                } else {
                    None
                },
                communities: vec![Community::new(65001 + p as u16, (set % 20) as u16)],
                ..Default::default()
            };
            let nlri = (set * PER_SET..(set + 1) * PER_SET)
                .map(|i| Nlri::new(prefix27(i)))
                .collect();
            out.push((
                PeerId(p),
                Update {
                    attributes,
                    nlri,
                    ..Default::default()
                },
            ));
        }
    }
    out
}

pub fn ingest_rib() -> Rib {
    let mut c = RibConfig::new(Ipv4Addr::new(198, 18, 0, 1), Asn(64512));
    c.max_paths = 4;
    let mut rib = Rib::new(c);
    let now = Instant::now();
    for p in 0..PEERS {
        let mut pc = PeerConfig::new(peer_addr(p), Asn(65001 + p));
        pc.local_v4 = Some(Ipv4Addr::new(198, 18, 0, 1));
        rib.add_peer(PeerId(p), pc).expect("new peer");
        let mut s = PeerSession::basic(Ipv4Addr::new(198, 18, 1, p as u8 + 1));
        s.families = vec![tabby_bgp::Family::IPV4_UNICAST];
        rib.peer_up(PeerId(p), s, now).expect("configured peer");
    }
    rib.drain_outgoing();
    rib
}

pub fn ingest(rib: &mut Rib, updates: &[(PeerId, Update)]) {
    for (p, u) in updates {
        black_box(rib.apply_update(*p, u).expect("peer up"));
    }
}
