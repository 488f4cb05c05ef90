//! The speaker's listening sockets, and how a new set replaces the old one
//! without a moment when an address the speaker keeps is not listening.
//!
//! Linux semantics this relies on (checked by `tests/listener_swap.rs`):
//!
//! - While a socket LISTENs on an address and port, binding an overlapping
//!   one (the same address, or the wildcard and any address, on the same
//!   port) fails with `EADDRINUSE`, even with `SO_REUSEADDR` on both.
//! - `shutdown(SHUT_RD)` of a listening socket stops it listening at once
//!   (it goes to CLOSE, still bound); a socket with `SO_REUSEADDR` may then
//!   bind the same address and port, although the old descriptor is still
//!   open. Closing the descriptor is not enough on its own: tokio's accept
//!   task holds it until the task is dropped, which on a single-threaded
//!   runtime happens only after the caller returns to the scheduler.
//! - The stopped socket can `listen()` again, as long as nothing else took
//!   the address meanwhile: the way back after a failed bind.
//! - The connections already in a listener's accept queue are reset when it
//!   stops, so they are accepted (and handed to their peers) first.
//!
//! A swap therefore keeps every socket whose address is asked for again,
//! binds the new addresses first where they overlap no old socket and
//! retires the old ones after; an old socket that a new address overlaps is
//! stopped just before that bind. When a bind fails, the new sockets are
//! closed and the stopped ones listen again: the old set stays, accepting.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, error, info};

use super::{PeerSlot, Peers, accept_loop, hand_over};
use crate::sockopt;

/// The kernel's queue of accepted connections per listening socket.
const BACKLOG: i32 = 1024;

/// Peer addresses and their TCP-MD5 keys, as every listener carries them.
pub(super) type Keys<'a> = Vec<(IpAddr, &'a [u8])>;

pub(super) fn keys(table: &HashMap<IpAddr, PeerSlot>) -> Keys<'_> {
    table
        .iter()
        .filter_map(|(a, s)| Some((*a, s.md5()?.as_bytes())))
        .collect()
}

/// One listening socket and its accept task.
#[derive(Debug)]
pub(super) struct Listener {
    /// The address asked for (with port 0 when any port would do).
    pub(super) asked: SocketAddr,
    pub(super) socket: Arc<TcpListener>,
    task: Option<JoinHandle<()>>,
}

impl Listener {
    /// A socket listening on `addr` with `keys` installed before the first
    /// SYN can arrive; accepting starts with [`Listener::start`].
    pub(super) fn open(addr: SocketAddr, keys: &Keys<'_>) -> io::Result<Listener> {
        let socket = listen_socket(addr, keys).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {addr}: {}", describe(&e, addr)),
            )
        })?;
        Ok(Listener {
            asked: addr,
            socket: Arc::new(socket),
            task: None,
        })
    }

    pub(super) fn start(&mut self, peers: Peers) {
        if self.task.is_none() {
            self.task = Some(tokio::spawn(accept_loop(self.socket.clone(), peers)));
        }
    }

    fn local(&self) -> String {
        self.socket
            .local_addr()
            .map_or_else(|_| self.asked.to_string(), |a| a.to_string())
    }

    /// Stops listening now (see the module's notes); the address can be
    /// bound again at once.
    fn stop(&self) {
        if let Err(e) = SockRef::from(self.socket.as_ref()).shutdown(Shutdown::Read) {
            debug!(addr = %self.local(), error = %e, "listener shutdown");
        }
    }

    /// Listens again after [`Listener::stop`], with the keys of `keys`.
    fn resume(&self, keys: &Keys<'_>) -> io::Result<()> {
        let s = SockRef::from(self.socket.as_ref());
        for (peer, key) in keys {
            sockopt::set_tcp_md5(self.socket.as_ref(), *peer, Some(key))?;
        }
        s.listen(BACKLOG)
    }

    /// Accepts what the kernel already queued and hands it to the peers, so
    /// that stopping the socket resets nobody.
    fn drain(&self, table: &HashMap<IpAddr, PeerSlot>) {
        let s = SockRef::from(self.socket.as_ref());
        loop {
            match s.accept() {
                Ok((conn, from)) => {
                    let Some(from) = from.as_socket() else {
                        continue;
                    };
                    let std: std::net::TcpStream = conn.into();
                    match std
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(std))
                    {
                        Ok(stream) => hand_over(table, stream, from),
                        Err(e) => debug!(%from, error = %e, "queued connection dropped"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(addr = %self.local(), error = %e, "draining the accept queue");
                    return;
                }
            }
        }
    }
}

impl Drop for Listener {
    /// Stops listening at once: the address is free when this returns, not
    /// when the runtime gets round to dropping the aborted accept task.
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.stop();
    }
}

fn listen_socket(addr: SocketAddr, keys: &Keys<'_>) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // Dual-stack on the unspecified address, one socket for both.
        sock.set_only_v6(!addr.ip().is_unspecified())?;
    }
    sock.set_reuse_address(true)?;
    // RFC 5082: the SYN-ACK must already leave with TTL 255 for GTSM peers
    // (options are per socket and the listener is shared by all peers).
    sockopt::set_ttl(&sock, 255)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    for (peer, key) in keys {
        sockopt::set_tcp_md5(&sock, *peer, Some(key))?;
    }
    sock.listen(BACKLOG)?;
    TcpListener::from_std(sock.into())
}

/// Could a socket listening on `a` keep one from binding `b` (or the other
/// way round)? Conservative: a `[::]` socket is dual-stack here, so it
/// covers every address of its port.
pub(super) fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let (x, y) = (sockopt::canonical(a.ip()), sockopt::canonical(b.ip()));
    let covers = |w: IpAddr, other: IpAddr| match w {
        IpAddr::V6(v6) => v6.is_unspecified(),
        IpAddr::V4(v4) => v4.is_unspecified() && other.is_ipv4(),
    };
    x == y || covers(x, y) || covers(y, x)
}

/// `EADDRINUSE (Address already in use, os error 98)`: the errno by name,
/// which is what people search for, and what it means.
pub(super) fn describe(e: &io::Error, addr: SocketAddr) -> String {
    let Some(n) = e.raw_os_error() else {
        return e.to_string();
    };
    let text = e.to_string();
    let text = text
        .strip_suffix(&format!(" (os error {n})"))
        .unwrap_or(&text)
        .to_string();
    let name = match n {
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        _ => return format!("{text} (os error {n})"),
    };
    let hint = if matches!(n, libc::EACCES | libc::EPERM) && addr.port() < 1024 {
        "; ports below 1024 need CAP_NET_BIND_SERVICE"
    } else {
        ""
    };
    format!("{name} ({text}, os error {n}){hint}")
}

/// Replaces the listeners in `current` by listeners on `wanted` (see the
/// module's notes). On an error, `current` is the old set, listening.
pub(super) fn swap(
    current: &mut Vec<Listener>,
    wanted: &[SocketAddr],
    table: &HashMap<IpAddr, PeerSlot>,
    peers: &Peers,
) -> io::Result<()> {
    let mut want: Vec<SocketAddr> = Vec::with_capacity(wanted.len());
    for a in wanted {
        if !want.contains(a) {
            want.push(*a);
        }
    }
    let (mut kept, retired): (Vec<Listener>, Vec<Listener>) = std::mem::take(current)
        .into_iter()
        .partition(|l| want.contains(&l.asked));
    let new: Vec<SocketAddr> = want
        .iter()
        .copied()
        .filter(|a| !kept.iter().any(|l| l.asked == *a))
        .collect();
    if new.is_empty() && retired.is_empty() {
        *current = kept;
        return Ok(());
    }
    // Old sockets in the way of a new bind stop first; the others stay until
    // the new ones listen.
    let (early, late): (Vec<Listener>, Vec<Listener>) = retired
        .into_iter()
        .partition(|l| new.iter().any(|a| overlaps(l.asked, *a)));
    for l in &early {
        l.drain(table);
        l.stop();
    }
    let keys = keys(table);
    let mut opened = Vec::with_capacity(new.len());
    for a in &new {
        match Listener::open(*a, &keys) {
            Ok(l) => opened.push(l),
            Err(e) => {
                // Closed now, before the old ones listen again.
                drop(opened);
                for l in early {
                    match l.resume(&keys) {
                        Ok(()) => kept.push(l),
                        Err(e2) => error!(
                            addr = %l.local(),
                            error = %describe(&e2, l.asked),
                            "cannot listen again on the previous address; it is closed"
                        ),
                    }
                }
                kept.extend(late);
                *current = kept;
                return Err(e);
            }
        }
    }
    for mut l in opened {
        info!(addr = %l.local(), "BGP listening");
        l.start(peers.clone());
        kept.push(l);
    }
    for l in &late {
        l.drain(table);
    }
    for l in late.iter().chain(&early) {
        info!(addr = %l.local(), "BGP no longer listening");
    }
    drop(early);
    drop(late);
    *current = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn overlap_rules() {
        let yes = [
            ("[::]:179", "198.18.0.1:179"),
            ("[::]:179", "[2001:db8::1]:179"),
            ("[::]:179", "0.0.0.0:179"),
            ("0.0.0.0:179", "198.18.0.1:179"),
            ("198.18.0.1:179", "198.18.0.1:179"),
            ("[::ffff:198.18.0.1]:179", "198.18.0.1:179"),
        ];
        for (a, b) in yes {
            assert!(overlaps(sa(a), sa(b)), "{a} {b}");
            assert!(overlaps(sa(b), sa(a)), "{b} {a}");
        }
        let no = [
            ("[::]:179", "[::]:1790"),
            ("198.18.0.1:179", "198.18.0.2:179"),
            ("0.0.0.0:179", "[2001:db8::1]:179"),
            ("198.18.0.1:179", "[2001:db8::1]:179"),
            ("[::]:0", "[::]:0"),
        ];
        for (a, b) in no {
            assert!(!overlaps(sa(a), sa(b)), "{a} {b}");
            assert!(!overlaps(sa(b), sa(a)), "{b} {a}");
        }
    }

    #[test]
    fn errors_name_the_errno() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        let d = describe(&e, sa("[::]:179"));
        assert!(
            d.starts_with("EADDRINUSE (") && d.ends_with("os error 98)"),
            "{d}"
        );
        let e = io::Error::from_raw_os_error(libc::EACCES);
        let d = describe(&e, sa("[::]:179"));
        assert!(
            d.starts_with("EACCES (") && d.contains("CAP_NET_BIND_SERVICE"),
            "{d}"
        );
        let d = describe(&e, sa("[::]:1790"));
        assert!(!d.contains("CAP_NET_BIND_SERVICE"), "{d}");
    }
}
