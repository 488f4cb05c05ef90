//! A simulated kernel routing table and a driver that runs the planner
//! against it the way `actor.rs` does, on a virtual clock, without root.
//!
//! The table follows the kernel's rules that the ownership rule rests on:
//! `NLM_F_CREATE|NLM_F_EXCL` fails with EEXIST on a held key, `NLM_F_REPLACE`
//! acts on the first route of a key whoever owns it, a delete that names a
//! protocol only matches that protocol's route. Requests are applied when
//! sent; their notifications queue on the "event socket" ahead of their
//! answers, and the driver reads answers, then notifications, then applies
//! the answers, as the actor does. Every request is checked against the
//! planner's invariants as it is sent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{Op, Planned, Planner, Request, RouteChange};
use crate::maps::HashSet;
use crate::nexthops::NhRequest;
use crate::types::{FibConfig, FibRoute, KernelEvent, RouteKind};
use crate::wire::{Hop, KernelNexthop, KernelRoute, NhOp, NhSpec, Parsed, Shape};

pub(crate) const OURS: u8 = 84;
pub(crate) const TABLE: u32 = 254;
pub(crate) const METRIC: u32 = 32;
/// A metric an older configuration of ours used.
pub(crate) const OLD_METRIC: u32 = 100;
/// The device the kernel picks for a gateway given without one.
pub(crate) const ETH: u32 = 2;
pub(crate) const TUNNEL: u32 = 3;
pub(crate) const TUNNEL_NAME: &str = "tunl0";

/// A notification on the simulated event socket.
#[derive(Debug, Clone)]
pub(crate) enum Note {
    Route(KernelRoute, RouteChange),
    Link {
        index: u32,
        name: String,
        up: bool,
        removed: bool,
    },
    Addr {
        index: u32,
        address: IpNet,
        removed: bool,
    },
    Nexthop(KernelNexthop, bool),
}

/// The kernel's routing table, links and event socket.
#[derive(Debug)]
pub(crate) struct Kernel {
    /// Routes by key (prefix, metric) in the kernel's order.
    pub table: BTreeMap<(IpNet, u32), Vec<KernelRoute>>,
    /// Index to (name, up).
    pub links: BTreeMap<u32, (String, bool)>,
    /// Gateways the kernel cannot reach (ENETUNREACH) until an address
    /// makes them reachable.
    pub unreachable: BTreeSet<IpAddr>,
    /// Route notifications are queued (off during a bulk run).
    pub listening: bool,
    pub notes: VecDeque<Note>,
    /// The metric our routes are wanted at (`FibOp::Priority` moves it).
    pub metric: u32,
    /// Nexthop objects by id (ours and others').
    pub nexthops: BTreeMap<u32, KernelNexthop>,
    /// Interface addresses (index, prefix).
    pub addrs: Vec<(u32, IpNet)>,
    /// An old kernel: nexthop requests fail with this errno.
    pub nexthops_refused: Option<i32>,
}

impl Default for Kernel {
    fn default() -> Self {
        let mut links = BTreeMap::new();
        links.insert(1, ("lo".to_owned(), true));
        links.insert(ETH, ("eth0".to_owned(), true));
        Self {
            table: BTreeMap::new(),
            links,
            unreachable: BTreeSet::new(),
            listening: true,
            notes: VecDeque::new(),
            metric: METRIC,
            nexthops: BTreeMap::new(),
            nexthops_refused: None,
            addrs: vec![
                (
                    ETH,
                    "198.18.0.1/24".parse().unwrap_or_else(|_| unreachable!()),
                ),
                (
                    ETH,
                    "2001:db8::1/64".parse().unwrap_or_else(|_| unreachable!()),
                ),
            ],
        }
    }
}

/// A route of `protocol` on `prefix` at `metric`.
pub(crate) fn kernel_route(prefix: IpNet, protocol: u8, metric: u32, shape: Shape) -> KernelRoute {
    KernelRoute {
        prefix,
        table: TABLE,
        protocol,
        metric,
        tos: 0,
        shape,
        pref_src: None,
        nh_id: None,
    }
}

impl Kernel {
    fn note_route(&mut self, r: &KernelRoute, change: RouteChange) {
        if self.listening {
            self.notes.push_back(Note::Route(r.clone(), change));
        }
    }

    /// The kernel's spelling of a route asked for with `shape`: a device
    /// left open is the one the kernel picks.
    fn spelled(shape: &Shape) -> Shape {
        match shape {
            Shape::Unicast(hops) => Shape::Unicast(
                hops.iter()
                    .map(|h| Hop {
                        oif: if h.oif == 0 { ETH } else { h.oif },
                        ..h.clone()
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Why the kernel would refuse to forward over `shape`, if it would.
    fn refusal(&self, shape: &Shape) -> Option<i32> {
        let Shape::Unicast(hops) = shape else {
            return None;
        };
        for h in hops {
            match self.links.get(&h.oif) {
                None => return Some(libc::ENODEV),
                Some((_, false)) => return Some(libc::ENETDOWN),
                Some((_, true)) => {}
            }
            if h.gateway.is_some_and(|g| self.unreachable.contains(&g)) {
                return Some(libc::ENETUNREACH);
            }
        }
        None
    }

    /// Applies one request of ours; the errno it is answered with (0 =
    /// done). Panics if it would change another protocol's route.
    pub(crate) fn apply(&mut self, r: &Request) -> i32 {
        let v6 = matches!(r.prefix, IpNet::V6(_));
        match &r.op {
            Op::Create(w) | Op::Replace(w) => {
                let key = (r.prefix, w.metric);
                let shape = match w.nh {
                    // The kernel spells a route on an object out as its
                    // next hop (compatibility mode).
                    Some(id) => match self.nexthops.get(&id).and_then(|n| n.spec) {
                        Some(s) => Shape::Unicast(vec![hop_of(&s)]),
                        None => return libc::EINVAL,
                    },
                    None => Self::spelled(&w.shape),
                };
                let held = self.table.get(&key).is_some_and(|v| !v.is_empty());
                let create = matches!(r.op, Op::Create(_));
                if create && held {
                    return libc::EEXIST;
                }
                if !create && !held {
                    return libc::ENOENT;
                }
                if let Some(errno) = self.refusal(&shape) {
                    return errno;
                }
                let route = KernelRoute {
                    pref_src: w.pref_src,
                    nh_id: w.nh,
                    ..kernel_route(r.prefix, OURS, w.metric, shape)
                };
                let routes = self.table.entry(key).or_default();
                if create {
                    routes.push(route.clone());
                    self.note_route(&route, RouteChange::Added);
                } else {
                    let first = &mut routes[0];
                    assert_eq!(
                        first.protocol, OURS,
                        "REPLACE on {} would have changed a foreign route",
                        r.prefix
                    );
                    *first = route.clone();
                    self.note_route(&route, RouteChange::Replaced);
                }
                0
            }
            Op::Delete { metric } => {
                let key = (r.prefix, *metric);
                let routes = self.table.entry(key).or_default();
                let Some(i) = routes.iter().position(|k| k.protocol == OURS) else {
                    return if v6 { libc::ENOENT } else { libc::ESRCH };
                };
                let gone = routes.remove(i);
                if routes.is_empty() {
                    self.table.remove(&key);
                }
                self.note_route(&gone, RouteChange::Removed);
                0
            }
        }
    }

    /// Applies one nexthop request of ours. Panics if it would delete
    /// another protocol's object (see `Sim::check_nh` for the routes a
    /// delete takes along).
    pub(crate) fn apply_nh(&mut self, r: &NhRequest) -> i32 {
        if let Some(errno) = self.nexthops_refused {
            return errno;
        }
        match r.op {
            NhOp::Create(id, spec) => {
                if self.nexthops.contains_key(&id) {
                    return libc::EEXIST;
                }
                if let Some(errno) = self.refusal(&Shape::Unicast(vec![hop_of(&spec)])) {
                    return errno;
                }
                let n = KernelNexthop {
                    id,
                    protocol: OURS,
                    spec: Some(spec),
                };
                self.nexthops.insert(id, n.clone());
                self.notes.push_back(Note::Nexthop(n, true));
                0
            }
            NhOp::Delete(id) => {
                let Some(n) = self.nexthops.get(&id) else {
                    return libc::ENOENT;
                };
                assert_eq!(n.protocol, OURS, "deleted another protocol's nexthop {id}");
                self.remove_nexthop(id, true);
                0
            }
        }
    }

    /// Removes nexthop `id` and the routes naming it (the kernel reports
    /// the IPv6 ones only), reporting the object itself if `notify`.
    pub(crate) fn remove_nexthop(&mut self, id: u32, notify: bool) -> bool {
        let Some(n) = self.nexthops.remove(&id) else {
            return false;
        };
        let mut gone = Vec::new();
        self.table.retain(|_, routes| {
            routes.retain(|r| {
                let keep = r.nh_id != Some(id);
                if !keep {
                    gone.push(r.clone());
                }
                keep
            });
            !routes.is_empty()
        });
        if notify {
            self.notes.push_back(Note::Nexthop(n, false));
        }
        for r in gone {
            if matches!(r.prefix, IpNet::V6(_)) {
                self.note_route(&r, RouteChange::Removed);
            }
        }
        true
    }

    /// Our nexthop objects (id, what they stand for).
    pub(crate) fn our_nexthops(&self) -> BTreeMap<u32, NhSpec> {
        self.nexthops
            .values()
            .filter(|n| n.protocol == OURS)
            .filter_map(|n| Some((n.id, n.spec?)))
            .collect()
    }

    /// Someone else appends a route (`ip route append`).
    pub(crate) fn append(&mut self, r: KernelRoute) {
        self.table
            .entry((r.prefix, r.metric))
            .or_default()
            .push(r.clone());
        self.note_route(&r, RouteChange::Added);
    }

    /// Someone else replaces the first route of a key (`ip route replace`),
    /// or adds one to an empty key.
    pub(crate) fn replace(&mut self, r: KernelRoute) {
        let routes = self.table.entry((r.prefix, r.metric)).or_default();
        match routes.first_mut() {
            Some(first) => *first = r.clone(),
            None => routes.push(r.clone()),
        }
        self.note_route(&r, RouteChange::Replaced);
    }

    /// Someone changes our route in place (`ip route change ... proto 84`).
    pub(crate) fn change_ours(&mut self, prefix: IpNet, shape: Shape) -> bool {
        let Some(r) = self
            .table
            .get_mut(&(prefix, self.metric))
            .and_then(|v| v.iter_mut().find(|r| r.protocol == OURS))
        else {
            return false;
        };
        r.shape = shape;
        let r = r.clone();
        self.note_route(&r, RouteChange::Replaced);
        true
    }

    /// Someone else deletes the first route of `protocol` on a key.
    pub(crate) fn delete(&mut self, prefix: IpNet, metric: u32, protocol: u8) -> bool {
        let key = (prefix, metric);
        let Some(routes) = self.table.get_mut(&key) else {
            return false;
        };
        let Some(i) = routes.iter().position(|k| k.protocol == protocol) else {
            return false;
        };
        let gone = routes.remove(i);
        if routes.is_empty() {
            self.table.remove(&key);
        }
        self.note_route(&gone, RouteChange::Removed);
        true
    }

    /// A link appears or changes state. Downing it silently drops the IPv4
    /// routes through it, as the kernel does.
    pub(crate) fn set_link(&mut self, index: u32, name: &str, up: bool) {
        if self.links.get(&index) == Some(&(name.to_owned(), up)) {
            return;
        }
        self.links.insert(index, (name.to_owned(), up));
        if !up {
            // Nexthop objects on the device go, silently, with their routes.
            let on: Vec<u32> = self
                .nexthops
                .values()
                .filter(|n| n.spec.is_some_and(|s| s.oif == index))
                .map(|n| n.id)
                .collect();
            for id in on {
                self.remove_nexthop(id, false);
            }
            self.table.retain(|(p, _), routes| {
                routes.retain(|r| {
                    !(matches!(p, IpNet::V4(_))
                        && matches!(&r.shape, Shape::Unicast(h) if h.iter().all(|h| h.oif == index)))
                });
                !routes.is_empty()
            });
        }
        self.notes.push_back(Note::Link {
            index,
            name: name.to_owned(),
            up,
            removed: false,
        });
    }

    /// A gateway becomes reachable through a new address on `eth0`.
    pub(crate) fn reach(&mut self, gateway: IpAddr) {
        if self.unreachable.remove(&gateway) {
            let address = IpNet::new(gateway, if gateway.is_ipv4() { 24 } else { 64 })
                .map(|n| n.trunc())
                .unwrap_or_else(|_| IpNet::from(gateway));
            self.notes.push_back(Note::Addr {
                index: ETH,
                address,
                removed: false,
            });
            self.addrs.push((ETH, address));
        }
    }

    /// Links and addresses.
    pub(crate) fn dump_links(&self) -> Vec<Parsed> {
        let mut out: Vec<Parsed> = self
            .links
            .iter()
            .map(|(index, (name, up))| Parsed::Link {
                index: *index,
                name: Some(name.clone()),
                up: *up,
                removed: false,
            })
            .collect();
        out.extend(self.addrs.iter().map(|(index, address)| Parsed::Addr {
            index: *index,
            address: *address,
            removed: false,
        }));
        out
    }

    /// Routes and nexthop objects.
    pub(crate) fn dump_routes(&self) -> Vec<Parsed> {
        let mut out: Vec<Parsed> = self
            .table
            .values()
            .flatten()
            .map(|r| Parsed::NewRoute(r.clone()))
            .collect();
        out.extend(self.nexthops.values().cloned().map(Parsed::NewNexthop));
        out
    }

    /// Our route on `prefix`'s key at the family metric.
    pub(crate) fn ours(&self, prefix: &IpNet) -> Option<&KernelRoute> {
        self.ours_at(prefix, self.metric)
    }

    /// Our route on `prefix` at `metric`.
    pub(crate) fn ours_at(&self, prefix: &IpNet, metric: u32) -> Option<&KernelRoute> {
        self.table
            .get(&(*prefix, metric))
            .and_then(|v| v.iter().find(|r| r.protocol == OURS))
    }

    /// Routes of other protocols on `prefix`'s key at the family metric.
    pub(crate) fn foreign_on_key(&self, prefix: &IpNet) -> usize {
        self.foreign_at(prefix, self.metric)
    }

    /// Routes of other protocols on `prefix` at `metric`.
    pub(crate) fn foreign_at(&self, prefix: &IpNet, metric: u32) -> usize {
        self.table
            .get(&(*prefix, metric))
            .map_or(0, |v| v.iter().filter(|r| r.protocol != OURS).count())
    }

    /// Metrics other than the family's at which a route of ours is on
    /// `prefix`.
    pub(crate) fn stale_metrics(&self, prefix: &IpNet) -> Vec<u32> {
        self.metrics_of_ours_except(prefix, self.metric)
    }

    /// Metrics other than `metric` at which a route of ours is on `prefix`.
    pub(crate) fn metrics_of_ours_except(&self, prefix: &IpNet, metric: u32) -> Vec<u32> {
        self.table
            .range((*prefix, 0)..=(*prefix, u32::MAX))
            .filter(|((_, m), v)| *m != metric && v.iter().any(|r| r.protocol == OURS))
            .map(|((_, m), _)| *m)
            .collect()
    }

    /// The kernel's spelling of `want`; `None` when it names a device that
    /// does not exist.
    pub(crate) fn expected(&self, want: &FibRoute) -> Option<KernelRoute> {
        let shape = match &want.kind {
            RouteKind::Blackhole => Shape::Blackhole,
            RouteKind::Unicast(hops) => {
                let mut out = Vec::new();
                for h in hops {
                    let oif = match &h.device {
                        None => ETH,
                        Some(d) => *self.links.iter().find(|(_, (n, _))| n == d)?.0,
                    };
                    out.push(Hop {
                        gateway: Some(h.gateway),
                        oif,
                        onlink: h.onlink,
                        weight: if hops.len() > 1 { h.weight } else { 1 },
                    });
                }
                out.sort_by(|a, b| a.gateway.cmp(&b.gateway).then(a.oif.cmp(&b.oif)));
                Shape::Unicast(out)
            }
        };
        Some(KernelRoute {
            pref_src: want.pref_src,
            ..kernel_route(want.prefix, OURS, want.metric.unwrap_or(self.metric), shape)
        })
    }

    /// Whether the kernel would take `r` now.
    pub(crate) fn accepts(&self, r: &KernelRoute) -> bool {
        self.refusal(&r.shape).is_none()
    }
}

/// A nexthop object's next hop as a route spells it.
pub(crate) fn hop_of(s: &NhSpec) -> Hop {
    Hop {
        gateway: Some(s.gateway),
        oif: s.oif,
        onlink: s.onlink,
        weight: 1,
    }
}

/// The planner driven against a `Kernel` as the actor drives it.
#[derive(Debug)]
pub(crate) struct Sim {
    pub plan: Planner,
    pub kernel: Kernel,
    pub now: Instant,
    /// Requests outstanding at most (`FibConfig::max_in_flight`).
    pub window: usize,
    /// Sent requests and their answers, not read yet, oldest first.
    answers: VecDeque<(Planned, i32)>,
    /// Every nexthop request sent, in order.
    pub sent_nh: Vec<NhRequest>,
    /// Every request sent, routes and nexthops, in order.
    pub order: Vec<Planned>,
    outstanding: HashSet<IpNet>,
    /// Every request sent, in order.
    pub sent: Vec<Request>,
    /// Every answer applied, in order.
    pub answered: Vec<(Request, i32)>,
    /// The next this many sends fail before reaching the kernel.
    pub failing_sends: usize,
    /// Events the planner published.
    pub events: Vec<KernelEvent>,
    /// Dumps taken.
    pub dumps: usize,
}

/// A configuration for simulations: bulk mode from `bulk_threshold`
/// changes, retries every 10 s, a verifying dump every minute.
pub(crate) fn config(bulk_threshold: usize) -> FibConfig {
    FibConfig {
        bulk_threshold,
        retry_interval: Duration::from_secs(10),
        verify_interval: Some(Duration::from_secs(60)),
        nexthop_objects: false,
        ..FibConfig::default()
    }
}

impl Sim {
    /// Starts as `FibTask::open` does: a dump, then the routes of ours it
    /// found are left alone until convergence.
    pub(crate) fn start(cfg: &FibConfig, kernel: Kernel) -> Self {
        let now = Instant::now();
        let mut sim = Self {
            plan: Planner::new(cfg, now),
            kernel,
            now,
            window: cfg.max_in_flight.max(1),
            answers: VecDeque::new(),
            sent_nh: Vec::new(),
            order: Vec::new(),
            outstanding: HashSet::default(),
            sent: Vec::new(),
            answered: Vec::new(),
            failing_sends: 0,
            events: Vec::new(),
            dumps: 0,
        };
        sim.dump();
        sim.plan.adopt_found_routes();
        sim
    }

    /// Discards queued notifications (the dump supersedes them) and
    /// rebuilds the planner's view.
    pub(crate) fn dump(&mut self) {
        self.kernel.notes.clear();
        self.dumps += 1;
        let links = self.kernel.dump_links();
        let routes = self.kernel.dump_routes();
        self.plan.rebuild(links, routes, true);
        self.collect_events();
    }

    fn collect_events(&mut self) {
        while let Some(ev) = self.plan.poll_event() {
            self.events.push(ev);
        }
    }

    /// Checks a request against the planner's invariants and its view at
    /// the moment it was planned.
    fn check(&self, r: &Request) {
        let view = self.plan.view();
        let p = &r.prefix;
        assert!(
            !self.outstanding.contains(p),
            "a second request for {p} while one is outstanding: {r:?}"
        );
        assert!(
            !self.plan.has_inherited(p),
            "{p} was found at start and the RIB has not converged: {r:?}"
        );
        match &r.op {
            Op::Replace(_) => {
                assert!(
                    view.ours.contains_key(p),
                    "REPLACE without our route: {r:?}"
                );
                assert!(
                    !view.foreign_may_hold(p),
                    "REPLACE on a key a foreign route may hold: {r:?}"
                );
                assert!(!self.plan.in_bulk(), "REPLACE during a bulk run: {r:?}");
            }
            Op::Create(_) => {
                assert!(!view.foreign_may_hold(p), "create on a foreign key: {r:?}");
                assert!(!view.ours.contains_key(p), "create over our route: {r:?}");
            }
            Op::Delete { metric } if *metric == view.metric_for(p) => {
                assert!(view.ours.contains_key(p), "delete without our route: {r:?}");
            }
            Op::Delete { metric } => assert!(
                view.stale_metric.get(p).is_some_and(|m| m.contains(metric)),
                "delete at a metric the view does not hold: {r:?}"
            ),
        }
    }

    /// Checks a nexthop delete: the routes it takes along (the kernel
    /// deletes every route naming the object) are only routes of ours on
    /// prefixes not wanted, after convergence; never another protocol's.
    fn check_nh(&self, n: &NhRequest) {
        let NhOp::Delete(id) = n.op else { return };
        for r in self.kernel.table.values().flatten() {
            if r.nh_id != Some(id) {
                continue;
            }
            assert_eq!(r.protocol, OURS, "deleting nexthop {id} would take {r:?}");
            assert!(
                self.plan.stats().converged,
                "flushing nexthop {id} before convergence takes {r:?}"
            );
            let view = self.plan.view();
            if r.metric == view.metric_for(&r.prefix) {
                assert!(
                    !self.plan.desired().contains_key(&r.prefix),
                    "deleting nexthop {id} would take the wanted {r:?}"
                );
            }
        }
    }

    /// Sends what the planner plans, up to the window.
    pub(crate) fn send(&mut self) {
        let mut batch = Vec::new();
        while self.answers.len() + batch.len() < self.window || self.plan.owes_route() {
            let Some(r) = self.plan.next() else {
                break;
            };
            match &r {
                Planned::Route(r) => {
                    self.check(r);
                    self.outstanding.insert(r.prefix);
                }
                Planned::Nexthop(n) => self.check_nh(n),
            }
            batch.push(r);
        }
        if self.failing_sends > 0 && !batch.is_empty() {
            self.failing_sends -= 1;
            for r in batch {
                match r {
                    Planned::Route(r) => {
                        self.outstanding.remove(&r.prefix);
                        self.plan.unsent(r);
                    }
                    Planned::Nexthop(n) => self.plan.unsent_nexthop(n),
                }
            }
            return;
        }
        for r in batch {
            self.order.push(r.clone());
            let errno = match &r {
                Planned::Route(q) => {
                    self.sent.push(q.clone());
                    self.kernel.apply(q)
                }
                Planned::Nexthop(n) => {
                    self.sent_nh.push(*n);
                    self.kernel.apply_nh(n)
                }
            };
            self.answers.push_back((r, errno));
        }
    }

    /// Hands queued notifications to the planner.
    pub(crate) fn notify(&mut self) {
        while let Some(n) = self.kernel.notes.pop_front() {
            match n {
                Note::Route(r, change) => self.plan.on_route(r, change),
                Note::Link {
                    index,
                    name,
                    up,
                    removed,
                } => self.plan.on_link(index, Some(name), up, removed),
                Note::Addr {
                    index,
                    address,
                    removed,
                } => self.plan.on_address(index, address, removed),
                Note::Nexthop(n, added) => self.plan.on_nexthop(n, added),
            }
        }
        self.collect_events();
    }

    /// Reads up to `n` answers, then the notifications, then applies the
    /// answers (as `FibTask::drain`).
    pub(crate) fn read(&mut self, n: usize) {
        let k = n.min(self.answers.len());
        let read: Vec<(Planned, i32)> = self.answers.drain(..k).collect();
        self.notify();
        for (r, errno) in read {
            match r {
                Planned::Route(r) => {
                    self.outstanding.remove(&r.prefix);
                    self.answered.push((r.clone(), errno));
                    self.plan.complete(r, errno);
                }
                Planned::Nexthop(n) => self.plan.complete_nexthop(n, errno),
            }
        }
        self.collect_events();
    }

    /// The results of everything outstanding are lost (request socket
    /// overrun).
    pub(crate) fn lose_answers(&mut self) {
        let mut lost: Vec<Request> = Vec::new();
        let mut lost_nh = 0;
        for (r, _) in self.answers.drain(..) {
            match r {
                Planned::Route(r) => lost.push(r),
                Planned::Nexthop(_) => lost_nh += 1,
            }
        }
        self.outstanding.clear();
        self.plan.lost(lost);
        self.plan.lost_nexthops(lost_nh);
    }

    /// Notifications are lost (event socket overrun).
    pub(crate) fn lose_notes(&mut self) {
        self.kernel.notes.clear();
        self.plan.request_dump();
    }

    /// One turn of the actor's loop before it waits.
    pub(crate) fn turn(&mut self) {
        if self.plan.needs_dump() {
            self.dump();
        }
        if self.plan.enter_bulk_if_worth_it(self.now) {
            self.kernel.listening = false;
        }
        self.send();
        if self.plan.leave_bulk_if_done(self.now, false).is_some() {
            self.kernel.listening = true;
        }
    }

    /// Runs until nothing is outstanding and nothing is left to plan.
    pub(crate) fn run(&mut self) {
        for _ in 0..10_000 {
            self.turn();
            if self.plan.needs_dump() {
                continue;
            }
            if self.answers.is_empty() && self.plan.is_idle() {
                assert_eq!(self.plan.in_flight(), 0);
                return;
            }
            self.read(usize::MAX);
        }
        panic!("the planner did not come to rest");
    }

    /// Lets `d` pass, firing the planner's timers.
    pub(crate) fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.plan.poll_timeout() <= self.now {
            self.plan.handle_timeout(self.now);
        }
    }

    /// Runs, then lets the retry timer fire a few times so that parked
    /// routes get their tries.
    pub(crate) fn settle(&mut self) {
        self.run();
        for _ in 0..3 {
            self.notify();
            self.advance(Duration::from_secs(11));
            self.run();
        }
    }

    /// Requests sent so far for `prefix`.
    pub(crate) fn sent_for(&self, prefix: &IpNet) -> Vec<&Request> {
        self.sent.iter().filter(|r| r.prefix == *prefix).collect()
    }

    /// The nexthop part of the final-state check: every route naming an
    /// object names one that exists and stands for the route's next hop;
    /// once converged, our objects are exactly those our routes name (none
    /// leaked), one per distinct next hop; the planner's view of them is
    /// the kernel's.
    pub(crate) fn assert_nexthops_reconciled(&self) {
        let ours = self.kernel.our_nexthops();
        let mut named: BTreeMap<u32, usize> = BTreeMap::new();
        for r in self.kernel.table.values().flatten() {
            let Some(id) = r.nh_id else { continue };
            let n = self.kernel.nexthops.get(&id);
            assert!(n.is_some(), "route names missing nexthop {id}: {r:?}");
            if r.protocol == OURS {
                let spec = ours.get(&id).copied();
                assert!(spec.is_some(), "our route names another's nexthop: {r:?}");
                if let (Some(s), Shape::Unicast(h)) = (spec, &r.shape) {
                    assert_eq!(h.as_slice(), [hop_of(&s)], "route spelling of {id}");
                }
            }
            *named.entry(id).or_default() += 1;
        }
        assert_eq!(
            self.plan.nexthops().ids(),
            ours.iter().map(|(i, s)| (*i, *s)).collect::<Vec<_>>(),
            "the planner's view of our nexthop objects"
        );
        if self.plan.stats().converged {
            let unused: Vec<&u32> = ours.keys().filter(|id| !named.contains_key(*id)).collect();
            assert!(unused.is_empty(), "unused nexthop objects left: {unused:?}");
            let mut specs: Vec<&NhSpec> = ours.values().collect();
            let n = specs.len();
            specs.sort();
            specs.dedup();
            assert_eq!(specs.len(), n, "two objects for one next hop: {ours:?}");
        }
    }

    /// The final-state check: the view is the kernel, and every prefix not
    /// waiting for convergence is as wanted (a foreign route on the key
    /// leaves ours absent or as wanted; a route the kernel refuses is
    /// absent).
    pub(crate) fn assert_reconciled(&self) {
        self.assert_nexthops_reconciled();
        let view = self.plan.view();
        let mut prefixes: BTreeSet<IpNet> = self.kernel.table.keys().map(|(p, _)| *p).collect();
        prefixes.extend(self.plan.desired().keys().copied());
        prefixes.extend(view.ours.keys().copied());
        prefixes.extend(view.foreign.keys().map(|k| k.0));
        // Every foreign route is known by its key, ours or not.
        let mut foreign_keys: BTreeMap<(IpNet, u32), usize> = BTreeMap::new();
        for (key, routes) in &self.kernel.table {
            let n = routes.iter().filter(|r| r.protocol != OURS).count();
            if n > 0 {
                foreign_keys.insert(*key, n);
            }
        }
        let seen_keys: BTreeMap<(IpNet, u32), usize> = view
            .foreign
            .iter()
            .map(|(k, f)| {
                assert!(!f.ambiguous, "an ambiguous key left at rest: {k:?}");
                (*k, f.count as usize)
            })
            .collect();
        assert_eq!(seen_keys, foreign_keys, "the view of foreign routes by key");
        for p in &prefixes {
            // The key a wanted route belongs on, from what was asked; for a
            // prefix not wanted, nothing of ours may be left at any metric.
            let metric = match self.plan.desired().get(p) {
                Some(want) => want.metric.unwrap_or(self.kernel.metric),
                None => view.metric_for(p),
            };
            assert_eq!(view.metric_for(p), metric, "the view's key for {p}");
            let have = self.kernel.ours_at(p, metric);
            assert_eq!(view.ours.get(p), have, "view of our route on {p}");
            let foreign = self.kernel.foreign_at(p, metric);
            let seen = view.foreign.get(&(*p, metric)).copied().unwrap_or_default();
            assert_eq!(
                (seen.count as usize, seen.ambiguous),
                (foreign, false),
                "view of foreign routes on {p}"
            );
            let mut stale = self.kernel.metrics_of_ours_except(p, metric);
            let mut seen_stale = view.stale_metric.get(p).cloned().unwrap_or_default();
            stale.sort_unstable();
            seen_stale.sort_unstable();
            assert_eq!(seen_stale, stale, "view of our stale routes on {p}");
            if self.plan.has_inherited(p) {
                continue;
            }
            assert!(stale.is_empty(), "stale route of ours left on {p}");
            match self.plan.desired().get(p) {
                None => assert_eq!(have, None, "unwanted route of ours left on {p}"),
                Some(want) => {
                    let expected = self.kernel.expected(want);
                    let installable = expected.as_ref().is_some_and(|e| self.kernel.accepts(e));
                    match have {
                        // Refused: the route before stays while it waits.
                        Some(_) if !installable && self.plan.is_parked(p) => {}
                        Some(have) => {
                            let spelled = KernelRoute {
                                nh_id: None,
                                ..have.clone()
                            };
                            assert_eq!(
                                Some(&spelled),
                                expected.as_ref(),
                                "our route on {p} (foreign routes on the key: {foreign})"
                            );
                            // On an object only when the planner uses them
                            // and the route has one gateway of its family;
                            // then always, unless the kernel refuses the
                            // next hop now (a route it kept through a downed
                            // link spells it out until the object can be
                            // made).
                            let single = matches!(&want.kind, RouteKind::Unicast(h)
                                if h.len() == 1 && h[0].gateway.is_ipv4() == p.addr().is_ipv4());
                            let eligible = single && self.plan.uses_nexthops();
                            assert!(
                                have.nh_id.is_none() || eligible,
                                "{p} on an object: {have:?}"
                            );
                            assert!(
                                have.nh_id.is_some() || !eligible || !installable,
                                "{p} not on an object: {have:?}"
                            );
                        }
                        None if foreign > 0 => {}
                        None => {
                            assert!(!installable, "{p} wanted, installable, and missing");
                            assert!(self.plan.is_parked(p), "{p} refused but not parked");
                        }
                    }
                }
            }
        }
    }
}
