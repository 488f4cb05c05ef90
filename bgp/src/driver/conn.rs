//! One TCP connection's tasks: connect, read, and the two-queue writer.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tracing::debug;

use super::PeerConfig;
use crate::fsm::ConnectionId;
use crate::sockopt;

/// How long a closing connection may take to write its last NOTIFICATION.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Events from connection tasks to the peer task.
#[derive(Debug)]
pub(super) enum NetEvent {
    /// The listener accepted a connection from the peer's address.
    Accepted(TcpStream),
    Connected(ConnectionId, TcpStream),
    Received(ConnectionId, Bytes),
    /// Connect failed, EOF, or a read/write error.
    Closed(ConnectionId),
    /// A write finished; `pending` says whether more waits.
    Progress(ConnectionId, bool),
}

/// Socket options every BGP connection gets.
pub(super) fn prepare(stream: &TcpStream, cfg: &PeerConfig) -> io::Result<()> {
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
pub(super) async fn connect(cfg: &PeerConfig) -> io::Result<TcpStream> {
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

pub(super) enum WriterMsg {
    Data(Bytes),
    /// Write what is queued as urgent, then shut down.
    Close,
}

/// The peer task's handles on one connection.
#[derive(Debug)]
pub(super) struct ConnIo {
    pub urgent: flume::Sender<WriterMsg>,
    pub bulk: flume::Sender<Bytes>,
    /// Bulk bytes queued and not yet written.
    pub backlog: Arc<AtomicUsize>,
    /// Bulk buffers queued and not yet fully written.
    pub queued: Arc<AtomicUsize>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl std::fmt::Debug for WriterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterMsg::Data(b) => write!(f, "Data({} octets)", b.len()),
            WriterMsg::Close => f.write_str("Close"),
        }
    }
}

impl ConnIo {
    pub fn spawn(
        id: ConnectionId,
        stream: TcpStream,
        data_tx: flume::Sender<NetEvent>,
        ctl_tx: flume::Sender<NetEvent>,
    ) -> ConnIo {
        let (rd, wr) = stream.into_split();
        let (urgent, urgent_rx) = flume::unbounded();
        let (bulk, bulk_rx) = flume::unbounded();
        let backlog = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let reader = tokio::spawn(read_loop(id, rd, data_tx));
        let writer = tokio::spawn(write_loop(
            id,
            wr,
            urgent_rx,
            bulk_rx,
            Backlog {
                octets: backlog.clone(),
                buffers: queued.clone(),
            },
            ctl_tx,
        ));
        ConnIo {
            urgent,
            bulk,
            backlog,
            queued,
            reader,
            writer,
        }
    }

    pub fn send(&self, data: Bytes, urgent: bool) {
        if urgent {
            let _ = self.urgent.send(WriterMsg::Data(data));
        } else {
            self.backlog.fetch_add(data.len(), Ordering::Relaxed);
            self.queued.fetch_add(1, Ordering::Relaxed);
            let _ = self.bulk.send(data);
        }
    }

    /// Flushes the urgent queue (a final NOTIFICATION) and closes. A writer
    /// stuck on a peer that reads nothing is cut off after a grace period.
    pub fn close(self) {
        self.reader.abort();
        let _ = self.urgent.send(WriterMsg::Close);
        let writer = self.writer;
        tokio::spawn(async move {
            tokio::time::sleep(CLOSE_GRACE).await;
            writer.abort();
        });
    }
}

/// Read sizes: small while a peer is quiet (a reflector holds thousands of
/// connections), doubling while reads fill the buffer.
const READ_MIN: usize = 4096;
const READ_MAX: usize = 64 * 1024;

/// Reads without holding a buffer between reads: an idle connection costs
/// no memory here. Small reads land in a stack buffer and are copied out at
/// their size; large ones read straight into a buffer that is handed on.
async fn read_loop(id: ConnectionId, rd: OwnedReadHalf, tx: flume::Sender<NetEvent>) {
    let mut want = READ_MIN;
    loop {
        let got = match rd.readable().await {
            Err(e) => Err(e),
            Ok(()) if want <= READ_MIN => {
                let mut scratch = [0u8; READ_MIN];
                rd.try_read(&mut scratch)
                    .map(|n| (n, Bytes::copy_from_slice(&scratch[..n])))
            }
            Ok(()) => {
                let mut buf = BytesMut::with_capacity(want);
                rd.try_read_buf(&mut buf).map(|n| (n, buf.freeze()))
            }
        };
        match got {
            Ok((0, _)) => {
                let _ = tx.send_async(NetEvent::Closed(id)).await;
                return;
            }
            Ok((n, data)) => {
                want = if n == want {
                    (want * 2).min(READ_MAX)
                } else {
                    READ_MIN
                };
                // Bounded: a slow consumer stops our reads, and TCP pushes
                // back on the peer.
                if tx.send_async(NetEvent::Received(id, data)).await.is_err() {
                    return;
                }
            }
            // Readiness was spurious.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                let _ = tx.send_async(NetEvent::Closed(id)).await;
                return;
            }
        }
    }
}

/// Bulk octets gathered into one vectored write (and at most this many
/// buffers): a reflector sends many small UPDATE batches to each peer, and
/// one `writev` for all of them costs what one `write` costs.
const COALESCE_OCTETS: usize = 256 * 1024;
const COALESCE_BUFFERS: usize = 64;

async fn write_loop<W: AsyncWrite + Unpin>(
    id: ConnectionId,
    mut wr: W,
    urgent: flume::Receiver<WriterMsg>,
    bulk: flume::Receiver<Bytes>,
    backlog: Backlog,
    ctl: flume::Sender<NetEvent>,
) {
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    loop {
        // Urgent first: a KEEPALIVE never waits for more than the one
        // UPDATE chunk being written.
        let first = tokio::select! {
            biased;
            m = urgent.recv_async() => match m {
                Ok(WriterMsg::Data(d)) => {
                    if let Err(e) = wr.write_all(&d).await {
                        debug!(%id, error = %e, "write failed");
                        let _ = ctl.send(NetEvent::Closed(id));
                        return;
                    }
                    let pending = !urgent.is_empty() || !bulk.is_empty();
                    let _ = ctl.send(NetEvent::Progress(id, pending));
                    continue;
                }
                Ok(WriterMsg::Close) | Err(_) => {
                    let _ = wr.shutdown().await;
                    return;
                }
            },
            Ok(b) = bulk.recv_async() => b,
        };
        let mut gathered = first.len();
        queue.push_back(first);
        while gathered < COALESCE_OCTETS && queue.len() < COALESCE_BUFFERS {
            match bulk.try_recv() {
                Ok(b) => {
                    gathered += b.len();
                    queue.push_back(b);
                }
                Err(_) => break,
            }
        }
        let progress = || {
            let _ = ctl.send(NetEvent::Progress(id, true));
        };
        match write_bulk(&mut wr, &mut queue, &urgent, &backlog, progress).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = wr.shutdown().await;
                return;
            }
            Err(e) => {
                debug!(%id, error = %e, "write failed");
                let _ = ctl.send(NetEvent::Closed(id));
                return;
            }
        }
        let pending = !urgent.is_empty() || !bulk.is_empty();
        let _ = ctl.send(NetEvent::Progress(id, pending));
    }
}

/// What a connection's writer still has to write, shared with the peer
/// task (which stops taking commands while it is large).
pub(super) struct Backlog {
    pub octets: Arc<AtomicUsize>,
    pub buffers: Arc<AtomicUsize>,
}

/// Writes the queued bulk buffers with vectored writes. Between buffers
/// (never inside one: each holds whole messages) urgent data goes first.
/// `Ok(false)`: a close was requested.
async fn write_bulk<W: AsyncWrite + Unpin>(
    wr: &mut W,
    queue: &mut VecDeque<Bytes>,
    urgent: &flume::Receiver<WriterMsg>,
    backlog: &Backlog,
    progress: impl Fn(),
) -> io::Result<bool> {
    // Whether the front buffer is partly written.
    let mut partial = false;
    while !queue.is_empty() {
        if !partial {
            while let Ok(m) = urgent.try_recv() {
                match m {
                    WriterMsg::Data(d) => {
                        wr.write_all(&d).await?;
                        progress();
                    }
                    WriterMsg::Close => return Ok(false),
                }
            }
        }
        let slices: Vec<IoSlice<'_>> = queue.iter().map(|b| IoSlice::new(b)).collect();
        let mut n = wr.write_vectored(&slices).await?;
        drop(slices);
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let Some(front) = queue.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                backlog.octets.fetch_sub(front.len(), Ordering::Relaxed);
                backlog.buffers.fetch_sub(1, Ordering::Relaxed);
                queue.pop_front();
                partial = false;
            } else {
                backlog.octets.fetch_sub(n, Ordering::Relaxed);
                front.advance(n);
                n = 0;
                partial = true;
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A KEEPALIVE queued behind a backlog of UPDATEs to a slow reader goes
    /// out after at most the chunk being written.
    #[tokio::test(flavor = "current_thread")]
    async fn urgent_overtakes_bulk() {
        let (wr, mut rd) = tokio::io::duplex(1024);
        let (urgent_tx, urgent_rx) = flume::unbounded();
        let (bulk_tx, bulk_rx) = flume::unbounded();
        let (ctl_tx, ctl_rx) = flume::unbounded();
        let backlog = Backlog {
            octets: Arc::new(AtomicUsize::new(0)),
            buffers: Arc::new(AtomicUsize::new(0)),
        };
        const CHUNK: usize = 4096;
        for i in 0..50u8 {
            bulk_tx.send(Bytes::from(vec![i; CHUNK])).expect("queue");
            backlog.octets.fetch_add(CHUNK, Ordering::Relaxed);
            backlog.buffers.fetch_add(1, Ordering::Relaxed);
        }
        let writer = tokio::spawn(write_loop(
            ConnectionId(1),
            wr,
            urgent_rx,
            bulk_rx,
            backlog,
            ctl_tx,
        ));
        // Let the writer start on the first chunk, then queue the urgent one.
        let mut got = vec![0u8; 512];
        rd.read_exact(&mut got).await.expect("read");
        urgent_tx
            .send(WriterMsg::Data(Bytes::from_static(b"KEEPALIVE")))
            .expect("queue");
        urgent_tx.send(WriterMsg::Close).expect("queue");
        let mut rest = Vec::new();
        rd.read_to_end(&mut rest).await.expect("read");
        got.extend(rest);
        let at = got
            .windows(9)
            .position(|w| w == b"KEEPALIVE")
            .expect("urgent data written");
        assert!(
            at <= 2 * CHUNK,
            "urgent data waited behind {at} bulk octets"
        );
        writer.await.expect("writer");
        assert!(ctl_rx.try_recv().is_ok(), "progress reported");
    }

    /// Records every write call; takes at most `cap` octets per call.
    struct Recorder {
        out: Vec<u8>,
        calls: usize,
        cap: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.cap);
            self.calls += 1;
            self.out.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.cap - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == self.cap {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Many small queued buffers leave in few vectored writes, in order,
    /// and partial writes resume inside a buffer; the backlog ends at zero.
    #[tokio::test(flavor = "current_thread")]
    async fn queued_buffers_are_coalesced_in_order() {
        let (_urgent_tx, urgent_rx) = flume::unbounded();
        let backlog = Backlog {
            octets: Arc::new(AtomicUsize::new(0)),
            buffers: Arc::new(AtomicUsize::new(0)),
        };
        let mut expected = Vec::new();
        let mut queue = VecDeque::new();
        for i in 0..100u8 {
            let b = Bytes::from(vec![i; 19 + usize::from(i)]);
            expected.extend_from_slice(&b);
            backlog.octets.fetch_add(b.len(), Ordering::Relaxed);
            backlog.buffers.fetch_add(1, Ordering::Relaxed);
            queue.push_back(b);
        }
        let mut w = Recorder {
            out: Vec::new(),
            calls: 0,
            cap: 1000,
        };
        let open = write_bulk(&mut w, &mut queue, &urgent_rx, &backlog, || {})
            .await
            .expect("write");
        assert!(open);
        assert_eq!(w.out, expected);
        // 6,850 octets at most 1,000 per call.
        assert_eq!(w.calls, expected.len().div_ceil(1000));
        assert_eq!(backlog.octets.load(Ordering::Relaxed), 0);
        assert_eq!(backlog.buffers.load(Ordering::Relaxed), 0);
        assert!(queue.is_empty());
    }

    /// Urgent data goes between buffers, never inside one.
    #[tokio::test(flavor = "current_thread")]
    async fn urgent_data_waits_for_the_buffer_in_progress_only() {
        let (urgent_tx, urgent_rx) = flume::unbounded();
        let backlog = Backlog {
            octets: Arc::new(AtomicUsize::new(0)),
            buffers: Arc::new(AtomicUsize::new(2)),
        };
        let mut queue: VecDeque<Bytes> = [vec![1u8; 300], vec![2u8; 300]]
            .into_iter()
            .map(Bytes::from)
            .collect();
        urgent_tx
            .send(WriterMsg::Data(Bytes::from_static(b"KA")))
            .expect("queue");
        let mut w = Recorder {
            out: Vec::new(),
            calls: 0,
            cap: 200,
        };
        write_bulk(&mut w, &mut queue, &urgent_rx, &backlog, || {})
            .await
            .expect("write");
        // Urgent before any bulk (nothing was in progress).
        assert_eq!(&w.out[..2], b"KA");
        assert_eq!(w.out.len(), 602);
        assert!(w.out[2..302].iter().all(|&b| b == 1));
    }
}
