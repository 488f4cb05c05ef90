//! Our nexthop objects: one per distinct next hop (gateway on a device),
//! shared by every single-path route that uses it (`RTA_NH_ID`), so the
//! kernel sets a next hop up once instead of once per route.
//!
//! Pure bookkeeping for the planner: which objects of ours the kernel holds
//! (from the dump, notifications and our acknowledged requests), which id
//! stands for which next hop, and the requests to create and delete them,
//! in the order they must be sent. Creates go out before the first route
//! that names the object (requests on one socket are processed in order);
//! an object is deleted only once no route in the view and no request in
//! flight names it (deleting it would delete those routes), and only after
//! the RIB converged (the restart rule: what was found stays until then).
//! Ids come from a range of our own (our protocol number in the top byte),
//! skipping ids the kernel shows held by others; objects of other protocols
//! are never touched.
//!
//! Flush: when no wanted route has an object's next hop any more and no
//! route of ours naming it is wanted (a withdraw), the object is deleted
//! while routes still name it, and the kernel deletes them all with it: one
//! request instead of one per route. Never while another protocol's route
//! names it, a request in flight names it, or before convergence.

use std::collections::VecDeque;
use std::net::IpAddr;

use ipnet::IpNet;
use tracing::{debug, info, warn};

use crate::maps::{HashMap, HashSet};
use crate::types::{FibRoute, RouteKind};
use crate::wire::{KernelNexthop, NhOp, NhSpec};

/// A wanted single next hop as the route gives it (the device by name, or
/// none): what the flush rule counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HopKey {
    gateway: IpAddr,
    device: Option<String>,
    onlink: bool,
}

impl HopKey {
    /// The key of a route that could go through an object: one gateway of
    /// the prefix's family.
    pub(crate) fn of(r: &FibRoute) -> Option<Self> {
        let RouteKind::Unicast(hops) = &r.kind else {
            return None;
        };
        let [h] = hops.as_slice() else {
            return None;
        };
        (h.gateway.is_ipv4() == r.prefix.addr().is_ipv4()).then(|| Self {
            gateway: h.gateway,
            device: h.device.clone(),
            onlink: h.onlink,
        })
    }
}

/// Who else may hold on to an object, as the planner sees it; see
/// `Nexthops::next_request`.
pub(crate) trait Holders {
    /// Routes in our table naming `id` (ours and others').
    fn users(&self, id: u32) -> u32;
    /// Routes of other protocols naming `id`.
    fn foreign_users(&self, id: u32) -> u32;
    /// A device's name by index.
    fn device(&self, index: u32) -> Option<&str>;
    /// Whether a route of ours naming `id` is wanted (a scan: asked only
    /// when no wanted route has the object's next hop).
    fn wanted_route_on(&self, id: u32) -> bool;
}

/// A nexthop request the planner wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NhRequest {
    pub op: NhOp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Created by a request not yet answered.
    Creating,
    /// In the kernel.
    Present,
    /// A delete is in flight.
    Deleting,
}

#[derive(Debug, Clone, Copy)]
struct Obj {
    spec: NhSpec,
    state: State,
}

/// What a kernel nexthop notification means for our routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NhChange {
    Nothing,
    /// An object of ours went or changed without a request of ours: the
    /// routes naming it are gone (the kernel deletes them with it) or
    /// forward elsewhere; they must be looked at again.
    Lost(u32),
}

#[derive(Debug)]
pub(crate) struct Nexthops {
    /// Whether nexthop objects are used at all (the kernel supports them
    /// and the configuration allows them).
    enabled: bool,
    protocol: u8,
    first_id: u32,
    last_id: u32,
    next_id: u32,
    objs: HashMap<u32, Obj>,
    by_spec: HashMap<NhSpec, u32>,
    /// Ids held by objects of other protocols: never used, never touched.
    foreign: HashSet<u32>,
    /// Route requests in flight that name an id.
    in_flight: HashMap<u32, u32>,
    queue: VecDeque<NhRequest>,
    /// Ids that may have lost their last user; checked by `next_request`.
    idle: Vec<u32>,
    /// Next hops whose object the kernel refused (errno): their routes
    /// spell the next hop out instead, until the next retry.
    failed: HashMap<NhSpec, i32>,
    /// Prefixes that spelled a failed next hop out: moved onto an object
    /// when it gets another try.
    fallen_back: Vec<IpNet>,
    /// An object of ours was created or found: a later refusal is about
    /// that next hop, not about nexthop objects.
    proven: bool,
    /// Wanted routes by next hop (see `HopKey`).
    wanted: HashMap<HopKey, u32>,
}

impl Nexthops {
    pub(crate) fn new(enabled: bool, protocol: u8) -> Self {
        // 16M ids with our protocol number in the top byte (84 → 0x54xxxxxx);
        // id 0 is not a valid nexthop id, hence the +1.
        let first_id = (u32::from(protocol) << 24) | 1;
        Self {
            enabled,
            protocol,
            first_id,
            last_id: (u32::from(protocol) << 24) | 0x00ff_ffff,
            next_id: first_id,
            objs: HashMap::default(),
            by_spec: HashMap::default(),
            foreign: HashSet::default(),
            in_flight: HashMap::default(),
            queue: VecDeque::new(),
            idle: Vec::new(),
            failed: HashMap::default(),
            fallen_back: Vec::new(),
            proven: false,
            wanted: HashMap::default(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The kernel has no nexthop objects (the dump was refused): every
    /// route spells its next hops out.
    pub(crate) fn disable(&mut self, why: &str) {
        if self.enabled {
            info!(
                why,
                "nexthop objects not used; next hops programmed per route"
            );
        }
        self.enabled = false;
        self.queue.clear();
    }

    /// Whether a route to `spec` goes through an object (else it spells the
    /// next hop out).
    pub(crate) fn usable(&self, spec: &NhSpec) -> bool {
        self.enabled && (self.failed.is_empty() || !self.failed.contains_key(spec))
    }

    /// The id of our object for `spec`, if one exists or is being created.
    pub(crate) fn lookup(&self, spec: &NhSpec) -> Option<u32> {
        self.by_spec.get(spec).copied()
    }

    /// The id for `spec`, creating the object (queued before the route
    /// request that asked) when there is none. `None` when the range is
    /// exhausted.
    pub(crate) fn id_for(&mut self, spec: NhSpec) -> Option<u32> {
        if let Some(id) = self.lookup(&spec) {
            return Some(id);
        }
        let span = self.last_id - self.first_id + 1;
        for _ in 0..span {
            let id = self.next_id;
            self.next_id = if id >= self.last_id {
                self.first_id
            } else {
                id + 1
            };
            if self.objs.contains_key(&id) || self.foreign.contains(&id) {
                continue;
            }
            self.objs.insert(
                id,
                Obj {
                    spec,
                    state: State::Creating,
                },
            );
            self.by_spec.insert(spec, id);
            self.queue.push_back(NhRequest {
                op: NhOp::Create(id, spec),
            });
            return Some(id);
        }
        warn!("no free nexthop id in our range; next hops programmed per route");
        None
    }

    /// Whether a delete of our object `id` is in flight.
    pub(crate) fn deleting(&self, id: u32) -> bool {
        self.objs
            .get(&id)
            .is_some_and(|o| o.state == State::Deleting)
    }

    /// Whether `id` is an object of ours the kernel holds or is creating.
    pub(crate) fn alive(&self, id: u32) -> bool {
        self.objs
            .get(&id)
            .is_some_and(|o| o.state != State::Deleting)
    }

    /// The next hop our object `id` stands for.
    pub(crate) fn spec_of(&self, id: u32) -> Option<NhSpec> {
        self.objs.get(&id).map(|o| o.spec)
    }

    /// A route request naming `id` was sent.
    pub(crate) fn sent_route(&mut self, id: u32) {
        *self.in_flight.entry(id).or_default() += 1;
    }

    /// A route request naming `id` was answered (or given up).
    pub(crate) fn route_done(&mut self, id: u32) {
        if let Some(n) = self.in_flight.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&id);
                self.idle.push(id);
            }
        }
    }

    /// `id` lost its last route in the view.
    pub(crate) fn maybe_unused(&mut self, id: u32) {
        if self.objs.contains_key(&id) {
            self.idle.push(id);
        }
    }

    /// A wanted route's next hop changed from `old` to `new` (either may be
    /// none). When the last wanted route of a next hop goes, its object may
    /// be flushed.
    pub(crate) fn wanted_changed(&mut self, old: Option<HopKey>, new: Option<HopKey>) {
        if !self.enabled || old == new {
            return;
        }
        if let Some(k) = new {
            *self.wanted.entry(k).or_default() += 1;
        }
        if let Some(k) = old
            && let Some(n) = self.wanted.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                self.wanted.remove(&k);
                self.check_all();
            }
        }
    }

    /// Recounts the wanted next hops (after the desired set was replaced).
    pub(crate) fn recount_wanted<'a>(&mut self, routes: impl Iterator<Item = &'a FibRoute>) {
        if !self.enabled {
            return;
        }
        self.wanted.clear();
        for k in routes.filter_map(HopKey::of) {
            *self.wanted.entry(k).or_default() += 1;
        }
        self.check_all();
    }

    /// Whether a wanted route has `spec`'s next hop (by device name, or
    /// with the device left to us).
    fn hop_wanted(&self, spec: &NhSpec, device: Option<&str>) -> bool {
        let mut key = HopKey {
            gateway: spec.gateway,
            device: None,
            onlink: spec.onlink,
        };
        if self.wanted.contains_key(&key) {
            return true;
        }
        key.device = device.map(str::to_owned);
        key.device.is_some() && self.wanted.contains_key(&key)
    }

    /// At convergence: every object of ours is a candidate for deletion.
    pub(crate) fn check_all(&mut self) {
        self.idle.extend(self.objs.keys().copied());
    }

    /// `p` spells out a next hop whose object the kernel refused.
    pub(crate) fn fell_back(&mut self, p: IpNet) {
        self.fallen_back.push(p);
    }

    /// Next hops refused before get another try (link up, address added,
    /// resync, retry timer); returns the prefixes that spelled them out, to
    /// be planned again.
    pub(crate) fn retry_failed(&mut self) -> Vec<IpNet> {
        self.failed.clear();
        std::mem::take(&mut self.fallen_back)
    }

    /// The next nexthop request: queued creates first, then, once
    /// `converged`, deletes of objects that no route uses, or that only
    /// unwanted routes of ours use (a flush; see the module docs).
    pub(crate) fn next_request(
        &mut self,
        converged: bool,
        holders: &impl Holders,
    ) -> Option<NhRequest> {
        if let Some(r) = self.queue.pop_front() {
            return Some(r);
        }
        if !converged {
            return None;
        }
        while let Some(id) = self.idle.pop() {
            let Some(obj) = self.objs.get_mut(&id) else {
                continue;
            };
            if obj.state != State::Present || self.in_flight.contains_key(&id) {
                continue;
            }
            let users = holders.users(id);
            if users != 0 {
                let spec = obj.spec;
                let device = holders.device(spec.oif);
                if holders.foreign_users(id) != 0
                    || self.hop_wanted(&spec, device)
                    || holders.wanted_route_on(id)
                {
                    continue;
                }
                debug!(
                    id,
                    routes = users,
                    "flushing an unwanted nexthop object with its routes"
                );
            }
            let Some(obj) = self.objs.get_mut(&id) else {
                continue;
            };
            obj.state = State::Deleting;
            if self.by_spec.get(&obj.spec) == Some(&id) {
                self.by_spec.remove(&obj.spec);
            }
            debug!(id, "nexthop object unused; deleting it");
            return Some(NhRequest {
                op: NhOp::Delete(id),
            });
        }
        None
    }

    /// Whether requests wait to be sent.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The kernel's answer to `r` (0 or a positive errno). True when routes
    /// naming the object must be looked at again (it does not exist).
    pub(crate) fn complete(&mut self, r: NhRequest, errno: i32) -> bool {
        match (r.op, errno) {
            (NhOp::Create(id, _), 0) => {
                self.proven = true;
                if let Some(o) = self
                    .objs
                    .get_mut(&id)
                    .filter(|o| o.state == State::Creating)
                {
                    o.state = State::Present;
                }
                // The routes that named it may have failed or moved on.
                self.idle.push(id);
                false
            }
            (NhOp::Create(id, _), libc::EEXIST) => {
                // Someone we never saw holds the id: keep off it.
                self.forget(id);
                self.foreign.insert(id);
                debug!(
                    id,
                    "nexthop id taken by an object we did not see; using another"
                );
                true
            }
            (NhOp::Create(id, spec), e) => {
                self.forget(id);
                if !self.proven && matches!(e, libc::EOPNOTSUPP | libc::EAFNOSUPPORT) {
                    self.disable("the kernel refused the first nexthop object");
                } else {
                    warn!(
                        id,
                        ?spec,
                        errno = e,
                        "nexthop object refused; its routes spell the next hop out until the next retry"
                    );
                    self.failed.insert(spec, e);
                }
                true
            }
            (NhOp::Delete(id), 0 | libc::ENOENT | libc::ESRCH) => {
                if self
                    .objs
                    .get(&id)
                    .is_some_and(|o| o.state == State::Deleting)
                {
                    self.objs.remove(&id);
                }
                false
            }
            (NhOp::Delete(id), e) => {
                warn!(
                    id,
                    errno = e,
                    "deleting an unused nexthop object failed; retried when next unused"
                );
                self.undelete(id);
                false
            }
        }
    }

    /// `r` never reached the kernel: sent again first.
    pub(crate) fn unsent(&mut self, r: NhRequest) {
        match r.op {
            NhOp::Create(id, _)
                if self
                    .objs
                    .get(&id)
                    .is_some_and(|o| o.state == State::Creating) =>
            {
                self.queue.push_front(r);
            }
            NhOp::Delete(id) => {
                if self.undelete(id) {
                    self.idle.push(id);
                }
            }
            NhOp::Create(..) => {}
        }
    }

    /// The answers to everything in flight were lost; a dump follows and
    /// shows which objects exist.
    pub(crate) fn lost(&mut self) {
        let creating: Vec<u32> = self
            .objs
            .iter()
            .filter(|(_, o)| o.state == State::Creating)
            .map(|(id, _)| *id)
            .collect();
        for id in creating {
            self.forget(id);
        }
        self.queue.clear();
    }

    /// A delete of `id` that did not happen: the object stands again.
    /// Whether it was being deleted.
    fn undelete(&mut self, id: u32) -> bool {
        let Some(o) = self
            .objs
            .get_mut(&id)
            .filter(|o| o.state == State::Deleting)
        else {
            return false;
        };
        o.state = State::Present;
        self.by_spec.entry(o.spec).or_insert(id);
        true
    }

    /// Records object `id` as in the kernel, standing for `spec`.
    fn present(&mut self, id: u32, spec: NhSpec) {
        self.objs.insert(
            id,
            Obj {
                spec,
                state: State::Present,
            },
        );
    }

    fn forget(&mut self, id: u32) {
        if let Some(o) = self.objs.remove(&id)
            && self.by_spec.get(&o.spec) == Some(&id)
        {
            self.by_spec.remove(&o.spec);
        }
    }

    /// A nexthop notification (`added`: `RTM_NEWNEXTHOP`).
    pub(crate) fn on_nexthop(&mut self, n: &KernelNexthop, added: bool) -> NhChange {
        let ours = n.protocol == self.protocol && n.spec.is_some();
        if !ours {
            if added {
                self.foreign.insert(n.id);
            } else {
                self.foreign.remove(&n.id);
            }
            return NhChange::Nothing;
        }
        let Some(spec) = n.spec else {
            return NhChange::Nothing;
        };
        let before = self.objs.get(&n.id).copied();
        if !added {
            self.forget(n.id);
            return match before {
                Some(o) if o.state == State::Deleting => NhChange::Nothing,
                Some(_) => NhChange::Lost(n.id),
                None => NhChange::Nothing,
            };
        }
        self.foreign.remove(&n.id);
        match before {
            Some(o) if o.spec == spec => {
                if o.state == State::Creating {
                    // Confirmed ahead of our ack.
                    self.present(n.id, spec);
                    self.idle.push(n.id);
                }
                NhChange::Nothing
            }
            _ => {
                // New to us (someone created one under our protocol) or
                // changed under us: the id now stands for `spec`.
                self.forget(n.id);
                self.present(n.id, spec);
                self.by_spec.entry(spec).or_insert(n.id);
                self.idle.push(n.id);
                match before {
                    Some(_) => NhChange::Lost(n.id),
                    None => NhChange::Nothing,
                }
            }
        }
    }

    /// Rebuilds from a dump of every nexthop object. Objects being created
    /// stay (their answer will tell); ids of ours that went or changed are
    /// returned (their routes are looked at again).
    pub(crate) fn rebuild(&mut self, dump: &[KernelNexthop]) -> Vec<u32> {
        let old = std::mem::take(&mut self.objs);
        self.by_spec.clear();
        self.foreign.clear();
        let mut changed = Vec::new();
        for n in dump {
            match n.spec {
                Some(spec) if n.protocol == self.protocol => {
                    if old.get(&n.id).is_some_and(|o| o.spec != spec) {
                        changed.push(n.id);
                    }
                    self.present(n.id, spec);
                    self.by_spec.entry(spec).or_insert(n.id);
                    self.proven = true;
                }
                _ => {
                    self.foreign.insert(n.id);
                }
            }
        }
        for (id, o) in old {
            if self.objs.contains_key(&id) {
                continue;
            }
            match o.state {
                State::Creating => {
                    self.objs.insert(id, o);
                    self.by_spec.entry(o.spec).or_insert(id);
                }
                State::Present => changed.push(id),
                State::Deleting => {}
            }
        }
        self.idle.extend(self.objs.keys().copied());
        changed
    }

    /// Objects of ours the kernel holds or is creating.
    pub(crate) fn len(&self) -> usize {
        self.objs.len()
    }

    #[cfg(test)]
    pub(crate) fn ids(&self) -> Vec<(u32, NhSpec)> {
        let mut v: Vec<(u32, NhSpec)> = self.objs.iter().map(|(i, o)| (*i, o.spec)).collect();
        v.sort();
        v
    }
}
