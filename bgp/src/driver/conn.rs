//! One TCP connection's tasks: connect, read, and the two-queue writer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
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
    pub urgent: mpsc::UnboundedSender<WriterMsg>,
    pub bulk: mpsc::UnboundedSender<Bytes>,
    /// Bulk bytes queued and not yet written.
    pub backlog: Arc<AtomicUsize>,
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
        data_tx: mpsc::Sender<NetEvent>,
        ctl_tx: mpsc::UnboundedSender<NetEvent>,
    ) -> ConnIo {
        let (rd, wr) = stream.into_split();
        let (urgent, urgent_rx) = mpsc::unbounded_channel();
        let (bulk, bulk_rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let reader = tokio::spawn(read_loop(id, rd, data_tx));
        let writer = tokio::spawn(write_loop(
            id,
            wr,
            urgent_rx,
            bulk_rx,
            backlog.clone(),
            ctl_tx,
        ));
        ConnIo {
            urgent,
            bulk,
            backlog,
            reader,
            writer,
        }
    }

    pub fn send(&self, data: Bytes, urgent: bool) {
        if urgent {
            let _ = self.urgent.send(WriterMsg::Data(data));
        } else {
            self.backlog.fetch_add(data.len(), Ordering::Relaxed);
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

async fn read_loop(id: ConnectionId, mut rd: OwnedReadHalf, tx: mpsc::Sender<NetEvent>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(NetEvent::Closed(id)).await;
                return;
            }
            Ok(_) => {
                // Bounded: a slow consumer stops our reads, and TCP pushes
                // back on the peer.
                if tx
                    .send(NetEvent::Received(id, buf.split().freeze()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    id: ConnectionId,
    mut wr: W,
    mut urgent: mpsc::UnboundedReceiver<WriterMsg>,
    mut bulk: mpsc::UnboundedReceiver<Bytes>,
    backlog: Arc<AtomicUsize>,
    ctl: mpsc::UnboundedSender<NetEvent>,
) {
    loop {
        // Urgent first: a KEEPALIVE never waits for more than the one
        // UPDATE chunk being written.
        let (data, is_bulk) = tokio::select! {
            biased;
            m = urgent.recv() => match m {
                Some(WriterMsg::Data(d)) => (d, false),
                Some(WriterMsg::Close) | None => {
                    let _ = wr.shutdown().await;
                    return;
                }
            },
            Some(b) = bulk.recv() => (b, true),
        };
        let len = data.len();
        if let Err(e) = wr.write_all(&data).await {
            debug!(%id, error = %e, "write failed");
            let _ = ctl.send(NetEvent::Closed(id));
            return;
        }
        if is_bulk {
            backlog.fetch_sub(len, Ordering::Relaxed);
        }
        let pending = !urgent.is_empty() || !bulk.is_empty();
        let _ = ctl.send(NetEvent::Progress(id, pending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KEEPALIVE queued behind a backlog of UPDATEs to a slow reader goes
    /// out after at most the chunk being written.
    #[tokio::test(flavor = "current_thread")]
    async fn urgent_overtakes_bulk() {
        let (wr, mut rd) = tokio::io::duplex(1024);
        let (urgent_tx, urgent_rx) = mpsc::unbounded_channel();
        let (bulk_tx, bulk_rx) = mpsc::unbounded_channel();
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        const CHUNK: usize = 4096;
        for i in 0..50u8 {
            bulk_tx.send(Bytes::from(vec![i; CHUNK])).expect("queue");
            backlog.fetch_add(CHUNK, Ordering::Relaxed);
        }
        let writer = tokio::spawn(write_loop(
            ConnectionId(1),
            wr,
            urgent_rx,
            bulk_rx,
            backlog.clone(),
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
}
