//! The FIB synchroniser actor: desired state in, kernel state out.
//!
//! Level-triggered: the actor keeps the desired routes and a view of the
//! kernel (our routes plus which keys other protocols hold), and for every
//! prefix whose either side changed it plans at most one request. The view
//! is maintained from the event socket only; a request's acknowledgement
//! says whether it failed. Because the kernel queues a change's multicast
//! notification before the requester's acknowledgement, the actor reads the
//! acks, then drains the event socket, then applies the acks: by then every
//! acknowledged change is already in the view.
//!
//! Ownership rule (why no foreign route is ever changed):
//! - creates use `NLM_F_CREATE|NLM_F_EXCL`, which never alters an existing
//!   route: if any route holds the key (prefix, table, tos 0, metric) the
//!   kernel answers EEXIST;
//! - deletes name our protocol, which the kernel matches (fib_table_delete
//!   and ip6_route_del skip routes of another `rtm_protocol`);
//! - `NLM_F_REPLACE` replaces the *first* route with that key whoever owns
//!   it, so it is only sent when the view holds our route on the key and no
//!   foreign one. When a foreign route shares the key we step aside: we
//!   delete our own (by protocol) if it differs and wait until the foreign
//!   route goes away. A notification that leaves the key ambiguous (a
//!   REPLACE seen on a key holding both) triggers a full dump instead of a
//!   guess.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use netlink_packet_core::NLM_F_REPLACE;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::inflight::Inflight;
use crate::socket::{
    NlSocket, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE,
    RTNLGRP_LINK,
};
use crate::types::{FibConfig, FibRoute, FibStats, KernelEvent, NextHopSpec, RouteKind};
use crate::wire::{self, Body, Hop, KernelRoute, OpKind, Parsed, Shape, Target};
use crate::{FibError, learn};

/// Per-prefix maps are hit several times per route; SipHash showed up in
/// profiles, and these keys come from the RIB and the kernel, not from an
/// unauthenticated peer that could aim for collisions.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// `remove` that skips hashing when the map is empty (the usual case for
/// the error and blocked maps, touched once per route on the hot path).
fn remove_if_any<V>(m: &mut HashMap<IpNet, V>, p: &IpNet) {
    if !m.is_empty() {
        m.remove(p);
    }
}

fn remove_if_any_key(m: &mut HashSet<IpNet>, p: &IpNet) {
    if !m.is_empty() {
        m.remove(p);
    }
}

// Work flags per prefix (`FibTask::marks`). Queued-ness is not among them:
// `dirty` may hold a prefix twice (the second visit finds nothing to do), so
// the map stays as small as the in-flight window and its lookups stay in
// cache; with a million queued prefixes a "queued" flag per prefix made
// this lookup the single largest cost.
/// A request for it is outstanding.
const INFLIGHT: u8 = 2;
/// Dirtied while in flight: replanned when the ack comes.
const DEFERRED: u8 = 4;
/// An outside change hit our route: the next request is a restore.
const TOUCHED: u8 = 8;

const RECV_BUF: usize = 256 << 10;
/// Give up repeating an interrupted dump after this many tries and use the
/// last one; the event stream corrects what it missed.
const MAX_DUMP_TRIES: u32 = 8;
/// The longest bulk run before a verifying dump (see `leave_bulk_if_done`).
const MAX_BULK_RUN: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) enum Command {
    Set(Vec<FibRoute>),
    Remove(Vec<IpNet>),
    ReplaceAll(Vec<FibRoute>),
    Converged,
    Stats(oneshot::Sender<FibStats>),
    Sync(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Pending {
    prefix: IpNet,
    op: OpKind,
    /// The metric named in a delete (stale routes may carry an old one).
    metric: u32,
    /// The op undoes someone else's change to our route.
    restore: bool,
    /// What a create or replace asked for (shape and preferred source), so
    /// that in bulk mode the view records what the kernel acknowledged
    /// without looking the route up and resolving it again.
    sent: Option<(Shape, Option<IpAddr>)>,
}

/// What `plan` encoded: the request kind, its metric, and for a create or
/// replace the route sent.
type Planned = (OpKind, u32, Option<(Shape, Option<IpAddr>)>);

/// Who holds a key (prefix at our table and metric) besides us.
#[derive(Debug, Default, Clone, Copy)]
struct Foreign {
    count: u32,
    /// A change we cannot attribute; treat as held until a dump clears it.
    ambiguous: bool,
}

#[derive(Debug)]
struct Link {
    name: String,
    up: bool,
}

/// The actor's state; see the module docs.
#[derive(Debug)]
pub struct FibTask {
    cfg: FibConfig,
    target: Target,
    req: NlSocket,
    events: NlSocket,
    dump: NlSocket,
    rx: mpsc::Receiver<Command>,
    rx_closed: bool,
    events_tx: broadcast::Sender<KernelEvent>,

    desired: HashMap<IpNet, FibRoute>,
    /// Our routes in the kernel at our metric.
    ours: HashMap<IpNet, KernelRoute>,
    /// Our routes in the kernel at another metric (an older configuration);
    /// removed after convergence.
    stale_metric: HashMap<IpNet, Vec<u32>>,
    foreign: HashMap<IpNet, Foreign>,
    /// Prefixes whose kernel route predates this run; untouched until the
    /// RIB converges.
    inherited: HashSet<IpNet>,
    converged: bool,

    dirty: VecDeque<IpNet>,
    /// Per-prefix work flags (`INFLIGHT`, `DEFERRED`, `TOUCHED`), only for
    /// prefixes that have one.
    marks: HashMap<IpNet, u8>,
    inflight: Inflight<Pending>,
    /// (first seq, last seq) of every sent batch, oldest first.
    batches: VecDeque<(u32, u32)>,
    /// Sequence numbers of dump requests (their own socket).
    dump_seq: u32,
    parked: HashMap<IpNet, i32>,
    blocked: HashSet<IpNet>,
    /// The errno last logged per prefix, so a retry storm logs once.
    logged: HashMap<IpNet, i32>,
    /// How many prefixes have logged each errno.
    logged_per_errno: HashMap<i32, u64>,
    need_resync: bool,
    /// Bulk mode: route notifications off, no replaces, view kept from acks,
    /// one verifying dump at the end.
    bulk: bool,
    bulk_since: Instant,
    /// A request of the current bulk run failed: what happens to its
    /// prefix is decided by the verifying dump, so `sync` waits for it.
    bulk_unsettled: bool,
    /// `sync` callers were answered since the last yield.
    answered: bool,
    /// Prefixes whose plan waits for the next dump (replaces and unexplained
    /// EEXIST during a bulk run).
    replan_after_dump: Vec<IpNet>,
    /// Prefixes changed by commands since the queue was last empty; what
    /// decides bulk mode (a resync marks everything, mostly no-ops).
    changed: usize,
    /// Set when a send failed for lack of kernel memory; retried shortly.
    send_backoff: Option<Instant>,
    next_retry: Instant,
    /// When the next periodic verifying dump is due, if configured.
    next_verify: Option<Instant>,

    links: HashMap<u32, Link>,
    names: HashMap<String, u32>,
    learned: HashMap<IpNet, FibRoute>,

    stats: FibStats,
    waiters: Vec<oneshot::Sender<()>>,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
}

impl FibTask {
    pub(crate) async fn open(
        mut cfg: FibConfig,
        rx: mpsc::Receiver<Command>,
        events_tx: broadcast::Sender<KernelEvent>,
    ) -> Result<Self, FibError> {
        // A batch must fit the socket's send buffer (netlink refuses a
        // message larger than sk_sndbuf); at least one request in flight.
        cfg.batch_bytes = cfg.batch_bytes.clamp(4096, 128 << 10);
        cfg.max_in_flight = cfg.max_in_flight.max(1);
        let open = |what: &'static str, size: usize, groups: &[u32]| {
            NlSocket::open(size, groups).map_err(|e| FibError::Socket { what, source: e })
        };
        let req = open("request", cfg.rcvbuf, &[])?;
        let events = open(
            "event",
            cfg.event_rcvbuf.unwrap_or(cfg.rcvbuf),
            &[
                RTNLGRP_LINK,
                RTNLGRP_IPV4_IFADDR,
                RTNLGRP_IPV6_IFADDR,
                RTNLGRP_IPV4_ROUTE,
                RTNLGRP_IPV6_ROUTE,
            ],
        )?;
        let dump = open("dump", 4 << 20, &[])?;
        info!(
            protocol = cfg.protocol,
            table = cfg.table,
            metric = cfg.metric,
            request_rcvbuf = req.rcvbuf,
            event_rcvbuf = events.rcvbuf,
            "fib-sync starting"
        );
        let target = Target {
            protocol: cfg.protocol,
            table: cfg.table,
            metric_v4: cfg.kernel_metric(false),
            metric_v6: cfg.kernel_metric(true),
        };
        let retry = cfg.retry_interval;
        let verify = cfg.verify_interval.filter(|v| !v.is_zero());
        let mut task = Self {
            cfg,
            target,
            req,
            events,
            dump,
            rx,
            rx_closed: false,
            events_tx,
            desired: HashMap::default(),
            ours: HashMap::default(),
            stale_metric: HashMap::default(),
            foreign: HashMap::default(),
            inherited: HashSet::default(),
            converged: false,
            dirty: VecDeque::new(),
            marks: HashMap::default(),
            inflight: Inflight::new(1),
            batches: VecDeque::new(),
            dump_seq: 1,
            parked: HashMap::default(),
            blocked: HashSet::default(),
            logged: HashMap::default(),
            logged_per_errno: HashMap::default(),
            need_resync: false,
            bulk: false,
            bulk_since: Instant::now(),
            bulk_unsettled: false,
            answered: false,
            changed: 0,
            replan_after_dump: Vec::new(),
            send_backoff: None,
            next_retry: Instant::now() + retry,
            next_verify: verify.map(|v| Instant::now() + v),
            links: HashMap::default(),
            names: HashMap::default(),
            learned: HashMap::default(),
            stats: FibStats::default(),
            waiters: Vec::new(),
            recv_buf: Vec::with_capacity(RECV_BUF),
            send_buf: Vec::with_capacity(256 << 10),
        };
        task.resync().await?;
        task.inherited = task.ours.keys().copied().collect();
        task.inherited.extend(task.stale_metric.keys().copied());
        info!(
            inherited = task.inherited.len(),
            "kernel routes of our protocol left as they are until the RIB converges"
        );
        Ok(task)
    }

    /// Runs until every `FibHandle` is dropped. Routes stay in the kernel
    /// when it returns (a restart adopts them).
    pub async fn run(mut self) -> Result<(), FibError> {
        loop {
            if self.need_resync {
                if self.answered {
                    // Let the callers just answered run before a long dump
                    // (on a current-thread runtime they would wait for it).
                    self.answered = false;
                    tokio::task::yield_now().await;
                }
                if let Err(e) = self.resync().await {
                    // Keep the routes and retry: stopping would leave the
                    // FIB unmanaged.
                    warn!(error = %e, "re-reading the kernel table failed; retrying in 1 s");
                    self.need_resync = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            self.enter_bulk_if_worth_it()?;
            self.pump()?;
            self.leave_bulk_if_done()?;
            if self.need_resync {
                continue;
            }
            self.answer_waiters();
            if self.rx_closed && self.inflight.is_empty() {
                debug!("all handles dropped; fib-sync stops, routes stay in the kernel");
                return Ok(());
            }
            let mut wake_at = match self.send_backoff {
                Some(t) => t.min(self.next_retry),
                None => self.next_retry,
            };
            if let Some(v) = self.next_verify {
                wake_at = wake_at.min(v);
            }
            enum Wake {
                Io,
                Cmd(Option<Command>),
                Timer,
            }
            let wake = tokio::select! {
                r = self.req.readable() => { r.map_err(FibError::Io)?; Wake::Io }
                r = self.events.readable() => { r.map_err(FibError::Io)?; Wake::Io }
                c = self.rx.recv(), if !self.rx_closed => Wake::Cmd(c),
                _ = tokio::time::sleep_until(wake_at) => Wake::Timer,
            };
            match wake {
                Wake::Io => {}
                Wake::Cmd(None) => self.rx_closed = true,
                Wake::Cmd(Some(c)) => {
                    self.command(c);
                    // Take what else is queued without waiting, bounded so
                    // acks and events keep flowing under a command flood.
                    for _ in 0..4096 {
                        match self.rx.try_recv() {
                            Ok(c) => self.command(c),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                self.rx_closed = true;
                                break;
                            }
                        }
                    }
                }
                Wake::Timer => self.on_timer(),
            }
            self.drain()?;
        }
    }

    // ----- commands -----------------------------------------------------

    fn command(&mut self, c: Command) {
        match c {
            Command::Set(routes) => {
                // A bulk load into an empty or smaller table: size the map
                // once rather than rehashing a million entries repeatedly.
                self.desired
                    .reserve(routes.len().saturating_sub(self.desired.len()));
                for r in routes {
                    let p = r.prefix;
                    match self.desired.entry(p) {
                        Entry::Occupied(o) if *o.get() == r => continue,
                        Entry::Occupied(mut o) => {
                            o.insert(r);
                        }
                        Entry::Vacant(v) => {
                            v.insert(r);
                        }
                    }
                    remove_if_any(&mut self.parked, &p);
                    self.mark(p);
                    self.changed += 1;
                }
            }
            Command::Remove(prefixes) => {
                for p in prefixes {
                    if self.desired.remove(&p).is_some() {
                        remove_if_any(&mut self.parked, &p);
                        remove_if_any_key(&mut self.blocked, &p);
                        self.mark(p);
                        self.changed += 1;
                    }
                }
            }
            Command::ReplaceAll(routes) => {
                let new: HashMap<IpNet, FibRoute> =
                    routes.into_iter().map(|r| (r.prefix, r)).collect();
                let old = std::mem::replace(&mut self.desired, new);
                for p in old.keys() {
                    if !self.desired.contains_key(p) {
                        self.mark(*p);
                        self.changed += 1;
                    }
                }
                let changed: Vec<IpNet> = self
                    .desired
                    .iter()
                    .filter(|(p, r)| old.get(p) != Some(r))
                    .map(|(p, _)| *p)
                    .collect();
                self.changed += changed.len();
                for p in changed {
                    self.parked.remove(&p);
                    self.mark(p);
                }
                self.set_converged();
            }
            Command::Converged => self.set_converged(),
            Command::Stats(tx) => {
                let _ = tx.send(self.snapshot());
            }
            Command::Sync(tx) => self.waiters.push(tx),
        }
    }

    fn set_converged(&mut self) {
        if self.converged {
            return;
        }
        self.converged = true;
        let inherited = std::mem::take(&mut self.inherited);
        info!(
            inherited = inherited.len(),
            desired = self.desired.len(),
            "RIB converged: reconciling inherited kernel routes"
        );
        for p in inherited {
            self.mark(p);
        }
    }

    fn snapshot(&self) -> FibStats {
        let mut s = self.stats.clone();
        s.desired = self.desired.len();
        s.installed = self.ours.len();
        s.blocked_by_foreign = self.blocked.len();
        s.parked = self.parked.len();
        s.converged = self.converged;
        s
    }

    fn answer_waiters(&mut self) {
        if self.waiters.is_empty()
            || !self.dirty.is_empty()
            || !self.inflight.is_empty()
            || self.need_resync
        {
            return;
        }
        for w in self.waiters.drain(..) {
            let _ = w.send(());
        }
        self.answered = true;
    }

    fn mark(&mut self, p: IpNet) {
        self.dirty.push_back(p);
    }

    fn flags(&self, p: &IpNet) -> u8 {
        self.marks.get(p).copied().unwrap_or(0)
    }

    /// Sets and clears flags of `p`, dropping the entry when none is left.
    fn set_flags(&mut self, p: IpNet, set: u8, clear: u8) {
        if set == 0 {
            if let Some(f) = self.marks.get_mut(&p) {
                *f &= !clear;
                if *f == 0 {
                    self.marks.remove(&p);
                }
            }
            return;
        }
        let f = self.marks.entry(p).or_insert(0);
        *f = (*f | set) & !clear;
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.send_backoff.is_some_and(|t| t <= now) {
            self.send_backoff = None;
        }
        if self.next_retry <= now {
            self.next_retry = now + self.cfg.retry_interval;
            self.unpark("retry timer");
        }
        if let (Some(due), Some(every)) = (self.next_verify, self.cfg.verify_interval)
            && due <= now
        {
            // A safety net for a view that drifted without an overrun
            // (see the module docs on ambiguous notifications).
            self.next_verify = Some(now + every);
            self.need_resync = true;
        }
    }

    fn unpark(&mut self, why: &str) {
        if self.parked.is_empty() {
            return;
        }
        debug!(count = self.parked.len(), why, "retrying parked routes");
        let parked: Vec<IpNet> = self.parked.drain().map(|(p, _)| p).collect();
        for p in parked {
            self.mark(p);
        }
    }

    // ----- bulk mode -------------------------------------------------------

    fn enter_bulk_if_worth_it(&mut self) -> Result<(), FibError> {
        let threshold = self.cfg.bulk_threshold;
        if self.dirty.is_empty() {
            self.changed = 0;
        }
        if self.bulk || threshold == 0 || self.changed < threshold || self.need_resync {
            return Ok(());
        }
        self.events
            .set_groups(&[RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE], false)
            .map_err(FibError::Io)?;
        self.bulk = true;
        self.bulk_since = Instant::now();
        // The view follows our acks during the run (`assume_done`): room
        // for every wanted route up front instead of repeated rehashing.
        self.ours
            .reserve(self.desired.len().saturating_sub(self.ours.len()));
        self.stats.bulk_runs += 1;
        info!(
            backlog = self.dirty.len(),
            "bulk programming: route notifications paused, table verified by a dump afterwards"
        );
        Ok(())
    }

    fn leave_bulk_if_done(&mut self) -> Result<(), FibError> {
        if !self.bulk || !self.inflight.is_empty() {
            return Ok(());
        }
        // A never-ending stream must not starve replaces and restores:
        // verify and replan at least this often.
        if !self.dirty.is_empty() && self.bulk_since.elapsed() < MAX_BULK_RUN {
            return Ok(());
        }
        // The changes are handled; the replanning after the dump must not
        // count as a new backlog.
        self.changed = 0;
        // Listen first, then dump: a change after the dump's snapshot is
        // then always seen as an event.
        self.events
            .set_groups(&[RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE], true)
            .map_err(FibError::Io)?;
        self.bulk = false;
        // Every request of the run is acknowledged. If none failed and no
        // replace waits for the dump, the queued changes are in the kernel
        // as asked: `sync` callers need not wait for the verification,
        // which only looks for changes others made meanwhile (and repairs
        // them as any later change is repaired).
        if self.replan_after_dump.is_empty() && !self.bulk_unsettled {
            self.answer_waiters();
        }
        self.bulk_unsettled = false;
        self.need_resync = true;
        debug!("bulk programming done; verifying the table");
        Ok(())
    }

    /// In bulk mode the view follows our acknowledged requests: the kernel
    /// now holds what was sent (the desired route may have moved on since;
    /// such a prefix is deferred and replanned against this view).
    fn assume_done(&mut self, p: Pending) {
        if p.op == OpKind::Delete {
            self.forget_ours(p.prefix, p.metric);
            return;
        }
        let Some((shape, pref_src)) = p.sent else {
            return;
        };
        let route = KernelRoute {
            prefix: p.prefix,
            table: self.cfg.table,
            protocol: self.cfg.protocol,
            metric: p.metric,
            tos: 0,
            shape,
            pref_src,
        };
        self.ours.insert(p.prefix, route);
    }

    // ----- planning and sending ------------------------------------------

    fn metric_for(&self, p: &IpNet) -> u32 {
        match p {
            IpNet::V4(_) => self.target.metric_v4,
            IpNet::V6(_) => self.target.metric_v6,
        }
    }

    /// Resolves device names to interface indexes.
    fn resolve(&self, route: &FibRoute) -> Result<Vec<Hop>, i32> {
        match &route.kind {
            RouteKind::Blackhole => Ok(Vec::new()),
            RouteKind::Unicast(hops) => {
                let mut out = Vec::with_capacity(hops.len());
                for h in hops {
                    let oif = match &h.device {
                        None => 0,
                        Some(name) => *self.names.get(name).ok_or(libc::ENODEV)?,
                    };
                    out.push(Hop {
                        gateway: Some(h.gateway),
                        oif,
                        onlink: h.onlink,
                        weight: if hops.len() > 1 { h.weight } else { 1 },
                    });
                }
                out.sort_by(|a, b| a.gateway.cmp(&b.gateway).then(a.oif.cmp(&b.oif)));
                Ok(out)
            }
        }
    }

    /// `matches` on the route as given, without resolving devices into a
    /// new vector. Desired next hops are sorted by gateway (see `validate`)
    /// as the kernel's are; with a gateway repeated over several devices the
    /// two orders can differ, so that case goes through `matches`.
    fn matches_spec(&self, want: &FibRoute, have: &KernelRoute) -> bool {
        if want.pref_src != have.pref_src || have.tos != 0 {
            return false;
        }
        match (&want.kind, &have.shape) {
            (RouteKind::Blackhole, Shape::Blackhole) => true,
            (RouteKind::Unicast(w), Shape::Unicast(k)) => {
                if w.len() != k.len() {
                    return false;
                }
                if w.windows(2).any(|p| p[0].gateway == p[1].gateway) {
                    return self
                        .resolve(want)
                        .is_ok_and(|hops| self.matches(want, &hops, have));
                }
                let multi = w.len() > 1;
                w.iter().zip(k).all(|(w, h)| {
                    Some(w.gateway) == h.gateway
                        && w.onlink == h.onlink
                        && w.device
                            .as_ref()
                            .is_none_or(|d| self.names.get(d) == Some(&h.oif))
                        && (!multi || w.weight == h.weight)
                })
            }
            _ => false,
        }
    }

    /// Whether the kernel's route already does what we want.
    fn matches(&self, want: &FibRoute, hops: &[Hop], have: &KernelRoute) -> bool {
        if want.pref_src != have.pref_src || have.tos != 0 {
            return false;
        }
        match (&want.kind, &have.shape) {
            (RouteKind::Blackhole, Shape::Blackhole) => true,
            (RouteKind::Unicast(_), Shape::Unicast(k)) => {
                if k.len() != hops.len() {
                    return false;
                }
                // Both sides are sorted by gateway, then interface.
                let multi = hops.len() > 1;
                hops.iter().zip(k).all(|(w, h)| {
                    w.gateway == h.gateway
                        && w.onlink == h.onlink
                        && (w.oif == 0 || w.oif == h.oif)
                        && (!multi || w.weight == h.weight)
                })
            }
            _ => false,
        }
    }

    /// Encodes at most one request for `p` into `buf`; `None` when nothing
    /// is to be done now.
    fn plan(&mut self, p: IpNet, buf: &mut Vec<u8>, seq: u32) -> Option<Planned> {
        if !self.converged && self.inherited.contains(&p) {
            return None;
        }
        let t = self.target;
        if self.converged
            && let Some(&m) = self.stale_metric.get(&p).and_then(|v| v.first())
        {
            wire::push_request(buf, seq, OpKind::Delete, &t, &p, Body::Delete(m));
            return Some((OpKind::Delete, m, None));
        }
        let metric = self.metric_for(&p);
        let foreign = self
            .foreign
            .get(&p)
            .is_some_and(|f| f.count > 0 || f.ambiguous);
        let have = self.ours.get(&p);
        let Some(want) = self.desired.get(&p) else {
            remove_if_any_key(&mut self.blocked, &p);
            have?;
            wire::push_request(buf, seq, OpKind::Delete, &t, &p, Body::Delete(metric));
            return Some((OpKind::Delete, metric, None));
        };
        if self.parked.contains_key(&p) {
            return None;
        }
        // The common case (nothing to do) without allocating resolved hops.
        if !foreign && have.is_some_and(|h| self.matches_spec(want, h)) {
            remove_if_any_key(&mut self.blocked, &p);
            return None;
        }
        let hops = match self.resolve(want) {
            Ok(h) => h,
            Err(errno) => {
                self.park(p, errno, "device not found");
                return None;
            }
        };
        let op = match have {
            Some(have) if self.matches(want, &hops, have) => None,
            // Step aside: REPLACE could hit the foreign route.
            Some(_) if foreign => Some(OpKind::Delete),
            // REPLACE needs a current view of foreign routes; the dump that
            // ends bulk mode replans this prefix.
            Some(_) if self.bulk => {
                self.replan_after_dump.push(p);
                None
            }
            Some(_) => Some(OpKind::Replace),
            None if foreign => None,
            None => Some(OpKind::Create),
        };
        if foreign {
            if self.blocked.insert(p) {
                debug!(prefix = %p, "key held by another protocol's route; not installing");
            }
        } else {
            remove_if_any_key(&mut self.blocked, &p);
        }
        match op? {
            OpKind::Delete => {
                wire::push_request(buf, seq, OpKind::Delete, &t, &p, Body::Delete(metric));
                Some((OpKind::Delete, metric, None))
            }
            op => {
                wire::push_request(buf, seq, op, &t, &p, Body::Route(want, &hops));
                let shape = match want.kind {
                    RouteKind::Blackhole => Shape::Blackhole,
                    RouteKind::Unicast(_) => Shape::Unicast(hops),
                };
                Some((op, metric, Some((shape, want.pref_src))))
            }
        }
    }

    fn pump(&mut self) -> Result<(), FibError> {
        if self.need_resync || self.send_backoff.is_some() {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.send_buf);
        buf.clear();
        let mut first: Option<u32> = None;
        let mut last_at = 0usize;
        let mut result = Ok(());
        while self.inflight.len() < self.cfg.max_in_flight {
            let Some(p) = self.dirty.pop_front() else {
                break;
            };
            let flags = self.flags(&p);
            if flags & INFLIGHT != 0 {
                self.set_flags(p, DEFERRED, 0);
                continue;
            }
            let at = buf.len();
            let Some((op, metric, sent)) = self.plan(p, &mut buf, self.inflight.next_seq()) else {
                if flags & TOUCHED != 0 {
                    self.set_flags(p, 0, TOUCHED);
                }
                continue;
            };
            last_at = at;
            let seq = self.inflight.push(Pending {
                prefix: p,
                op,
                metric,
                restore: flags & TOUCHED != 0,
                sent,
            });
            self.set_flags(p, INFLIGHT, TOUCHED);
            if first.is_none() {
                first = Some(seq);
            }
            if buf.len() >= self.cfg.batch_bytes {
                if let Some(f) = first.take() {
                    result = self.flush(&mut buf, f, seq, last_at);
                }
                buf.clear();
                if result.is_err() || self.send_backoff.is_some() {
                    break;
                }
            }
        }
        if let Some(f) = first
            && result.is_ok()
            && !buf.is_empty()
        {
            let last = self.inflight.next_seq().wrapping_sub(1);
            result = self.flush(&mut buf, f, last, last_at);
        }
        buf.clear();
        self.send_buf = buf;
        result
    }

    fn next_dump_seq(&mut self) -> u32 {
        self.dump_seq = self.dump_seq.wrapping_add(1);
        self.dump_seq
    }

    /// Sends one batch; only its last request asks for an ack, earlier ones
    /// report only failures (the kernel acks errors regardless of
    /// `NLM_F_ACK`), so success is "no error before the batch's ack".
    fn flush(
        &mut self,
        buf: &mut [u8],
        first: u32,
        last: u32,
        last_at: usize,
    ) -> Result<(), FibError> {
        wire::set_ack(buf, last_at);
        match self.req.send(buf) {
            Ok(()) => {
                self.batches.push_back((first, last));
                Ok(())
            }
            Err(e) => {
                // Nothing of the batch was processed: requeue it.
                let mut s = first;
                loop {
                    if let Some(p) = self.inflight.remove(s) {
                        let touched = if p.restore { TOUCHED } else { 0 };
                        self.set_flags(p.prefix, touched, INFLIGHT | DEFERRED);
                        self.mark(p.prefix);
                    }
                    if s == last {
                        break;
                    }
                    s = s.wrapping_add(1);
                }
                let errno = e.raw_os_error().unwrap_or(0);
                *self.stats.errors.entry(errno).or_default() += 1;
                if errno == libc::EBADF {
                    return Err(FibError::Io(e));
                }
                // ENOBUFS/ENOMEM: the kernel is short of memory; anything
                // else is retried too, more slowly, rather than stopping
                // route programming altogether.
                let wait = if matches!(errno, libc::ENOBUFS | libc::ENOMEM | libc::EAGAIN) {
                    Duration::from_millis(50)
                } else {
                    Duration::from_secs(1)
                };
                warn!(error = %e, ?wait, "netlink send failed; batch requeued");
                self.send_backoff = Some(Instant::now() + wait);
                Ok(())
            }
        }
    }

    // ----- receiving -------------------------------------------------------

    /// Reads acks, then events, then applies the acks (see module docs).
    fn drain(&mut self) -> Result<(), FibError> {
        let mut acks: Vec<(u32, i32)> = Vec::new();
        let mut lost_acks = false;
        let mut buf = std::mem::take(&mut self.recv_buf);
        loop {
            match self.req.try_recv(&mut buf) {
                Ok(None) => break,
                Ok(Some(_)) => wire::for_each_message(&buf, |_, _, m| {
                    if let Ok(Parsed::Error { seq, errno }) = m {
                        acks.push((seq, errno));
                    }
                }),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Failures were dropped: we cannot tell which requests
                    // worked, so the view is rebuilt and everything replanned.
                    warn!("request socket overrun; some failures were lost; resyncing");
                    *self.stats.errors.entry(libc::ENOBUFS).or_default() += 1;
                    lost_acks = true;
                }
                Err(e) => {
                    self.recv_buf = buf;
                    return Err(FibError::Io(e));
                }
            }
        }
        self.recv_buf = buf;
        self.drain_events()?;
        for (seq, errno) in acks {
            self.on_ack(seq, errno);
        }
        if lost_acks {
            self.abandon_inflight();
            self.need_resync = true;
        }
        Ok(())
    }

    fn abandon_inflight(&mut self) {
        for p in self.inflight.drain() {
            self.set_flags(p.prefix, 0, INFLIGHT | DEFERRED);
            self.mark(p.prefix);
        }
        self.batches.clear();
    }

    fn on_ack(&mut self, seq: u32, errno: i32) {
        if (errno != 0 || self.batches.front().is_none_or(|b| b.1 != seq))
            && let Some(p) = self.inflight.remove(seq)
        {
            self.complete(p, errno);
        }
        // The batch's ack (or the failure of its last request) closes it:
        // requests of the batch with no failure seen succeeded.
        if let Some(&(first, last)) = self.batches.front()
            && seq == last
        {
            self.batches.pop_front();
            let mut s = first;
            loop {
                if let Some(p) = self.inflight.remove(s) {
                    self.complete(p, 0);
                }
                if s == last {
                    break;
                }
                s = s.wrapping_add(1);
            }
        }
    }

    fn complete(&mut self, p: Pending, errno: i32) {
        let prefix = p.prefix;
        if !self.inherited.is_empty() {
            self.inherited.remove(&prefix);
        }
        let deferred = self.flags(&prefix) & DEFERRED != 0;
        self.set_flags(prefix, 0, INFLIGHT | DEFERRED);
        if deferred {
            self.mark(prefix);
        }
        if errno == 0 {
            match p.op {
                OpKind::Create => self.stats.installs += 1,
                OpKind::Replace => self.stats.replaces += 1,
                OpKind::Delete => self.stats.deletes += 1,
            }
            if p.restore {
                self.stats.restores += 1;
            }
            if self.bulk {
                self.assume_done(p);
            }
            remove_if_any(&mut self.logged, &prefix);
            return;
        }
        *self.stats.errors.entry(errno).or_default() += 1;
        if self.bulk {
            self.bulk_unsettled = true;
        }
        match (p.op, errno) {
            (OpKind::Delete, libc::ENOENT | libc::ESRCH) => {
                // Already gone: the goal of a delete.
                self.stats.deletes += 1;
                self.forget_ours(prefix, p.metric);
                self.mark(prefix);
            }
            (OpKind::Replace, libc::ENOENT | libc::ESRCH) => {
                // Our route vanished under us; create it instead.
                self.forget_ours(prefix, p.metric);
                self.mark(prefix);
            }
            (OpKind::Create, libc::EEXIST) if self.bulk => {
                // The dump that ends bulk mode shows who holds the key.
                self.log_once(
                    prefix,
                    errno,
                    "create met an existing route; checked after the bulk run",
                );
            }
            (OpKind::Create, libc::EEXIST) => {
                // The view is current (events are drained before acks), so
                // if it shows neither our route nor a foreign one on the key,
                // something we never saw holds it: rebuild the view.
                let ours = self.ours.contains_key(&prefix);
                let foreign = self.foreign.get(&prefix).is_some_and(|f| f.count > 0);
                if ours || foreign {
                    self.mark(prefix);
                } else if self.logged.get(&prefix) == Some(&libc::EEXIST) {
                    self.park(prefix, errno, "key held by a route we cannot see");
                } else {
                    self.log_once(prefix, errno, "create met an unknown route; resyncing");
                    self.need_resync = true;
                    self.mark(prefix);
                }
            }
            _ => self.park(prefix, errno, "kernel refused the route; will retry"),
        }
    }

    fn forget_ours(&mut self, prefix: IpNet, metric: u32) {
        if metric == self.metric_for(&prefix) {
            self.ours.remove(&prefix);
        } else if let Some(v) = self.stale_metric.get_mut(&prefix) {
            v.retain(|m| *m != metric);
            if v.is_empty() {
                self.stale_metric.remove(&prefix);
            }
        }
    }

    /// Logs a failure once per prefix and errno, and per errno only the
    /// first few prefixes and then every 10 000th: a million routes refused
    /// for one reason (say EPERM without CAP_NET_ADMIN) is one story, not a
    /// million lines. `stats().errors` has the exact counts.
    fn log_once(&mut self, prefix: IpNet, errno: i32, what: &str) {
        if self.logged.insert(prefix, errno) == Some(errno) {
            return;
        }
        let n = self.logged_per_errno.entry(errno).or_default();
        *n += 1;
        let err = io::Error::from_raw_os_error(errno);
        if *n <= 5 {
            warn!(%prefix, errno, error = %err, "{what}");
        } else if (*n).is_multiple_of(10_000) {
            warn!(errno, error = %err, prefixes = *n, "{what} (repeated for many prefixes; see stats)");
        }
    }

    fn park(&mut self, prefix: IpNet, errno: i32, what: &str) {
        self.log_once(prefix, errno, what);
        if errno == libc::ENODEV && !self.parked.contains_key(&prefix) {
            *self.stats.errors.entry(errno).or_default() += 1;
        }
        self.parked.insert(prefix, errno);
    }

    fn drain_events(&mut self) -> Result<(), FibError> {
        let mut buf = std::mem::take(&mut self.recv_buf);
        let mut parsed: Vec<(u16, Parsed)> = Vec::new();
        loop {
            match self.events.try_recv(&mut buf) {
                Ok(None) => break,
                Ok(Some(_)) => {
                    wire::for_each_message(&buf, |flags, _, m| match m {
                        Ok(m) => parsed.push((flags, m)),
                        Err(e) => debug!(error = %e, "undecodable kernel event ignored"),
                    });
                    for (flags, m) in parsed.drain(..) {
                        self.on_event(flags, m);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Events were lost: only a dump can tell what changed.
                    warn!("event socket overrun; resyncing from a full dump");
                    *self.stats.errors.entry(libc::ENOBUFS).or_default() += 1;
                    self.need_resync = true;
                }
                Err(e) => {
                    self.recv_buf = buf;
                    return Err(FibError::Io(e));
                }
            }
        }
        self.recv_buf = buf;
        Ok(())
    }

    fn on_event(&mut self, flags: u16, m: Parsed) {
        match m {
            Parsed::NewRoute(r) => self.on_route(r, true, flags & NLM_F_REPLACE != 0),
            Parsed::DelRoute(r) => self.on_route(r, false, false),
            Parsed::Link {
                index,
                name,
                up,
                removed,
            } => self.on_link(index, name, up, removed),
            Parsed::Addr {
                index,
                address,
                removed,
            } => {
                let ev = if removed {
                    KernelEvent::AddressRemoved { index, address }
                } else {
                    self.unpark("address added");
                    KernelEvent::AddressAdded { index, address }
                };
                let _ = self.events_tx.send(ev);
            }
            _ => {}
        }
    }

    fn on_link(&mut self, index: u32, name: Option<String>, up: bool, removed: bool) {
        let old = self.links.get(&index).map(|l| (l.name.clone(), l.up));
        if removed {
            if let Some((name, _)) = old {
                self.links.remove(&index);
                self.names.remove(&name);
                let _ = self
                    .events_tx
                    .send(KernelEvent::LinkRemoved { index, name });
                // The kernel drops IPv4 routes through a vanished or downed
                // device without RTM_DELROUTE: re-read the table.
                self.need_resync = true;
            }
            return;
        }
        let name = match name.or_else(|| old.as_ref().map(|o| o.0.clone())) {
            Some(n) => n,
            None => return,
        };
        if let Some((old_name, _)) = &old
            && *old_name != name
        {
            self.names.remove(old_name);
        }
        let changed = old.as_ref().is_none_or(|o| o.1 != up || o.0 != name);
        self.names.insert(name.clone(), index);
        self.links.insert(
            index,
            Link {
                name: name.clone(),
                up,
            },
        );
        if changed {
            if old.is_some() {
                self.need_resync = true;
            }
            if up {
                self.unpark("link up");
            }
            let _ = self.events_tx.send(KernelEvent::Link { index, name, up });
        }
    }

    fn on_route(&mut self, r: KernelRoute, added: bool, replace: bool) {
        if r.table != self.cfg.table {
            return;
        }
        let p = r.prefix;
        if r.protocol == self.cfg.protocol {
            let our_metric = self.metric_for(&p);
            if r.metric == our_metric && r.tos == 0 {
                if replace && self.foreign.get(&p).is_some_and(|f| f.count > 0) {
                    // Which route did this replace, ours or theirs?
                    self.foreign.entry(p).or_default().ambiguous = true;
                    self.need_resync = true;
                }
                let before = self.ours.get(&p);
                // A change to our route that no request of ours explains.
                let outside = self.flags(&p) & INFLIGHT == 0
                    && self.desired.contains_key(&p)
                    && if added {
                        before != Some(&r)
                    } else {
                        before.is_some()
                    };
                if added {
                    self.ours.insert(p, r);
                } else {
                    self.ours.remove(&p);
                }
                if outside && self.converged_or_fresh(&p) {
                    self.set_flags(p, TOUCHED, 0);
                }
                self.mark(p);
            } else {
                let v = self.stale_metric.entry(p).or_default();
                if added {
                    if !v.contains(&r.metric) {
                        v.push(r.metric);
                    }
                } else {
                    v.retain(|m| *m != r.metric);
                    if v.is_empty() {
                        self.stale_metric.remove(&p);
                    }
                }
                self.mark(p);
            }
            return;
        }
        self.maybe_learn(&r, added);
        if r.metric != self.metric_for(&p) || r.tos != 0 {
            return;
        }
        let f = self.foreign.entry(p).or_default();
        if added {
            if replace {
                if self.ours.contains_key(&p) && f.count == 0 {
                    // A foreign REPLACE took over our route's key.
                    self.ours.remove(&p);
                    f.count = 1;
                } else if f.count == 0 {
                    f.count = 1;
                } else if self.ours.contains_key(&p) {
                    f.ambiguous = true;
                    self.need_resync = true;
                }
            } else {
                f.count += 1;
            }
        } else {
            f.count = f.count.saturating_sub(1);
        }
        if f.count == 0 && !f.ambiguous {
            self.foreign.remove(&p);
        }
        if self.desired.contains_key(&p) || self.ours.contains_key(&p) {
            self.mark(p);
        }
    }

    fn converged_or_fresh(&self, p: &IpNet) -> bool {
        self.converged || !self.inherited.contains(p)
    }

    fn maybe_learn(&mut self, r: &KernelRoute, added: bool) {
        let Some(filter) = &self.cfg.learn else {
            return;
        };
        let dev = |oif: u32| self.links.get(&oif).map(|l| l.name.as_str());
        let p = r.prefix;
        if added && learn::accepts(filter, r, dev) {
            if let Some(route) = learn::to_fib_route(r, dev)
                && self.learned.get(&p) != Some(&route)
            {
                self.learned.insert(p, route.clone());
                let _ = self.events_tx.send(KernelEvent::Learned(route));
            }
        } else if !added && learn::accepts(filter, r, dev) && self.learned.remove(&p).is_some() {
            let _ = self.events_tx.send(KernelEvent::Unlearned(p));
        }
    }

    // ----- dumps -------------------------------------------------------------

    /// Rebuilds the view from dumps of links and both families' routes, then
    /// replans every prefix we know of.
    async fn resync(&mut self) -> Result<(), FibError> {
        // Everything queued on the event socket predates the dump, which
        // supersedes it; what arrives during the dump is applied after it,
        // in order, and only moves the view forward.
        let mut buf = std::mem::take(&mut self.recv_buf);
        loop {
            match self.events.try_recv(&mut buf) {
                Ok(None) => break,
                Ok(Some(_)) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) => {
                    self.recv_buf = buf;
                    return Err(FibError::Io(e));
                }
            }
        }
        self.recv_buf = buf;
        self.stats.resyncs += 1;
        self.need_resync = false;

        let (links, _) = self.dump_until_stable(DumpKind::Links).await?;
        self.links.clear();
        self.names.clear();
        for m in links {
            if let Parsed::Link {
                index,
                name: Some(name),
                up,
                ..
            } = m
            {
                self.names.insert(name.clone(), index);
                self.links.insert(index, Link { name, up });
            }
        }
        let (mut routes, clean4) = self
            .dump_until_stable(DumpKind::Routes { v6: false })
            .await?;
        let (routes6, clean6) = self
            .dump_until_stable(DumpKind::Routes { v6: true })
            .await?;
        routes.extend(routes6);

        // Our routes are updated in place rather than rebuilt: after a bulk
        // run of a million routes the view already holds nearly all of
        // them, and a rebuild costs a second map and a comparison per route.
        let old_len = self.ours.len();
        let mut hits = 0usize;
        let mut repeated = !(clean4 && clean6);
        let mut last_ours: Option<IpNet> = None;
        let mut seen: Vec<IpNet> = Vec::with_capacity(old_len);
        let mut changed: Vec<IpNet> = Vec::new();
        let old_stale = std::mem::take(&mut self.stale_metric);
        let old_foreign = std::mem::take(&mut self.foreign);
        let learned_before = std::mem::take(&mut self.learned);
        for m in routes {
            if let Parsed::NewRoute(r) = m {
                if r.table != self.cfg.table {
                    continue;
                }
                let p = r.prefix;
                let metric = self.metric_for(&p);
                if r.protocol == self.cfg.protocol {
                    if r.metric == metric && r.tos == 0 {
                        // A clean dump lists a key's routes next to each
                        // other, so a repeat of our key shows up here.
                        repeated |= last_ours == Some(p);
                        last_ours = Some(p);
                        seen.push(p);
                        match self.ours.get_mut(&p) {
                            Some(old) => {
                                hits += 1;
                                if !old.requested_as(&r) {
                                    changed.push(p);
                                }
                                *old = r;
                            }
                            None => {
                                self.ours.insert(p, r);
                                changed.push(p);
                            }
                        }
                    } else {
                        self.stale_metric.entry(p).or_default().push(r.metric);
                    }
                } else {
                    self.maybe_learn(&r, true);
                    if r.metric == metric && r.tos == 0 {
                        self.foreign.entry(p).or_default().count += 1;
                    }
                }
            }
        }
        // Our routes the dump no longer shows. Each dumped key hit at most
        // one old entry, so when every old entry was hit none is missing.
        let mut gone: Vec<IpNet> = Vec::new();
        if repeated || hits != old_len {
            let seen: HashSet<IpNet> = seen.into_iter().collect();
            gone.extend(self.ours.keys().filter(|p| !seen.contains(*p)));
            for p in &gone {
                self.ours.remove(p);
            }
        }
        for p in learned_before.keys() {
            if !self.learned.contains_key(p) {
                let _ = self.events_tx.send(KernelEvent::Unlearned(*p));
            }
        }
        // Replan only what the dump shows differently from the view the
        // earlier plans were made on, plus what was put off for a dump:
        // at a million routes a full replan costs more than the dump.
        let mut todo = std::mem::take(&mut self.replan_after_dump);
        // A route that differs from the old view but already is what we
        // want needs nothing (after a bulk run the view held our requests,
        // the dump holds the kernel's spelling of them).
        todo.extend(changed.into_iter().filter(|p| {
            let settled = self.ours.get(p).is_some_and(|r| {
                self.desired.get(p).is_some_and(|w| self.matches_spec(w, r))
                    && !self.foreign.contains_key(p)
            });
            !settled
        }));
        todo.extend(gone);
        todo.extend(
            self.stale_metric
                .iter()
                .filter(|(p, m)| old_stale.get(*p) != Some(*m))
                .map(|(p, _)| *p),
        );
        todo.extend(
            old_stale
                .keys()
                .filter(|p| !self.stale_metric.contains_key(*p)),
        );
        todo.extend(
            self.foreign
                .iter()
                .filter(|(p, f)| {
                    old_foreign
                        .get(*p)
                        .is_none_or(|o| o.count != f.count || o.ambiguous)
                })
                .map(|(p, _)| *p),
        );
        todo.extend(
            old_foreign
                .keys()
                .filter(|p| !self.foreign.contains_key(*p)),
        );
        for p in todo {
            self.mark(p);
        }
        // A resync is a fresh look: parked routes get another try.
        self.unpark("resync");
        let _ = self.events_tx.send(KernelEvent::Resynced);
        debug!(
            ours = self.ours.len(),
            foreign_keys = self.foreign.len(),
            links = self.links.len(),
            "kernel view rebuilt"
        );
        Ok(())
    }

    /// The dump's messages, and whether the one returned was complete
    /// (false after `MAX_DUMP_TRIES` interrupted ones).
    async fn dump_until_stable(&mut self, kind: DumpKind) -> Result<(Vec<Parsed>, bool), FibError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let (out, interrupted) = self.dump_once(kind).await?;
            if !interrupted {
                return Ok((out, true));
            }
            // NLM_F_DUMP_INTR: the table changed mid-dump, so the dump may
            // miss or duplicate entries; deleting on its word could remove
            // a valid route.
            self.stats.dump_retries += 1;
            if tries >= MAX_DUMP_TRIES {
                warn!(
                    tries,
                    "kernel dump kept being interrupted; using the last one"
                );
                return Ok((out, false));
            }
        }
    }

    async fn dump_once(&mut self, kind: DumpKind) -> Result<(Vec<Parsed>, bool), FibError> {
        let seq = self.next_dump_seq();
        let mut req = Vec::with_capacity(64);
        match kind {
            DumpKind::Links => wire::dump_links(&mut req, seq),
            DumpKind::Routes { v6 } => wire::dump_routes(&mut req, seq, v6, self.cfg.table),
        }
        self.dump.send(&req).map_err(FibError::Io)?;
        let mut dump = wire::Dump::new(seq);
        if let DumpKind::Routes { .. } = kind {
            // Mostly our routes: one allocation instead of a doubling series.
            dump.out.reserve(self.ours.len() + 64);
        }
        let mut buf = Vec::with_capacity(RECV_BUF);
        while !dump.done {
            match self.dump.try_recv(&mut buf).map_err(FibError::Io)? {
                None => self.dump.readable().await.map_err(FibError::Io)?,
                Some(_) => dump.feed(&buf),
            }
        }
        if let Some(errno) = dump.failure {
            return Err(FibError::Io(io::Error::from_raw_os_error(errno)));
        }
        Ok((dump.out, dump.interrupted))
    }
}

#[derive(Debug, Clone, Copy)]
enum DumpKind {
    Links,
    Routes { v6: bool },
}

/// Checks a route before it is queued, so a bad one is refused at `set`.
pub(crate) fn validate(route: &FibRoute) -> Result<FibRoute, FibError> {
    let bad = |why: String| Err(FibError::InvalidRoute(route.prefix, why));
    let v6 = matches!(route.prefix, IpNet::V6(_));
    if let Some(src) = route.pref_src
        && src.is_ipv6() != v6
    {
        return bad(format!(
            "preferred source {src} is not of the prefix's family"
        ));
    }
    if let RouteKind::Unicast(hops) = &route.kind {
        if hops.is_empty() {
            return bad("a unicast route needs at least one next hop".into());
        }
        for NextHopSpec {
            gateway,
            device,
            weight,
            onlink,
        } in hops
        {
            // An IPv4 route may go via an IPv6 gateway (RTA_VIA, RFC 8950
            // next hops); the kernel has no IPv6 route via an IPv4 gateway.
            if v6 && gateway.is_ipv4() {
                return bad(format!("gateway {gateway} is not of the prefix's family"));
            }
            if !(1..=256).contains(weight) {
                return bad(format!("weight {weight} is outside 1..=256"));
            }
            if let Some(d) = device {
                if d.is_empty() || d.len() > 15 {
                    return bad(format!("device name {d:?} must be 1 to 15 bytes"));
                }
            } else if *onlink {
                return bad("onlink needs a device".into());
            }
        }
        let mut gws: Vec<_> = hops.iter().map(|h| (h.gateway, &h.device)).collect();
        gws.sort();
        gws.dedup();
        if gws.len() != hops.len() {
            return bad("duplicate next hop".into());
        }
    }
    let mut r = route.clone();
    r.prefix = route.prefix.trunc();
    if let RouteKind::Unicast(hops) = &mut r.kind {
        hops.sort();
        if hops.len() == 1
            && let Some(h) = hops.first_mut()
        {
            h.weight = 1;
        }
    }
    Ok(r)
}
