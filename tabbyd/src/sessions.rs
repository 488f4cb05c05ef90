//! The daemon's view of one BGP session: a handle to send commands to the
//! session task and the events it reports back, tagged with the peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tabby_bgp::fsm::SessionConfig;
use tabby_bgp_driver as driver;
use tabby_rib::PeerId;
use tokio::sync::mpsc;

/// Everything needed to run one session.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub config: SessionConfig,
    pub remote: SocketAddr,
    pub local_address: Option<IpAddr>,
    pub md5_password: Option<String>,
    /// GTSM (RFC 5082): the peer may be at most this many hops away.
    pub ttl_security: Option<u8>,
    /// The TTL of our segments for a multihop peer without GTSM; `None`:
    /// the system's default.
    pub ttl: Option<u8>,
}

/// A running session.
#[derive(Debug)]
pub struct SessionHandle {
    tx: Tx,
}

#[derive(Debug)]
enum Tx {
    /// Commands as the daemon says them, recorded by tests.
    #[cfg(test)]
    Cmd(mpsc::UnboundedSender<driver::PeerCommand>),
    /// Straight to a driver peer task; the slot is released on drop.
    Peer {
        tx: driver::CommandSender,
        _slot: Slot,
    },
}

impl SessionHandle {
    #[cfg(test)]
    pub fn new(tx: mpsc::UnboundedSender<driver::PeerCommand>) -> Self {
        SessionHandle { tx: Tx::Cmd(tx) }
    }

    pub fn command(&self, cmd: driver::PeerCommand) {
        // The task only ends when the handle is dropped; a send failure
        // means it crashed, which its own log line already reported.
        match &self.tx {
            #[cfg(test)]
            Tx::Cmd(tx) => {
                let _ = tx.send(cmd);
            }
            Tx::Peer { tx, .. } => {
                let _ = tx.send(cmd);
            }
        }
    }
}

/// A driver peer's place in the listener. When its handle is dropped the
/// peer task sees its command channel close and ends the session with
/// Cease; the listener slot is freed now, and a task stuck on a peer that
/// reads nothing is cut off shortly after.
#[derive(Debug)]
struct Slot {
    speaker: Arc<driver::Speaker>,
    owners: Owners,
    remote: (IpAddr, u16),
    owner: u64,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut o = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
            if o.get(&self.remote) == Some(&self.owner) {
                o.remove(&self.remote);
                self.speaker.remove_peer(self.remote.0, self.remote.1);
            }
        }
        if let (Some(task), Ok(rt)) = (self.task.take(), tokio::runtime::Handle::try_current()) {
            // Give a final Stop a moment to leave as a NOTIFICATION.
            rt.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                task.abort();
            });
        }
    }
}

/// Events from every session, tagged with the peer. Bounded and shared by
/// all sessions: while the daemon is behind, sessions stop reading their
/// sockets rather than queue parsed routes.
pub type EventSender = mpsc::Sender<(PeerId, driver::PeerEvent)>;

/// Room for this many events from all sessions together. Short: an
/// UPDATE event holds up to a thousand parsed routes, and a full-table
/// burst would keep the queue full; the core gathers a burst of small
/// events over several rounds before it pumps (see `main.rs`).
pub const EVENT_QUEUE: usize = 256;

/// Runs BGP sessions: the shared listener and one task per peer, from
/// `tabby_bgp_driver`.
pub trait Sessions: Send {
    /// Listens on `addrs` instead of the current addresses, without a
    /// moment with no listener and without touching the sessions. On an
    /// error the previous listener stays, and the error says where it
    /// still listens.
    fn listen(&mut self, addrs: Vec<SocketAddr>) -> Result<(), String>;
    /// Starts a session task for a peer (not yet connecting: send
    /// [`driver::PeerCommand::Start`]).
    fn spawn(&mut self, id: PeerId, spec: SessionSpec) -> Result<SessionHandle, String>;
}

/// Which spawn owns each peer address and port's slot in the driver's
/// listener.
type Owners = Arc<Mutex<HashMap<(IpAddr, u16), u64>>>;

/// [`Sessions`] on top of the tokio driver.
#[derive(Debug)]
pub struct Speaker {
    events: EventSender,
    /// One driver speaker for the life of the process, made by the first
    /// `listen` or `spawn`: a new listener replaces its sockets in place
    /// ([`driver::Speaker::listen`]), so its peer table, and the sessions in
    /// it, stay, and connections for every peer are accepted on the new
    /// sockets. Without a listener, sessions still connect out.
    driver: Option<Arc<driver::Speaker>>,
    /// A session replaced by a new one for the same address and port (a reset after
    /// a configuration change) leaves the listener asynchronously; this
    /// keeps it from removing its successor's slot.
    owners: Owners,
    next_owner: u64,
}

impl Speaker {
    pub fn new(events: EventSender) -> Self {
        Speaker {
            events,
            driver: None,
            owners: Arc::default(),
            next_owner: 0,
        }
    }

    fn driver(&mut self) -> Result<Arc<driver::Speaker>, String> {
        if let Some(d) = &self.driver {
            return Ok(d.clone());
        }
        let d = Arc::new(
            driver::Speaker::bind(&driver::ListenConfig { addrs: Vec::new() })
                .map_err(|e| format!("{e}"))?,
        );
        self.driver = Some(d.clone());
        Ok(d)
    }
}

impl Sessions for Speaker {
    fn listen(&mut self, addrs: Vec<SocketAddr>) -> Result<(), String> {
        // The same addresses (a new AS, router id or cluster id) keep their
        // sockets; others are swapped without a gap, and a failed bind
        // leaves the listener as it was.
        let d = self.driver()?;
        d.listen(&driver::ListenConfig { addrs }).map_err(|e| {
            let now = d.local_addrs();
            if now.is_empty() {
                format!("{e}; not listening: only outgoing sessions work")
            } else {
                let now: Vec<String> = now.iter().map(ToString::to_string).collect();
                format!("{e}; still listening on {}", now.join(", "))
            }
        })
    }

    fn spawn(&mut self, id: PeerId, spec: SessionSpec) -> Result<SessionHandle, String> {
        let speaker = self.driver()?;
        let mut cfg = driver::PeerConfig::new(spec.remote.ip(), spec.config);
        cfg.remote_port = spec.remote.port();
        cfg.local_addr = spec.local_address;
        cfg.md5_password = spec.md5_password;
        cfg.gtsm_hops = spec.ttl_security;
        cfg.ttl = spec.ttl;
        let remote = (cfg.remote, cfg.remote_port);
        let owner = self.next_owner;
        self.next_owner += 1;
        let owners = self.owners.clone();
        let peer = {
            let mut o = owners.lock().unwrap_or_else(PoisonError::into_inner);
            if o.remove(&remote).is_some() {
                // The previous session for this address is still winding
                // down: take its listener slot over now.
                speaker.remove_peer(remote.0, remote.1);
            }
            let peer = speaker
                .add_peer_tagged(cfg, id, self.events.clone())
                .map_err(|e| format!("{e}"))?;
            o.insert(remote, owner);
            peer
        };
        let slot = Slot {
            speaker,
            owners,
            remote,
            owner,
            task: Some(peer.task),
        };
        Ok(SessionHandle {
            tx: Tx::Peer {
                tx: peer.commands,
                _slot: slot,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    //! The daemon's listener over real sockets on loopback, in this
    //! namespace: ports are the kernel's free ones, and a failing bind is
    //! one another socket holds.

    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::daemon::{Daemon, Options};
    use crate::metrics::Metrics;

    /// A port nothing listens on now.
    fn free_port() -> u16 {
        let l = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).expect("probe");
        l.local_addr().expect("probe address").port()
    }

    fn wild(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
    }

    fn lo(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    fn listening(s: &Speaker) -> Vec<SocketAddr> {
        s.driver
            .as_ref()
            .map(|d| d.local_addrs())
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn listener_changes_swap_in_place_and_failures_keep_the_old_one() {
        let (tx, _rx) = mpsc::channel(EVENT_QUEUE);
        let mut s = Speaker::new(tx);
        let p = free_port();
        s.listen(vec![wild(p)]).expect("[::]");
        // The same addresses (a cluster id, AS or router id change): the
        // socket stays.
        let before = s.driver.clone().expect("driver");
        s.listen(vec![wild(p)]).expect("same addresses");
        assert_eq!(listening(&s), vec![wild(p)]);
        assert!(Arc::ptr_eq(&before, s.driver.as_ref().expect("driver")));
        // bindMode NodeIP and back: the same port on an address the
        // wildcard covers, with no return to the scheduler in between.
        s.listen(vec![lo(p)]).expect("[::] → 127.0.0.1, same port");
        assert_eq!(listening(&s), vec![lo(p)]);
        s.listen(vec![wild(p)])
            .expect("127.0.0.1 → [::], same port");
        assert_eq!(listening(&s), vec![wild(p)]);
        // A port another socket holds, alone and after an overlapping
        // address that had to stop the wildcard first.
        let blocker = TcpListener::bind(lo(0)).expect("blocker");
        let q = blocker.local_addr().expect("blocker address").port();
        for asked in [vec![wild(q)], vec![lo(p), lo(q)]] {
            let e = s.listen(asked.clone()).expect_err("a held port");
            assert!(
                e.contains(&format!(":{q}"))
                    && e.contains("EADDRINUSE")
                    && e.contains(&format!("still listening on {}", wild(p))),
                "{asked:?}: {e}"
            );
            assert_eq!(listening(&s), vec![wild(p)], "{asked:?}");
            std::net::TcpStream::connect(lo(p)).expect("the old listener accepts");
        }
        // A new port: bound first, then the old one closes.
        let p2 = free_port();
        s.listen(vec![wild(p2)]).expect("new port");
        assert_eq!(listening(&s), vec![wild(p2)]);
        assert!(std::net::TcpStream::connect(lo(p)).is_err());
    }

    fn cluster(port: u16, cluster_id: Option<&str>) -> tabby_topology::Resources {
        let id = cluster_id
            .map(|c| format!(", routeReflectorClusterID: {c}"))
            .unwrap_or_default();
        let yaml = format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
             spec: {{asNumber: 64512, listenPort: {port}}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: node-a}}\n\
             spec: {{bgp: {{ipv4Address: 198.18.0.11/24{id}}}}}\n"
        );
        tabby_topology::Resources::from_yaml_str(&yaml, "test").expect("cluster")
    }

    fn listener_reasons(d: &Daemon) -> Vec<String> {
        d.health()
            .reasons
            .into_iter()
            .filter(|r| r.starts_with("BGP listener: "))
            .collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_bind_is_a_readiness_reason_until_a_listen_succeeds() {
        let (tx, _rx) = mpsc::channel(EVENT_QUEUE);
        let mut d = Daemon::new(
            Options {
                node_name: "node-a".into(),
                tunnel_device: "tunl0".into(),
                deferral_time: Duration::from_secs(30),
                log_level: "info".into(),
                max_prefixes: 0,
            },
            Box::new(Speaker::new(tx)),
            None,
            None,
            Arc::new(Metrics::default()),
            Instant::now(),
        );
        let p = free_port();
        d.apply_resources(&cluster(p, None), Instant::now());
        assert!(listener_reasons(&d).is_empty());
        // A cluster id: everything restarts, the listener stays.
        d.apply_resources(&cluster(p, Some("198.18.0.1")), Instant::now());
        assert!(listener_reasons(&d).is_empty());
        std::net::TcpStream::connect(lo(p)).expect("still listening");
        let blocker = TcpListener::bind(wild(0)).expect("blocker");
        let q = blocker.local_addr().expect("blocker address").port();
        d.apply_resources(&cluster(q, Some("198.18.0.1")), Instant::now());
        let r = listener_reasons(&d);
        assert!(
            r.len() == 1 && r[0].contains(&wild(q).to_string()) && r[0].contains("EADDRINUSE"),
            "{r:?}"
        );
        std::net::TcpStream::connect(lo(p)).expect("the old listener accepts");
        // Back to the port in use: nothing to bind, the problem is gone.
        d.apply_resources(&cluster(p, Some("198.18.0.1")), Instant::now());
        assert!(listener_reasons(&d).is_empty());
    }
}
