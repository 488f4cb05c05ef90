//! One TCP connection as the peer task drives it: connect, socket options,
//! non-blocking reads, and the two-queue output.
//!
//! A connection has no task of its own: the peer task polls its readiness
//! beside its commands and timers, reads and writes with non-blocking
//! calls, and feeds the session directly. A reflector holds thousands of
//! connections, and one task per peer instead of three (peer, reader,
//! writer) with channels between them is most of what a session costs.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tracing::debug;

use tabby_bgp::fsm::{ConnectionId, SessionConfig};

use crate::sockopt;
use crate::speaker::PeerConfig;

/// How long a closing connection may take to write its last NOTIFICATION.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Sockets handed to the peer task by the listener and by its connect
/// attempts.
#[derive(Debug)]
pub(crate) enum NetEvent {
    /// The listener accepted a connection from the peer's address.
    Accepted(TcpStream),
    Connected(ConnectionId, TcpStream),
    /// The connect attempt failed.
    Failed(ConnectionId),
}

/// A peer's transport settings: [`PeerConfig`] without the session
/// configuration, which the session keeps.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub remote: IpAddr,
    pub remote_port: u16,
    pub local_addr: Option<IpAddr>,
    pub md5_password: Option<String>,
    pub gtsm_hops: Option<u8>,
    pub ttl: Option<u8>,
    pub connect_timeout: Duration,
}

impl Transport {
    /// Splits a peer's configuration into its transport and its session.
    pub fn split(cfg: PeerConfig) -> (Transport, SessionConfig) {
        let PeerConfig {
            remote,
            remote_port,
            local_addr,
            md5_password,
            gtsm_hops,
            ttl,
            connect_timeout,
            session,
        } = cfg;
        let t = Transport {
            remote,
            remote_port,
            local_addr,
            md5_password,
            gtsm_hops,
            ttl,
            connect_timeout,
        };
        (t, session)
    }
}

/// Socket options every BGP connection gets.
pub(crate) fn prepare(stream: &TcpStream, cfg: &Transport) -> io::Result<()> {
    stream.set_nodelay(true)?;
    if let Some(hops) = cfg.gtsm_hops {
        sockopt::set_gtsm(stream, hops)?;
    } else if let Some(ttl) = cfg.ttl {
        sockopt::set_ttl(stream, ttl)?;
    }
    Ok(())
}

/// Connects to the peer from the configured source address, with the MD5
/// key and GTSM in place before the SYN leaves.
pub(crate) async fn connect(cfg: &Transport) -> io::Result<TcpStream> {
    let remote = SocketAddr::new(cfg.remote, cfg.remote_port);
    let sock = if remote.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(pw) = &cfg.md5_password {
        sockopt::set_tcp_md5(&sock, cfg.remote, Some(pw.as_bytes()))?;
    }
    if let Some(hops) = cfg.gtsm_hops {
        sockopt::set_gtsm(&sock, hops)?;
    } else if let Some(ttl) = cfg.ttl {
        sockopt::set_ttl(&sock, ttl)?;
    }
    sock.set_nodelay(true)?;
    if let Some(local) = cfg.local_addr {
        sock.bind(SocketAddr::new(local, 0))?;
    }
    let stream = tokio::time::timeout(cfg.connect_timeout, sock.connect(remote))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    Ok(stream)
}

/// Bulk octets gathered into one vectored write (and at most this many
/// buffers): a reflector sends many small UPDATE batches to each peer, and
/// one `writev` for all of them costs what one `write` costs. The peer
/// task stops taking commands once this much waits, so it is also what one
/// connection holds queued.
pub(crate) const COALESCE_OCTETS: usize = 256 * 1024;
pub(crate) const COALESCE_BUFFERS: usize = 64;

/// What waits to be written on one connection: OPEN, KEEPALIVE and
/// NOTIFICATION on an urgent queue that goes first, UPDATEs on a bulk
/// queue. Urgent data goes between bulk buffers, never inside one (each
/// holds whole messages), so a KEEPALIVE waits for at most the buffer in
/// progress.
#[derive(Debug, Default)]
pub(crate) struct Output {
    urgent: VecDeque<Bytes>,
    bulk: VecDeque<Bytes>,
    /// Bulk octets queued and not yet written.
    bulk_octets: usize,
    /// The front bulk buffer is partly written.
    partial: bool,
}

impl Output {
    pub fn push(&mut self, data: Bytes, urgent: bool) {
        if data.is_empty() {
            return;
        }
        if urgent {
            self.urgent.push_back(data);
        } else {
            self.bulk_octets += data.len();
            self.bulk.push_back(data);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.urgent.is_empty() && self.bulk.is_empty()
    }

    pub fn bulk_octets(&self) -> usize {
        self.bulk_octets
    }

    pub fn bulk_buffers(&self) -> usize {
        self.bulk.len()
    }

    /// Writes with `write` (a non-blocking vectored write) until everything
    /// is written or it would block. `Ok(true)`: something was written.
    pub fn write_with(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<bool> {
        let mut progress = false;
        loop {
            let from_urgent = !self.partial && !self.urgent.is_empty();
            let n = {
                let slices: Vec<IoSlice<'_>> = if from_urgent {
                    self.urgent.iter().map(|b| IoSlice::new(b)).collect()
                } else if self.partial && !self.urgent.is_empty() {
                    // Finish the buffer in progress, then urgent data.
                    self.bulk.iter().take(1).map(|b| IoSlice::new(b)).collect()
                } else {
                    let mut octets = 0;
                    self.bulk
                        .iter()
                        .take(COALESCE_BUFFERS)
                        .take_while(|b| {
                            let first = octets == 0;
                            octets += b.len();
                            first || octets <= COALESCE_OCTETS
                        })
                        .map(|b| IoSlice::new(b))
                        .collect()
                };
                if slices.is_empty() {
                    return Ok(progress);
                }
                match write(&slices) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progress),
                    Err(e) => return Err(e),
                }
            };
            progress = true;
            if from_urgent {
                consume(&mut self.urgent, n);
            } else {
                let (done, in_front) = consume(&mut self.bulk, n);
                self.bulk_octets -= done + in_front;
                self.partial = in_front > 0;
            }
            // Written out: give the queues' room back, so that thousands of
            // idle connections do not each keep what their last burst took.
            if self.urgent.is_empty() && self.urgent.capacity() > 0 {
                self.urgent = VecDeque::new();
            }
            if self.bulk.is_empty() && self.bulk.capacity() > 0 {
                self.bulk = VecDeque::new();
            }
        }
    }

    /// What a closing connection still owes the peer: the rest of the bulk
    /// buffer in progress (so the stream stays framed), then the urgent
    /// queue (a final NOTIFICATION).
    fn into_final(mut self) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.urgent.len() + 1);
        if self.partial {
            out.extend(self.bulk.pop_front());
        }
        out.extend(self.urgent);
        out
    }
}

/// Drops `n` written octets from the front of `queue`. Returns the octets
/// of whole buffers dropped and of the front buffer left partly written.
fn consume(queue: &mut VecDeque<Bytes>, mut n: usize) -> (usize, usize) {
    let mut whole = 0;
    while let Some(front) = queue.front_mut() {
        if n >= front.len() {
            n -= front.len();
            whole += front.len();
            queue.pop_front();
        } else {
            front.advance(n);
            return (whole, n);
        }
    }
    (whole, 0)
}

/// Read sizes: small while a peer is quiet (a reflector holds thousands of
/// connections), doubling while reads fill the buffer.
const READ_MIN: usize = 4096;
const READ_MAX: usize = 64 * 1024;

/// What one non-blocking read got.
#[derive(Debug)]
pub(crate) enum Read {
    Data(Bytes),
    /// The peer closed, or the connection failed.
    Closed,
    /// Nothing to read after all.
    Again,
}

/// One open connection of a peer task.
#[derive(Debug)]
pub(crate) struct Conn {
    pub id: ConnectionId,
    stream: TcpStream,
    pub out: Output,
    /// The next read's size.
    want: usize,
}

impl Conn {
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.local_addr().ok()
    }

    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.peer_addr().ok()
    }

    pub fn new(id: ConnectionId, stream: TcpStream) -> Conn {
        Conn {
            id,
            stream,
            out: Output::default(),
            want: READ_MIN,
        }
    }

    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_read_ready(cx)
    }

    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_write_ready(cx)
    }

    /// Reads without holding a buffer between reads: an idle connection
    /// costs no memory here. Small reads land in a stack buffer and are
    /// copied out at their size; large ones read straight into a buffer
    /// that is handed on.
    pub fn read(&mut self) -> Read {
        let got = if self.want <= READ_MIN {
            let mut scratch = [0u8; READ_MIN];
            self.stream.try_read(&mut scratch).map(|n| {
                (
                    n,
                    Bytes::copy_from_slice(scratch.get(..n).unwrap_or_default()),
                )
            })
        } else {
            let mut buf = BytesMut::with_capacity(self.want);
            self.stream
                .try_read_buf(&mut buf)
                .map(|n| (n, buf.freeze()))
        };
        match got {
            Ok((0, _)) => Read::Closed,
            Ok((n, data)) => {
                self.want = if n == self.want {
                    (self.want * 2).min(READ_MAX)
                } else {
                    READ_MIN
                };
                Read::Data(data)
            }
            // Readiness was spurious (try_read cleared it).
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Read::Again,
            Err(e) => {
                debug!(id = %self.id, error = %e, "read failed");
                Read::Closed
            }
        }
    }

    /// Writes what is queued until done or the socket is full.
    pub fn write(&mut self) -> io::Result<bool> {
        let stream = &self.stream;
        self.out.write_with(|bufs| stream.try_write_vectored(bufs))
    }

    /// Writes what the peer is still owed (a final NOTIFICATION) and shuts
    /// the connection down, in a task of its own so that the peer task
    /// goes on; a peer that reads nothing is cut off after a grace period.
    pub fn close(self) {
        let Conn {
            id,
            mut stream,
            out,
            ..
        } = self;
        let last = out.into_final();
        tokio::spawn(async move {
            let flush = async {
                for b in &last {
                    stream.write_all(b).await?;
                }
                stream.shutdown().await
            };
            if let Err(e) = tokio::time::timeout(CLOSE_GRACE, flush)
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            {
                debug!(%id, error = %e, "close: last octets not written");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket stand-in: records what is written, takes at most `cap`
    /// octets per call and then reports a full buffer.
    struct Sink {
        out: Vec<u8>,
        calls: usize,
        cap: usize,
        room: usize,
    }

    impl Sink {
        fn new(cap: usize, room: usize) -> Sink {
            Sink {
                out: Vec::new(),
                calls: 0,
                cap,
                room,
            }
        }

        fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls += 1;
            let limit = self.cap.min(self.room);
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(limit - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == limit {
                    break;
                }
            }
            self.room -= n;
            Ok(n)
        }
    }

    fn filled(out: &mut Output, n: u8, len: usize) -> Vec<u8> {
        let mut all = Vec::new();
        for i in 0..n {
            let b = vec![i; len + usize::from(i)];
            all.extend_from_slice(&b);
            out.push(Bytes::from(b), false);
        }
        all
    }

    /// Many small queued buffers leave in few vectored writes, in order,
    /// and partial writes resume inside a buffer; the counts end at zero.
    #[test]
    fn queued_buffers_are_coalesced_in_order() {
        let mut out = Output::default();
        let expected = filled(&mut out, 100, 19);
        assert_eq!(out.bulk_octets(), expected.len());
        assert_eq!(out.bulk_buffers(), 100);
        let mut s = Sink::new(1000, usize::MAX);
        assert!(out.write_with(|b| s.write(b)).expect("write"));
        assert_eq!(s.out, expected);
        // 6,850 octets at most 1,000 per call.
        assert_eq!(s.calls, expected.len().div_ceil(1000));
        assert_eq!(out.bulk_octets(), 0);
        assert_eq!(out.bulk_buffers(), 0);
        assert!(out.is_empty());
        // An idle connection keeps no queue memory.
        assert_eq!(out.bulk.capacity() + out.urgent.capacity(), 0);
    }

    /// One vectored write gathers at most a window of buffers.
    #[test]
    fn a_write_gathers_at_most_one_window() {
        let mut out = Output::default();
        filled(&mut out, 200, 1);
        let mut widest = 0;
        out.write_with(|b| {
            widest = widest.max(b.len());
            Ok(b.iter().map(|s| s.len()).sum())
        })
        .expect("write");
        assert_eq!(widest, COALESCE_BUFFERS);
        assert!(out.is_empty());
    }

    /// A full socket stops the writing; what is left waits, counted.
    #[test]
    fn a_full_socket_leaves_the_rest_queued() {
        let mut out = Output::default();
        let expected = filled(&mut out, 10, 100);
        let mut s = Sink::new(usize::MAX, 250);
        assert!(out.write_with(|b| s.write(b)).expect("write"));
        assert_eq!(out.bulk_octets(), expected.len() - 250);
        // Nothing more fits: no progress, no error.
        assert!(!out.write_with(|b| s.write(b)).expect("write"));
        s.room = usize::MAX;
        assert!(out.write_with(|b| s.write(b)).expect("write"));
        assert_eq!(s.out, expected);
        assert_eq!(out.bulk_octets(), 0);
    }

    /// Urgent data goes before queued bulk data, and between buffers,
    /// never inside one.
    #[test]
    fn urgent_data_waits_for_the_buffer_in_progress_only() {
        let mut out = Output::default();
        out.push(Bytes::from(vec![1u8; 300]), false);
        out.push(Bytes::from(vec![2u8; 300]), false);
        out.push(Bytes::from_static(b"KA"), true);
        let mut s = Sink::new(200, usize::MAX);
        out.write_with(|b| s.write(b)).expect("write");
        // Urgent before any bulk (nothing was in progress).
        assert_eq!(&s.out[..2], b"KA");
        assert_eq!(s.out.len(), 602);

        // Now a KEEPALIVE queued while a buffer is half written.
        let mut out = Output::default();
        out.push(Bytes::from(vec![1u8; 300]), false);
        out.push(Bytes::from(vec![2u8; 300]), false);
        let mut s = Sink::new(200, 200);
        out.write_with(|b| s.write(b)).expect("write");
        out.push(Bytes::from_static(b"KA"), true);
        s.room = usize::MAX;
        out.write_with(|b| s.write(b)).expect("write");
        assert!(s.out[..300].iter().all(|&b| b == 1));
        assert_eq!(&s.out[300..302], b"KA");
        assert!(s.out[302..].iter().all(|&b| b == 2));
        assert_eq!(s.out.len(), 602);
    }

    /// A closing connection owes the rest of the buffer in progress and the
    /// urgent queue; untouched bulk buffers are dropped.
    #[test]
    fn a_close_finishes_the_buffer_in_progress_then_urgent_data() {
        let mut out = Output::default();
        out.push(Bytes::from(vec![1u8; 300]), false);
        out.push(Bytes::from(vec![2u8; 300]), false);
        let mut s = Sink::new(usize::MAX, 100);
        out.write_with(|b| s.write(b)).expect("write");
        out.push(Bytes::from_static(b"NOTIFICATION"), true);
        let last: Vec<u8> = out.into_final().concat();
        assert_eq!(last.len(), 200 + 12);
        assert!(last[..200].iter().all(|&b| b == 1));
        assert_eq!(&last[200..], b"NOTIFICATION");
        // Nothing in progress: only the urgent queue.
        let mut out = Output::default();
        out.push(Bytes::from(vec![1u8; 300]), false);
        out.push(Bytes::from_static(b"N"), true);
        assert_eq!(out.into_final().concat(), b"N");
    }

    /// A write error is returned; a zero-length write is an error too.
    #[test]
    fn write_errors_surface() {
        let mut out = Output::default();
        out.push(Bytes::from_static(b"x"), false);
        let e = out
            .write_with(|_| Err(io::ErrorKind::BrokenPipe.into()))
            .expect_err("error");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let e = out.write_with(|_| Ok(0)).expect_err("error");
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }
}
