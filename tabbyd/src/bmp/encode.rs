//! BMP messages from the core's events and snapshots, with `tabby-bmp`'s
//! builders: per-peer headers, one Route Monitoring per route change (or
//! per received UPDATE), End-of-RIB markers after a table dump.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use ipnet::IpNet;
use tabby_bgp::attr::NextHop;
use tabby_bgp::capability::Capability;
use tabby_bgp::codec::CodecCtx;
use tabby_bgp::message::{MpReach, MpUnreach, Open, Update};
use tabby_bgp::{Asn, Family, Nlri};
use tabby_bmp::build;
use tabby_bmp::{Message, PeerHeader, StatsReport, Timestamp};
use tabby_rib::RouteAttrs;
use tracing::debug;

use super::{BmpEvent, LocalInfo, PeerInfo, RouteChange, Snapshot};

/// The name of the one Loc-RIB table (RFC 9069 §5.1's VRF/Table Name).
pub const TABLE_NAME: &str = "global";

fn header(p: &PeerInfo, at: Timestamp, post_policy: bool) -> PeerHeader {
    PeerHeader::global(
        p.address,
        p.asn,
        p.bgp_id,
        at,
        post_policy,
        !p.four_octet_as,
    )
}

fn peer_ctx(p: &PeerInfo) -> CodecCtx {
    build::update_ctx(p.four_octet_as, &p.add_path)
}

fn loc_ctx() -> CodecCtx {
    build::update_ctx(true, &Default::default())
}

fn loc_header(l: &LocalInfo, at: Timestamp) -> PeerHeader {
    PeerHeader::loc_rib(l.asn, l.router_id, at, false)
}

/// The OPEN the Loc-RIB's Peer Up carries (RFC 9069 §5.1 asks for one
/// "fabricated" from the instance: our AS, identifier and families).
pub fn local_open(l: &LocalInfo) -> Open {
    Open {
        version: 4,
        my_as: u16::try_from(l.asn).unwrap_or(Asn::TRANS.0 as u16),
        hold_time: 0,
        bgp_id: l.router_id,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::FourOctetAs(Asn(l.asn)),
        ],
        unknown_params: Vec::new(),
    }
}

/// One route as an UPDATE: announced with its attributes (classic NLRI for
/// IPv4 with an IPv4 next hop, MP_REACH otherwise), or withdrawn.
/// `self_v4`/`self_v6` stand for the unspecified next hop of our own routes.
fn route_update(
    prefix: IpNet,
    path_id: Option<u32>,
    attrs: Option<&RouteAttrs>,
    self_v4: Ipv4Addr,
    self_v6: Ipv6Addr,
) -> Update {
    let nlri = Nlri { prefix, path_id };
    let family = Family::of(&prefix);
    let Some(a) = attrs else {
        return match prefix {
            IpNet::V4(_) => Update {
                withdrawn: vec![nlri],
                ..Default::default()
            },
            IpNet::V6(_) => Update {
                mp_unreach: Some(MpUnreach {
                    family,
                    withdrawn: vec![nlri],
                }),
                ..Default::default()
            },
        };
    };
    let mut attributes = a.attrs.clone();
    let mut next_hop = a.next_hop;
    if next_hop.addr.is_unspecified() {
        next_hop = NextHop::new(match next_hop.addr {
            IpAddr::V4(_) => IpAddr::V4(self_v4),
            IpAddr::V6(_) => IpAddr::V6(self_v6),
        });
    }
    match (prefix, next_hop.addr) {
        (IpNet::V4(_), IpAddr::V4(nh)) => {
            attributes.next_hop = Some(nh);
            Update {
                attributes,
                nlri: vec![nlri],
                ..Default::default()
            }
        }
        _ => {
            attributes.next_hop = None;
            Update {
                attributes,
                mp_reach: Some(MpReach {
                    family,
                    next_hop,
                    nlri: vec![nlri],
                }),
                ..Default::default()
            }
        }
    }
}

/// Appends one message; an UPDATE that cannot be encoded is skipped (it
/// could not have been sent to a peer either).
fn push(out: &mut BytesMut, m: Result<Message, tabby_bgp::codec::EncodeError>) -> usize {
    match m {
        Ok(m) => {
            m.encode(out);
            1
        }
        Err(e) => {
            debug!(error = %e, "BMP route monitoring not encodable; skipped");
            0
        }
    }
}

fn peer_routes<'a>(
    p: &PeerInfo,
    routes: impl Iterator<Item = (IpNet, u32, Option<&'a RouteAttrs>)>,
    post: bool,
    at: Timestamp,
    out: &mut BytesMut,
) -> usize {
    let ctx = peer_ctx(p);
    let self_v6 = Ipv6Addr::UNSPECIFIED;
    let mut n = 0;
    for (prefix, id, attrs) in routes {
        let path_id = ctx.add_path_tx.contains(&Family::of(&prefix)).then_some(id);
        let u = route_update(prefix, path_id, attrs, p.bgp_id, self_v6);
        n += push(out, build::route_monitoring(header(p, at, post), &u, &ctx));
    }
    n
}

fn loc_routes<'a>(
    l: &LocalInfo,
    routes: impl Iterator<Item = (IpNet, Option<&'a RouteAttrs>)>,
    at: Timestamp,
    out: &mut BytesMut,
) -> usize {
    let ctx = loc_ctx();
    let v6 = l.ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED);
    let mut n = 0;
    for (prefix, attrs) in routes {
        let u = route_update(prefix, None, attrs, l.router_id, v6);
        n += push(out, build::route_monitoring(loc_header(l, at), &u, &ctx));
    }
    n
}

fn peer_up(p: &PeerInfo) -> Result<Message, tabby_bgp::codec::EncodeError> {
    build::peer_up(
        header(p, p.up_at, false),
        p.local,
        p.remote_port,
        &p.sent_open,
        &p.received_open,
    )
}

fn end_of_rib(p: &PeerInfo, family: Family, at: Timestamp, out: &mut BytesMut) -> usize {
    let u = Update::end_of_rib(family);
    let ctx = peer_ctx(p);
    push(out, build::route_monitoring(header(p, at, false), &u, &ctx))
        + push(out, build::route_monitoring(header(p, at, true), &u, &ctx))
}

/// Appends the messages of one event; returns how many.
pub fn event(ev: &BmpEvent, out: &mut BytesMut) -> usize {
    match ev {
        BmpEvent::PeerUp(p) => push(out, peer_up(p)),
        BmpEvent::PeerDown { peer, reason, at } => {
            build::peer_down(header(peer, *at, false), reason.clone()).encode(out);
            1
        }
        BmpEvent::Received { peer, update, at } => push(
            out,
            build::route_monitoring(header(peer, *at, false), update, &peer_ctx(peer)),
        ),
        BmpEvent::PostPolicy { peer, routes, at } => peer_routes(
            peer,
            routes
                .iter()
                .map(|r: &RouteChange| (r.prefix, r.path_id, r.attrs.as_deref())),
            true,
            *at,
            out,
        ),
        BmpEvent::EndOfRib { peer, family, at } => end_of_rib(peer, *family, *at, out),
        BmpEvent::LocRib { local, routes, at } => loc_routes(
            local,
            routes.iter().map(|r| (r.prefix, r.attrs.as_deref())),
            *at,
            out,
        ),
        BmpEvent::Stats { peer, stats, at } => {
            Message::StatisticsReport(StatsReport {
                peer: header(peer, *at, false),
                stats: stats.clone(),
            })
            .encode(out);
            1
        }
    }
}

/// The Initiation a connection starts with.
pub fn initiation(node: &str) -> Message {
    build::initiation(
        node,
        &format!("Tabby {} BGP speaker (tabbyd)", env!("CARGO_PKG_VERSION")),
    )
}

/// A snapshot as messages, a buffer's worth at a time: the Loc-RIB's Peer
/// Up, then per peer its Peer Up, pre-policy and post-policy routes and
/// End-of-RIB markers, then the Loc-RIB and its End-of-RIB markers.
#[derive(Debug)]
pub struct SnapshotWriter<'a> {
    s: &'a Snapshot,
    /// Which peer (`peers.len()`: the Loc-RIB), and where in its tables.
    peer: usize,
    stage: Stage,
    at: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    PeerUp,
    Pre,
    Post,
    EndOfRib,
    LocRib,
    Done,
}

impl<'a> SnapshotWriter<'a> {
    pub fn new(s: &'a Snapshot) -> Self {
        SnapshotWriter {
            s,
            peer: 0,
            stage: Stage::Start,
            at: 0,
        }
    }

    /// Appends messages until `out` holds at least `limit` octets or the
    /// snapshot is done; returns how many were appended (0: done).
    pub fn fill(&mut self, out: &mut BytesMut, limit: usize) -> usize {
        const STEP: usize = 64;
        let s = self.s;
        let mut n = 0;
        while out.len() < limit && self.stage != Stage::Done {
            match self.stage {
                Stage::Start => {
                    if let Some(l) = &s.local {
                        n += push(
                            out,
                            build::loc_rib_peer_up(
                                l.asn,
                                l.router_id,
                                s.at,
                                &local_open(l),
                                TABLE_NAME,
                            ),
                        );
                    }
                    self.stage = Stage::PeerUp;
                }
                Stage::PeerUp => match s.peers.get(self.peer) {
                    Some(p) => {
                        n += push(out, peer_up(&p.info));
                        self.stage = Stage::Pre;
                        self.at = 0;
                    }
                    None => {
                        self.stage = Stage::LocRib;
                        self.at = 0;
                    }
                },
                Stage::Pre | Stage::Post => {
                    let p = &s.peers[self.peer];
                    let post = self.stage == Stage::Post;
                    let table: &[tabby_rib::AdjRibInRoute] = if post {
                        &p.post
                    } else {
                        p.pre.as_deref().unwrap_or_default()
                    };
                    let chunk = table.get(self.at..).unwrap_or_default();
                    let chunk = &chunk[..chunk.len().min(STEP)];
                    if chunk.is_empty() {
                        self.stage = if post { Stage::EndOfRib } else { Stage::Post };
                        self.at = 0;
                        continue;
                    }
                    n += peer_routes(
                        &p.info,
                        chunk.iter().map(|(x, id, a)| (*x, *id, Some(a.as_ref()))),
                        post,
                        s.at,
                        out,
                    );
                    self.at += chunk.len();
                }
                Stage::EndOfRib => {
                    let p = &s.peers[self.peer];
                    for f in &p.families {
                        n += end_of_rib(&p.info, *f, s.at, out);
                    }
                    self.peer += 1;
                    self.stage = Stage::PeerUp;
                }
                Stage::LocRib => {
                    let Some(l) = &s.local else {
                        self.stage = Stage::Done;
                        continue;
                    };
                    let chunk = s.loc_rib.get(self.at..).unwrap_or_default();
                    let chunk = &chunk[..chunk.len().min(STEP)];
                    if chunk.is_empty() {
                        for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
                            n += push(
                                out,
                                build::route_monitoring(
                                    loc_header(l, s.at),
                                    &Update::end_of_rib(f),
                                    &loc_ctx(),
                                ),
                            );
                        }
                        self.stage = Stage::Done;
                        continue;
                    }
                    n += loc_routes(
                        l,
                        chunk.iter().map(|(x, a)| (*x, Some(a.as_ref()))),
                        s.at,
                        out,
                    );
                    self.at += chunk.len();
                }
                Stage::Done => {}
            }
        }
        n
    }
}
