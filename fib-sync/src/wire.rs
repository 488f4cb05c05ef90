//! rtnetlink message building and parsing: the only place that knows how a
//! `FibRoute` looks on the wire and how a kernel route maps back.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{
    DecodeError, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteNextHop, RouteNextHopFlags,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

pub(crate) use netlink_packet_route::route::RouteMessage;

use crate::types::{FibRoute, RouteKind};

/// `RT_TABLE_COMPAT`: what `rtm_table` says when the real id is in `RTA_TABLE`.
const RT_TABLE_COMPAT: u8 = 252;

/// A route request that is about to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// `RTM_NEWROUTE` with `NLM_F_CREATE|NLM_F_EXCL`: never touches an
    /// existing route, ours or not.
    Create,
    /// `RTM_NEWROUTE` with `NLM_F_REPLACE` and no `NLM_F_CREATE`: only sent
    /// when the key holds our route and no foreign one (see `actor.rs`).
    Replace,
    /// `RTM_DELROUTE` that names our protocol, so the kernel matches only
    /// our route (fib_table_delete / ip6_route_del compare `rtm_protocol`).
    Delete,
}

/// One next hop resolved to an interface index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Hop {
    pub gateway: Option<IpAddr>,
    /// 0 = let the kernel choose (only in desired routes).
    pub oif: u32,
    pub onlink: bool,
    pub weight: u16,
}

/// A route's forwarding behaviour in kernel terms (devices as indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    Unicast(Vec<Hop>),
    Blackhole,
    /// Any other route type (unreachable, prohibit, local...), by number.
    Other(u8),
}

/// A route as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelRoute {
    pub prefix: IpNet,
    pub table: u32,
    pub protocol: u8,
    pub metric: u32,
    pub tos: u8,
    pub shape: Shape,
    pub pref_src: Option<IpAddr>,
}

/// What the kernel reported in one message of interest.
#[derive(Debug)]
pub(crate) enum Parsed {
    NewRoute(KernelRoute),
    DelRoute(KernelRoute),
    Link {
        index: u32,
        name: Option<String>,
        up: bool,
        removed: bool,
    },
    Addr {
        index: u32,
        address: IpNet,
        removed: bool,
    },
    Error {
        seq: u32,
        /// 0 = acknowledgement, else a positive errno.
        errno: i32,
    },
    Done,
    Other,
}

/// Walks the netlink messages packed in one datagram.
pub(crate) fn for_each_message(
    buf: &[u8],
    mut f: impl FnMut(u16, u32, Result<Parsed, DecodeError>),
) {
    let mut off = 0usize;
    while off < buf.len() {
        let rest = match buf.get(off..) {
            Some(r) => r,
            None => return,
        };
        let len = match NetlinkBuffer::new_checked(rest) {
            Ok(b) => b.length() as usize,
            Err(_) => return,
        };
        if len < 16 || len > rest.len() {
            return;
        }
        let Some(one) = rest.get(..len) else { return };
        let (flags, seq) = match NetlinkBuffer::new_checked(one) {
            Ok(b) => (b.flags(), b.sequence_number()),
            Err(_) => return,
        };
        f(flags, seq, parse_one(one, seq));
        off += (len + 3) & !3;
    }
}

fn parse_one(one: &[u8], seq: u32) -> Result<Parsed, DecodeError> {
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(one)?;
    Ok(match msg.payload {
        NetlinkPayload::Error(e) => Parsed::Error {
            seq,
            errno: e.code.map(|c| -c.get()).unwrap_or(0),
        },
        NetlinkPayload::Done(_) => Parsed::Done,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => {
            route_of(&m).map(Parsed::NewRoute).unwrap_or(Parsed::Other)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(m)) => {
            route_of(&m).map(Parsed::DelRoute).unwrap_or(Parsed::Other)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m))
        | NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
            use netlink_packet_route::link::{LinkAttribute, LinkFlags};
            let removed = msg.header.message_type == libc::RTM_DELLINK;
            let name = m.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            let up = m.header.flags.contains(LinkFlags::Up)
                && m.header.flags.contains(LinkFlags::LowerUp);
            Parsed::Link {
                index: m.header.index,
                name,
                up,
                removed,
            }
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m))
        | NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => {
            use netlink_packet_route::address::AddressAttribute;
            let removed = msg.header.message_type == libc::RTM_DELADDR;
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(a) => Some(*a),
                _ => None,
            });
            let addr = addr.or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(a) => Some(*a),
                    _ => None,
                })
            });
            match addr.and_then(|a| IpNet::new(a, m.header.prefix_len).ok()) {
                Some(address) => Parsed::Addr {
                    index: m.header.index,
                    address,
                    removed,
                },
                None => Parsed::Other,
            }
        }
        _ => Parsed::Other,
    })
}

fn addr_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Maps a kernel route message to our view; `None` for families and
/// shapes we never program (MPLS, multicast, cloned cache entries).
pub(crate) fn route_of(m: &RouteMessage) -> Option<KernelRoute> {
    let h = &m.header;
    let v6 = match h.address_family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    if h.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let mut dst = None;
    let mut table = u32::from(h.table);
    let mut metric = 0u32;
    let mut gateway = None;
    let mut oif = 0u32;
    let mut pref_src = None;
    let mut multipath: Option<&Vec<RouteNextHop>> = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = addr_of(d),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Gateway(g) => gateway = addr_of(g),
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::PrefSource(s) => pref_src = addr_of(s),
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            _ => {}
        }
    }
    let dst = match dst {
        Some(d) => d,
        None if v6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    let prefix = IpNet::new(dst, h.destination_prefix_length).ok()?;
    let shape = match h.kind {
        RouteType::BlackHole => Shape::Blackhole,
        RouteType::Unicast => {
            let mut hops = match multipath {
                Some(hops) => hops
                    .iter()
                    .map(|nh| Hop {
                        gateway: nh.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => addr_of(g),
                            _ => None,
                        }),
                        oif: nh.interface_index,
                        onlink: nh.flags.contains(RouteNextHopFlags::Onlink),
                        weight: u16::from(nh.hops) + 1,
                    })
                    .collect(),
                None => vec![Hop {
                    gateway,
                    oif,
                    onlink: h.flags.contains(RouteFlags::Onlink),
                    weight: 1,
                }],
            };
            hops.sort();
            Shape::Unicast(hops)
        }
        other => Shape::Other(u8::from(other)),
    };
    Some(KernelRoute {
        prefix,
        table,
        protocol: u8::from(h.protocol),
        metric,
        tos: h.tos,
        shape,
        pref_src,
    })
}

/// Parameters shared by every request of one synchroniser.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub protocol: u8,
    pub table: u32,
    pub metric_v4: u32,
    pub metric_v6: u32,
}

fn family_of(prefix: &IpNet) -> AddressFamily {
    match prefix {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

fn base_message(t: &Target, prefix: &IpNet) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family_of(prefix);
    m.header.destination_prefix_length = prefix.prefix_len();
    m.header.table = u8::try_from(t.table)
        .ok()
        .filter(|_| t.table < 256)
        .unwrap_or(RT_TABLE_COMPAT);
    m.header.protocol = RouteProtocol::from(t.protocol);
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            prefix.addr(),
        )));
    m.attributes.push(RouteAttribute::Table(t.table));
    let metric = match prefix {
        IpNet::V4(_) => t.metric_v4,
        IpNet::V6(_) => t.metric_v6,
    };
    m.attributes.push(RouteAttribute::Priority(metric));
    m
}

/// Builds the route message for `Create`/`Replace` of a desired route whose
/// devices are already resolved to `hops`.
pub(crate) fn route_message(t: &Target, route: &FibRoute, hops: &[Hop]) -> RouteMessage {
    let mut m = base_message(t, &route.prefix);
    m.header.scope = RouteScope::Universe;
    match &route.kind {
        RouteKind::Blackhole => m.header.kind = RouteType::BlackHole,
        RouteKind::Unicast(_) => {
            m.header.kind = RouteType::Unicast;
            if let [hop] = hops {
                if let Some(g) = hop.gateway {
                    m.attributes
                        .push(RouteAttribute::Gateway(RouteAddress::from(g)));
                }
                if hop.oif != 0 {
                    m.attributes.push(RouteAttribute::Oif(hop.oif));
                }
                if hop.onlink {
                    m.header.flags |= RouteFlags::Onlink;
                }
            } else {
                let nhs = hops
                    .iter()
                    .map(|hop| {
                        let mut nh = RouteNextHop::default();
                        nh.interface_index = hop.oif;
                        nh.hops = u8::try_from(hop.weight.clamp(1, 256) - 1).unwrap_or(0);
                        if hop.onlink {
                            nh.flags |= RouteNextHopFlags::Onlink;
                        }
                        if let Some(g) = hop.gateway {
                            nh.attributes
                                .push(RouteAttribute::Gateway(RouteAddress::from(g)));
                        }
                        nh
                    })
                    .collect();
                m.attributes.push(RouteAttribute::MultiPath(nhs));
            }
        }
    }
    if let Some(src) = route.pref_src {
        m.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    m
}

/// Builds a delete that can only match our protocol's route for `prefix`.
pub(crate) fn delete_message(t: &Target, prefix: &IpNet, metric: u32) -> RouteMessage {
    let mut m = base_message(t, prefix);
    // Replace the default metric with the one the kernel holds (a stale
    // route may carry an older configuration's metric).
    m.attributes
        .retain(|a| !matches!(a, RouteAttribute::Priority(_)));
    m.attributes.push(RouteAttribute::Priority(metric));
    m.header.scope = RouteScope::NoWhere;
    m
}

/// Appends one request to `buf`.
pub(crate) fn push_request(buf: &mut Vec<u8>, seq: u32, op: OpKind, msg: RouteMessage, ack: bool) {
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.flags = NLM_F_REQUEST
        | if ack { NLM_F_ACK } else { 0 }
        | match op {
            OpKind::Create => NLM_F_CREATE | NLM_F_EXCL,
            OpKind::Replace => NLM_F_REPLACE,
            OpKind::Delete => 0,
        };
    let payload = match op {
        OpKind::Delete => RouteNetlinkMessage::DelRoute(msg),
        _ => RouteNetlinkMessage::NewRoute(msg),
    };
    push(buf, header, payload);
}

/// Sets `NLM_F_ACK` on the message starting at `at` (the last of a batch).
pub(crate) fn set_ack(buf: &mut [u8], at: usize) {
    // nlmsghdr: len u32, type u16, flags u16 (native endian) at offset 6.
    if let Some(f) = buf.get_mut(at + 6..at + 8) {
        let flags = u16::from_ne_bytes([f[0], f[1]]) | NLM_F_ACK;
        f.copy_from_slice(&flags.to_ne_bytes());
    }
}

fn push(buf: &mut Vec<u8>, header: NetlinkHeader, payload: RouteNetlinkMessage) {
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    msg.finalize();
    let start = buf.len();
    let len = msg.buffer_len();
    buf.resize(start + ((len + 3) & !3), 0);
    if let Some(slot) = buf.get_mut(start..start + len) {
        msg.serialize(slot);
    }
}

/// A dump request for one family's routes in `table` (the kernel filters by
/// table when `NETLINK_GET_STRICT_CHK` is on; we filter again anyway).
pub(crate) fn dump_routes(buf: &mut Vec<u8>, seq: u32, v6: bool, table: u32) {
    let mut m = RouteMessage::default();
    m.header = RouteHeader {
        address_family: if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        },
        ..RouteHeader::default()
    };
    if table < 256 {
        m.header.table = table as u8;
    }
    m.attributes.push(RouteAttribute::Table(table));
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    push(buf, header, RouteNetlinkMessage::GetRoute(m));
}

/// A dump request for links (names and state) or addresses.
pub(crate) fn dump_links(buf: &mut Vec<u8>, seq: u32) {
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    push(
        buf,
        header,
        RouteNetlinkMessage::GetLink(netlink_packet_route::link::LinkMessage::default()),
    );
}
