//! What `tabbyctl top` shows, folded from the WatchPeers and WatchRoutes
//! streams and the periodic ListPeers/Status poll. No I/O and no clock: every
//! fold takes `now`, so rates and ages are tested with made-up instants.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tabby_proto::v1 as pb;

use crate::render;

/// How many route changes are kept for the "last changes" list.
pub const RECENT_CHANGES: usize = 200;

/// One input to the model, from the feeds (see `feed.rs`).
#[derive(Debug)]
pub enum Msg {
    /// A stream (or the poll) reached the daemon.
    Connected(Feed),
    /// A stream ended or the poll failed; the feed retries.
    Down(Feed, String),
    /// An event of the WatchPeers stream (boxed: a peer is large).
    Peer(Box<pb::PeerEvent>),
    /// An event of the WatchRoutes stream.
    Route(pb::RouteEvent),
    /// A poll's answers: Status, ListPeers and the node's name (from the
    /// effective configuration, when it names one).
    Polled {
        status: pb::StatusResponse,
        peers: Vec<pb::Peer>,
        node: Option<String>,
    },
}

/// The connections `top` keeps to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feed {
    /// WatchPeers.
    Peers,
    /// WatchRoutes.
    Routes,
    /// ListPeers and Status, every interval.
    Poll,
}

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Feed::Peers => "peer watch",
            Feed::Routes => "route watch",
            Feed::Poll => "poll",
        }
    }
}

/// Where one feed stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not connected yet.
    Connecting,
    /// Connected.
    Up,
    /// Lost, with the reason; the feed is retrying.
    Down(String),
}

/// A per-second rate from a monotonically increasing counter: the delta
/// between two samples at least `window` apart. A counter that went back
/// (a session reset) restarts from the new value.
#[derive(Debug, Clone, Default)]
pub struct Rate {
    base: Option<(Instant, u64)>,
    per_second: Option<f64>,
}

impl Rate {
    /// Takes a sample; the rate changes only once `window` has passed since
    /// the previous base sample, so a burst of samples does not give a
    /// noisy rate over a few milliseconds.
    pub fn observe(&mut self, now: Instant, total: u64, window: Duration) {
        let Some((at, old)) = self.base else {
            self.base = Some((now, total));
            return;
        };
        if total < old {
            self.base = Some((now, total));
            self.per_second = None;
            return;
        }
        let dt = now.saturating_duration_since(at);
        if dt.is_zero() || dt < window {
            return;
        }
        self.per_second = Some((total - old) as f64 / dt.as_secs_f64());
        self.base = Some((now, total));
    }

    /// The rate, once two samples far enough apart were seen.
    pub fn per_second(&self) -> Option<f64> {
        self.per_second
    }
}

/// Sessions sort by address (numerically, IPv4 first), then port; a peer
/// whose address does not parse goes last, by its text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    unparsed: bool,
    address: Option<IpAddr>,
    text: String,
    port: u32,
}

impl SessionKey {
    fn of(p: &pb::Peer) -> SessionKey {
        let text = p
            .config
            .as_ref()
            .map_or_else(String::new, |c| c.address.clone());
        let address: Option<IpAddr> = text.parse().ok();
        SessionKey {
            unparsed: address.is_none(),
            address,
            port: p.settings.as_ref().map_or(0, |s| s.port),
            text,
        }
    }
}

/// One BGP session as shown.
#[derive(Debug, Clone)]
pub struct Session {
    /// The peer as last reported.
    pub peer: pb::Peer,
    /// When it was reported (uptime grows from there).
    pub seen_at: Instant,
    /// UPDATE messages received per second.
    pub updates_in: Rate,
    /// UPDATE messages sent per second.
    pub updates_out: Rate,
    /// Seen in the snapshot being received (stale entries are dropped at
    /// its end).
    in_snapshot: bool,
}

impl Session {
    /// Seconds Established at `now`; 0 when not Established.
    pub fn uptime(&self, now: Instant) -> u64 {
        if self.peer.state != pb::SessionState::Established as i32 {
            return 0;
        }
        self.peer
            .uptime_seconds
            .saturating_add(now.saturating_duration_since(self.seen_at).as_secs())
    }
}

/// What happened to a prefix's best route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new or changed best path: its next hop and source.
    Best { next_hop: String, source: String },
    /// No path left.
    Withdrawn,
}

/// One route change from the WatchRoutes stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    /// When it arrived.
    pub at: Instant,
    /// The prefix.
    pub prefix: String,
    /// What changed.
    pub kind: ChangeKind,
}

/// The Loc-RIB's best routes as the route watch tells them.
#[derive(Debug, Default)]
struct Routes {
    best: HashSet<String>,
    ipv4: u64,
    ipv6: u64,
    /// The end of the first snapshot was seen.
    synced: bool,
    changes: u64,
    rate: Rate,
    recent: VecDeque<RouteChange>,
}

impl Routes {
    fn clear(&mut self) {
        self.best.clear();
        self.ipv4 = 0;
        self.ipv6 = 0;
        self.synced = false;
    }

    fn counter(&mut self, prefix: &str) -> &mut u64 {
        if prefix.contains(':') {
            &mut self.ipv6
        } else {
            &mut self.ipv4
        }
    }

    fn insert(&mut self, prefix: &str) {
        if self.best.insert(prefix.to_string()) {
            *self.counter(prefix) += 1;
        }
    }

    fn remove(&mut self, prefix: &str) {
        if self.best.remove(prefix) {
            let c = self.counter(prefix);
            *c = c.saturating_sub(1);
        }
    }

    fn record(&mut self, change: RouteChange) {
        self.changes += 1;
        if self.recent.len() == RECENT_CHANGES {
            self.recent.pop_back();
        }
        self.recent.push_front(change);
    }
}

/// Everything `tabbyctl top` shows.
#[derive(Debug)]
pub struct Top {
    interval: Duration,
    links: BTreeMap<Feed, Link>,
    status: Option<pb::StatusResponse>,
    node: Option<String>,
    sessions: BTreeMap<SessionKey, Session>,
    routes: Routes,
}

impl Top {
    /// An empty view that polls every `interval`.
    pub fn new(interval: Duration) -> Top {
        Top {
            interval,
            links: [Feed::Peers, Feed::Routes, Feed::Poll]
                .into_iter()
                .map(|f| (f, Link::Connecting))
                .collect(),
            status: None,
            node: None,
            sessions: BTreeMap::new(),
            routes: Routes::default(),
        }
    }

    /// Rates compare samples at least this far apart: half the poll
    /// interval, so each poll gives a fresh rate but a watch event arriving
    /// just after a poll does not.
    fn window(&self) -> Duration {
        self.interval / 2
    }

    /// Folds one input in.
    pub fn apply(&mut self, now: Instant, msg: Msg) {
        match msg {
            Msg::Connected(feed) => {
                self.links.insert(feed, Link::Up);
                match feed {
                    // A snapshot follows: entries it does not repeat go at
                    // its end.
                    Feed::Peers => self.start_peer_snapshot(),
                    Feed::Routes => self.routes.clear(),
                    Feed::Poll => {}
                }
            }
            Msg::Down(feed, reason) => {
                self.links.insert(feed, Link::Down(reason));
            }
            Msg::Peer(ev) => self.peer_event(now, *ev),
            Msg::Route(ev) => self.route_event(now, ev),
            Msg::Polled {
                status,
                peers,
                node,
            } => {
                self.links.insert(Feed::Poll, Link::Up);
                self.status = Some(status);
                if node.is_some() {
                    self.node = node;
                }
                let listed: HashSet<SessionKey> = peers.iter().map(SessionKey::of).collect();
                self.sessions.retain(|k, _| listed.contains(k));
                for p in peers {
                    self.upsert(now, p, false);
                }
            }
        }
    }

    /// Samples the route-change counter; called on every redraw tick. The
    /// rate is over a whole interval: changes come in bursts, and a rate
    /// over a few hundred milliseconds would flicker.
    pub fn tick(&mut self, now: Instant) {
        let total = self.routes.changes;
        self.routes.rate.observe(now, total, self.interval);
    }

    fn start_peer_snapshot(&mut self) {
        for s in self.sessions.values_mut() {
            s.in_snapshot = false;
        }
    }

    fn upsert(&mut self, now: Instant, peer: pb::Peer, in_snapshot: bool) {
        let window = self.window();
        let key = SessionKey::of(&peer);
        let counters = peer.counters.unwrap_or_default();
        let s = self.sessions.entry(key).or_insert_with(|| Session {
            peer: peer.clone(),
            seen_at: now,
            updates_in: Rate::default(),
            updates_out: Rate::default(),
            in_snapshot,
        });
        s.updates_in.observe(now, counters.updates_received, window);
        s.updates_out.observe(now, counters.updates_sent, window);
        s.peer = peer;
        s.seen_at = now;
        s.in_snapshot |= in_snapshot;
    }

    fn peer_event(&mut self, now: Instant, ev: pb::PeerEvent) {
        use pb::PeerEventKind as K;
        match K::try_from(ev.kind) {
            Ok(K::Snapshot) => {
                if let Some(p) = ev.peer {
                    self.upsert(now, p, true);
                }
            }
            Ok(K::EndOfSnapshot) => self.sessions.retain(|_, s| s.in_snapshot),
            Ok(K::Added | K::StateChanged) => {
                if let Some(p) = ev.peer {
                    self.upsert(now, p, true);
                }
            }
            Ok(K::Removed) => {
                if let Some(p) = ev.peer {
                    self.sessions.remove(&SessionKey::of(&p));
                }
            }
            Ok(K::Resync) => self.start_peer_snapshot(),
            Ok(K::Unspecified) | Err(_) => {}
        }
    }

    fn route_event(&mut self, now: Instant, ev: pb::RouteEvent) {
        use pb::RouteEventKind as K;
        match K::try_from(ev.kind) {
            Ok(K::Snapshot) if !ev.prefix.is_empty() => self.routes.insert(&ev.prefix),
            Ok(K::EndOfSnapshot) => self.routes.synced = true,
            Ok(K::BestChanged) if !ev.prefix.is_empty() => {
                self.routes.insert(&ev.prefix);
                let (next_hop, source) = ev.best.as_ref().map_or_else(
                    || ("-".to_string(), "-".to_string()),
                    |b| (b.next_hop.clone(), render::source(b)),
                );
                self.routes.record(RouteChange {
                    at: now,
                    prefix: ev.prefix,
                    kind: ChangeKind::Best { next_hop, source },
                });
            }
            Ok(K::Withdrawn) if !ev.prefix.is_empty() => {
                self.routes.remove(&ev.prefix);
                self.routes.record(RouteChange {
                    at: now,
                    prefix: ev.prefix,
                    kind: ChangeKind::Withdrawn,
                });
            }
            Ok(K::Resync) => self.routes.clear(),
            _ => {}
        }
    }

    /// The poll interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The daemon's last Status, once polled.
    pub fn status(&self) -> Option<&pb::StatusResponse> {
        self.status.as_ref()
    }

    /// The node's name, when the daemon's configuration gives one.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// The first feed that is down and why, else whether all are up.
    pub fn link(&self) -> Link {
        if let Some((f, Link::Down(why))) =
            self.links.iter().find(|(_, l)| matches!(l, Link::Down(_)))
        {
            return Link::Down(format!("{}: {why}", f.name()));
        }
        if self.links.values().all(|l| *l == Link::Up) {
            Link::Up
        } else {
            Link::Connecting
        }
    }

    /// Sessions in address order.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Best routes per family: (IPv4, IPv6).
    pub fn best_routes(&self) -> (u64, u64) {
        (self.routes.ipv4, self.routes.ipv6)
    }

    /// Whether the route watch's snapshot is complete.
    pub fn routes_synced(&self) -> bool {
        self.routes.synced
    }

    /// Route changes seen since `top` started (snapshots not counted).
    pub fn route_changes(&self) -> u64 {
        self.routes.changes
    }

    /// Route changes per second.
    pub fn route_change_rate(&self) -> Option<f64> {
        self.routes.rate.per_second()
    }

    /// The last route changes, newest first.
    pub fn recent_changes(&self) -> impl Iterator<Item = &RouteChange> {
        self.routes.recent.iter()
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
