//! The UDP transport of BFD Control packets: RFC 5881 (single-hop, port
//! 3784) and RFC 5883 (multihop, port 4784), for IPv4 and IPv6.
//!
//! Receiving: one socket per family and destination port, shared by every
//! session. Each datagram comes with its destination address and interface
//! (`IP_PKTINFO` / `IPV6_RECVPKTINFO`) for demultiplexing, and with the TTL
//! or hop limit it arrived with (`IP_RECVTTL` / `IPV6_RECVHOPLIMIT`) for the
//! GTSM check of RFC 5881 §5 and the minimum of RFC 5883 §5.
//!
//! Sending: one socket per family, bound to a single source port in
//! 49152–65535 and shared by every session. RFC 5881 §4 asks for the same
//! source port for all packets of a session (we do) and says it SHOULD be
//! unique per session; we share it instead, so that a host with thousands
//! of sessions holds two sending sockets rather than thousands, and no port
//! has to be allocated (and can run out) when a session is added. Peers
//! demultiplex on discriminators and addresses (RFC 5880 §6.3), never on
//! our source port. The source address and, for single-hop, the outgoing
//! interface of each packet are chosen per packet with `IP_PKTINFO` /
//! `IPV6_PKTINFO`. Every packet leaves with TTL / hop limit 255 (RFC 5881 §5,
//! RFC 5883 §5) and precedence 6 (network control).
//!
//! All sockets are opened when the driver starts, so a driver started inside
//! a network namespace keeps all its sockets there.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    recvmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

/// RFC 5881 §4: the destination port of single-hop Control packets.
pub const SINGLE_HOP_PORT: u16 = 3784;
/// RFC 5883 §5: the destination port of multihop Control packets.
pub const MULTIHOP_PORT: u16 = 4784;
/// RFC 5881 §4: the range source ports are taken from.
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;
/// The TTL / hop limit of every packet we send (RFC 5881 §5, RFC 5883 §5),
/// and the only one single-hop accepts.
pub const TTL: u8 = 255;
/// IP precedence 6 (network control), as routing protocols mark their
/// packets, so that queues under load drop BFD last.
const NETWORK_CONTROL_TOS: u32 = 0xc0;
/// The receive buffer of a listening socket: every session's packets, and
/// any flood, queue there while the task is busy. The kernel's default
/// (about 200 KiB, some 270 small datagrams) overflows at around 50,000
/// packets a second in the lab; `SO_RCVBUFFORCE` (CAP_NET_ADMIN, which the
/// daemon has) lifts the `rmem_max` cap.
const LISTEN_RCVBUF: usize = 1 << 20;
/// How many random source ports to try before giving up.
const SOURCE_PORT_TRIES: usize = 64;

/// Single-hop (RFC 5881) or multihop (RFC 5883): decides the destination
/// port and the TTL rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HopMode {
    SingleHop,
    Multihop,
}

impl HopMode {
    /// The UDP destination port of this mode.
    pub fn port(self) -> u16 {
        match self {
            HopMode::SingleHop => SINGLE_HOP_PORT,
            HopMode::Multihop => MULTIHOP_PORT,
        }
    }
}

impl std::fmt::Display for HopMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HopMode::SingleHop => "single-hop",
            HopMode::Multihop => "multihop",
        })
    }
}

/// A receiving socket, before the driver task registers it with tokio.
#[derive(Debug)]
pub(crate) struct ListenSocket {
    pub hop: HopMode,
    pub socket: std::net::UdpSocket,
}

/// Opens the receiving socket of one family and mode on `addr`.
pub(crate) fn listen(addr: IpAddr, hop: HopMode) -> io::Result<ListenSocket> {
    let sa = SocketAddr::new(addr, hop.port());
    let s = Socket::new(Domain::for_address(sa), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // The IPv4 socket takes IPv4; no mapped addresses here.
        s.set_only_v6(true)?;
        setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
    } else {
        setsockopt(&s, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
        setsockopt(&s, sockopt::Ipv4RecvTtl, &true).map_err(io::Error::from)?;
    }
    if setsockopt(&s, sockopt::RcvBufForce, &LISTEN_RCVBUF).is_err() {
        // Without the capability: as much as rmem_max allows.
        s.set_recv_buffer_size(LISTEN_RCVBUF)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&sa.into())?;
    Ok(ListenSocket {
        hop,
        socket: s.into(),
    })
}

/// The two sending sockets (either may be absent when its family is off).
#[derive(Debug)]
pub(crate) struct SendSockets {
    v4: Option<Socket>,
    v6: Option<Socket>,
    port: u16,
}

impl SendSockets {
    /// Binds one socket per enabled family to the same source port: `port`
    /// when given, else a random free one from [`SOURCE_PORTS`].
    pub fn open(
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
        port: Option<u16>,
        mut random: impl FnMut() -> u32,
    ) -> io::Result<SendSockets> {
        if let Some(p) = port
            && !SOURCE_PORTS.contains(&p)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source port {p} outside 49152-65535 (RFC 5881 §4)"),
            ));
        }
        let tries = if port.is_some() { 1 } else { SOURCE_PORT_TRIES };
        let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
        let mut last_err = None;
        for _ in 0..tries {
            let p = port.unwrap_or_else(|| SOURCE_PORTS.start() + (random() % span) as u16);
            let open = || -> io::Result<SendSockets> {
                Ok(SendSockets {
                    v4: v4.map(|a| send_socket(IpAddr::V4(a), p)).transpose()?,
                    v6: v6.map(|a| send_socket(IpAddr::V6(a), p)).transpose()?,
                    port: p,
                })
            };
            match open() {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether packets to `peer`'s family can be sent.
    pub fn supports(&self, peer: IpAddr) -> bool {
        match peer {
            IpAddr::V4(_) => self.v4.is_some(),
            IpAddr::V6(_) => self.v6.is_some(),
        }
    }

    /// Sends one Control packet to `peer` (port included) from `local` (when
    /// given) out of interface `ifindex` (when given). Never blocks: a full
    /// socket buffer is an error, and the packet is lost like any other.
    pub fn send(
        &self,
        bytes: &[u8],
        peer: SocketAddr,
        local: Option<IpAddr>,
        ifindex: Option<u32>,
    ) -> io::Result<()> {
        let iov = [IoSlice::new(bytes)];
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        match peer {
            SocketAddr::V4(dst) => {
                let fd = raw(self.v4.as_ref())?;
                let info = v4_pktinfo(local, ifindex);
                let cmsgs: Vec<ControlMessage<'_>> =
                    info.iter().map(ControlMessage::Ipv4PacketInfo).collect();
                sendmsg(fd, &iov, &cmsgs, flags, Some(&SockaddrIn::from(dst)))
            }
            SocketAddr::V6(dst) => {
                let fd = raw(self.v6.as_ref())?;
                let info = v6_pktinfo(local, ifindex);
                let cmsgs: Vec<ControlMessage<'_>> =
                    info.iter().map(ControlMessage::Ipv6PacketInfo).collect();
                sendmsg(fd, &iov, &cmsgs, flags, Some(&SockaddrIn6::from(dst)))
            }
        }
        .map(|_| ())
        .map_err(io::Error::from)
    }
}

fn raw(s: Option<&Socket>) -> io::Result<RawFd> {
    s.map(AsRawFd::as_raw_fd).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "address family disabled in the driver configuration",
        )
    })
}

fn send_socket(addr: IpAddr, port: u16) -> io::Result<Socket> {
    let sa = SocketAddr::new(addr, port);
    let s = Socket::new(Domain::for_address(sa), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        s.set_unicast_hops_v6(u32::from(TTL))?;
        s.set_tclass_v6(NETWORK_CONTROL_TOS)?;
    } else {
        s.set_ttl_v4(u32::from(TTL))?;
        s.set_tos_v4(NETWORK_CONTROL_TOS)?;
    }
    // Nothing is ever read from it; whatever arrives at the source port
    // should take as little memory as the kernel allows.
    s.set_recv_buffer_size(0)?;
    s.set_nonblocking(true)?;
    s.bind(&sa.into())?;
    Ok(s)
}

fn v4_pktinfo(local: Option<IpAddr>, ifindex: Option<u32>) -> Option<libc::in_pktinfo> {
    let local = match local {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    if local.is_none() && ifindex.is_none() {
        return None;
    }
    Some(libc::in_pktinfo {
        ipi_ifindex: ifindex.and_then(|i| i32::try_from(i).ok()).unwrap_or(0),
        // The source address to use; s_addr is in network order.
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from_ne_bytes(local.unwrap_or(Ipv4Addr::UNSPECIFIED).octets()),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    })
}

fn v6_pktinfo(local: Option<IpAddr>, ifindex: Option<u32>) -> Option<libc::in6_pktinfo> {
    let local = match local {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    };
    if local.is_none() && ifindex.is_none() {
        return None;
    }
    Some(libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: local.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
        },
        ipi6_ifindex: ifindex.unwrap_or(0),
    })
}

/// One datagram received, and what the kernel told us about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Datagram {
    /// Octets written to the buffer.
    pub len: usize,
    pub source: SocketAddr,
    /// The destination address of the IP header.
    pub destination: Option<IpAddr>,
    /// The interface it arrived on.
    pub ifindex: Option<u32>,
    /// The TTL / hop limit it arrived with.
    pub ttl: Option<u8>,
}

/// Room for the control messages of either family: a pktinfo and an int.
pub(crate) fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::in6_pktinfo, libc::c_int)
}

/// Receives one datagram without blocking (`WouldBlock` when none is
/// queued). `cmsg` is a buffer from [`cmsg_buffer`], reused across calls.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let source = msg
        .address
        .as_ref()
        .and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(SocketAddr::V4(SocketAddrV4::from(*v4)))
            } else {
                a.as_sockaddr_in6()
                    .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
            }
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no source address"))?;
    let mut d = Datagram {
        len: msg.bytes,
        source,
        destination: None,
        ifindex: None,
        ttl: None,
    };
    // A truncated control buffer leaves the facts unknown; the packet is
    // then dropped by the checks that need them.
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(pi) => {
                    d.destination =
                        Some(IpAddr::V4(Ipv4Addr::from(pi.ipi_addr.s_addr.to_ne_bytes())));
                    d.ifindex = u32::try_from(pi.ipi_ifindex).ok();
                }
                ControlMessageOwned::Ipv6PacketInfo(pi) => {
                    d.destination = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                    d.ifindex = Some(pi.ipi6_ifindex);
                }
                ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                    d.ttl = u8::try_from(t).ok();
                }
                _ => {}
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pktinfo_is_in_network_order() {
        let pi = v4_pktinfo(Some("198.18.0.1".parse().unwrap()), Some(7)).unwrap();
        assert_eq!(pi.ipi_spec_dst.s_addr.to_ne_bytes(), [198, 18, 0, 1]);
        assert_eq!(pi.ipi_ifindex, 7);
        assert!(v4_pktinfo(None, None).is_none());
        // An IPv6 local address says nothing to an IPv4 packet.
        assert!(v4_pktinfo(Some("2001:db8::1".parse().unwrap()), None).is_none());
        let pi6 = v6_pktinfo(None, Some(3)).unwrap();
        assert_eq!(pi6.ipi6_ifindex, 3);
        assert_eq!(pi6.ipi6_addr.s6_addr, [0; 16]);
    }

    #[test]
    fn ports_are_the_rfc_ones() {
        assert_eq!(HopMode::SingleHop.port(), 3784);
        assert_eq!(HopMode::Multihop.port(), 4784);
        assert!(SendSockets::open(None, None, Some(3784), || 0).is_err());
    }
}
