//! The kernel as fib-sync sees it: links by index and name, our routes, our
//! routes at other metrics, and which keys other protocols hold.
//!
//! Kept from route and link notifications and rebuilt from dumps. It knows
//! nothing of what is wanted; `plan.rs` compares it with the desired routes.
//! A key is (prefix, table, tos 0, metric): the kernel holds at most one
//! route per key and protocol, and `NLM_F_REPLACE` acts on the first route of
//! a key whoever owns it, which is why foreign routes on our keys are
//! counted here.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::maps::{HashMap, HashSet};
use crate::types::{FibRoute, RouteKind};
use crate::wire::{Hop, KernelRoute, Parsed, Shape, Target};

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub name: String,
    /// Administratively up with carrier.
    pub up: bool,
}

/// Who holds a key (prefix at our table and metric) besides us.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Foreign {
    pub count: u32,
    /// A change we cannot attribute; treat as held until a dump clears it.
    pub ambiguous: bool,
}

/// How a kernel route relates to our keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Another table: none of our business.
    Elsewhere,
    /// Ours, on our key.
    Ours,
    /// Ours at another metric or tos (an older configuration).
    OursStale,
    /// Another protocol's, on our key.
    ForeignOnKey,
    /// Another protocol's, in our table but not on our key (only learning
    /// cares).
    ForeignBeside,
}

/// What a notification about our own route changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OursSeen {
    /// The view's route for the prefix is different now.
    pub changed: bool,
    /// A REPLACE on a key that also holds a foreign route: which one it
    /// replaced cannot be told.
    pub ambiguous: bool,
}

/// What a link notification changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkChange {
    Removed {
        index: u32,
        name: String,
    },
    Changed {
        index: u32,
        name: String,
        up: bool,
        /// The link was known before (a change, not an appearance).
        known: bool,
    },
}

/// Prefixes a rebuild found different from the view before it.
#[derive(Debug, Default)]
pub(crate) struct Rebuilt {
    /// Our route on the key is new or spelled differently.
    pub ours_changed: Vec<IpNet>,
    /// Our route went, a stale metric or a foreign count changed.
    pub other: Vec<IpNet>,
}

#[derive(Debug)]
pub(crate) struct KernelView {
    pub target: Target,
    pub links: HashMap<u32, Link>,
    pub names: HashMap<String, u32>,
    /// Our routes in the kernel at our metric.
    pub ours: HashMap<IpNet, KernelRoute>,
    /// Our routes in the kernel at another metric (an older configuration);
    /// removed after convergence.
    pub stale_metric: HashMap<IpNet, Vec<u32>>,
    /// Other protocols' routes in our table by key (prefix, metric; tos 0
    /// only), on our keys and beside them: a prefix whose metric moves
    /// finds its new key's holders here.
    pub foreign: HashMap<(IpNet, u32), Foreign>,
    /// Prefixes whose key is at a metric of their own rather than their
    /// family's (`FibRoute::metric`); kept while a route of ours may sit
    /// there, so that notifications and dumps place it on its key.
    pub own_metric: HashMap<IpNet, u32>,
    /// Addresses by interface: which device a gateway given without one
    /// sits on (a nexthop object needs it).
    pub addrs: HashMap<u32, Vec<IpNet>>,
    /// Routes in our table (ours and others') naming each nexthop id: an
    /// object of ours is deleted only when none does.
    pub nh_users: HashMap<u32, u32>,
    /// Ids whose count dropped to zero since the planner last looked.
    pub nh_released: Vec<u32>,
    /// The nexthop object each of our routes at another metric names.
    pub stale_nh: HashMap<(IpNet, u32), u32>,
    /// Routes of other protocols in our table naming each nexthop id: an
    /// object they name is never flushed.
    pub nh_foreign_users: HashMap<u32, u32>,
}

impl KernelView {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            links: HashMap::default(),
            names: HashMap::default(),
            ours: HashMap::default(),
            stale_metric: HashMap::default(),
            foreign: HashMap::default(),
            own_metric: HashMap::default(),
            addrs: HashMap::default(),
            nh_users: HashMap::default(),
            nh_released: Vec::new(),
            stale_nh: HashMap::default(),
            nh_foreign_users: HashMap::default(),
        }
    }

    /// Routes of other protocols in our table naming `id`.
    pub(crate) fn nh_foreign_users_of(&self, id: u32) -> u32 {
        self.nh_foreign_users.get(&id).copied().unwrap_or(0)
    }

    /// Our routes (at any metric) the kernel deleted with object `id`:
    /// dropped from the view; returns the prefixes of those on our key.
    pub(crate) fn drop_routes_on_nh(&mut self, id: u32) -> Vec<IpNet> {
        let stale: Vec<(IpNet, u32)> = self
            .stale_nh
            .iter()
            .filter(|(_, i)| **i == id)
            .map(|(k, _)| *k)
            .collect();
        for (p, metric) in stale {
            self.forget_ours(p, metric);
        }
        self.routes_on_nh(id, true)
    }

    /// Records the nexthop object our route at a stale metric names.
    fn set_stale_nh(&mut self, p: IpNet, metric: u32, id: Option<u32>) {
        let old = match id {
            Some(id) => self.stale_nh.insert((p, metric), id),
            None => self.stale_nh.remove(&(p, metric)),
        };
        self.nh_ref(old, false);
        self.nh_ref(id, true);
    }

    /// Counts a route naming `id` in (`up`) or out of the table.
    fn nh_ref(&mut self, id: Option<u32>, up: bool) {
        let Some(id) = id else { return };
        if up {
            *self.nh_users.entry(id).or_default() += 1;
        } else if let Some(n) = self.nh_users.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.nh_users.remove(&id);
                self.nh_released.push(id);
            }
        }
    }

    /// Routes in our table naming nexthop `id`.
    pub(crate) fn nh_users_of(&self, id: u32) -> u32 {
        self.nh_users.get(&id).copied().unwrap_or(0)
    }

    fn insert_ours(&mut self, p: IpNet, r: KernelRoute) {
        let id = r.nh_id;
        if let Some(old) = self.ours.insert(p, r) {
            self.nh_ref(old.nh_id, false);
        }
        self.nh_ref(id, true);
    }

    fn remove_ours(&mut self, p: &IpNet) -> Option<KernelRoute> {
        let old = self.ours.remove(p)?;
        self.nh_ref(old.nh_id, false);
        Some(old)
    }

    /// Our routes naming nexthop `id`; with `gone`, they are dropped from
    /// the view (the kernel deleted them with the object, and says so only
    /// for IPv6).
    pub(crate) fn routes_on_nh(&mut self, id: u32, gone: bool) -> Vec<IpNet> {
        let on: Vec<IpNet> = self
            .ours
            .iter()
            .filter(|(_, r)| r.nh_id == Some(id))
            .map(|(p, _)| *p)
            .collect();
        if gone {
            for p in &on {
                self.remove_ours(p);
            }
        }
        on
    }

    /// Applies an address notification.
    pub(crate) fn note_addr(&mut self, index: u32, address: IpNet, removed: bool) {
        let v = self.addrs.entry(index).or_default();
        v.retain(|a| *a != address);
        if !removed {
            v.push(address);
        }
        if v.is_empty() {
            self.addrs.remove(&index);
        }
    }

    /// The device of a gateway given without one: the interface whose
    /// address prefix covers it most specifically (the kernel resolves the
    /// gateway through the connected route that address makes). `None` when
    /// no address covers it, or two interfaces tie (the kernel's choice then
    /// cannot be foreseen; the route spells its next hop out).
    pub(crate) fn resolve_oif(&self, gateway: IpAddr) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        let mut tie = false;
        for (index, nets) in &self.addrs {
            for n in nets {
                if !n.contains(&gateway) || n.addr() == gateway {
                    continue;
                }
                let len = n.prefix_len();
                match best {
                    Some((l, i)) if l == len && i != *index => tie = true,
                    Some((l, _)) if l >= len => {}
                    _ => {
                        best = Some((len, *index));
                        tie = false;
                    }
                }
            }
        }
        if tie {
            return None;
        }
        best.map(|(_, i)| i)
    }

    /// Our metric for a prefix: its own, else its family's.
    pub(crate) fn metric_for(&self, p: &IpNet) -> u32 {
        // Most tables have no route at a metric of its own: no lookup then.
        if !self.own_metric.is_empty()
            && let Some(m) = self.own_metric.get(p)
        {
            return *m;
        }
        self.family_metric(p)
    }

    /// The metric of a route of `p`'s family that has none of its own.
    pub(crate) fn family_metric(&self, p: &IpNet) -> u32 {
        match p {
            IpNet::V4(_) => self.target.metric_v4,
            IpNet::V6(_) => self.target.metric_v6,
        }
    }

    /// Whether a foreign route holds `p`'s key, or may (ambiguous): a
    /// REPLACE there could hit it.
    pub(crate) fn foreign_may_hold(&self, p: &IpNet) -> bool {
        self.foreign
            .get(&(*p, self.metric_for(p)))
            .is_some_and(|f| f.count > 0 || f.ambiguous)
    }

    /// Whether a foreign route is known to hold `p`'s key.
    pub(crate) fn foreign_holds(&self, p: &IpNet) -> bool {
        self.foreign
            .get(&(*p, self.metric_for(p)))
            .is_some_and(|f| f.count > 0)
    }

    pub(crate) fn place(&self, r: &KernelRoute) -> Place {
        if r.table != self.target.table {
            return Place::Elsewhere;
        }
        let on_key = r.metric == self.metric_for(&r.prefix) && r.tos == 0;
        match (r.protocol == self.target.protocol, on_key) {
            (true, true) => Place::Ours,
            (true, false) => Place::OursStale,
            (false, true) => Place::ForeignOnKey,
            (false, false) => Place::ForeignBeside,
        }
    }

    /// Applies a notification about our route on its key.
    pub(crate) fn note_ours(&mut self, r: KernelRoute, added: bool, replace: bool) -> OursSeen {
        let p = r.prefix;
        let mut ambiguous = false;
        if replace && let Some(f) = self.foreign.get_mut(&(p, r.metric)).filter(|f| f.count > 0) {
            // Which route did this replace, ours or theirs?
            f.ambiguous = true;
            ambiguous = true;
        }
        let before = self.ours.get(&p);
        let changed = if added {
            before != Some(&r)
        } else {
            before.is_some()
        };
        if added {
            self.insert_ours(p, r);
        } else {
            self.remove_ours(&p);
        }
        OursSeen { changed, ambiguous }
    }

    /// Applies a notification about our route at another metric or tos.
    pub(crate) fn note_stale(&mut self, r: &KernelRoute, added: bool) {
        let p = r.prefix;
        self.set_stale_nh(p, r.metric, r.nh_id.filter(|_| added));
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
    }

    /// Applies a notification about a foreign route in our table (tos 0:
    /// the others are on no key of ours); true when the view can no longer
    /// tell who holds the key (a dump must).
    pub(crate) fn note_foreign(&mut self, r: &KernelRoute, added: bool, replace: bool) -> bool {
        if r.tos != 0 {
            return false;
        }
        let p = r.prefix;
        let key = (p, r.metric);
        self.nh_ref(r.nh_id, added);
        if let Some(id) = r.nh_id {
            let n = self.nh_foreign_users.entry(id).or_default();
            if added {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.nh_foreign_users.remove(&id);
                }
            }
        }
        let ours = r.metric == self.metric_for(&p) && self.ours.contains_key(&p);
        // Our route at an old metric sits on this key: a REPLACE may hit it
        // as it may hit ours.
        let stale_here = !ours
            && self
                .stale_metric
                .get(&p)
                .is_some_and(|v| v.contains(&r.metric));
        let mut took_ours = false;
        let f = self.foreign.entry(key).or_default();
        let mut ambiguous = false;
        if added {
            if replace {
                if (ours || stale_here) && f.count == 0 {
                    // A foreign REPLACE took over our route's key.
                    took_ours = true;
                    f.count = 1;
                } else if f.count == 0 {
                    f.count = 1;
                } else if ours || stale_here {
                    f.ambiguous = true;
                    ambiguous = true;
                }
            } else {
                f.count += 1;
            }
        } else {
            f.count = f.count.saturating_sub(1);
        }
        if f.count == 0 && !f.ambiguous {
            self.foreign.remove(&key);
        }
        if took_ours {
            self.forget_ours(p, r.metric);
        }
        ambiguous
    }

    /// Forgets our route at `metric` (deleted, or found gone).
    pub(crate) fn forget_ours(&mut self, prefix: IpNet, metric: u32) {
        if metric == self.metric_for(&prefix) {
            self.remove_ours(&prefix);
        } else if let Some(v) = self.stale_metric.get_mut(&prefix) {
            v.retain(|m| *m != metric);
            if v.is_empty() {
                self.stale_metric.remove(&prefix);
            }
            self.set_stale_nh(prefix, metric, None);
        }
    }

    /// Records that the kernel now holds our route as requested (bulk mode,
    /// where no notification will say so).
    pub(crate) fn assume_ours(
        &mut self,
        prefix: IpNet,
        shape: Shape,
        pref_src: Option<IpAddr>,
        metric: u32,
        nh_id: Option<u32>,
    ) {
        let route = KernelRoute {
            prefix,
            table: self.target.table,
            protocol: self.target.protocol,
            metric,
            tos: 0,
            shape,
            pref_src,
            nh_id,
        };
        self.insert_ours(prefix, route);
    }

    /// Applies a link notification; `None` when nothing changed.
    pub(crate) fn note_link(
        &mut self,
        index: u32,
        name: Option<String>,
        up: bool,
        removed: bool,
    ) -> Option<LinkChange> {
        let old = self.links.get(&index).cloned();
        if removed {
            let old = old?;
            self.links.remove(&index);
            self.names.remove(&old.name);
            return Some(LinkChange::Removed {
                index,
                name: old.name,
            });
        }
        let name = name.or_else(|| old.as_ref().map(|o| o.name.clone()))?;
        if let Some(o) = &old
            && o.name != name
        {
            self.names.remove(&o.name);
        }
        let changed = old.as_ref().is_none_or(|o| o.up != up || o.name != name);
        self.names.insert(name.clone(), index);
        self.links.insert(
            index,
            Link {
                name: name.clone(),
                up,
            },
        );
        changed.then_some(LinkChange::Changed {
            index,
            name,
            up,
            known: old.is_some(),
        })
    }

    /// The name of interface `index`, if known.
    pub(crate) fn device(&self, index: u32) -> Option<&str> {
        self.links.get(&index).map(|l| l.name.as_str())
    }

    /// Rebuilds the view from dumps of links and routes (`clean`: no dump
    /// was interrupted). `foreign` sees every other protocol's route in our
    /// table, for learning. Our routes are updated in place rather than
    /// rebuilt: after a bulk run of a million routes the view already holds
    /// nearly all of them, and a rebuild costs a second map and a
    /// comparison per route.
    pub(crate) fn rebuild(
        &mut self,
        links: Vec<Parsed>,
        routes: Vec<Parsed>,
        clean: bool,
        mut foreign: impl FnMut(&KernelRoute, &HashMap<u32, Link>),
    ) -> Rebuilt {
        self.links.clear();
        self.names.clear();
        self.addrs.clear();
        for m in links {
            match m {
                Parsed::Link {
                    index,
                    name: Some(name),
                    up,
                    ..
                } => {
                    self.names.insert(name.clone(), index);
                    self.links.insert(index, Link { name, up });
                }
                Parsed::Addr {
                    index,
                    address,
                    removed: false,
                } => self.note_addr(index, address, false),
                _ => {}
            }
        }
        // Recounted below from what the dump shows.
        let old_users = std::mem::take(&mut self.nh_users);
        self.stale_nh.clear();
        self.nh_foreign_users.clear();

        let old_len = self.ours.len();
        let mut hits = 0usize;
        let mut repeated = !clean;
        let mut last_ours: Option<IpNet> = None;
        let mut seen: Vec<IpNet> = Vec::with_capacity(old_len);
        let mut out = Rebuilt::default();
        let old_stale = std::mem::take(&mut self.stale_metric);
        let old_foreign = std::mem::take(&mut self.foreign);
        for m in routes {
            let Parsed::NewRoute(r) = m else { continue };
            match self.place(&r) {
                Place::Elsewhere => {}
                Place::Ours => {
                    let p = r.prefix;
                    // A clean dump lists a key's routes next to each other,
                    // so a repeat of our key shows up here.
                    repeated |= last_ours == Some(p);
                    last_ours = Some(p);
                    seen.push(p);
                    match self.ours.get_mut(&p) {
                        Some(old) => {
                            hits += 1;
                            if !old.requested_as(&r) {
                                out.ours_changed.push(p);
                            }
                            *old = r;
                        }
                        None => {
                            self.ours.insert(p, r);
                            out.ours_changed.push(p);
                        }
                    }
                }
                Place::OursStale => {
                    if let Some(id) = r.nh_id {
                        self.stale_nh.insert((r.prefix, r.metric), id);
                        *self.nh_users.entry(id).or_default() += 1;
                    }
                    self.stale_metric
                        .entry(r.prefix)
                        .or_default()
                        .push(r.metric);
                }
                Place::ForeignOnKey | Place::ForeignBeside => {
                    if let Some(id) = r.nh_id {
                        *self.nh_users.entry(id).or_default() += 1;
                        *self.nh_foreign_users.entry(id).or_default() += 1;
                    }
                    foreign(&r, &self.links);
                    if r.tos == 0 {
                        self.foreign.entry((r.prefix, r.metric)).or_default().count += 1;
                    }
                }
            }
        }
        // Our routes the dump no longer shows. Each dumped key hit at most
        // one old entry, so when every old entry was hit none is missing.
        if repeated || hits != old_len {
            let seen: HashSet<IpNet> = seen.into_iter().collect();
            let gone: Vec<IpNet> = self
                .ours
                .keys()
                .filter(|p| !seen.contains(*p))
                .copied()
                .collect();
            for p in &gone {
                self.ours.remove(p);
            }
            out.other.extend(gone);
        }
        for r in self.ours.values() {
            if let Some(id) = r.nh_id {
                *self.nh_users.entry(id).or_default() += 1;
            }
        }
        self.nh_released.extend(
            old_users
                .keys()
                .filter(|id| !self.nh_users.contains_key(*id)),
        );
        out.other.extend(
            self.stale_metric
                .iter()
                .filter(|(p, m)| old_stale.get(*p) != Some(*m))
                .map(|(p, _)| *p),
        );
        out.other.extend(
            old_stale
                .keys()
                .filter(|p| !self.stale_metric.contains_key(*p)),
        );
        out.other.extend(
            self.foreign
                .iter()
                .filter(|(k, f)| {
                    old_foreign
                        .get(*k)
                        .is_none_or(|o| o.count != f.count || o.ambiguous)
                })
                .map(|(k, _)| k.0),
        );
        out.other.extend(
            old_foreign
                .keys()
                .filter(|k| !self.foreign.contains_key(*k))
                .map(|k| k.0),
        );
        out
    }

    /// Resolves device names to interface indexes; `ENODEV` when a named
    /// device does not exist (yet).
    pub(crate) fn resolve(&self, route: &FibRoute) -> Result<Vec<Hop>, i32> {
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
    pub(crate) fn matches_spec(&self, want: &FibRoute, have: &KernelRoute) -> bool {
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
                        .is_ok_and(|hops| matches(want, &hops, have));
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
}

/// Whether the kernel's route already does what we want (`hops`: `want`'s
/// next hops resolved).
pub(crate) fn matches(want: &FibRoute, hops: &[Hop], have: &KernelRoute) -> bool {
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
