//! The reconciliation planner: desired routes and the kernel view in,
//! route requests out, as data. No sockets, no clock, no tasks: the actor
//! (`actor.rs`) feeds it route changes, kernel notifications, dumps and the
//! results of requests, passes `now` in, encodes and sends what it plans.
//!
//! Level-triggered: the planner keeps the desired routes and a view of the
//! kernel (`view.rs`), and for every prefix whose either side changed it
//! plans at most one request; a prefix with a request outstanding is looked
//! at again when its result comes. `complete` assumes the view already shows
//! the request's effect (the driver applies notifications before results),
//! except across a dump: a request outstanding when the view was rebuilt, or
//! answered while a dump is pending, has its prefix replanned, since the
//! notification that would have done so may be gone.
//!
//! Ownership rule (why no foreign route is ever changed):
//! - creates use `NLM_F_CREATE|NLM_F_EXCL`, which never alters an existing
//!   route: if any route holds the key (prefix, table, tos 0, metric) the
//!   kernel answers EEXIST;
//! - deletes name our protocol, which the kernel matches (fib_table_delete
//!   and ip6_route_del skip routes of another `rtm_protocol`);
//! - `NLM_F_REPLACE` replaces the *first* route with that key whoever owns
//!   it, so it is only planned when the view holds our route on the key and
//!   no foreign one. When a foreign route shares the key we step aside: we
//!   delete our own (by protocol) if it differs and wait until the foreign
//!   route goes away. A notification that leaves the key ambiguous (a
//!   REPLACE seen on a key holding both) asks for a full dump instead of a
//!   guess.
//!
//! Restart rule: routes of our protocol found at start are left exactly as
//! they are until the RIB converges; before that only missing routes are
//! added. After it, missing routes are installed, differing ones replaced
//! and our routes no longer wanted (also at an old metric) deleted.
//!
//! Bulk mode: when many prefixes wait, route notifications are switched
//! off, only creates and deletes are planned (both safe without a current
//! view), the view follows successful requests, and one dump at the end
//! verifies the table and replans what waited for it.
//!
//! Tests run the planner against a simulated kernel table (`plan/sim.rs`):
//! one scenario per rule (`plan/tests.rs`) and property tests over random
//! interleavings (`plan/props.rs`).

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tracing::{debug, info, warn};

use crate::failure_log::FailureLog;
use crate::learn::Learner;
use crate::maps::{HashMap, HashSet, remove_if_any, remove_if_any_key};
use crate::nexthops::{Holders, HopKey, Nexthops, NhChange, NhRequest};
use crate::request::{Op, Request, Wanted};
use crate::types::{FibConfig, FibOp, FibRoute, FibStats, KernelEvent, RouteKind, validate};
use crate::view::{self, KernelView, LinkChange, Place};
use crate::wire::{Hop, KernelNexthop, KernelRoute, NhSpec, OpKind, Parsed, Shape, Target};

#[cfg(test)]
mod props;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_nexthops;

// Work flags per prefix (`Planner::marks`). Queued-ness is not among them:
// `dirty` may hold a prefix twice (the second visit finds nothing to do), so
// the map stays as small as the in-flight window and its lookups stay in
// cache; with a million queued prefixes a "queued" flag per prefix made
// this lookup the single largest cost.
/// A request for it is outstanding.
const INFLIGHT: u8 = 2;
/// Dirtied while in flight: replanned when the result comes.
const DEFERRED: u8 = 4;
/// An outside change hit our route: the next request is a restore.
const TOUCHED: u8 = 8;

/// The longest bulk run before a verifying dump (see `leave_bulk_if_done`).
pub(crate) const MAX_BULK_RUN: Duration = Duration::from_secs(30);

/// How a kernel route notification changed the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteChange {
    /// `RTM_NEWROUTE`.
    Added,
    /// `RTM_NEWROUTE` with `NLM_F_REPLACE`: took the place of the first
    /// route on its key.
    Replaced,
    /// `RTM_DELROUTE`.
    Removed,
}

/// One request to send, in the order planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Planned {
    Route(Request),
    Nexthop(NhRequest),
}

/// The planner's answers to `Nexthops::next_request`.
struct PlanHolders<'a> {
    view: &'a KernelView,
    desired: &'a HashMap<IpNet, FibRoute>,
}

impl Holders for PlanHolders<'_> {
    fn users(&self, id: u32) -> u32 {
        self.view.nh_users_of(id)
    }

    fn foreign_users(&self, id: u32) -> u32 {
        self.view.nh_foreign_users_of(id)
    }

    fn device(&self, index: u32) -> Option<&str> {
        self.view.device(index)
    }

    fn wanted_route_on(&self, id: u32) -> bool {
        self.view
            .ours
            .iter()
            .any(|(p, r)| r.nh_id == Some(id) && self.desired.contains_key(p))
    }
}

/// For taking only queued creates: nothing holds anything.
struct NoHolders;

impl Holders for NoHolders {
    fn users(&self, _: u32) -> u32 {
        0
    }

    fn foreign_users(&self, _: u32) -> u32 {
        0
    }

    fn device(&self, _: u32) -> Option<&str> {
        None
    }

    fn wanted_route_on(&self, _: u32) -> bool {
        false
    }
}

/// A bulk run that ended (see `Planner::leave_bulk_if_done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BulkEnd {
    /// Every request of the run succeeded and nothing waits for the
    /// verifying dump: the queued changes are in the kernel as asked, so
    /// `sync` callers need not wait for the verification, which only looks
    /// for changes others made meanwhile (and repairs them as any later
    /// change is repaired).
    pub settled: bool,
}

#[derive(Debug, Clone, Copy)]
struct BulkRun {
    since: Instant,
    /// A request of the run failed: what happens to its prefix is decided
    /// by the verifying dump, so `sync` waits for it.
    unsettled: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Planner {
    view: KernelView,
    nexthops: Nexthops,
    /// A route request planned behind the nexthop create it needs.
    stashed: Option<Request>,
    /// Nexthop requests outstanding.
    nh_in_flight: usize,
    /// Objects being flushed, with the routes of ours naming them then.
    flushing: HashMap<u32, u32>,
    learner: Learner,
    desired: HashMap<IpNet, FibRoute>,
    /// Prefixes whose kernel route predates this run; untouched until the
    /// RIB converges.
    inherited: HashSet<IpNet>,
    converged: bool,

    dirty: VecDeque<IpNet>,
    /// Per-prefix work flags (`INFLIGHT`, `DEFERRED`, `TOUCHED`), only for
    /// prefixes that have one.
    marks: HashMap<IpNet, u8>,
    in_flight: usize,
    parked: HashMap<IpNet, i32>,
    blocked: HashSet<IpNet>,
    failures: FailureLog,
    need_dump: bool,

    bulk_threshold: usize,
    bulk: Option<BulkRun>,
    /// Prefixes whose plan waits for the next dump (replaces and unexplained
    /// EEXIST during a bulk run).
    replan_after_dump: Vec<IpNet>,
    /// Prefixes changed by route changes since the queue was last empty;
    /// what decides bulk mode (a resync marks everything, mostly no-ops).
    changed: usize,

    retry_every: Duration,
    next_retry: Instant,
    verify_every: Option<Duration>,
    next_verify: Option<Instant>,

    events: VecDeque<KernelEvent>,
    counters: FibStats,
}

impl Planner {
    pub(crate) fn new(cfg: &FibConfig, now: Instant) -> Self {
        let target = Target {
            protocol: cfg.protocol,
            table: cfg.table,
            metric_v4: cfg.kernel_metric(false),
            metric_v6: cfg.kernel_metric(true),
        };
        let verify_every = cfg.verify_interval.filter(|v| !v.is_zero());
        Self {
            view: KernelView::new(target),
            nexthops: Nexthops::new(cfg.nexthop_objects, cfg.protocol),
            stashed: None,
            nh_in_flight: 0,
            flushing: HashMap::default(),
            learner: Learner::new(cfg.learn.clone()),
            desired: HashMap::default(),
            inherited: HashSet::default(),
            converged: false,
            dirty: VecDeque::new(),
            marks: HashMap::default(),
            in_flight: 0,
            parked: HashMap::default(),
            blocked: HashSet::default(),
            failures: FailureLog::default(),
            need_dump: true,
            bulk_threshold: cfg.bulk_threshold,
            bulk: None,
            replan_after_dump: Vec::new(),
            changed: 0,
            retry_every: cfg.retry_interval,
            next_retry: now + cfg.retry_interval,
            verify_every,
            next_verify: verify_every.map(|v| now + v),
            events: VecDeque::new(),
            counters: FibStats::default(),
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.view.target
    }

    /// Leaves every route of our protocol the first dump found as it is
    /// until the RIB converges; returns how many prefixes that is.
    pub(crate) fn adopt_found_routes(&mut self) -> usize {
        self.inherited = self.view.ours.keys().copied().collect();
        self.inherited
            .extend(self.view.stale_metric.keys().copied());
        self.inherited.len()
    }

    // ----- what is wanted --------------------------------------------------

    /// Applies one change of the ordered op stream. Per prefix the last
    /// change wins; `Converged` applies to everything before it.
    pub(crate) fn apply(&mut self, op: FibOp) {
        match op {
            FibOp::Set(route) => match validate(route) {
                Ok(r) => self.want(r),
                Err(e) => {
                    self.counters.refused += 1;
                    let n = self.counters.refused;
                    if n <= 5 || n.is_multiple_of(10_000) {
                        warn!(error = %e, refused = n, "route refused; the prefix keeps its previous route");
                    }
                }
            },
            FibOp::Remove(p) => self.unwant(p.trunc()),
            FibOp::Converged => self.set_converged(),
            FibOp::Priority { v4, v6 } => self.set_priority(v4, v6),
        }
    }

    /// Moves our routes to new metrics. Which kernel routes sit on our key
    /// (ours, foreign) is relative to the metric, so the view is rebuilt
    /// from a dump; everything wanted or held is replanned after it: routes
    /// at the old metric become stale and go once the new ones are in.
    fn set_priority(&mut self, v4: u32, v6: u32) {
        let v6 = if v6 == 0 { 1024 } else { v6 };
        let target = &mut self.view.target;
        if target.metric_v4 == v4 && target.metric_v6 == v6 {
            return;
        }
        info!(
            from_v4 = target.metric_v4,
            from_v6 = target.metric_v6,
            v4,
            v6,
            "route priority changed: moving our routes"
        );
        target.metric_v4 = v4;
        target.metric_v6 = v6;
        self.need_dump = true;
        let mut all: Vec<IpNet> = self.desired.keys().copied().collect();
        all.extend(self.view.ours.keys().copied());
        all.extend(self.view.stale_metric.keys().copied());
        self.changed += all.len();
        for p in all {
            self.parked.remove(&p);
            self.mark(p);
        }
    }

    /// Prepares for `n` sets that are mostly new prefixes (a bulk load into
    /// an empty or smaller table): sizes the desired map once rather than
    /// rehashing a million entries repeatedly. Nothing when the table is
    /// already as large (updates of routes it holds).
    pub(crate) fn reserve(&mut self, n: usize) {
        self.desired.reserve(n.saturating_sub(self.desired.len()));
    }

    /// `route` has been through `validate`.
    fn want(&mut self, route: FibRoute) {
        let p = route.prefix;
        self.set_own_metric(p, route.metric);
        let counting = self.nexthops.enabled();
        let new_hop = if counting { HopKey::of(&route) } else { None };
        let old_hop = match self.desired.entry(p) {
            Entry::Occupied(o) if *o.get() == route => return,
            Entry::Occupied(mut o) => {
                let old = o.insert(route);
                if counting { HopKey::of(&old) } else { None }
            }
            Entry::Vacant(v) => {
                v.insert(route);
                None
            }
        };
        if counting {
            self.nexthops.wanted_changed(old_hop, new_hop);
        }
        remove_if_any(&mut self.parked, &p);
        self.mark(p);
        self.changed += 1;
    }

    /// Records the metric `p` is wanted at. Foreign routes are known by key
    /// at every metric, but which of our routes is on the key and which is
    /// stale moves with it: when a route of ours exists or is in flight,
    /// the prefix is looked at again from a dump (as after a priority
    /// change), and the route at the old metric goes once the new one is
    /// in.
    fn set_own_metric(&mut self, p: IpNet, metric: Option<u32>) {
        if metric.is_none() && self.view.own_metric.is_empty() {
            return;
        }
        let before = self.view.metric_for(&p);
        match metric {
            Some(m) => {
                self.view.own_metric.insert(p, m);
            }
            None => {
                self.view.own_metric.remove(&p);
            }
        }
        if self.view.metric_for(&p) != before
            && (self.view.ours.contains_key(&p)
                || self.view.stale_metric.contains_key(&p)
                || self.flags(&p) & INFLIGHT != 0)
        {
            debug!(prefix = %p, from = before, to = self.view.metric_for(&p), "route metric changed: moving the route");
            self.need_dump = true;
        }
    }

    /// Forgets the metric of its own of a prefix that is neither wanted nor
    /// held at any metric, so the map stays as small as the routes that
    /// have one.
    fn drop_own_metric(&mut self, p: &IpNet) {
        if !self.view.own_metric.is_empty() && !self.view.stale_metric.contains_key(p) {
            self.view.own_metric.remove(p);
        }
    }

    fn unwant(&mut self, p: IpNet) {
        if let Some(old) = self.desired.remove(&p) {
            if self.nexthops.enabled() {
                self.nexthops.wanted_changed(HopKey::of(&old), None);
            }
            remove_if_any(&mut self.parked, &p);
            remove_if_any_key(&mut self.blocked, &p);
            self.mark(p);
            self.changed += 1;
        }
    }

    /// Makes `routes` (each through `validate`) the complete desired set and
    /// declares convergence.
    pub(crate) fn replace_all(&mut self, routes: Vec<FibRoute>) {
        let new: HashMap<IpNet, FibRoute> = routes.into_iter().map(|r| (r.prefix, r)).collect();
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
        self.nexthops.recount_wanted(self.desired.values());
        self.set_converged();
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
        // Nexthop objects found at start and not used go now.
        self.nexthops.check_all();
        // Routes left at an old metric by a priority change go now.
        let stale: Vec<IpNet> = self.view.stale_metric.keys().copied().collect();
        for p in stale {
            self.mark(p);
        }
    }

    // ----- planning ----------------------------------------------------------

    /// Whether routes go through nexthop objects.
    pub(crate) fn uses_nexthops(&self) -> bool {
        self.nexthops.enabled()
    }

    /// The kernel has no nexthop objects: next hops are spelled out per
    /// route from now on.
    pub(crate) fn disable_nexthops(&mut self, why: &str) {
        self.nexthops.disable(why);
    }

    /// The next request to send, if any: a nexthop object always before the
    /// first route that names it. Nothing while a dump is needed. While
    /// `owes_route` the caller must ask again at once, whatever its window:
    /// the route was planned against the view of now.
    pub(crate) fn next(&mut self) -> Option<Planned> {
        if self.need_dump {
            return None;
        }
        for id in std::mem::take(&mut self.view.nh_released) {
            self.nexthops.maybe_unused(id);
        }
        if !self.nexthops.has_queued()
            && let Some(r) = self.stashed.take()
        {
            return Some(Planned::Route(r));
        }
        let holders = PlanHolders {
            view: &self.view,
            desired: &self.desired,
        };
        if let Some(n) = self.nexthops.next_request(self.converged, &holders) {
            self.nh_in_flight += 1;
            if let crate::wire::NhOp::Delete(id) = n.op {
                let users = self.view.nh_users_of(id);
                if users > 0 {
                    self.flushing.insert(id, users);
                }
            }
            return Some(Planned::Nexthop(n));
        }
        let r = self.next_request()?;
        if let Some(n) = self.nexthops.next_request(false, &NoHolders) {
            self.stashed = Some(r);
            self.nh_in_flight += 1;
            return Some(Planned::Nexthop(n));
        }
        Some(Planned::Route(r))
    }

    /// A route planned behind the nexthop object just returned by `next`
    /// waits to be taken.
    pub(crate) fn owes_route(&self) -> bool {
        self.stashed.is_some()
    }

    /// The next route request, if any; at most one per prefix is ever
    /// outstanding. Nothing while a dump is needed.
    fn next_request(&mut self) -> Option<Request> {
        if self.need_dump {
            return None;
        }
        while let Some(p) = self.dirty.pop_front() {
            let flags = self.flags(&p);
            if flags & INFLIGHT != 0 {
                self.set_flags(p, DEFERRED, 0);
                continue;
            }
            let Some(op) = self.plan(p) else {
                if flags & TOUCHED != 0 {
                    self.set_flags(p, 0, TOUCHED);
                }
                continue;
            };
            self.set_flags(p, INFLIGHT, TOUCHED);
            self.in_flight += 1;
            if let Op::Create(Wanted { nh: Some(id), .. })
            | Op::Replace(Wanted { nh: Some(id), .. }) = &op
            {
                self.nexthops.sent_route(*id);
            }
            return Some(Request {
                prefix: p,
                op,
                restore: flags & TOUCHED != 0,
            });
        }
        None
    }

    /// At most one request for `p`; `None` when nothing is to be done now.
    fn plan(&mut self, p: IpNet) -> Option<Op> {
        if !self.converged && self.inherited.contains(&p) {
            return None;
        }
        if self.converged
            && let Some(&metric) = self.view.stale_metric.get(&p).and_then(|v| v.first())
        {
            // Make before break: a wanted route not yet at our metric goes in
            // first (another key), then the old one.
            let install_first = self.desired.contains_key(&p)
                && !self.view.ours.contains_key(&p)
                && !self.view.foreign_may_hold(&p)
                && !self.parked.contains_key(&p)
                && self.bulk.is_none();
            if !install_first {
                return Some(Op::Delete { metric });
            }
        }
        let metric = self.view.metric_for(&p);
        let foreign = self.view.foreign_may_hold(&p);
        let have = self.view.ours.get(&p);
        let Some(want) = self.desired.get(&p) else {
            remove_if_any_key(&mut self.blocked, &p);
            let Some(have) = have else {
                self.drop_own_metric(&p);
                return None;
            };
            if have.nh_id.is_some_and(|id| self.nexthops.deleting(id)) {
                // Goes with its object (a flush in flight).
                return None;
            }
            return Some(Op::Delete { metric });
        };
        if self.parked.contains_key(&p) {
            return None;
        }
        // The common case (nothing to do) without allocating resolved hops.
        if !foreign
            && have.is_some_and(|h| self.view.matches_spec(want, h) && self.nh_matches(want, h))
        {
            remove_if_any_key(&mut self.blocked, &p);
            return None;
        }
        let hops = match self.view.resolve(want) {
            Ok(h) => h,
            Err(errno) => {
                self.park(p, errno, "device not found");
                return None;
            }
        };
        let kind = match have {
            Some(have) if view::matches(want, &hops, have) && self.nh_matches(want, have) => None,
            // Step aside: REPLACE could hit the foreign route.
            Some(_) if foreign => Some(OpKind::Delete),
            // REPLACE needs a current view of foreign routes; the dump that
            // ends bulk mode replans this prefix.
            Some(_) if self.bulk.is_some() => {
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
        let kind = kind?;
        if kind == OpKind::Delete {
            return Some(Op::Delete { metric });
        }
        let pref_src = want.pref_src;
        let is_blackhole = matches!(want.kind, RouteKind::Blackhole);
        let mut spec = self.nh_spec(want);
        if let Some(s) = spec
            && !self.nexthops.usable(&s)
        {
            if self.nexthops.enabled() {
                self.nexthops.fell_back(p);
            }
            spec = None;
        }
        let nh = spec.and_then(|s| self.nexthops.id_for(s));
        let wanted = Wanted {
            shape: match (is_blackhole, spec.filter(|_| nh.is_some())) {
                (true, _) => Shape::Blackhole,
                (false, Some(s)) => Shape::Unicast(vec![Hop {
                    gateway: Some(s.gateway),
                    oif: s.oif,
                    onlink: s.onlink,
                    weight: 1,
                }]),
                (false, None) => Shape::Unicast(hops),
            },
            pref_src,
            metric,
            nh,
        };
        Some(match kind {
            OpKind::Create => Op::Create(wanted),
            _ => Op::Replace(wanted),
        })
    }

    /// The next hop a wanted route reaches through a nexthop object of ours:
    /// a single-path unicast route whose gateway has the prefix's family
    /// and whose device is known (named, or the one whose address covers
    /// the gateway). `None`: the route spells its next hops out (ECMP,
    /// blackhole, RFC 8950 gateway, unknown device, or no nexthop objects at
    /// all); a next hop whose object the kernel refused is checked apart
    /// (`Nexthops::usable`).
    fn nh_spec(&self, want: &FibRoute) -> Option<NhSpec> {
        if !self.nexthops.enabled() {
            return None;
        }
        let RouteKind::Unicast(hops) = &want.kind else {
            return None;
        };
        let [h] = hops.as_slice() else {
            return None;
        };
        if h.gateway.is_ipv4() != want.prefix.addr().is_ipv4() {
            return None;
        }
        let oif = match &h.device {
            Some(d) => *self.view.names.get(d)?,
            None => self.view.resolve_oif(h.gateway)?,
        };
        Some(NhSpec {
            gateway: h.gateway,
            oif,
            onlink: h.onlink,
        })
    }

    /// Whether our kernel route goes through the nexthop object (or none)
    /// the wanted route should: the object of ours it names stands for the
    /// wanted next hop.
    fn nh_matches(&self, want: &FibRoute, have: &KernelRoute) -> bool {
        let spec = self.nh_spec(want).filter(|s| self.nexthops.usable(s));
        match (spec, have.nh_id) {
            (None, None) => true,
            (Some(spec), Some(id)) => {
                self.nexthops.alive(id) && self.nexthops.spec_of(id) == Some(spec)
            }
            _ => false,
        }
    }

    fn metric_of(r: &Request) -> u32 {
        match &r.op {
            Op::Delete { metric } => *metric,
            Op::Create(w) | Op::Replace(w) => w.metric,
        }
    }

    // ----- results -----------------------------------------------------------

    /// The kernel's answer to `r`: 0, or a positive errno.
    pub(crate) fn complete(&mut self, r: Request, errno: i32) {
        let prefix = r.prefix;
        self.in_flight = self.in_flight.saturating_sub(1);
        if !self.inherited.is_empty() {
            self.inherited.remove(&prefix);
        }
        let deferred = self.flags(&prefix) & DEFERRED != 0;
        self.set_flags(prefix, 0, INFLIGHT | DEFERRED);
        // With a dump pending, this request's notification may be among
        // those lost, and the dump will not show a difference from a view
        // that never had the change: look again after it.
        if deferred || self.need_dump {
            self.mark(prefix);
        }
        let kind = r.kind();
        let metric = Self::metric_of(&r);
        let nh = match &r.op {
            Op::Create(w) | Op::Replace(w) => w.nh,
            Op::Delete { .. } => None,
        };
        if let Some(id) = nh {
            self.nexthops.route_done(id);
        }
        if errno != 0
            && let Some(id) = nh
            && !self.nexthops.alive(id)
        {
            // Its nexthop object was refused or went: planned again, on
            // another object or with the next hop spelled out.
            *self.counters.errors.entry(errno).or_default() += 1;
            if let Some(run) = &mut self.bulk {
                run.unsettled = true;
            }
            self.mark(prefix);
            return;
        }
        if errno == 0 {
            match kind {
                OpKind::Create => self.counters.installs += 1,
                OpKind::Replace => self.counters.replaces += 1,
                OpKind::Delete => self.counters.deletes += 1,
            }
            if r.restore {
                self.counters.restores += 1;
            }
            if self.bulk.is_some() {
                // The view follows our requests during a bulk run: the
                // kernel now holds what was sent (the desired route may have
                // moved on since; such a prefix is deferred and replanned
                // against this view).
                match r.op {
                    Op::Delete { metric } => {
                        self.view.forget_ours(prefix, metric);
                        // Gone from an old metric: the prefix may have more
                        // to do (another old metric, or its route at ours),
                        // and no notification will come to say so. Gone for
                        // good: its own metric, if any, is forgotten.
                        if metric != self.view.metric_for(&prefix)
                            || !self.desired.contains_key(&prefix)
                        {
                            self.mark(prefix);
                        }
                    }
                    Op::Create(w) | Op::Replace(w) if w.metric == self.view.metric_for(&prefix) => {
                        self.view
                            .assume_ours(prefix, w.shape, w.pref_src, w.metric, w.nh)
                    }
                    Op::Create(_) | Op::Replace(_) => {
                        // Its metric moved while in flight (which asked for
                        // a dump): the dump places it.
                        self.mark(prefix);
                    }
                }
            }
            self.failures.forget(&prefix);
            return;
        }
        *self.counters.errors.entry(errno).or_default() += 1;
        if let Some(run) = &mut self.bulk {
            run.unsettled = true;
        }
        match (kind, errno) {
            (OpKind::Delete, libc::ENOENT | libc::ESRCH) => {
                // Already gone: the goal of a delete.
                self.counters.deletes += 1;
                self.view.forget_ours(prefix, metric);
                self.mark(prefix);
            }
            (OpKind::Replace, libc::ENOENT | libc::ESRCH) => {
                // Our route vanished under us; create it instead.
                self.view.forget_ours(prefix, metric);
                self.mark(prefix);
            }
            (OpKind::Create, libc::EEXIST) if self.bulk.is_some() => {
                // The dump that ends bulk mode shows who holds the key (and
                // may show nobody, if the holder went meanwhile).
                self.replan_after_dump.push(prefix);
                self.failures.log_once(
                    prefix,
                    errno,
                    "create met an existing route; checked after the bulk run",
                );
            }
            (OpKind::Create, libc::EEXIST) => {
                // The view is current (notifications come before results),
                // so if it shows neither our route nor a foreign one on the
                // key, something we never saw holds it: rebuild the view.
                let ours = self.view.ours.contains_key(&prefix);
                if ours || self.view.foreign_holds(&prefix) {
                    self.mark(prefix);
                } else if self.failures.last(&prefix) == Some(libc::EEXIST) {
                    self.park(prefix, errno, "key held by a route we cannot see");
                } else {
                    self.failures
                        .log_once(prefix, errno, "create met an unknown route; resyncing");
                    self.need_dump = true;
                    self.mark(prefix);
                }
            }
            _ => self.park(prefix, errno, "kernel refused the route; will retry"),
        }
    }

    /// `r` was planned but never reached the kernel (the send failed):
    /// planned again later, as the same kind of change.
    pub(crate) fn unsent(&mut self, r: Request) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.release_nh_of(&r);
        let touched = if r.restore { TOUCHED } else { 0 };
        self.set_flags(r.prefix, touched, INFLIGHT | DEFERRED);
        self.mark(r.prefix);
    }

    /// The results of `requests` were lost (request socket overrun): which
    /// of them worked only a dump can tell.
    pub(crate) fn lost(&mut self, requests: impl IntoIterator<Item = Request>) {
        for r in requests {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.release_nh_of(&r);
            self.set_flags(r.prefix, 0, INFLIGHT | DEFERRED);
            self.mark(r.prefix);
        }
        self.need_dump = true;
    }

    fn release_nh_of(&mut self, r: &Request) {
        if let Op::Create(Wanted { nh: Some(id), .. }) | Op::Replace(Wanted { nh: Some(id), .. }) =
            &r.op
        {
            self.nexthops.route_done(*id);
        }
    }

    /// The kernel's answer to a nexthop request (0 or a positive errno).
    pub(crate) fn complete_nexthop(&mut self, r: NhRequest, errno: i32) {
        self.nh_in_flight = self.nh_in_flight.saturating_sub(1);
        if errno != 0 {
            *self.counters.errors.entry(errno).or_default() += 1;
        }
        match r.op {
            crate::wire::NhOp::Create(..) if errno == 0 => self.counters.nexthop_installs += 1,
            crate::wire::NhOp::Delete(_) if errno == 0 => self.counters.nexthop_deletes += 1,
            _ => {}
        }
        self.nexthops.complete(r, errno);
        if let crate::wire::NhOp::Delete(id) = r.op {
            let flushed = self.flushing.remove(&id);
            if matches!(errno, 0 | libc::ENOENT | libc::ESRCH) {
                // The kernel deleted the routes naming it (reporting only
                // the IPv6 ones, and none during a bulk run).
                self.counters.deletes += u64::from(flushed.unwrap_or(0));
                for p in self.view.drop_routes_on_nh(id) {
                    if self.desired.contains_key(&p) {
                        self.mark(p);
                    }
                }
            } else if flushed.is_some() {
                // Still there with its routes: they go one by one.
                for p in self.view.routes_on_nh(id, false) {
                    self.mark(p);
                }
            }
        }
    }

    /// A nexthop request never reached the kernel: sent again.
    pub(crate) fn unsent_nexthop(&mut self, r: NhRequest) {
        self.nh_in_flight = self.nh_in_flight.saturating_sub(1);
        self.nexthops.unsent(r);
        if let crate::wire::NhOp::Delete(id) = r.op
            && self.flushing.remove(&id).is_some()
        {
            // The routes it would have taken along go their own way.
            for p in self.view.routes_on_nh(id, false) {
                self.mark(p);
            }
        }
        if let Some(route) = self.stashed.take() {
            self.unsent(route);
        }
    }

    /// The answers to nexthop requests were lost: the dump that follows
    /// shows which objects exist.
    pub(crate) fn lost_nexthops(&mut self, n: usize) {
        self.nh_in_flight = self.nh_in_flight.saturating_sub(n);
        self.nexthops.lost();
        self.flushing.clear();
        self.need_dump = true;
    }

    /// A nexthop notification (`added`: `RTM_NEWNEXTHOP`).
    pub(crate) fn on_nexthop(&mut self, n: KernelNexthop, added: bool) {
        if let NhChange::Lost(id) = self.nexthops.on_nexthop(&n, added) {
            self.nh_lost(id);
        }
    }

    /// Our nexthop object `id` went or changed without a request of ours:
    /// the routes naming it are restored.
    fn nh_lost(&mut self, id: u32) {
        let gone = !self.nexthops.alive(id);
        let on = self.view.routes_on_nh(id, gone);
        info!(
            id,
            routes = on.len(),
            deleted = gone,
            "nexthop object of ours changed by someone else; restoring its routes"
        );
        for p in on {
            if self.desired.contains_key(&p) && (self.converged || !self.inherited.contains(&p)) {
                self.set_flags(p, TOUCHED, 0);
            }
            self.mark(p);
        }
    }

    fn park(&mut self, prefix: IpNet, errno: i32, what: &str) {
        self.failures.log_once(prefix, errno, what);
        if errno == libc::ENODEV && !self.parked.contains_key(&prefix) {
            *self.counters.errors.entry(errno).or_default() += 1;
        }
        self.parked.insert(prefix, errno);
        // A route of ours at an old metric waited for this one (make before
        // break): it goes now.
        if self.converged && self.view.stale_metric.contains_key(&prefix) {
            self.mark(prefix);
        }
    }

    fn unpark(&mut self, why: &str) {
        for p in self.nexthops.retry_failed() {
            self.mark(p);
        }
        if self.parked.is_empty() {
            return;
        }
        debug!(count = self.parked.len(), why, "retrying parked routes");
        let parked: Vec<IpNet> = self.parked.drain().map(|(p, _)| p).collect();
        for p in parked {
            self.mark(p);
        }
    }

    // ----- the kernel's side -------------------------------------------------

    /// A route notification.
    pub(crate) fn on_route(&mut self, r: KernelRoute, change: RouteChange) {
        let added = change != RouteChange::Removed;
        let replace = change == RouteChange::Replaced;
        let p = r.prefix;
        match self.view.place(&r) {
            Place::Elsewhere => {}
            Place::Ours => {
                let seen = self.view.note_ours(r, added, replace);
                if seen.ambiguous {
                    self.need_dump = true;
                }
                // A change to our route that no request of ours explains.
                let outside =
                    self.flags(&p) & INFLIGHT == 0 && self.desired.contains_key(&p) && seen.changed;
                if outside && (self.converged || !self.inherited.contains(&p)) {
                    self.set_flags(p, TOUCHED, 0);
                }
                self.mark(p);
            }
            Place::OursStale => {
                self.view.note_stale(&r, added);
                self.mark(p);
            }
            place @ (Place::ForeignOnKey | Place::ForeignBeside) => {
                if let Some(ev) = self.learner.note(&r, added, |i| self.view.device(i)) {
                    self.events.push_back(ev);
                }
                if self.view.note_foreign(&r, added, replace) {
                    self.need_dump = true;
                }
                if place == Place::ForeignBeside {
                    return;
                }
                if self.desired.contains_key(&p) || self.view.ours.contains_key(&p) {
                    self.mark(p);
                }
            }
        }
    }

    /// A link notification.
    pub(crate) fn on_link(&mut self, index: u32, name: Option<String>, up: bool, removed: bool) {
        match self.view.note_link(index, name, up, removed) {
            None => {}
            Some(LinkChange::Removed { index, name }) => {
                self.events
                    .push_back(KernelEvent::LinkRemoved { index, name });
                // The kernel drops IPv4 routes through a vanished or downed
                // device without RTM_DELROUTE: re-read the table.
                self.need_dump = true;
            }
            Some(LinkChange::Changed {
                index,
                name,
                up,
                known,
            }) => {
                if known {
                    self.need_dump = true;
                }
                if up {
                    self.unpark("link up");
                }
                self.events.push_back(KernelEvent::Link { index, name, up });
            }
        }
    }

    /// An address notification.
    pub(crate) fn on_address(&mut self, index: u32, address: IpNet, removed: bool) {
        self.view.note_addr(index, address, removed);
        let ev = if removed {
            KernelEvent::AddressRemoved { index, address }
        } else {
            self.unpark("address added");
            KernelEvent::AddressAdded { index, address }
        };
        self.events.push_back(ev);
    }

    /// Notifications were lost (or the view must be checked): nothing is
    /// planned until `rebuild`.
    pub(crate) fn request_dump(&mut self) {
        self.need_dump = true;
    }

    pub(crate) fn needs_dump(&self) -> bool {
        self.need_dump
    }

    /// Rebuilds the view from dumps of links and both families' routes
    /// (`clean`: no dump was interrupted), then replans only what the dump
    /// shows differently from the view the earlier plans were made on, plus
    /// what was put off for a dump: at a million routes a full replan costs
    /// more than the dump.
    /// `links` holds links and addresses, `routes` routes and nexthop
    /// objects.
    pub(crate) fn rebuild(&mut self, links: Vec<Parsed>, routes: Vec<Parsed>, clean: bool) {
        self.need_dump = false;
        let nhs: Vec<KernelNexthop> = routes
            .iter()
            .filter_map(|m| match m {
                Parsed::NewNexthop(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let nh_changed = if self.nexthops.enabled() {
            self.nexthops.rebuild(&nhs)
        } else {
            Vec::new()
        };
        self.counters.resyncs += 1;
        let learned_before = self.learner.restart();
        let learner = &mut self.learner;
        let events = &mut self.events;
        let rebuilt = self.view.rebuild(links, routes, clean, |r, links| {
            let dev = |i: u32| links.get(&i).map(|l| l.name.as_str());
            if let Some(ev) = learner.note(r, true, dev) {
                events.push_back(ev);
            }
        });
        for p in learned_before.keys() {
            if !self.learner.knows(p) {
                self.events.push_back(KernelEvent::Unlearned(*p));
            }
        }
        let mut todo = std::mem::take(&mut self.replan_after_dump);
        // A route that differs from the old view but already is what we
        // want needs nothing (after a bulk run the view held our requests,
        // the dump holds the kernel's spelling of them).
        todo.extend(rebuilt.ours_changed.into_iter().filter(|p| {
            let settled = self.view.ours.get(p).is_some_and(|r| {
                self.desired
                    .get(p)
                    .is_some_and(|w| self.view.matches_spec(w, r) && self.nh_matches(w, r))
                    && !self.view.foreign_may_hold(p)
            });
            !settled
        }));
        todo.extend(rebuilt.other);
        for id in nh_changed {
            todo.extend(self.view.routes_on_nh(id, false));
        }
        // The dump superseded the notifications of requests still
        // outstanding: look at their prefixes again when the answers come
        // (the kernel may have undone their effect since, silently).
        todo.extend(
            self.marks
                .iter()
                .filter(|(_, f)| **f & INFLIGHT != 0)
                .map(|(p, _)| *p),
        );
        for p in todo {
            self.mark(p);
        }
        // A resync is a fresh look: parked routes get another try.
        self.unpark("resync");
        self.events.push_back(KernelEvent::Resynced);
        debug!(
            ours = self.view.ours.len(),
            foreign_keys = self.view.foreign.len(),
            links = self.view.links.len(),
            "kernel view rebuilt"
        );
    }

    /// The next event to publish (link and address changes, learned routes,
    /// resyncs), oldest first.
    pub(crate) fn poll_event(&mut self) -> Option<KernelEvent> {
        self.events.pop_front()
    }

    // ----- time --------------------------------------------------------------

    /// When `handle_timeout` has work next.
    pub(crate) fn poll_timeout(&self) -> Instant {
        match self.next_verify {
            Some(v) => v.min(self.next_retry),
            None => self.next_retry,
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.next_retry <= now {
            self.next_retry = now + self.retry_every;
            self.unpark("retry timer");
        }
        if let (Some(due), Some(every)) = (self.next_verify, self.verify_every)
            && due <= now
        {
            // A safety net for a view that drifted without an overrun (see
            // the module docs on ambiguous notifications).
            self.next_verify = Some(now + every);
            self.need_dump = true;
        }
    }

    // ----- bulk mode ---------------------------------------------------------

    /// Starts a bulk run when at least `bulk_threshold` prefixes changed
    /// since the queue was last empty. True when one started: the driver
    /// then stops listening to route notifications (each costs the kernel a
    /// message and us a `recv`).
    pub(crate) fn enter_bulk_if_worth_it(&mut self, now: Instant) -> bool {
        if self.dirty.is_empty() {
            self.changed = 0;
        }
        if self.bulk.is_some()
            || self.bulk_threshold == 0
            || self.changed < self.bulk_threshold
            || self.need_dump
        {
            return false;
        }
        self.bulk = Some(BulkRun {
            since: now,
            unsettled: false,
        });
        // The view follows our results during the run: room for every
        // wanted route up front instead of repeated rehashing.
        self.view
            .ours
            .reserve(self.desired.len().saturating_sub(self.view.ours.len()));
        self.counters.bulk_runs += 1;
        info!(
            backlog = self.dirty.len(),
            "bulk programming: route notifications paused, table verified by a dump afterwards"
        );
        true
    }

    /// Ends a bulk run once nothing is outstanding and nothing more waits
    /// (`input_pending`: route changes queued but not yet applied), or after
    /// `MAX_BULK_RUN` so that a never-ending stream does not starve replaces
    /// and restores. The driver must listen to route notifications again
    /// before the dump this asks for, so that a change after the dump's
    /// snapshot is always seen.
    pub(crate) fn leave_bulk_if_done(
        &mut self,
        now: Instant,
        input_pending: bool,
    ) -> Option<BulkEnd> {
        let run = self.bulk?;
        if self.in_flight != 0 || self.nh_in_flight != 0 || self.stashed.is_some() {
            return None;
        }
        let more = !self.dirty.is_empty() || input_pending;
        if more && now.saturating_duration_since(run.since) < MAX_BULK_RUN {
            return None;
        }
        // The changes are handled; the replanning after the dump must not
        // count as a new backlog.
        self.changed = 0;
        self.bulk = None;
        self.need_dump = true;
        debug!("bulk programming done; verifying the table");
        Some(BulkEnd {
            settled: self.replan_after_dump.is_empty() && !run.unsettled && self.dirty.is_empty(),
        })
    }

    #[cfg(test)]
    pub(crate) fn in_bulk(&self) -> bool {
        self.bulk.is_some()
    }

    // ----- state -------------------------------------------------------------

    /// Nothing queued, nothing outstanding, no dump pending: every change
    /// applied so far is in the kernel, or waits on a foreign route or an
    /// unusable next hop.
    pub(crate) fn is_idle(&self) -> bool {
        self.dirty.is_empty()
            && self.in_flight == 0
            && self.nh_in_flight == 0
            && self.stashed.is_none()
            && !self.nexthops.has_queued()
            && !self.need_dump
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Routes of ours the view holds at our metric.
    pub(crate) fn installed(&self) -> usize {
        self.view.ours.len()
    }

    /// The planner's counters; the driver adds its own (dump retries,
    /// socket errors).
    pub(crate) fn stats(&self) -> FibStats {
        let mut s = self.counters.clone();
        s.desired = self.desired.len();
        s.installed = self.view.ours.len();
        s.blocked_by_foreign = self.blocked.len();
        s.parked = self.parked.len();
        s.converged = self.converged;
        s.nexthops = self.nexthops.len();
        s
    }

    #[cfg(test)]
    pub(crate) fn nexthops(&self) -> &Nexthops {
        &self.nexthops
    }

    #[cfg(test)]
    pub(crate) fn view(&self) -> &KernelView {
        &self.view
    }

    #[cfg(test)]
    pub(crate) fn desired(&self) -> &HashMap<IpNet, FibRoute> {
        &self.desired
    }

    #[cfg(test)]
    pub(crate) fn is_parked(&self, p: &IpNet) -> bool {
        self.parked.contains_key(p)
    }

    #[cfg(test)]
    pub(crate) fn has_inherited(&self, p: &IpNet) -> bool {
        !self.converged && self.inherited.contains(p)
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
}
