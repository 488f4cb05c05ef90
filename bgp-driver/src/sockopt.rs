//! Socket options a BGP speaker needs and the standard library lacks:
//! TCP-MD5 signatures (RFC 2385, Linux `TCP_MD5SIG`) and GTSM (RFC 5082,
//! TTL 255 plus `IP_MINTTL` / `IPV6_MINHOPCOUNT`).
//!
//! Neither socket2 nor nix names these options, so they are declared here
//! with nix's `sockopt_impl!`, which does the `setsockopt(2)` call for a
//! `#[repr(C)]` value; this file holds no `unsafe` block of its own. The
//! `tcp_md5sig` layout is built byte by byte from the kernel's UAPI header
//! (`include/uapi/linux/tcp.h`), so no pointer casts are needed either.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;

use nix::sys::socket::setsockopt;
use socket2::{Domain, SockRef};

/// RFC 2385 keys are at most 80 octets (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// The option types live in a private module: nix's macro makes them `pub`.
mod raw {
    use super::MD5_MAX_KEY_LEN;
    // The macros call each other unqualified.
    use nix::{setsockopt_impl, sockopt_impl};

    /// `struct tcp_md5sig` from `linux/tcp.h`: a 128-octet
    /// `__kernel_sockaddr_storage`, flags, prefix length, key length, ifindex,
    /// then the key.
    #[repr(C, align(8))]
    #[derive(Clone, Copy)]
    pub struct TcpMd5SigRaw {
        pub addr: [u8; 128],
        pub flags: u8,
        pub prefixlen: u8,
        pub keylen: u16,
        pub ifindex: i32,
        pub key: [u8; MD5_MAX_KEY_LEN],
    }

    sockopt_impl!(
        /// `TCP_MD5SIG`: install (or, with key length 0, delete) the key for
        /// one peer address.
        TcpMd5Sig,
        SetOnly,
        libc::IPPROTO_TCP,
        libc::TCP_MD5SIG,
        TcpMd5SigRaw
    );

    sockopt_impl!(
        /// `IP_MINTTL`: drop IPv4 segments arriving with a smaller TTL.
        IpMinTtl,
        SetOnly,
        libc::IPPROTO_IP,
        libc::IP_MINTTL,
        libc::c_int
    );

    sockopt_impl!(
        /// `IPV6_MINHOPCOUNT`: drop IPv6 segments arriving with a smaller hop
        /// limit.
        Ipv6MinHopCount,
        SetOnly,
        libc::IPPROTO_IPV6,
        libc::IPV6_MINHOPCOUNT,
        libc::c_int
    );
}

use raw::{IpMinTtl, Ipv6MinHopCount, TcpMd5Sig, TcpMd5SigRaw};

/// The peer's address as the socket's family expects it: an IPv4 peer on an
/// IPv6 (dual-stack) socket is written v4-mapped, which the kernel turns
/// back into an IPv4 key.
fn sockaddr_bytes(peer: IpAddr, v6_socket: bool) -> [u8; 128] {
    let mut b = [0u8; 128];
    let v6 = match (peer, v6_socket) {
        (IpAddr::V4(a), false) => {
            // struct sockaddr_in: family (host order), port, address.
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[4..8].copy_from_slice(&a.octets());
            return b;
        }
        (IpAddr::V4(a), true) => a.to_ipv6_mapped(),
        (IpAddr::V6(a), _) => a,
    };
    // struct sockaddr_in6: family, port, flowinfo, address, scope id.
    b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    b[8..24].copy_from_slice(&v6.octets());
    b
}

fn is_v6_socket<F: AsFd>(sock: &F) -> io::Result<bool> {
    Ok(SockRef::from(sock).domain()? == Domain::IPV6)
}

fn to_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Installs the RFC 2385 key for `peer` on a listening or connecting TCP
/// socket; `None` (or an empty key) removes it. A listening socket holds
/// one key per peer address.
pub fn set_tcp_md5<F: AsFd>(sock: &F, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP-MD5 password of {} octets is longer than the {MD5_MAX_KEY_LEN} RFC 2385 allows",
                key.len()
            ),
        ));
    }
    let mut raw = TcpMd5SigRaw {
        addr: sockaddr_bytes(peer, is_v6_socket(sock)?),
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; MD5_MAX_KEY_LEN],
    };
    raw.key[..key.len()].copy_from_slice(key);
    setsockopt(sock, TcpMd5Sig, &raw).map_err(|e| {
        let err = to_io(e);
        io::Error::new(
            err.kind(),
            format!(
                "setting the TCP-MD5 key for {peer}: {err} (needs a kernel with CONFIG_TCP_MD5SIG)"
            ),
        )
    })
}

/// RFC 5082 GTSM for a peer `hops` IP hops away (1 = directly connected):
/// we send with TTL 255 and drop segments with TTL below 256 - `hops`.
pub fn set_gtsm<F: AsFd>(sock: &F, hops: u8) -> io::Result<()> {
    let min = 256 - i32::from(hops.max(1));
    let s = SockRef::from(sock);
    if is_v6_socket(sock)? {
        s.set_unicast_hops_v6(255)?;
        setsockopt(sock, Ipv6MinHopCount, &min).map_err(to_io)?;
        // A dual-stack socket may carry IPv4 too; the IPv4 options then
        // apply to v4-mapped peers. Some kernels refuse them on AF_INET6
        // sockets, which only matters for those peers.
        let _ = s.set_ttl_v4(255);
        let _ = setsockopt(sock, IpMinTtl, &min);
    } else {
        s.set_ttl_v4(255)?;
        setsockopt(sock, IpMinTtl, &min).map_err(to_io)?;
    }
    Ok(())
}

/// The TTL (hop limit) of outgoing segments, for multihop peers without
/// GTSM.
pub fn set_ttl<F: AsFd>(sock: &F, ttl: u8) -> io::Result<()> {
    let s = SockRef::from(sock);
    if is_v6_socket(sock)? {
        s.set_unicast_hops_v6(ttl.into())?;
        let _ = s.set_ttl_v4(ttl.into());
        Ok(())
    } else {
        s.set_ttl_v4(ttl.into())
    }
}

/// `addr` with a v4-mapped IPv6 address (what a dual-stack listener
/// reports for IPv4 clients) turned back into IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    }
}

const _: () = {
    // The layout the kernel expects: 216 octets.
    assert!(std::mem::size_of::<TcpMd5SigRaw>() == 216);
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    #[test]
    fn mapped_addresses() {
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        let b = sockaddr_bytes(v4, true);
        assert_eq!(
            &b[8..24],
            &Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped().octets()
        );
        let b = sockaddr_bytes(v4, false);
        assert_eq!(&b[4..8], &[198, 18, 0, 2]);
        assert_eq!(
            canonical(IpAddr::V6(Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped())),
            v4
        );
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn options_apply_to_real_sockets() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        set_tcp_md5(&l, peer, Some(b"secret")).expect("md5 on");
        set_tcp_md5(&l, peer, None).expect("md5 off");
        assert!(set_tcp_md5(&l, peer, Some(&[b'x'; 81])).is_err());
        set_gtsm(&l, 1).expect("gtsm");
        set_ttl(&l, 64).expect("ttl");
        if let Ok(l6) = TcpListener::bind("[::1]:0") {
            set_tcp_md5(&l6, peer, Some(b"secret")).expect("md5 v4-mapped on v6");
            set_tcp_md5(&l6, IpAddr::V6(Ipv6Addr::LOCALHOST), Some(b"k")).expect("md5 v6");
            set_gtsm(&l6, 2).expect("gtsm v6");
        }
    }
}
