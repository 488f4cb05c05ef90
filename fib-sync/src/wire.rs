//! rtnetlink message building and parsing: the only place that knows how a
//! route request looks on the wire and how a kernel route maps back.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{
    DecodeError, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::route::{RouteAttribute, RouteHeader, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

mod nexthop;
pub(crate) use nexthop::{KernelNexthop, NhOp, NhSpec, dump_nexthops, push_nexthop};

/// `RT_TABLE_COMPAT`: what `rtm_table` says when the real id is in `RTA_TABLE`.
const RT_TABLE_COMPAT: u8 = 252;

/// A route request that is about to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// `RTM_NEWROUTE` with `NLM_F_CREATE|NLM_F_EXCL`: never touches an
    /// existing route, ours or not.
    Create,
    /// `RTM_NEWROUTE` with `NLM_F_REPLACE` and no `NLM_F_CREATE`: only sent
    /// when the key holds our route and no foreign one (see `plan.rs`).
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
    /// The nexthop object the route forwards through (`RTA_NH_ID`); `shape`
    /// then holds what the kernel reports of it (its compatibility mode
    /// spells it out as `RTA_GATEWAY`/`RTA_OIF`).
    pub nh_id: Option<u32>,
}

impl KernelRoute {
    /// Whether `kernel`, as the kernel reports a route, is this route as we
    /// requested it: equal, except that a next hop we left to the kernel
    /// (`oif` 0) may come back with the interface it chose.
    pub(crate) fn requested_as(&self, kernel: &KernelRoute) -> bool {
        let same_hops = match (&self.shape, &kernel.shape) {
            (Shape::Unicast(a), Shape::Unicast(b)) => {
                a.len() == b.len()
                    && a.iter().zip(b).all(|(a, b)| {
                        a.gateway == b.gateway
                            && (a.oif == 0 || a.oif == b.oif)
                            && a.onlink == b.onlink
                            && a.weight == b.weight
                    })
            }
            (a, b) => a == b,
        };
        same_hops
            && self.prefix == kernel.prefix
            && self.table == kernel.table
            && self.protocol == kernel.protocol
            && self.metric == kernel.metric
            && self.tos == kernel.tos
            && self.pref_src == kernel.pref_src
            && self.nh_id == kernel.nh_id
    }
}

/// What the kernel reported in one message of interest.
#[derive(Debug)]
pub(crate) enum Parsed {
    NewRoute(KernelRoute),
    DelRoute(KernelRoute),
    NewNexthop(KernelNexthop),
    DelNexthop(KernelNexthop),
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
    let ty = u16::from_ne_bytes([one[4], one[5]]);
    let body = one.get(16..).unwrap_or(&[]);
    match ty {
        // NLMSG_ERROR: a negative errno (0 = ack), then the request header.
        2 => {
            let code = body
                .get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| DecodeError::from("short NLMSG_ERROR"))?;
            return Ok(Parsed::Error { seq, errno: -code });
        }
        3 => return Ok(Parsed::Done),
        RTM_NEWROUTE => {
            return Ok(parse_route(body)
                .map(Parsed::NewRoute)
                .unwrap_or(Parsed::Other));
        }
        RTM_DELROUTE => {
            return Ok(parse_route(body)
                .map(Parsed::DelRoute)
                .unwrap_or(Parsed::Other));
        }
        nexthop::RTM_NEWNEXTHOP => {
            return Ok(nexthop::parse_nexthop(body)
                .map(Parsed::NewNexthop)
                .unwrap_or(Parsed::Other));
        }
        nexthop::RTM_DELNEXTHOP => {
            return Ok(nexthop::parse_nexthop(body)
                .map(Parsed::DelNexthop)
                .unwrap_or(Parsed::Other));
        }
        _ => {}
    }
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(one)?;
    Ok(match msg.payload {
        NetlinkPayload::Error(e) => Parsed::Error {
            seq,
            errno: e.code.map(|c| -c.get()).unwrap_or(0),
        },
        NetlinkPayload::Done(_) => Parsed::Done,
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

fn ip_of(family: u8, b: &[u8]) -> Option<IpAddr> {
    if family == libc::AF_INET as u8 {
        <[u8; 4]>::try_from(b).ok().map(IpAddr::from)
    } else {
        <[u8; 16]>::try_from(b).ok().map(IpAddr::from)
    }
}

/// The address in an `RTA_VIA` value (`struct rtvia`: a native-endian
/// `sa_family_t`, then the address): how the kernel reports an IPv4 route's
/// IPv6 gateway (RFC 8950 next hops, Linux 5.2+).
fn via_of(b: &[u8]) -> Option<IpAddr> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let family = u8::try_from(family).ok()?;
    if family != libc::AF_INET as u8 && family != libc::AF_INET6 as u8 {
        return None;
    }
    ip_of(family, b.get(2..)?)
}

/// Puts a gateway: `RTA_GATEWAY` when it has the route's family, else
/// `RTA_VIA` with its own family (an IPv4 route via an IPv6 address).
fn put_gateway(buf: &mut Vec<u8>, v6_route: bool, g: IpAddr) {
    match g {
        IpAddr::V6(a) if !v6_route => {
            let mut v = Vec::with_capacity(18);
            v.extend_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            v.extend_from_slice(&a.octets());
            put_attr(buf, RTA_VIA, &v);
        }
        _ => put_addr(buf, RTA_GATEWAY, g),
    }
}

fn u32_of(b: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(b).ok().map(u32::from_ne_bytes)
}

/// Walks `rtattr`s: (type, value) pairs; stops at the first malformed one.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
        let ty = u16::from_ne_bytes([*b.get(2)?, *b.get(3)?]) & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = b.get(4..len)?;
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
        Some((ty, value))
    })
}

/// Decodes an `rtmsg` and its attributes (the hot path of events and dumps).
pub(crate) fn parse_route(b: &[u8]) -> Option<KernelRoute> {
    let h = b.get(..12)?;
    let (family, dst_len, tos, table8, protocol, kind) = (h[0], h[1], h[3], h[4], h[5], h[7]);
    let flags = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
    let v6 = match i32::from(family) {
        libc::AF_INET => false,
        libc::AF_INET6 => true,
        _ => return None,
    };
    if flags & RTM_F_CLONED != 0 {
        return None;
    }
    let mut dst = None;
    let mut table = u32::from(table8);
    let mut metric = 0;
    let mut gateway = None;
    let mut oif = 0;
    let mut pref_src = None;
    let mut multipath = None;
    let mut nh_id = None;
    for (ty, v) in attrs(b.get(12..)?) {
        match ty {
            RTA_DST => dst = ip_of(family, v),
            RTA_TABLE => table = u32_of(v)?,
            RTA_PRIORITY => metric = u32_of(v)?,
            RTA_GATEWAY => gateway = ip_of(family, v),
            RTA_VIA => gateway = via_of(v),
            RTA_OIF => oif = u32_of(v)?,
            RTA_PREFSRC => pref_src = ip_of(family, v),
            RTA_MULTIPATH => multipath = Some(v),
            RTA_NH_ID => nh_id = u32_of(v),
            _ => {}
        }
    }
    let dst = dst.unwrap_or(if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    });
    let prefix = IpNet::new(dst, dst_len).ok()?;
    let shape = match kind {
        RTN_BLACKHOLE => Shape::Blackhole,
        RTN_UNICAST => {
            let mut hops = Vec::with_capacity(1);
            match multipath {
                Some(mut mp) => {
                    // struct rtnexthop { u16 len; u8 flags; u8 hops; i32 ifindex; } + attrs
                    while mp.len() >= 8 {
                        let len = usize::from(u16::from_ne_bytes([mp[0], mp[1]]));
                        if len < 8 {
                            break;
                        }
                        let nh = mp.get(..len)?;
                        let gateway = attrs(nh.get(8..)?).find_map(|(t, v)| match t {
                            RTA_GATEWAY => ip_of(family, v),
                            RTA_VIA => via_of(v),
                            _ => None,
                        });
                        hops.push(Hop {
                            gateway,
                            oif: u32::from_ne_bytes([nh[4], nh[5], nh[6], nh[7]]),
                            onlink: nh[2] & RTNH_F_ONLINK != 0,
                            weight: u16::from(nh[3]) + 1,
                        });
                        mp = mp.get((len + 3) & !3..).unwrap_or(&[]);
                    }
                }
                None => hops.push(Hop {
                    gateway,
                    oif,
                    onlink: flags & u32::from(RTNH_F_ONLINK) != 0,
                    weight: 1,
                }),
            }
            hops.sort();
            Shape::Unicast(hops)
        }
        other => Shape::Other(other),
    };
    Some(KernelRoute {
        prefix,
        table,
        protocol,
        metric,
        tos,
        shape,
        pref_src,
        nh_id,
    })
}

/// The replies to one dump request, datagram by datagram.
#[derive(Debug)]
pub(crate) struct Dump {
    seq: u32,
    pub out: Vec<Parsed>,
    /// Some part carried `NLM_F_DUMP_INTR`: the table changed while it was
    /// walked, entries may be missing or doubled; the dump must be repeated.
    pub interrupted: bool,
    pub done: bool,
    pub failure: Option<i32>,
}

impl Dump {
    pub(crate) fn new(seq: u32) -> Self {
        Self {
            seq,
            out: Vec::new(),
            interrupted: false,
            done: false,
            failure: None,
        }
    }

    pub(crate) fn feed(&mut self, datagram: &[u8]) {
        for_each_message(datagram, |flags, s, m| {
            if s != self.seq {
                return;
            }
            if flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match m {
                Ok(Parsed::Done) => self.done = true,
                Ok(Parsed::Error { errno, .. }) => {
                    self.done = true;
                    if errno != 0 {
                        self.failure = Some(errno);
                    }
                }
                Ok(m) => self.out.push(m),
                Err(_) => {}
            }
        });
    }
}

/// Parameters shared by every request of one synchroniser.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub protocol: u8,
    pub table: u32,
    /// The metric of a route of each family that has none of its own.
    pub metric_v4: u32,
    pub metric_v6: u32,
}

// Route requests are encoded by hand: they are the hot path (a million
// routes), the layout is fixed by `linux/rtnetlink.h`, and the library's
// attribute vectors cost an allocation per attribute. Unit tests check the
// bytes against netlink-packet-route's parser.
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const RTA_NH_ID: u16 = 30;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTNH_F_ONLINK: u8 = 4;
const RTM_F_CLONED: u32 = 0x200;

fn put_attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + ((4 - len % 4) % 4), 0);
}

fn put_addr(buf: &mut Vec<u8>, ty: u16, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => put_attr(buf, ty, &v4.octets()),
        IpAddr::V6(v6) => put_attr(buf, ty, &v6.octets()),
    }
}

/// What a request carries besides the key.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// A route to create or replace (devices resolved), with its preferred
    /// source, metric and nexthop object (which then stands for the shape's
    /// single next hop on the wire).
    Route(&'a Shape, Option<IpAddr>, u32, Option<u32>),
    /// A delete of our route at `metric`.
    Delete(u32),
}

/// Appends one request to `buf` (no `NLM_F_ACK`; see `set_ack`).
pub(crate) fn push_request(
    buf: &mut Vec<u8>,
    seq: u32,
    op: OpKind,
    t: &Target,
    prefix: &IpNet,
    body: Body<'_>,
) {
    let start = buf.len();
    let (ty, flags) = match op {
        OpKind::Create => (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL),
        OpKind::Replace => (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_REPLACE),
        OpKind::Delete => (RTM_DELROUTE, NLM_F_REQUEST),
    };
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    let (family, v6) = match prefix {
        IpNet::V4(_) => (libc::AF_INET as u8, false),
        IpNet::V6(_) => (libc::AF_INET6 as u8, true),
    };
    let (scope, kind, rtm_flags, metric) = match &body {
        Body::Delete(m) => (RT_SCOPE_NOWHERE, 0u8, 0u32, *m),
        Body::Route(shape, _, metric, nh) => {
            let (kind, hops) = match shape {
                Shape::Blackhole => (RTN_BLACKHOLE, &[][..]),
                Shape::Unicast(hops) => (RTN_UNICAST, hops.as_slice()),
                Shape::Other(kind) => (*kind, &[][..]),
            };
            // With a nexthop object, onlink is the object's flag.
            let onlink = nh.is_none() && matches!(hops, [h] if h.onlink);
            (
                RT_SCOPE_UNIVERSE,
                kind,
                if onlink { u32::from(RTNH_F_ONLINK) } else { 0 },
                *metric,
            )
        }
    };
    let table = if t.table < 256 {
        t.table as u8
    } else {
        RT_TABLE_COMPAT
    };
    buf.extend_from_slice(&[
        family,
        prefix.prefix_len(),
        0,
        0,
        table,
        t.protocol,
        scope,
        kind,
    ]);
    buf.extend_from_slice(&rtm_flags.to_ne_bytes());
    put_addr(buf, RTA_DST, prefix.addr());
    put_attr(buf, RTA_TABLE, &t.table.to_ne_bytes());
    put_attr(buf, RTA_PRIORITY, &metric.to_ne_bytes());
    if let Body::Route(shape, pref_src, _, nh) = body {
        if let Some(id) = nh {
            put_attr(buf, RTA_NH_ID, &id.to_ne_bytes());
        } else if let Shape::Unicast(hops) = shape {
            if let [hop] = hops.as_slice() {
                if let Some(g) = hop.gateway {
                    put_gateway(buf, v6, g);
                }
                if hop.oif != 0 {
                    put_attr(buf, RTA_OIF, &hop.oif.to_ne_bytes());
                }
            } else {
                let mut mp = Vec::with_capacity(hops.len() * 28);
                for hop in hops {
                    let at = mp.len();
                    mp.extend_from_slice(&0u16.to_ne_bytes());
                    let hflags = if hop.onlink { RTNH_F_ONLINK } else { 0 };
                    let weight = u8::try_from(hop.weight.clamp(1, 256) - 1).unwrap_or(0);
                    mp.extend_from_slice(&[hflags, weight]);
                    mp.extend_from_slice(&hop.oif.to_ne_bytes());
                    if let Some(g) = hop.gateway {
                        put_gateway(&mut mp, v6, g);
                    }
                    let len = (mp.len() - at) as u16;
                    mp[at..at + 2].copy_from_slice(&len.to_ne_bytes());
                }
                put_attr(buf, RTA_MULTIPATH, &mp);
            }
        }
        if let Some(src) = pref_src {
            put_addr(buf, RTA_PREFSRC, src);
        }
    }
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
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
    push(buf, dump_header(seq), RouteNetlinkMessage::GetRoute(m));
}

/// The header of a dump request.
fn dump_header(seq: u32) -> NetlinkHeader {
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header
}

/// A dump request for links (names and state) or addresses.
pub(crate) fn dump_links(buf: &mut Vec<u8>, seq: u32) {
    push(
        buf,
        dump_header(seq),
        RouteNetlinkMessage::GetLink(netlink_packet_route::link::LinkMessage::default()),
    );
}

/// A dump request for every interface address (both families).
pub(crate) fn dump_addresses(buf: &mut Vec<u8>, seq: u32) {
    push(
        buf,
        dump_header(seq),
        RouteNetlinkMessage::GetAddress(netlink_packet_route::address::AddressMessage::default()),
    );
}

#[cfg(test)]
mod tests {
    //! The hand-written encoder and decoder, checked against
    //! netlink-packet-route in both directions.

    use super::*;
    use crate::types::{FibRoute, NextHopSpec, RouteKind};
    use netlink_packet_route::route::{
        RouteAddress, RouteFlags, RouteNextHop, RouteNextHopFlags, RouteProtocol, RouteScope,
        RouteType, RouteVia,
    };

    fn addr_of(a: &RouteAddress) -> Option<IpAddr> {
        match a {
            RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
            RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
            _ => None,
        }
    }

    fn via_addr(v: &RouteVia) -> Option<IpAddr> {
        match v {
            RouteVia::Inet(a) => Some(IpAddr::V4(*a)),
            RouteVia::Inet6(a) => Some(IpAddr::V6(*a)),
            _ => None,
        }
    }

    /// The library's view of a route message, to cross-check `parse_route`.
    /// Maps a kernel route message to our view; `None` for families and
    /// shapes we never program (MPLS, multicast, cloned cache entries).
    fn route_of(m: &RouteMessage) -> Option<KernelRoute> {
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
                RouteAttribute::Via(v) => gateway = via_addr(v),
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
                                RouteAttribute::Via(v) => via_addr(v),
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
            nh_id: None,
        })
    }

    const T: Target = Target {
        protocol: 84,
        table: 254,
        metric_v4: 32,
        metric_v6: 1024,
    };

    fn encode(op: OpKind, prefix: &IpNet, body: Body<'_>) -> (NetlinkHeader, RouteMessage) {
        let mut buf = Vec::new();
        push_request(&mut buf, 7, op, &T, prefix, body);
        assert_eq!(buf.len() % 4, 0);
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf)
            .expect("library parses our bytes");
        assert_eq!(m.header.length as usize, buf.len());
        match m.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r))
            | NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) => (m.header, r),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn hop(g: &str, oif: u32, onlink: bool, weight: u16) -> Hop {
        Hop {
            gateway: Some(g.parse().unwrap()),
            oif,
            onlink,
            weight,
        }
    }

    #[test]
    fn create_single_gateway_v4() {
        let route = FibRoute::via(
            "100.64.1.0/24".parse().unwrap(),
            "198.18.0.2".parse().unwrap(),
        );
        let hops = [hop("198.18.0.2", 0, false, 1)];
        let (h, m) = encode(
            OpKind::Create,
            &route.prefix,
            Body::Route(&Shape::Unicast(hops.to_vec()), route.pref_src, 32, None),
        );
        assert_eq!(h.message_type, RTM_NEWROUTE);
        assert_eq!(h.flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL);
        assert_eq!(h.sequence_number, 7);
        assert_eq!(m.header.protocol, RouteProtocol::Other(84));
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert_eq!(m.header.destination_prefix_length, 24);
        assert!(m.attributes.contains(&RouteAttribute::Priority(32)));
        assert!(m.attributes.contains(&RouteAttribute::Table(254)));
        assert!(
            m.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(
                    "198.18.0.2".parse().unwrap()
                )))
        );
        assert_eq!(route_of(&m), parse_route(&emit(&m)));
    }

    #[test]
    fn ipv4_route_via_ipv6_gateway_uses_rta_via() {
        // RFC 8950 next hop: `ip route add 100.64.7.0/24 via inet6 2001:db8::2`.
        let route = FibRoute::via(
            "100.64.7.0/24".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let hops = [hop("2001:db8::2", 0, false, 1)];
        let (_, m) = encode(
            OpKind::Create,
            &route.prefix,
            Body::Route(&Shape::Unicast(hops.to_vec()), route.pref_src, 32, None),
        );
        assert!(
            m.attributes.contains(&RouteAttribute::Via(RouteVia::Inet6(
                "2001:db8::2".parse().unwrap()
            ))),
            "{m:?}"
        );
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Gateway(_))),
            "an IPv6 address in RTA_GATEWAY of an IPv4 route is refused by the kernel"
        );
        let k = parse_route(&emit(&m)).unwrap();
        assert_eq!(k.shape, Shape::Unicast(hops.to_vec()));
        assert_eq!(Some(k), route_of(&m));

        // ECMP: RTA_VIA inside each rtnexthop; a mixed pair parses back.
        let route = FibRoute::ecmp(
            "100.64.8.0/24".parse().unwrap(),
            ["2001:db8::2", "198.18.0.2"].map(|s| s.parse().unwrap()),
        );
        let hops = [
            hop("198.18.0.2", 3, false, 1),
            hop("2001:db8::2", 3, false, 1),
        ];
        let (_, m) = encode(
            OpKind::Create,
            &route.prefix,
            Body::Route(&Shape::Unicast(hops.to_vec()), route.pref_src, 32, None),
        );
        let k = parse_route(&emit(&m)).unwrap();
        assert_eq!(k.shape, Shape::Unicast(hops.to_vec()));
        assert_eq!(Some(k), route_of(&m));

        // A malformed RTA_VIA (unknown family, short address) gives no gateway.
        assert_eq!(via_of(&[99, 0, 1, 2, 3, 4]), None);
        assert_eq!(via_of(&(libc::AF_INET6 as u16).to_ne_bytes()), None);
        assert_eq!(via_of(&[]), None);
    }

    #[test]
    fn replace_onlink_v6_with_source_and_big_table() {
        let t = Target { table: 1000, ..T };
        let mut route = FibRoute::via(
            "2001:db8:1000::/48".parse().unwrap(),
            "2001:db8::9".parse().unwrap(),
        );
        route.pref_src = Some("2001:db8::1".parse().unwrap());
        let hops = [hop("2001:db8::9", 5, true, 1)];
        let mut buf = Vec::new();
        push_request(
            &mut buf,
            1,
            OpKind::Replace,
            &t,
            &route.prefix,
            Body::Route(&Shape::Unicast(hops.to_vec()), route.pref_src, 1024, None),
        );
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        assert_eq!(m.header.flags, NLM_F_REQUEST | NLM_F_REPLACE);
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) = m.payload else {
            panic!()
        };
        assert_eq!(r.header.table, RT_TABLE_COMPAT);
        assert!(r.header.flags.contains(RouteFlags::Onlink));
        assert!(r.attributes.contains(&RouteAttribute::Table(1000)));
        assert!(r.attributes.contains(&RouteAttribute::Oif(5)));
        assert!(r.attributes.contains(&RouteAttribute::Priority(1024)));
        let k = parse_route(&emit(&r)).unwrap();
        assert_eq!(k.table, 1000);
        assert_eq!(k.pref_src, route.pref_src);
        assert_eq!(k.shape, Shape::Unicast(hops.to_vec()));
        assert_eq!(Some(k), route_of(&r));
    }

    #[test]
    fn ecmp_weights_and_blackhole_and_delete() {
        let route = FibRoute::ecmp(
            "100.64.2.0/24".parse().unwrap(),
            ["198.18.0.2", "198.18.0.3"].map(|s| s.parse().unwrap()),
        );
        let hops = [
            hop("198.18.0.2", 3, false, 1),
            hop("198.18.0.3", 4, true, 7),
        ];
        let (_, m) = encode(
            OpKind::Create,
            &route.prefix,
            Body::Route(&Shape::Unicast(hops.to_vec()), route.pref_src, 32, None),
        );
        let mp = m
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::MultiPath(v) => Some(v.clone()),
                _ => None,
            })
            .expect("multipath");
        assert_eq!(mp.len(), 2);
        assert_eq!((mp[1].hops, mp[1].interface_index), (6, 4));
        assert!(mp[1].flags.contains(RouteNextHopFlags::Onlink));
        assert_eq!(
            parse_route(&emit(&m)).unwrap().shape,
            Shape::Unicast(hops.to_vec())
        );

        let bh = FibRoute::blackhole("100.64.3.0/26".parse().unwrap());
        let (_, m) = encode(
            OpKind::Create,
            &bh.prefix,
            Body::Route(&Shape::Blackhole, bh.pref_src, 2_147_483_547, None),
        );
        assert_eq!(m.header.kind, RouteType::BlackHole);
        // The request's own metric, not the target's family metric.
        assert!(
            m.attributes
                .contains(&RouteAttribute::Priority(2_147_483_547))
        );
        assert_eq!(parse_route(&emit(&m)).unwrap().shape, Shape::Blackhole);

        let p: IpNet = "100.64.4.0/24".parse().unwrap();
        let (h, m) = encode(OpKind::Delete, &p, Body::Delete(99));
        assert_eq!(h.message_type, RTM_DELROUTE);
        assert_eq!(
            m.header.protocol,
            RouteProtocol::Other(84),
            "deletes must name our protocol"
        );
        assert_eq!(m.header.scope, RouteScope::NoWhere);
        assert!(m.attributes.contains(&RouteAttribute::Priority(99)));
    }

    #[test]
    fn requested_route_matches_the_kernels_spelling_only_up_to_the_chosen_device() {
        let mine = KernelRoute {
            prefix: "100.64.6.0/24".parse().unwrap(),
            table: 254,
            protocol: 84,
            metric: 32,
            tos: 0,
            shape: Shape::Unicast(vec![hop("198.18.0.2", 0, false, 1)]),
            pref_src: None,
            nh_id: None,
        };
        let kernel = KernelRoute {
            shape: Shape::Unicast(vec![hop("198.18.0.2", 3, false, 1)]),
            ..mine.clone()
        };
        assert!(
            mine.requested_as(&kernel),
            "oif 0 leaves the device to the kernel"
        );
        assert!(!kernel.requested_as(&mine), "a named device must come back");
        let other_gw = KernelRoute {
            shape: Shape::Unicast(vec![hop("198.18.0.3", 3, false, 1)]),
            ..mine.clone()
        };
        assert!(!mine.requested_as(&other_gw));
        let other_metric = KernelRoute {
            metric: 33,
            ..kernel.clone()
        };
        assert!(!mine.requested_as(&other_metric));
        let blackhole = KernelRoute {
            shape: Shape::Blackhole,
            ..mine.clone()
        };
        assert!(!mine.requested_as(&blackhole));
        assert!(blackhole.requested_as(&blackhole.clone()));
    }

    #[test]
    fn route_on_a_nexthop_object_both_ways() {
        // Encoded: RTA_NH_ID stands for the next hop; no gateway, no oif,
        // no onlink flag (those are the object's).
        let hops = [hop("198.18.0.2", 3, true, 1)];
        let p: IpNet = "100.64.0.0/24".parse().unwrap();
        let mut buf = Vec::new();
        let shape = Shape::Unicast(hops.to_vec());
        push_request(
            &mut buf,
            3,
            OpKind::Create,
            &T,
            &p,
            Body::Route(&shape, None, 32, Some(0x5400_0001)),
        );
        let body = &buf[16..];
        assert_eq!(u32::from_ne_bytes(body[8..12].try_into().unwrap()), 0);
        let attrs: Vec<(u16, Vec<u8>)> = attrs(&body[12..]).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(
            attrs.iter().map(|a| a.0).collect::<Vec<_>>(),
            [RTA_DST, RTA_TABLE, RTA_PRIORITY, RTA_NH_ID]
        );
        assert_eq!(attrs[3].1, 0x5400_0001u32.to_ne_bytes());
        let k = parse_route(body).unwrap();
        assert_eq!(k.nh_id, Some(0x5400_0001));

        // Decoded: the kernel's dump of `ip route add 100.64.0.0/24 nhid 5
        // proto 84 metric 32` (nexthop 5 via 198.18.0.2 dev 3): RTA_NH_ID,
        // and in compatibility mode the gateway and device spelled out.
        let dumped =
            b"\x02\x18\x00\x00\xfe\x54\x00\x01\x00\x00\x00\x00\x08\x00\x0f\x00\xfe\x00\x00\x00\
\x08\x00\x01\x00\x64\x40\x00\x00\x08\x00\x06\x00\x20\x00\x00\x00\x08\x00\x1e\x00\x05\x00\x00\x00\
\x08\x00\x05\x00\xc6\x12\x00\x02\x08\x00\x04\x00\x03\x00\x00\x00";
        assert_eq!(
            parse_route(dumped),
            Some(KernelRoute {
                prefix: "100.64.0.0/24".parse().unwrap(),
                table: 254,
                protocol: 84,
                metric: 32,
                tos: 0,
                shape: Shape::Unicast(vec![hop("198.18.0.2", 3, false, 1)]),
                pref_src: None,
                nh_id: Some(5),
            })
        );
    }

    #[test]
    fn parse_matches_library_on_library_messages() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet6;
        m.header.destination_prefix_length = 64;
        m.header.table = 254;
        m.header.protocol = RouteProtocol::Static;
        m.header.kind = RouteType::Unicast;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet6(
                "2001:db8:1000:1::".parse().unwrap(),
            )));
        m.attributes.push(RouteAttribute::Priority(1024));
        let mut nh = RouteNextHop::default();
        nh.interface_index = 2;
        nh.hops = 2;
        nh.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet6(
                "2001:db8::2".parse().unwrap(),
            )));
        m.attributes
            .push(RouteAttribute::MultiPath(vec![nh.clone(), nh]));
        let ours = parse_route(&emit(&m)).unwrap();
        assert_eq!(Some(&ours), route_of(&m).as_ref());
        assert_eq!(ours.protocol, 4);
    }

    #[test]
    fn truncated_input_is_refused_not_a_panic() {
        let route = FibRoute {
            prefix: "100.64.5.0/24".parse().unwrap(),
            kind: RouteKind::Unicast(vec![NextHopSpec::gateway("198.18.0.2".parse().unwrap())]),
            pref_src: None,
            metric: None,
        };
        let hops = [hop("198.18.0.2", 1, false, 1)];
        let mut buf = Vec::new();
        push_request(
            &mut buf,
            1,
            OpKind::Create,
            &T,
            &route.prefix,
            Body::Route(&Shape::Unicast(hops.to_vec()), route.pref_src, 32, None),
        );
        for cut in 0..buf.len() {
            let _ = parse_route(buf.get(16..cut).unwrap_or(&[]));
            for_each_message(&buf[..cut], |_, _, _| {});
        }
    }

    /// Frames `m` as a dump reply part with the given netlink flags.
    fn dump_part(m: &RouteMessage, seq: u32, flags: u16) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.flags = flags;
        let mut buf = Vec::new();
        push(&mut buf, header, RouteNetlinkMessage::NewRoute(m.clone()));
        buf
    }

    fn done_part(seq: u32) -> Vec<u8> {
        let mut msg = NetlinkMessage::<RouteNetlinkMessage>::new(
            NetlinkHeader::default(),
            NetlinkPayload::Done(netlink_packet_core::DoneMessage::default()),
        );
        msg.header.sequence_number = seq;
        msg.header.flags = netlink_packet_core::NLM_F_MULTIPART;
        msg.finalize();
        let mut b = vec![0; msg.buffer_len()];
        msg.serialize(&mut b);
        b
    }

    #[test]
    fn dump_flags_interruption_and_ignores_other_sequences() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 24;
        m.header.kind = RouteType::Unicast;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                "100.64.9.0".parse().unwrap(),
            )));
        let multi = netlink_packet_core::NLM_F_MULTIPART;

        let mut clean = Dump::new(5);
        let mut two = dump_part(&m, 5, multi);
        two.extend(dump_part(&m, 5, multi));
        clean.feed(&two);
        clean.feed(&dump_part(&m, 4, multi)); // a stale reply to an older dump
        assert!(!clean.done);
        clean.feed(&done_part(5));
        assert!(clean.done && !clean.interrupted && clean.failure.is_none());
        assert_eq!(clean.out.len(), 2);

        let mut intr = Dump::new(6);
        intr.feed(&dump_part(&m, 6, multi));
        intr.feed(&dump_part(&m, 6, multi | NLM_F_DUMP_INTR));
        intr.feed(&done_part(6));
        assert!(
            intr.done && intr.interrupted,
            "NLM_F_DUMP_INTR must force a repeat"
        );
    }

    fn emit(m: &RouteMessage) -> Vec<u8> {
        use netlink_packet_core::Emitable;
        let mut b = vec![0; m.buffer_len()];
        m.emit(&mut b);
        b
    }
}
