//! Property tests of the planner against the simulated kernel: random
//! route changes, kernel answers, outside changes, lost messages and time.
//!
//! Checked on every request as it is sent (`Sim::check`, `Kernel::apply`):
//! at most one request per prefix outstanding; REPLACE only on a key the
//! view shows holding our route and no foreign one, and never a foreign
//! route in the kernel; deletes only of routes of ours the view holds;
//! nothing for a route found at start before convergence. Checked at rest
//! (`Sim::assert_reconciled`): the view equals the kernel, and every prefix
//! is as wanted unless a foreign route holds its key or the kernel refuses
//! it; with nexthop objects, every route naming one names an existing
//! object of ours standing for its next hop, single-path routes of the
//! prefix's family use one, and our objects are exactly those our routes
//! name, one per distinct next hop (`Sim::assert_nexthops_reconciled`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use proptest::prelude::*;

use super::sim::*;
use super::{Op, Planner};
use crate::types::{FibOp, FibRoute, NextHopSpec, RouteKind, validate};
use crate::wire::{Hop, KernelRoute, Shape};

const PREFIXES: usize = 8;
const VARIANTS: u8 = 9;
/// Metrics of their own that variants 7 and 8 ask for.
const OWN_METRIC: u32 = 512;
const OWN_METRIC_2: u32 = 2_147_482_623;

/// Six IPv4 and two IPv6 prefixes: few enough that changes collide.
fn prefix(i: usize) -> IpNet {
    let i = i % PREFIXES;
    let s = if i < 6 {
        format!("100.64.{i}.0/24")
    } else {
        format!("2001:db8:1000:{i}::/64")
    };
    s.parse().unwrap_or_else(|_| unreachable!())
}

fn gateway(v6: bool, n: u8) -> IpAddr {
    let s = match (v6, n) {
        (false, 1) => "198.18.0.2",
        (false, 2) => "198.18.0.3",
        (false, _) => "198.19.0.2",
        (true, 1) => "2001:db8::2",
        (true, 2) => "2001:db8::3",
        (true, _) => "2001:db8:ffff::2",
    };
    s.parse().unwrap_or_else(|_| unreachable!())
}

/// The gateway the kernel cannot reach until `Action::Reach`.
fn far_gateways() -> [IpAddr; 2] {
    [gateway(false, 3), gateway(true, 3)]
}

/// Route variants: 0 blackhole, 1 and 2 via one gateway each, 3 ECMP over
/// both (weights 1 and 2), 4 with a preferred source, 5 onlink through the
/// tunnel (absent until `Action::TunnelUp`), 6 via an unreachable gateway,
/// 7 and 8 via one gateway at a metric of their own.
fn route(p: IpNet, variant: u8) -> FibRoute {
    let v6 = matches!(p, IpNet::V6(_));
    let gw = |n| gateway(v6, n);
    let mut r = match variant % VARIANTS {
        0 => FibRoute::blackhole(p),
        1 => FibRoute::via(p, gw(1)),
        2 => FibRoute::via(p, gw(2)),
        3 => {
            let mut two = NextHopSpec::gateway(gw(2));
            two.weight = 2;
            FibRoute {
                prefix: p,
                kind: RouteKind::Unicast(vec![NextHopSpec::gateway(gw(1)), two]),
                pref_src: None,
                metric: None,
            }
        }
        4 => FibRoute::via(p, gw(1)),
        5 => FibRoute {
            prefix: p,
            kind: RouteKind::Unicast(vec![NextHopSpec::onlink(gw(1), TUNNEL_NAME)]),
            pref_src: None,
            metric: None,
        },
        6 => FibRoute::via(p, gw(3)),
        7 => FibRoute::via(p, gw(1)).at_metric(OWN_METRIC),
        _ => FibRoute::via(p, gw(2)).at_metric(OWN_METRIC_2),
    };
    if variant % VARIANTS == 4 {
        r.pref_src = Some(if v6 {
            "2001:db8::1".parse().unwrap_or_else(|_| unreachable!())
        } else {
            "198.18.0.1".parse().unwrap_or_else(|_| unreachable!())
        });
    }
    validate(r).unwrap_or_else(|e| unreachable!("{e}"))
}

/// A static route (protocol 4) via the first gateway.
fn static_route(p: IpNet, metric: u32) -> KernelRoute {
    let v6 = matches!(p, IpNet::V6(_));
    kernel_route(
        p,
        4,
        metric,
        Shape::Unicast(vec![Hop {
            gateway: Some(gateway(v6, 1)),
            oif: ETH,
            onlink: false,
            weight: 1,
        }]),
    )
}

/// What the kernel holds at start.
#[derive(Debug, Clone)]
enum Found {
    /// A route of ours at our metric (variant 0..=4).
    Ours(u8),
    /// A route of ours at an older metric.
    OursAtOldMetric(u8),
    /// Another protocol's route on our key.
    Foreign,
    /// Another protocol's route on the key of variant 7.
    ForeignAtOwnMetric,
    /// A route of ours on the key of variant 7.
    OursAtOwnMetric(u8),
}

#[derive(Debug, Clone)]
enum Action {
    Set(usize, u8),
    Remove(usize),
    Converged,
    /// One turn of the actor: dump if needed, bulk mode, send.
    Turn,
    /// Read up to this many answers (and every notification).
    Read(usize),
    ForeignAppend(usize),
    /// On the key of variant 7.
    ForeignAppendAtOwnMetric(usize),
    ForeignReplace(usize),
    ForeignDelete(usize),
    DeleteOurs(usize),
    ChangeOurs(usize),
    TunnelUp,
    Reach,
    EthDown,
    EthUp,
    /// Someone deletes one of our nexthop objects (`ip nexthop del`),
    /// and with it the routes naming it.
    DeleteOurNexthop(u8),
    LoseNotifications,
    LoseAnswers,
    FailSend,
    Advance(u8),
}

fn found() -> impl Strategy<Value = Vec<(usize, Found)>> {
    proptest::collection::vec(
        (
            0..PREFIXES,
            prop_oneof![
                (0..5u8).prop_map(Found::Ours),
                (0..5u8).prop_map(Found::OursAtOldMetric),
                Just(Found::Foreign),
                Just(Found::ForeignAtOwnMetric),
                (0..5u8).prop_map(Found::OursAtOwnMetric),
            ],
        ),
        0..8,
    )
}

fn action() -> impl Strategy<Value = Action> {
    let p = 0..PREFIXES;
    prop_oneof![
        8 => (p.clone(), 0..VARIANTS).prop_map(|(p, v)| Action::Set(p, v)),
        3 => p.clone().prop_map(Action::Remove),
        1 => Just(Action::Converged),
        6 => Just(Action::Turn),
        4 => (0..6usize).prop_map(Action::Read),
        1 => p.clone().prop_map(Action::ForeignAppend),
        1 => p.clone().prop_map(Action::ForeignAppendAtOwnMetric),
        1 => p.clone().prop_map(Action::ForeignReplace),
        1 => p.clone().prop_map(Action::ForeignDelete),
        1 => p.clone().prop_map(Action::DeleteOurs),
        1 => p.prop_map(Action::ChangeOurs),
        1 => Just(Action::TunnelUp),
        1 => Just(Action::Reach),
        1 => Just(Action::EthDown),
        1 => Just(Action::EthUp),
        1 => any::<u8>().prop_map(Action::DeleteOurNexthop),
        1 => Just(Action::LoseNotifications),
        1 => Just(Action::LoseAnswers),
        1 => Just(Action::FailSend),
        1 => (1..90u8).prop_map(Action::Advance),
    ]
}

fn kernel_with(found: &[(usize, Found)]) -> Kernel {
    let mut k = Kernel::default();
    k.unreachable.extend(far_gateways());
    for (i, f) in found {
        let p = prefix(*i);
        let ours = |variant: u8, k: &Kernel, metric: u32| {
            let mut r = k
                .expected(&route(p, variant))
                .unwrap_or_else(|| unreachable!());
            r.metric = metric;
            r
        };
        let r = match f {
            Found::Ours(v) => ours(*v, &k, METRIC),
            Found::OursAtOldMetric(v) => ours(*v, &k, OLD_METRIC),
            Found::Foreign => static_route(p, METRIC),
            Found::ForeignAtOwnMetric => static_route(p, OWN_METRIC),
            Found::OursAtOwnMetric(v) => ours(*v, &k, OWN_METRIC),
        };
        if r.protocol == OURS && k.table.get(&(p, r.metric)).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        k.append(r);
    }
    k.notes.clear();
    k
}

fn play(sim: &mut Sim, a: Action) {
    match a {
        Action::Set(i, v) => sim.plan.apply(FibOp::Set(route(prefix(i), v))),
        Action::Remove(i) => sim.plan.apply(FibOp::Remove(prefix(i))),
        Action::Converged => sim.plan.apply(FibOp::Converged),
        Action::Turn => sim.turn(),
        Action::Read(n) => sim.read(n),
        // Outside changes reach the planner before it plans again (the
        // remaining window, a change between our last read and a REPLACE,
        // is the one the ownership rule cannot close).
        // (The kernel refuses a route through a downed link.)
        Action::ForeignAppend(i) => {
            let r = static_route(prefix(i), METRIC);
            if sim.kernel.accepts(&r) {
                sim.kernel.append(r);
                sim.notify();
            }
        }
        Action::ForeignAppendAtOwnMetric(i) => {
            let r = static_route(prefix(i), OWN_METRIC);
            if sim.kernel.accepts(&r) {
                sim.kernel.append(r);
                sim.notify();
            }
        }
        Action::ForeignReplace(i) => {
            let r = static_route(prefix(i), METRIC);
            if sim.kernel.accepts(&r) {
                sim.kernel.replace(r);
                sim.notify();
            }
        }
        Action::ForeignDelete(i) => {
            sim.kernel.delete(prefix(i), METRIC, 4);
            sim.notify();
        }
        Action::DeleteOurs(i) => {
            sim.kernel.delete(prefix(i), METRIC, OURS);
            sim.notify();
        }
        Action::ChangeOurs(i) => {
            let p = prefix(i);
            let shape = sim
                .kernel
                .expected(&route(p, 2))
                .map(|r| r.shape)
                .unwrap_or(Shape::Blackhole);
            sim.kernel.change_ours(p, shape);
            sim.notify();
        }
        Action::TunnelUp => {
            if !sim.kernel.links.contains_key(&TUNNEL) {
                sim.kernel.set_link(TUNNEL, TUNNEL_NAME, true);
                sim.notify();
            }
        }
        Action::Reach => {
            for g in far_gateways() {
                sim.kernel.reach(g);
            }
            sim.notify();
        }
        Action::EthDown => {
            sim.kernel.set_link(ETH, "eth0", false);
            sim.notify();
        }
        Action::EthUp => {
            sim.kernel.set_link(ETH, "eth0", true);
            sim.notify();
        }
        Action::DeleteOurNexthop(n) => {
            let ours: Vec<u32> = sim.kernel.our_nexthops().keys().copied().collect();
            if !ours.is_empty() {
                sim.kernel
                    .remove_nexthop(ours[usize::from(n) % ours.len()], true);
                sim.notify();
            }
        }
        Action::LoseNotifications => sim.lose_notes(),
        Action::LoseAnswers => sim.lose_answers(),
        Action::FailSend => sim.failing_sends += 1,
        Action::Advance(s) => sim.advance(Duration::from_secs(u64::from(s))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any interleaving ends with the kernel as wanted, without a foreign
    /// route touched or a rule broken on the way.
    #[test]
    fn any_interleaving_reconciles_without_touching_foreign_routes(
        found in found(),
        actions in proptest::collection::vec(action(), 0..60),
        bulk in prop_oneof![Just(0usize), Just(3usize)],
        window in 1..8usize,
        nexthop_objects in any::<bool>(),
    ) {
        let mut cfg = config(bulk);
        cfg.max_in_flight = window;
        cfg.nexthop_objects = nexthop_objects;
        let mut sim = Sim::start(&cfg, kernel_with(&found));
        for a in actions {
            play(&mut sim, a);
        }
        sim.plan.apply(FibOp::Converged);
        sim.settle();
        sim.assert_reconciled();
    }

    /// Convergence removes exactly the routes of ours found at start that
    /// are not wanted (and those at an old metric), replaces exactly the
    /// found ones that differ, and touches nothing before it.
    #[test]
    fn convergence_removes_exactly_the_stale_routes_found_at_start(
        found in proptest::collection::vec(
            (0..PREFIXES, prop_oneof![
                (0..5u8).prop_map(Found::Ours),
                (0..5u8).prop_map(Found::OursAtOldMetric),
            ]),
            0..8,
        ),
        wanted in proptest::collection::btree_map(0..PREFIXES, 0..5u8, 0..PREFIXES),
        bulk in prop_oneof![Just(0usize), Just(2usize)],
    ) {
        let kernel = kernel_with(&found);
        let before = kernel.table.clone();
        let mut sim = Sim::start(&config(bulk), kernel);
        for (i, v) in &wanted {
            sim.plan.apply(FibOp::Set(route(prefix(*i), *v)));
        }
        sim.run();
        for r in &sim.sent {
            let found_here = before.keys().any(|(p, _)| *p == r.prefix);
            prop_assert!(!found_here, "{:?} touched a found route before convergence", r);
        }
        for ((p, m), routes) in &before {
            prop_assert_eq!(sim.kernel.table.get(&(*p, *m)), Some(routes));
        }

        sim.sent.clear();
        sim.plan.apply(FibOp::Converged);
        sim.run();
        let mut expected: Vec<(IpNet, &str, u32)> = Vec::new();
        for (p, m) in before.keys() {
            let want = wanted
                .iter()
                .find(|(i, _)| prefix(**i) == *p)
                .map(|(i, v)| route(prefix(*i), *v));
            if *m != METRIC {
                expected.push((*p, "delete", *m));
                if want.is_some() && !before.contains_key(&(*p, METRIC)) {
                    expected.push((*p, "create", METRIC));
                }
                continue;
            }
            let have = sim.kernel.expected(want.as_ref().unwrap_or(&route(*p, 0)));
            match want {
                None => expected.push((*p, "delete", METRIC)),
                Some(_) if before[&(*p, METRIC)].first() != have.as_ref() => {
                    expected.push((*p, "replace", METRIC));
                }
                Some(_) => {}
            }
        }
        let mut got: Vec<(IpNet, &str, u32)> = sim
            .sent
            .iter()
            .map(|r| match r.op {
                Op::Create(_) => (r.prefix, "create", METRIC),
                Op::Replace(_) => (r.prefix, "replace", METRIC),
                Op::Delete { metric } => (r.prefix, "delete", metric),
            })
            .collect();
        got.sort();
        expected.sort();
        prop_assert_eq!(got, expected);
        sim.assert_reconciled();
    }

    /// The op stream: per prefix the last change wins, in any order and
    /// with any repetition.
    #[test]
    fn the_last_change_per_prefix_wins(
        ops in proptest::collection::vec((0..PREFIXES, proptest::option::of(0..VARIANTS)), 0..200),
    ) {
        let mut plan = Planner::new(&config(0), std::time::Instant::now());
        let mut model: BTreeMap<IpNet, FibRoute> = BTreeMap::new();
        for (i, v) in ops {
            let p = prefix(i);
            match v {
                Some(v) => {
                    plan.apply(FibOp::Set(route(p, v)));
                    model.insert(p, route(p, v));
                }
                None => {
                    plan.apply(FibOp::Remove(p));
                    model.remove(&p);
                }
            }
        }
        let got: BTreeMap<IpNet, FibRoute> =
            plan.desired().iter().map(|(p, r)| (*p, r.clone())).collect();
        prop_assert_eq!(got, model);
    }
}
