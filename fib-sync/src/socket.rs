//! A non-blocking `NETLINK_ROUTE` socket registered with tokio.

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::sys::socket::{setsockopt, sockopt};
use tokio::io::unix::AsyncFd;

/// Multicast groups (`RTNLGRP_*` from `linux/rtnetlink.h`).
pub(crate) const RTNLGRP_LINK: u32 = 1;
pub(crate) const RTNLGRP_IPV4_IFADDR: u32 = 5;
pub(crate) const RTNLGRP_IPV4_ROUTE: u32 = 7;
pub(crate) const RTNLGRP_IPV6_IFADDR: u32 = 9;
pub(crate) const RTNLGRP_IPV6_ROUTE: u32 = 11;
pub(crate) const RTNLGRP_NEXTHOP: u32 = 32;

#[derive(Debug)]
pub(crate) struct NlSocket {
    fd: AsyncFd<Socket>,
    /// Receive buffer the kernel granted (it reports twice the request).
    pub rcvbuf: usize,
}

impl NlSocket {
    /// Opens and binds a socket with a receive buffer of about `rcvbuf`
    /// bytes; `groups` are the multicast groups to join.
    pub(crate) fn open(rcvbuf: usize, groups: &[u32]) -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind(&SocketAddr::new(0, 0))?;
        let want = i32::try_from(rcvbuf).unwrap_or(i32::MAX) as usize;
        // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN;
        // fall back to SO_RCVBUF (capped by rmem_max) without it.
        if setsockopt(&sock, sockopt::RcvBufForce, &want).is_err() {
            setsockopt(&sock, sockopt::RcvBuf, &want).map_err(io::Error::from)?;
        }
        // Acks without the echoed request body, and the kernel's reason text.
        sock.set_cap_ack(true)?;
        sock.set_ext_ack(true)?;
        // Lets dumps honour the table filter (kernel ≥ 4.20).
        let _ = sock.set_netlink_get_strict_chk(true);
        for g in groups {
            sock.add_membership(*g)?;
        }
        sock.set_non_blocking(true)?;
        let rcvbuf = sock.get_rx_buf_sz().unwrap_or(0);
        // `AsyncFd::new` is deprecated because a type could hand out an fd it
        // does not own; `netlink_sys::Socket` owns its fd and closes it only
        // on drop, which is after the `AsyncFd` deregisters it. The
        // replacement (`register`) is `unsafe`, which this crate forbids.
        #[allow(deprecated)]
        let fd = AsyncFd::new(sock)?;
        Ok(Self { fd, rcvbuf })
    }

    /// Joins or leaves multicast groups.
    pub(crate) fn set_groups(&self, groups: &[u32], join: bool) -> io::Result<()> {
        for g in groups {
            if join {
                self.fd.get_ref().add_membership(*g)?;
            } else {
                self.fd.get_ref().drop_membership(*g)?;
            }
        }
        Ok(())
    }

    /// Sends one datagram holding one or more requests. The kernel processes
    /// `NETLINK_ROUTE` requests in the sender's context, so the whole batch
    /// is done (and its errors queued) when this returns.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<()> {
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.fd.get_ref().send_to(buf, &kernel, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram without blocking; `Ok(None)` when none is
    /// queued. An overrun surfaces as `Err` with `ENOBUFS`.
    pub(crate) fn try_recv(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        buf.clear();
        match self.fd.get_ref().recv(buf, 0) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }

    /// Waits until the socket is readable. The readiness flag is cleared
    /// first; the caller then drains with `try_recv` until `Ok(None)`, so an
    /// arrival after the clear re-arms it.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        guard.clear_ready();
        Ok(())
    }
}
