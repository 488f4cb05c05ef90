//! Nexthop objects on the wire (`RTM_NEWNEXTHOP`, `RTM_DELNEXTHOP`,
//! `RTM_GETNEXTHOP`; `linux/nexthop.h`): one object per distinct next hop,
//! shared by every route that names it with `RTA_NH_ID`.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};

use super::{attrs, ip_of, put_addr, put_attr, u32_of};

pub(crate) const RTM_NEWNEXTHOP: u16 = 104;
pub(crate) const RTM_DELNEXTHOP: u16 = 105;
const RTM_GETNEXTHOP: u16 = 106;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const RTNH_F_ONLINK: u32 = 4;

/// What a nexthop object of ours forwards to: a gateway on a device. The
/// kernel wants the device (`NHA_OIF`) for every gateway nexthop, so a
/// next hop left to the kernel's choice is resolved before it gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NhSpec {
    pub gateway: IpAddr,
    pub oif: u32,
    pub onlink: bool,
}

/// A nexthop object as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelNexthop {
    pub id: u32,
    pub protocol: u8,
    /// `None` for a group, a blackhole or a device-only object: nothing we
    /// create.
    pub spec: Option<NhSpec>,
}

/// A nexthop request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NhOp {
    /// `RTM_NEWNEXTHOP` with `NLM_F_CREATE|NLM_F_EXCL`: never alters an
    /// existing object (EEXIST when the id is taken).
    Create(u32, NhSpec),
    /// `RTM_DELNEXTHOP` by id; the kernel deletes the routes using it too,
    /// which is why only unused ones are deleted.
    Delete(u32),
}

/// Appends one nexthop request (no `NLM_F_ACK`; see `set_ack`).
pub(crate) fn push_nexthop(buf: &mut Vec<u8>, seq: u32, protocol: u8, op: NhOp) {
    let start = buf.len();
    let (ty, flags) = match op {
        NhOp::Create(..) => (RTM_NEWNEXTHOP, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL),
        NhOp::Delete(_) => (RTM_DELNEXTHOP, NLM_F_REQUEST),
    };
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // struct nhmsg { u8 family, scope, protocol, resvd; u32 flags; }
    match op {
        NhOp::Create(id, spec) => {
            let family = match spec.gateway {
                IpAddr::V4(_) => libc::AF_INET as u8,
                IpAddr::V6(_) => libc::AF_INET6 as u8,
            };
            let flags = if spec.onlink { RTNH_F_ONLINK } else { 0 };
            buf.extend_from_slice(&[family, 0, protocol, 0]);
            buf.extend_from_slice(&flags.to_ne_bytes());
            put_attr(buf, NHA_ID, &id.to_ne_bytes());
            put_addr(buf, NHA_GATEWAY, spec.gateway);
            put_attr(buf, NHA_OIF, &spec.oif.to_ne_bytes());
        }
        NhOp::Delete(id) => {
            buf.extend_from_slice(&[0; 8]);
            put_attr(buf, NHA_ID, &id.to_ne_bytes());
        }
    }
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// A dump request for every nexthop object (all families).
pub(crate) fn dump_nexthops(buf: &mut Vec<u8>, seq: u32) {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&RTM_GETNEXTHOP.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[0; 8]);
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Decodes an `nhmsg` and its attributes; `None` when malformed or without
/// an id.
pub(crate) fn parse_nexthop(b: &[u8]) -> Option<KernelNexthop> {
    let h = b.get(..8)?;
    let (family, protocol) = (h[0], h[2]);
    let flags = u32::from_ne_bytes([h[4], h[5], h[6], h[7]]);
    let mut id = None;
    let mut oif = None;
    let mut gateway = None;
    let mut plain = true;
    for (ty, v) in attrs(b.get(8..)?) {
        match ty {
            NHA_ID => id = u32_of(v),
            NHA_OIF => oif = u32_of(v),
            NHA_GATEWAY => gateway = ip_of(family, v),
            NHA_GROUP | NHA_BLACKHOLE => plain = false,
            _ => {}
        }
    }
    let spec = match (plain, gateway, oif) {
        (true, Some(gateway), Some(oif)) => Some(NhSpec {
            gateway,
            oif,
            onlink: flags & RTNH_F_ONLINK != 0,
        }),
        _ => None,
    };
    Some(KernelNexthop {
        id: id?,
        protocol,
        spec,
    })
}

#[cfg(test)]
mod tests {
    //! Byte vectors captured from iproute2 6.x on kernel 6.18
    //! (`strace -e trace=sendmsg,recvmsg -xx ip nexthop ...`).

    use super::*;
    use crate::wire::{Parsed, for_each_message, set_ack};

    /// `nlmsghdr` + body as captured, with `seq` and native-endian fields.
    fn framed(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(body);
        v
    }

    const ACK_CREATE: u16 = 0x605; // NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE

    #[test]
    fn create_v4_matches_ip_nexthop_add() {
        // ip nexthop add id 1409286145 via 198.18.0.2 dev va proto 84 (va = 3)
        let body = b"\x02\x00\x54\x00\x00\x00\x00\x00\x08\x00\x01\x00\x01\x00\x00\x54\
\x08\x00\x06\x00\xc6\x12\x00\x02\x08\x00\x05\x00\x03\x00\x00\x00";
        let spec = NhSpec {
            gateway: "198.18.0.2".parse().unwrap(),
            oif: 3,
            onlink: false,
        };
        let mut buf = Vec::new();
        push_nexthop(&mut buf, 9, 84, NhOp::Create(0x5400_0001, spec));
        set_ack(&mut buf, 0);
        assert_eq!(buf, framed(RTM_NEWNEXTHOP, ACK_CREATE, 9, body));
    }

    #[test]
    fn create_v6_onlink_and_delete_match_ip() {
        // ip -6 nexthop add id 7 via 2001:db8::2 dev va proto 84 onlink
        let body = b"\x0a\x00\x54\x00\x04\x00\x00\x00\x08\x00\x01\x00\x07\x00\x00\x00\
\x14\x00\x06\x00\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\
\x08\x00\x05\x00\x03\x00\x00\x00";
        let spec = NhSpec {
            gateway: "2001:db8::2".parse().unwrap(),
            oif: 3,
            onlink: true,
        };
        let mut buf = Vec::new();
        push_nexthop(&mut buf, 1, 84, NhOp::Create(7, spec));
        set_ack(&mut buf, 0);
        assert_eq!(buf, framed(RTM_NEWNEXTHOP, ACK_CREATE, 1, body));
        // The kernel's own parser agrees with ours on what we send.
        assert_eq!(
            parse_nexthop(body),
            Some(KernelNexthop {
                id: 7,
                protocol: 84,
                spec: Some(spec)
            })
        );

        // ip nexthop del id 7
        let body = b"\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00\x01\x00\x07\x00\x00\x00";
        let mut buf = Vec::new();
        push_nexthop(&mut buf, 2, 84, NhOp::Delete(7));
        set_ack(&mut buf, 0);
        let ack = NLM_F_REQUEST | netlink_packet_core::NLM_F_ACK;
        assert_eq!(buf, framed(RTM_DELNEXTHOP, ack, 2, body));
    }

    #[test]
    fn dump_request_and_reply_decode() {
        let mut buf = Vec::new();
        dump_nexthops(&mut buf, 4);
        assert_eq!(
            buf,
            framed(RTM_GETNEXTHOP, NLM_F_REQUEST | NLM_F_DUMP, 4, &[0; 8])
        );

        // The kernel's dump reply to `ip nexthop show` (scope link, then
        // NHA_ID, NHA_OIF, NHA_GATEWAY), followed by NLMSG_DONE.
        let body = b"\x02\xfd\x54\x00\x00\x00\x00\x00\x08\x00\x01\x00\x01\x00\x00\x54\
\x08\x00\x05\x00\x03\x00\x00\x00\x08\x00\x06\x00\xc6\x12\x00\x02";
        let multi = netlink_packet_core::NLM_F_MULTIPART;
        let mut reply = framed(RTM_NEWNEXTHOP, multi, 4, body);
        reply.extend(framed(3, multi, 4, &0u32.to_ne_bytes()));
        let mut got = Vec::new();
        for_each_message(&reply, |_, seq, m| got.push((seq, m.unwrap())));
        assert_eq!(got.len(), 2);
        match &got[0] {
            (4, Parsed::NewNexthop(n)) => assert_eq!(
                *n,
                KernelNexthop {
                    id: 0x5400_0001,
                    protocol: 84,
                    spec: Some(NhSpec {
                        gateway: "198.18.0.2".parse().unwrap(),
                        oif: 3,
                        onlink: false
                    })
                }
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(got[1], (4, Parsed::Done)));
    }

    #[test]
    fn groups_blackholes_and_truncation() {
        // A group (NHA_GROUP) and a blackhole are nothing of ours.
        let mut b = vec![2, 0, 99, 0, 0, 0, 0, 0];
        put_attr(&mut b, NHA_ID, &5u32.to_ne_bytes());
        put_attr(&mut b, NHA_GROUP, &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse_nexthop(&b).unwrap().spec, None);
        let mut b = vec![2, 0, 84, 0, 0, 0, 0, 0];
        put_attr(&mut b, NHA_ID, &6u32.to_ne_bytes());
        put_attr(&mut b, NHA_BLACKHOLE, &[]);
        assert_eq!(parse_nexthop(&b).unwrap().spec, None);
        let spec = NhSpec {
            gateway: "198.18.0.2".parse().unwrap(),
            oif: 3,
            onlink: false,
        };
        let mut buf = Vec::new();
        push_nexthop(&mut buf, 1, 84, NhOp::Create(1, spec));
        for cut in 0..buf.len() {
            let _ = parse_nexthop(buf.get(16..cut).unwrap_or(&[]));
            for_each_message(&buf[..cut], |_, _, _| {});
        }
        assert_eq!(parse_nexthop(&buf[16..20]), None);
    }
}
