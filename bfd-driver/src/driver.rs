//! The driver task: one tokio task owns every socket and session, and
//! turns the sessions' timers into one `sleep_until` on the earliest
//! deadline.

use std::future::poll_fn;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::task::Poll;
use std::time::Instant;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use crate::config::{DriverConfig, SessionSpec};
use crate::handle::{BfdError, BfdHandle, Command, SessionId};
use crate::table::SessionTable;
use crate::transport::{self, HopMode, ListenSocket, SendSockets};

/// Datagrams read from one socket before the task looks at its timers and
/// commands again, so that a flood cannot starve them.
const RECV_BATCH: usize = 256;
/// Larger than any BFD packet (Length is one octet); octets past it are
/// past the Length field and ignored anyway.
const RECV_BUFFER: usize = 512;
/// Commands queued before `BfdHandle` calls wait.
const COMMAND_QUEUE: usize = 64;

/// The BFD driver: start it, spawn [`BfdDriver::run`], and talk to it
/// through the [`BfdHandle`].
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use tabby_bfd_driver::{BfdDriver, DriverConfig, SessionSpec};
/// let (handle, driver) = BfdDriver::start(DriverConfig::default())?;
/// tokio::spawn(driver.run());
/// let mut events = handle.subscribe();
/// let spec = SessionSpec::single_hop("198.18.0.2".parse().unwrap(), None, Some("eth0"));
/// let id = handle.add(spec).await.expect("valid session");
/// while let Ok((sid, event)) = events.recv().await {
///     println!("{sid}: {event:?}");
/// }
/// # let _ = id; Ok(()) }
/// ```
#[derive(Debug)]
pub struct BfdDriver {
    listeners: Vec<ListenSocket>,
    commands: mpsc::Receiver<Command>,
    table: SessionTable,
}

/// A receiving socket registered with tokio.
#[derive(Debug)]
struct Listener {
    hop: HopMode,
    socket: UdpSocket,
}

impl BfdDriver {
    /// Opens every socket (so errors such as a port in use surface here,
    /// and a driver started inside a network namespace stays there) and
    /// returns the handle and the task to spawn.
    pub fn start(config: DriverConfig) -> io::Result<(BfdHandle, BfdDriver)> {
        let mut listeners = Vec::new();
        for addr in [
            config.listen_v4.map(IpAddr::V4),
            config.listen_v6.map(IpAddr::V6),
        ]
        .into_iter()
        .flatten()
        {
            for hop in [HopMode::SingleHop, HopMode::Multihop] {
                let l = transport::listen(addr, hop).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "cannot listen for {hop} BFD on {addr} port {}: {e}",
                            hop.port()
                        ),
                    )
                })?;
                listeners.push(l);
            }
        }
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let keys = std::collections::hash_map::RandomState::new();
        let mut n = 0u64;
        let send = SendSockets::open(
            config.listen_v4,
            config.listen_v6,
            config.source_port,
            || {
                use std::hash::BuildHasher;
                n += 1;
                keys.hash_one(n) as u32
            },
        )?;
        info!(source_port = send.port(), v4 = ?config.listen_v4, v6 = ?config.listen_v6,
              "BFD driver listening");
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let handle = BfdHandle::new(tx, events.clone());
        Ok((
            handle,
            BfdDriver {
                listeners,
                commands: rx,
                table: SessionTable::new(send, events),
            },
        ))
    }

    /// The task. It ends once every [`BfdHandle`] is dropped and the
    /// sessions have told their peers AdminDown.
    pub async fn run(self) {
        let BfdDriver {
            listeners,
            mut commands,
            mut table,
        } = self;
        let mut sockets = Vec::with_capacity(listeners.len());
        for l in listeners {
            match UdpSocket::from_std(l.socket) {
                Ok(socket) => sockets.push(Listener { hop: l.hop, socket }),
                Err(e) => {
                    warn!(error = %e, "BFD driver cannot register its sockets; stopping");
                    return;
                }
            }
        }
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut cmsg = transport::cmsg_buffer();
        let mut stopping = false;
        loop {
            let deadline = table.next_deadline();
            tokio::select! {
                cmd = commands.recv(), if !stopping => match cmd {
                    Some(cmd) => handle_command(&mut table, cmd),
                    None => {
                        info!("every BFD handle dropped; stopping the driver");
                        stopping = true;
                        table.remove_all(now());
                    }
                },
                () = readable(&sockets) => {
                    for l in &sockets {
                        drain(l, &mut table, &mut buf, &mut cmsg);
                    }
                }
                () = sleep(deadline) => {}
            }
            table.fire_timers(now());
            if stopping && table.is_empty() {
                info!("BFD driver stopped");
                return;
            }
        }
    }
}

/// tokio's clock, as the `std` instant the sessions work in.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Resolves when any socket may have a datagram.
async fn readable(sockets: &[Listener]) {
    poll_fn(|cx| {
        let mut ready = false;
        for l in sockets {
            // Every socket registers the waker, ready or not.
            if l.socket.poll_recv_ready(cx).is_ready() {
                ready = true;
            }
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

fn drain(l: &Listener, table: &mut SessionTable, buf: &mut [u8], cmsg: &mut [u8]) {
    let fd = l.socket.as_raw_fd();
    for _ in 0..RECV_BATCH {
        match l
            .socket
            .try_io(Interest::READABLE, || transport::recv(fd, buf, cmsg))
        {
            Ok(d) => {
                let len = d.len.min(buf.len());
                table.receive(now(), l.hop, &d, &buf[..len]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                debug!(hop = %l.hop, error = %e, "BFD receive error");
                return;
            }
        }
    }
}

fn handle_command(table: &mut SessionTable, cmd: Command) {
    let t = now();
    match cmd {
        Command::Add(spec, reply) => {
            let _ = reply.send(add(table, t, spec));
        }
        Command::Remove(id, reply) => {
            let _ = reply.send(table.remove(t, id));
        }
        Command::SetAdminDown(id, down, reply) => {
            let _ = reply.send(table.set_admin_down(t, id, down));
        }
        Command::UpdateTimers(id, timers, reply) => {
            let _ = reply.send(table.update_timers(t, id, timers));
        }
        Command::Session(id, reply) => {
            let _ = reply.send(table.info(t, id));
        }
        Command::Sessions(reply) => {
            let _ = reply.send(table.infos(t));
        }
        Command::Stats(reply) => {
            let _ = reply.send(table.stats());
        }
    }
}

fn add(table: &mut SessionTable, now: Instant, spec: SessionSpec) -> Result<SessionId, BfdError> {
    if !table.family_enabled(spec.peer) {
        return Err(BfdError::FamilyDisabled);
    }
    // Resolved here, on the task's thread: in the driver's namespace.
    let ifindex = match &spec.interface {
        Some(name) => Some(
            nix::net::if_::if_nametoindex(name.as_str())
                .map_err(|_| BfdError::UnknownInterface(name.clone()))?,
        ),
        None => None,
    };
    table.add(now, spec, ifindex)
}
