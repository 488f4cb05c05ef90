//! A test-only [`Core`]: an in-memory Loc-RIB and peer table behind a mutex,
//! with a real [`RouteJournal`], plus helpers to start the server on a unix
//! socket in a temporary directory and connect a tonic client to it.
#![allow(dead_code)]

pub mod gobgp_cli;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tabby_api::model::*;
use tabby_api::{ApiConfig, Core, CoreError, RouteJournal};
use tabby_proto::v1 as pb;
use tabby_proto::v1::peers_client::PeersClient;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint, Uri};

/// State of the test core.
pub struct State {
    pub local: BTreeMap<(IpNet, Owner), LocalRoute>,
    pub learned: BTreeMap<(IpNet, IpAddr), Path>,
    pub best: BTreeMap<IpNet, Path>,
    pub journal: RouteJournal,
    pub peers: BTreeMap<IpAddr, PeerStatus>,
    pub peer_seq: u64,
    pub peer_tx: broadcast::Sender<PeerEvent>,
    pub log_level: String,
    pub live: bool,
    pub gr_pending: bool,
    pub calls: Vec<String>,
    /// What `explain_route` reports as the last BFD departure per prefix.
    pub departures: BTreeMap<IpNet, RouteDeparture>,
}

/// The test core.
pub struct TestCore {
    state: Mutex<State>,
}

pub const LOCAL_AS: u32 = 64512;
pub const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

impl TestCore {
    pub fn new() -> Arc<TestCore> {
        Self::with_buffers(1024, 1024)
    }

    pub fn with_buffers(history: usize, live: usize) -> Arc<TestCore> {
        let (peer_tx, _) = broadcast::channel(64);
        Arc::new(TestCore {
            state: Mutex::new(State {
                local: BTreeMap::new(),
                learned: BTreeMap::new(),
                best: BTreeMap::new(),
                journal: RouteJournal::new(history, live),
                peers: BTreeMap::new(),
                peer_seq: 0,
                peer_tx,
                log_level: "info".into(),
                live: true,
                gr_pending: false,
                calls: Vec::new(),
                departures: BTreeMap::new(),
            }),
        })
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a path learned from `peer`.
    pub fn learn(&self, prefix: &str, peer: &str, as_path: Vec<u32>, local_pref: u32) {
        let prefix: IpNet = prefix.parse().expect("test prefix");
        let peer: IpAddr = peer.parse().expect("test peer");
        let path = Path {
            next_hop: peer,
            as_path,
            origin: Origin::Igp,
            local_pref,
            med: None,
            communities: vec![],
            large_communities: vec![],
            source: PathSource::Peer(peer),
            best: false,
            age_seconds: 30,
            kind: RouteKind::Unspecified,
            stale: false,
        };
        let mut s = self.state();
        s.learned.insert((prefix, peer), path);
        recompute(&mut s, prefix);
    }

    /// Adds a configured peer in the given state.
    pub fn add_test_peer(&self, addr: &str, asn: u32, state: SessionState) {
        let addr: IpAddr = addr.parse().expect("test peer");
        let mut cfg = PeerConfig::new(addr, asn);
        cfg.peer_type = PeerType::NodeMesh;
        let mut st = PeerStatus::idle(cfg);
        st.state = state;
        st.state_since_unix_seconds = now_unix().saturating_sub(125);
        if state == SessionState::Established {
            st.uptime_seconds = 125;
            st.negotiated_hold_time = 90;
            st.remote_router_id = Some(Ipv4Addr::new(198, 18, 0, 2));
            st.negotiated_families = vec![Family::of_addr(&addr)];
            st.counters.prefixes_received = 3;
            st.counters.prefixes_accepted = 3;
            st.counters.prefixes_advertised = 2;
        }
        self.state().peers.insert(addr, st);
    }

    /// Changes a peer's session state and publishes the event.
    pub fn set_peer_state(&self, addr: &str, state: SessionState) {
        let addr: IpAddr = addr.parse().expect("test peer");
        let mut s = self.state();
        let Some(p) = s.peers.get_mut(&addr) else {
            return;
        };
        let previous = p.state;
        p.state = state;
        p.state_since_unix_seconds = now_unix();
        let peer = p.clone();
        publish_peer(&mut s, PeerChange::StateChanged { previous }, peer);
    }

    /// Sets (or clears) a peer's BFD session.
    pub fn set_peer_bfd(&self, addr: &str, bfd: Option<BfdStatus>) {
        let addr: IpAddr = addr.parse().expect("test peer");
        if let Some(p) = self.state().peers.get_mut(&addr) {
            p.bfd = bfd;
        }
    }

    /// Records that paths of `prefix` from `peer` left because BFD went down.
    pub fn record_departure(&self, prefix: &str, peer: &str, at: u64, reason: &str) {
        let prefix: IpNet = prefix.parse().expect("test prefix");
        let peer: IpAddr = peer.parse().expect("test peer");
        self.state().departures.insert(
            prefix,
            RouteDeparture {
                peer,
                at_unix_seconds: at,
                reason: reason.into(),
                withdrawn: true,
            },
        );
    }

    pub fn set_live(&self, live: bool) {
        self.state().live = live;
    }

    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn publish_peer(s: &mut State, change: PeerChange, peer: PeerStatus) {
    s.peer_seq += 1;
    let _ = s.peer_tx.send(PeerEvent {
        sequence: s.peer_seq,
        change,
        peer,
    });
}

fn local_path(owner: &Owner, r: &LocalRoute) -> Path {
    Path {
        next_hop: r.next_hop.unwrap_or(match r.prefix {
            IpNet::V4(_) => IpAddr::V4(ROUTER_ID),
            IpNet::V6(_) => "2001:db8::1".parse().unwrap_or(IpAddr::V4(ROUTER_ID)),
        }),
        as_path: vec![],
        origin: Origin::Igp,
        local_pref: r.local_pref.unwrap_or(100),
        med: r.med,
        communities: r.communities.clone(),
        large_communities: r.large_communities.clone(),
        source: PathSource::Local(owner.clone()),
        best: false,
        age_seconds: 1,
        kind: r.kind,
        stale: false,
    }
}

/// Candidates for a prefix, best first (higher LOCAL_PREF, then shorter
/// AS_PATH, then local before learned).
fn candidates(s: &State, prefix: IpNet) -> Vec<Path> {
    let mut v: Vec<Path> = s
        .local
        .iter()
        .filter(|((p, _), _)| *p == prefix)
        .map(|((_, o), r)| local_path(o, r))
        .chain(
            s.learned
                .iter()
                .filter(|((p, _), _)| *p == prefix)
                .map(|(_, p)| p.clone()),
        )
        .collect();
    v.sort_by(|a, b| {
        b.local_pref
            .cmp(&a.local_pref)
            .then(a.as_path.len().cmp(&b.as_path.len()))
            .then(
                matches!(b.source, PathSource::Local(_))
                    .cmp(&matches!(a.source, PathSource::Local(_))),
            )
    });
    if let Some(first) = v.first_mut() {
        first.best = true;
    }
    v
}

fn recompute(s: &mut State, prefix: IpNet) {
    let best = candidates(s, prefix).into_iter().next();
    match best {
        Some(b) => {
            if s.best.get(&prefix) != Some(&b) {
                s.best.insert(prefix, b.clone());
                s.journal
                    .publish(RouteUpdate::BestChanged { prefix, best: b });
            }
        }
        None => {
            if s.best.remove(&prefix).is_some() {
                s.journal.publish(RouteUpdate::Withdrawn { prefix });
            }
        }
    }
}

fn not_found(addr: IpAddr) -> CoreError {
    CoreError::NotFound(format!("no peer {addr} is configured: see tabbyctl peers"))
}

#[tonic::async_trait]
impl Core for TestCore {
    async fn announce_routes(
        &self,
        owner: Owner,
        routes: Vec<LocalRoute>,
    ) -> Result<RouteChange, CoreError> {
        let mut s = self.state();
        s.calls.push(format!("announce {owner} {}", routes.len()));
        let mut c = RouteChange::default();
        for r in routes {
            let key = (r.prefix, owner.clone());
            match s.local.get(&key) {
                Some(old) if *old == r => c.unchanged += 1,
                Some(_) => c.updated += 1,
                None => c.added += 1,
            }
            let prefix = r.prefix;
            s.local.insert(key, r);
            recompute(&mut s, prefix);
        }
        c.sequence = s.journal.sequence();
        Ok(c)
    }

    async fn withdraw_routes(
        &self,
        owner: Owner,
        prefixes: Vec<IpNet>,
    ) -> Result<RouteChange, CoreError> {
        let mut s = self.state();
        s.calls.push(format!("withdraw {owner} {}", prefixes.len()));
        let mut c = RouteChange::default();
        for p in prefixes {
            if s.local.remove(&(p, owner.clone())).is_some() {
                c.removed += 1;
                recompute(&mut s, p);
            }
        }
        c.sequence = s.journal.sequence();
        Ok(c)
    }

    async fn replace_routes(
        &self,
        owner: Owner,
        routes: Vec<LocalRoute>,
    ) -> Result<RouteChange, CoreError> {
        let mut s = self.state();
        let mut c = RouteChange::default();
        let old: Vec<IpNet> = s
            .local
            .keys()
            .filter(|(_, o)| *o == owner)
            .map(|(p, _)| *p)
            .collect();
        let new: std::collections::HashSet<IpNet> = routes.iter().map(|r| r.prefix).collect();
        for p in old {
            if !new.contains(&p) {
                s.local.remove(&(p, owner.clone()));
                c.removed += 1;
                recompute(&mut s, p);
            }
        }
        for r in routes {
            let key = (r.prefix, owner.clone());
            match s.local.get(&key) {
                Some(o) if *o == r => c.unchanged += 1,
                Some(_) => c.updated += 1,
                None => c.added += 1,
            }
            let p = r.prefix;
            s.local.insert(key, r);
            recompute(&mut s, p);
        }
        c.sequence = s.journal.sequence();
        Ok(c)
    }

    async fn list_routes(&self, q: RouteQuery) -> Result<RoutePage, CoreError> {
        let s = self.state();
        let mut prefixes: Vec<IpNet> = s.best.keys().copied().collect();
        prefixes.retain(|p| {
            q.family.is_none_or(|f| f == Family::of_prefix(p))
                && q.after.is_none_or(|a| *p > a)
                && match q.prefix {
                    None => true,
                    Some((n, PrefixMatch::Exact)) => *p == n,
                    Some((n, PrefixMatch::Longer)) => n.contains(p),
                }
        });
        let more = prefixes.len() > q.limit;
        prefixes.truncate(q.limit);
        let routes = prefixes
            .into_iter()
            .map(|p| {
                let mut paths = candidates(&s, p);
                if q.best_only {
                    paths.truncate(1);
                }
                Route { prefix: p, paths }
            })
            .collect();
        Ok(RoutePage { routes, more })
    }

    async fn watch_routes(&self, resume_from: Option<u64>) -> Result<RouteWatch, CoreError> {
        let s = self.state();
        Ok(s.journal.watch(
            resume_from,
            || s.best.iter().map(|(p, b)| (*p, b.clone())).collect(),
            |prefix| match s.best.get(&prefix) {
                Some(b) => RouteUpdate::BestChanged {
                    prefix,
                    best: b.clone(),
                },
                None => RouteUpdate::Withdrawn { prefix },
            },
        ))
    }

    async fn explain_route(&self, prefix: IpNet) -> Result<RouteExplanation, CoreError> {
        let s = self.state();
        let c = candidates(&s, prefix);
        let departed = s.departures.get(&prefix).cloned();
        if c.is_empty() && departed.is_none() {
            return Err(CoreError::NotFound(format!(
                "no path for {prefix} in the Loc-RIB"
            )));
        }
        Ok(RouteExplanation {
            prefix,
            departed,
            candidates: c
                .into_iter()
                .map(|p| CandidatePath {
                    reason: if p.best {
                        "best: highest LOCAL_PREF".into()
                    } else {
                        "lower LOCAL_PREF".into()
                    },
                    path: p,
                })
                .collect(),
            exports: s
                .peers
                .keys()
                .map(|a| PeerExport {
                    peer: *a,
                    exported: true,
                    reason: "eBGP peer".into(),
                })
                .collect(),
        })
    }

    async fn list_adj_rib(
        &self,
        peer: PeerRef,
        rib: AdjRib,
        family: Family,
    ) -> Result<Vec<Route>, CoreError> {
        let peer = peer.address;
        let s = self.state();
        if !s.peers.contains_key(&peer) {
            return Err(not_found(peer));
        }
        Ok(match rib {
            AdjRib::In => s
                .learned
                .iter()
                .filter(|((p, a), _)| *a == peer && Family::of_prefix(p) == family)
                .map(|((p, _), path)| Route {
                    prefix: *p,
                    paths: vec![path.clone()],
                })
                .collect(),
            AdjRib::Out => s
                .best
                .iter()
                .filter(|(p, b)| {
                    Family::of_prefix(p) == family && b.source != PathSource::Peer(peer)
                })
                .map(|(p, b)| Route {
                    prefix: *p,
                    paths: vec![b.clone()],
                })
                .collect(),
        })
    }

    async fn list_peers(&self) -> Result<Vec<PeerStatus>, CoreError> {
        Ok(self.state().peers.values().cloned().collect())
    }

    async fn get_peer(&self, peer: PeerRef) -> Result<PeerStatus, CoreError> {
        let address = peer.address;
        self.state()
            .peers
            .get(&address)
            .cloned()
            .ok_or_else(|| not_found(address))
    }

    async fn add_peer(&self, config: PeerConfig) -> Result<PeerStatus, CoreError> {
        let mut s = self.state();
        if s.peers.contains_key(&config.address) {
            return Err(CoreError::AlreadyExists(format!(
                "peer {} is already configured: delete it first to change it",
                config.address
            )));
        }
        let st = PeerStatus::idle(config);
        s.peers.insert(st.config.address, st.clone());
        publish_peer(&mut s, PeerChange::Added, st.clone());
        Ok(st)
    }

    async fn delete_peer(&self, peer: PeerRef) -> Result<(), CoreError> {
        let address = peer.address;
        let mut s = self.state();
        let st = s.peers.remove(&address).ok_or_else(|| not_found(address))?;
        publish_peer(&mut s, PeerChange::Removed, st);
        Ok(())
    }

    async fn enable_peer(&self, peer: PeerRef) -> Result<PeerStatus, CoreError> {
        let address = peer.address;
        let mut s = self.state();
        let p = s
            .peers
            .get_mut(&address)
            .ok_or_else(|| not_found(address))?;
        p.enabled = true;
        Ok(p.clone())
    }

    async fn disable_peer(
        &self,
        peer: PeerRef,
        reason: Option<String>,
    ) -> Result<PeerStatus, CoreError> {
        let address = peer.address;
        let mut s = self.state();
        s.calls
            .push(format!("disable {address} {}", reason.unwrap_or_default()));
        let p = s
            .peers
            .get_mut(&address)
            .ok_or_else(|| not_found(address))?;
        p.enabled = false;
        let previous = p.state;
        p.state = SessionState::Idle;
        let peer = p.clone();
        publish_peer(&mut s, PeerChange::StateChanged { previous }, peer.clone());
        Ok(peer)
    }

    async fn reset_peer(
        &self,
        peer: PeerRef,
        kind: ResetKind,
        reason: Option<String>,
    ) -> Result<PeerStatus, CoreError> {
        let address = peer.address;
        let mut s = self.state();
        s.calls.push(format!(
            "reset {address} {kind:?} {}",
            reason.unwrap_or_default()
        ));
        s.peers
            .get(&address)
            .cloned()
            .ok_or_else(|| not_found(address))
    }

    async fn watch_peers(&self) -> Result<PeerWatch, CoreError> {
        let s = self.state();
        Ok(PeerWatch {
            sequence: s.peer_seq,
            peers: s.peers.values().cloned().collect(),
            updates: s.peer_tx.subscribe(),
        })
    }

    async fn status(&self) -> Result<DaemonStatus, CoreError> {
        let s = self.state();
        Ok(DaemonStatus {
            router_id: ROUTER_ID,
            local_as: LOCAL_AS,
            version: "0.1.0-test".into(),
            uptime_seconds: 3725,
            datastore: DatastoreSync::InSync,
            datastore_detail: String::new(),
            fib: FibSync::InSync,
            fib_detail: String::new(),
            graceful_restart: GracefulRestart::Idle,
            graceful_restart_detail: String::new(),
            peers_configured: s.peers.len() as u32,
            peers_established: s
                .peers
                .values()
                .filter(|p| p.state == SessionState::Established)
                .count() as u32,
            routes: s.best.len() as u64,
            bgp_listen_port: 179,
            bgp_listen_addresses: vec![IpAddr::V4(ROUTER_ID)],
            log_level: s.log_level.clone(),
        })
    }

    async fn set_log_level(&self, filter: String) -> Result<String, CoreError> {
        let mut s = self.state();
        Ok(std::mem::replace(&mut s.log_level, filter))
    }

    async fn effective_config(&self) -> Result<String, CoreError> {
        Ok(format!(
            r#"{{"as":{LOCAL_AS},"router_id":"{ROUTER_ID}","password":"<redacted>"}}"#
        ))
    }

    async fn health(&self) -> Health {
        let s = self.state();
        let mut reasons = Vec::new();
        for p in s.peers.values() {
            if p.state != SessionState::Established {
                reasons.push(format!("peer {} is {}", p.config.address, p.state.name()));
            }
        }
        if s.gr_pending {
            reasons.push("graceful restart pending".into());
        }
        Health {
            live: s.live,
            ready: reasons.is_empty(),
            reasons,
        }
    }
}

/// A running server on a unix socket in a temp dir.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub gobgp: Option<std::net::SocketAddr>,
    pub gobgp_v4: Option<std::net::SocketAddr>,
    pub tcp: Option<std::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tabby_api::ServeError>>>,
}

impl TestServer {
    pub async fn start(core: Arc<TestCore>) -> TestServer {
        Self::start_with(core, |_| {}).await
    }

    pub async fn start_with(core: Arc<TestCore>, tweak: impl FnOnce(&mut ApiConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("run/tabbyd.sock");
        let mut cfg = ApiConfig {
            unix_socket: Some(socket.clone()),
            health_interval: Duration::from_millis(50),
            ..ApiConfig::default()
        };
        tweak(&mut cfg);
        let bound = tabby_api::bind(core, cfg).await.expect("bind API");
        let gobgp = bound.gobgp_addr();
        let gobgp_v4 = bound.gobgp_v4_addr();
        let tcp = bound.tcp_addr();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            dir,
            socket,
            gobgp,
            gobgp_v4,
            tcp,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn channel(&self) -> Channel {
        unix_channel(&self.socket).await
    }

    /// A Peers client connected to this server.
    pub async fn peers_client(&self) -> PeersClient<Channel> {
        PeersClient::new(self.channel().await)
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let r = tokio::time::timeout(Duration::from_secs(5), t).await;
            assert!(
                matches!(r, Ok(Ok(Ok(())))),
                "server did not stop cleanly: {r:?}"
            );
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A tonic channel over a unix socket.
pub async fn unix_channel(path: &FsPath) -> Channel {
    let path = path.to_path_buf();
    Endpoint::from_static("http://tabbyd.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await
        .expect("connect over unix socket")
}

/// Every peer, as ListPeers gives them.
pub async fn list_peers(c: &mut PeersClient<Channel>) -> Vec<pb::Peer> {
    c.list_peers(pb::ListPeersRequest {})
        .await
        .expect("list")
        .into_inner()
        .peers
}

/// One peer, as GetPeer gives it.
pub async fn get_peer(c: &mut PeersClient<Channel>, address: &str) -> pb::Peer {
    c.get_peer(pb::GetPeerRequest {
        address: address.into(),
    })
    .await
    .expect("get")
    .into_inner()
}

/// The first `n` peers of a new WatchPeers stream, each sent as a snapshot
/// event.
pub async fn watch_peers_snapshot(c: &mut PeersClient<Channel>, n: usize) -> Vec<pb::Peer> {
    let mut w = c
        .watch_peers(pb::WatchPeersRequest {})
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event within 10s")
            .expect("stream open")
            .expect("event ok");
        assert_eq!(ev.kind, pb::PeerEventKind::Snapshot as i32);
        seen.push(ev.peer.expect("peer in a snapshot event"));
    }
    seen
}
