//! The planner's rules, scenario by scenario, against the simulated kernel
//! (`sim.rs`): no root, no sockets, a virtual clock.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::sim::*;
use super::{MAX_BULK_RUN, Op, RouteChange};
use crate::types::{FibOp, FibRoute, KernelEvent, LearnFilter, NextHopSpec};
use crate::wire::{Hop, KernelRoute, Shape};

pub(super) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn via(p: &str, gw: &str) -> FibRoute {
    FibRoute::via(net(p), ip(gw))
}

/// Our route as the kernel spells `via(p, gw)`.
fn ours_via(p: &str, gw: &str, metric: u32) -> KernelRoute {
    kernel_route(net(p), OURS, metric, unicast(gw))
}

fn unicast(gw: &str) -> Shape {
    Shape::Unicast(vec![Hop {
        gateway: Some(ip(gw)),
        oif: ETH,
        onlink: false,
        weight: 1,
    }])
}

/// A static route (protocol 4) on our key.
fn foreign(p: &str, gw: &str) -> KernelRoute {
    kernel_route(net(p), 4, METRIC, unicast(gw))
}

fn converged_sim(kernel: Kernel) -> Sim {
    let mut sim = Sim::start(&config(0), kernel);
    sim.plan.apply(FibOp::Converged);
    sim.run();
    sim
}

fn kinds(reqs: &[&super::Request]) -> Vec<&'static str> {
    reqs.iter()
        .map(|r| match r.op {
            Op::Create(_) => "create",
            Op::Replace(_) => "replace",
            Op::Delete { .. } => "delete",
        })
        .collect()
}

#[test]
fn installs_replaces_and_deletes() {
    let mut sim = converged_sim(Kernel::default());
    let p = "100.64.1.0/24";
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.3")));
    sim.run();
    assert_eq!(
        sim.kernel.ours(&net(p)),
        Some(&ours_via(p, "198.18.0.3", METRIC))
    );
    sim.plan.apply(FibOp::Remove(net(p)));
    sim.run();
    assert_eq!(
        kinds(&sim.sent_for(&net(p))),
        ["create", "replace", "delete"]
    );
    assert_eq!(sim.kernel.ours(&net(p)), None);
    let s = sim.plan.stats();
    assert_eq!((s.installs, s.replaces, s.deletes), (1, 1, 1));
    sim.assert_reconciled();
}

#[test]
fn a_route_already_as_wanted_sends_nothing() {
    let p = "100.64.1.0/24";
    let mut kernel = Kernel::default();
    kernel.append(ours_via(p, "198.18.0.2", METRIC));
    let mut sim = Sim::start(&config(0), kernel);
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.plan.apply(FibOp::Converged);
    sim.run();
    assert!(sim.sent.is_empty(), "{:?}", sim.sent);
    sim.assert_reconciled();
}

#[test]
fn the_op_stream_is_applied_in_order_last_change_wins() {
    let mut sim = converged_sim(Kernel::default());
    let (a, b) = ("100.64.1.0/24", "100.64.2.0/24");
    for op in [
        FibOp::Set(via(a, "198.18.0.2")),
        FibOp::Remove(net(a)),
        FibOp::Remove(net(b)),
        FibOp::Set(via(b, "198.18.0.2")),
        FibOp::Set(via(b, "198.18.0.3")),
    ] {
        sim.plan.apply(op);
    }
    sim.run();
    assert!(
        sim.sent_for(&net(a)).is_empty(),
        "set then removed: nothing to do"
    );
    assert_eq!(kinds(&sim.sent_for(&net(b))), ["create"]);
    assert_eq!(
        sim.kernel.ours(&net(b)),
        Some(&ours_via(b, "198.18.0.3", METRIC))
    );
    // Host bits are cleared on the stream as on `set`.
    sim.plan.apply(FibOp::Remove(net("100.64.2.9/24")));
    sim.run();
    assert_eq!(sim.kernel.ours(&net(b)), None);
}

#[test]
fn an_invalid_route_on_the_stream_is_refused_and_leaves_the_prefix_as_it_was() {
    let mut sim = converged_sim(Kernel::default());
    let p = "100.64.1.0/24";
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    let bad = FibRoute {
        prefix: net(p),
        kind: crate::types::RouteKind::Unicast(Vec::new()),
        pref_src: None,
        metric: None,
    };
    sim.plan.apply(FibOp::Set(bad));
    sim.run();
    assert_eq!(sim.plan.stats().refused, 1);
    assert_eq!(
        sim.kernel.ours(&net(p)),
        Some(&ours_via(p, "198.18.0.2", METRIC))
    );
}

#[test]
fn restart_rule_leaves_found_routes_until_converged_then_removes_only_the_stale() {
    let keep = "100.64.1.0/24";
    let differ = "100.64.2.0/24";
    let stale = "100.64.3.0/24";
    let old_metric = "100.64.4.0/24";
    let fresh = "100.64.5.0/24";
    let mut kernel = Kernel::default();
    kernel.append(ours_via(keep, "198.18.0.2", METRIC));
    kernel.append(ours_via(differ, "198.18.0.2", METRIC));
    kernel.append(ours_via(stale, "198.18.0.2", METRIC));
    kernel.append(ours_via(old_metric, "198.18.0.2", OLD_METRIC));
    let mut sim = Sim::start(&config(0), kernel);
    for r in [
        via(keep, "198.18.0.2"),
        via(differ, "198.18.0.3"),
        via(old_metric, "198.18.0.2"),
        via(fresh, "198.18.0.2"),
    ] {
        sim.plan.apply(FibOp::Set(r));
    }
    // Someone deletes a found route before convergence: it stays gone
    // until then (the RIB may not want it).
    sim.kernel.delete(net(stale), METRIC, OURS);
    sim.notify();
    sim.run();
    assert_eq!(
        sim.sent.iter().map(|r| r.prefix).collect::<Vec<_>>(),
        [net(fresh)],
        "before convergence only missing, not found, routes are added"
    );
    assert_eq!(
        sim.kernel.ours(&net(differ)),
        Some(&ours_via(differ, "198.18.0.2", METRIC))
    );

    sim.kernel.append(ours_via(stale, "198.18.0.2", METRIC));
    sim.notify();
    sim.sent.clear();
    sim.plan.apply(FibOp::Converged);
    sim.run();
    let mut after: Vec<(IpNet, &str)> = sim
        .sent
        .iter()
        .map(|r| (r.prefix, kinds(&[r])[0]))
        .collect();
    after.sort();
    assert_eq!(
        after,
        [
            (net(differ), "replace"),
            (net(stale), "delete"),
            (net(old_metric), "create"),
            (net(old_metric), "delete"),
        ]
    );
    assert!(
        sim.sent
            .iter()
            .any(|r| r.op == Op::Delete { metric: OLD_METRIC }),
        "the route at the old metric goes by its metric"
    );
    sim.assert_reconciled();
}

#[test]
fn a_foreign_route_on_the_key_blocks_until_it_goes() {
    let p = "100.64.1.0/24";
    let mut kernel = Kernel::default();
    kernel.append(foreign(p, "198.18.0.9"));
    let mut sim = converged_sim(kernel);
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    assert!(sim.sent.is_empty());
    assert_eq!(sim.plan.stats().blocked_by_foreign, 1);
    sim.kernel.delete(net(p), METRIC, 4);
    sim.notify();
    sim.run();
    assert_eq!(kinds(&sim.sent_for(&net(p))), ["create"]);
    assert_eq!(sim.plan.stats().blocked_by_foreign, 0);
    sim.assert_reconciled();
}

#[test]
fn beside_a_foreign_route_we_step_aside_instead_of_replacing() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    sim.kernel.append(foreign(p, "198.18.0.9"));
    sim.notify();
    sim.run();
    assert_eq!(
        kinds(&sim.sent_for(&net(p))),
        ["create"],
        "ours as wanted stays"
    );
    // A change now: REPLACE could hit the foreign route, so ours goes.
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.3")));
    sim.run();
    assert_eq!(kinds(&sim.sent_for(&net(p))), ["create", "delete"]);
    assert_eq!(sim.kernel.foreign_on_key(&net(p)), 1);
    sim.kernel.delete(net(p), METRIC, 4);
    sim.notify();
    sim.run();
    assert_eq!(
        kinds(&sim.sent_for(&net(p))),
        ["create", "delete", "create"]
    );
    sim.assert_reconciled();
}

#[test]
fn a_foreign_replace_of_our_route_takes_the_key() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    sim.kernel.replace(foreign(p, "198.18.0.9"));
    sim.notify();
    assert!(!sim.plan.needs_dump());
    sim.run();
    assert_eq!(sim.kernel.ours(&net(p)), None);
    assert_eq!(
        kinds(&sim.sent_for(&net(p))),
        ["create"],
        "no fight over the key"
    );
    assert_eq!(sim.plan.stats().blocked_by_foreign, 1);
    sim.assert_reconciled();
}

#[test]
fn a_replace_notification_on_a_shared_key_asks_for_a_dump() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    sim.kernel.append(foreign(p, "198.18.0.9"));
    sim.notify();
    // Someone replaces the first route on the key: ours or theirs?
    sim.kernel.replace(foreign(p, "198.18.0.8"));
    sim.notify();
    assert!(sim.plan.needs_dump());
    assert!(sim.plan.next().is_none(), "nothing is planned on a guess");
    let dumps = sim.dumps;
    sim.run();
    assert_eq!(sim.dumps, dumps + 1);
    sim.assert_reconciled();
}

#[test]
fn our_route_changed_or_deleted_by_someone_else_is_restored() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    sim.kernel.delete(net(p), METRIC, OURS);
    sim.notify();
    sim.run();
    let mut changed = ours_via(p, "198.18.0.7", METRIC);
    changed.pref_src = Some(ip("198.18.0.1"));
    sim.kernel.replace(changed);
    sim.notify();
    sim.run();
    assert_eq!(
        kinds(&sim.sent_for(&net(p))),
        ["create", "create", "replace"]
    );
    assert!(sim.sent_for(&net(p))[1..].iter().all(|r| r.restore));
    assert_eq!(sim.plan.stats().restores, 2);
    sim.assert_reconciled();
}

#[test]
fn one_request_per_prefix_and_a_change_in_flight_is_replanned_after_the_answer() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.turn();
    assert_eq!(sim.plan.in_flight(), 1);
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.3")));
    sim.turn();
    assert_eq!(
        sim.sent.len(),
        1,
        "the second change waits for the first answer"
    );
    sim.read(usize::MAX);
    sim.run();
    assert_eq!(kinds(&sim.sent_for(&net(p))), ["create", "replace"]);
    sim.assert_reconciled();
}

#[test]
fn create_meeting_an_unseen_route_looks_again() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    // A route the view never heard of (its notification was lost).
    sim.kernel.listening = false;
    sim.kernel.append(foreign(p, "198.18.0.9"));
    sim.kernel.listening = true;
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    let dumps = sim.dumps;
    sim.run();
    assert_eq!(
        sim.dumps,
        dumps + 1,
        "EEXIST with nothing in view: look again"
    );
    assert_eq!(sim.plan.stats().blocked_by_foreign, 1);
    assert_eq!(sim.plan.stats().errors.get(&libc::EEXIST), Some(&1));
    sim.assert_reconciled();
}

#[test]
fn a_create_meeting_our_own_unseen_route_adopts_it() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.kernel.listening = false;
    sim.kernel.append(ours_via(p, "198.18.0.2", METRIC));
    sim.kernel.listening = true;
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    assert_eq!(kinds(&sim.sent_for(&net(p))), ["create"]);
    assert_eq!(
        sim.kernel.ours(&net(p)),
        Some(&ours_via(p, "198.18.0.2", METRIC))
    );
    sim.assert_reconciled();
}

#[test]
fn an_unreachable_gateway_parks_until_an_address_or_the_retry_timer() {
    let (a, b) = ("100.64.1.0/24", "100.64.2.0/24");
    let mut kernel = Kernel::default();
    kernel.unreachable.insert(ip("198.19.0.2"));
    kernel.unreachable.insert(ip("198.19.0.3"));
    let mut sim = converged_sim(kernel);
    sim.plan.apply(FibOp::Set(via(a, "198.19.0.2")));
    sim.plan.apply(FibOp::Set(via(b, "198.19.0.3")));
    sim.run();
    assert_eq!(sim.plan.stats().parked, 2);
    assert_eq!(sim.plan.stats().errors.get(&libc::ENETUNREACH), Some(&2));
    // An address appears: parked routes get another try.
    sim.kernel.reach(ip("198.19.0.2"));
    sim.notify();
    sim.run();
    assert!(sim.kernel.ours(&net(a)).is_some());
    assert_eq!(sim.plan.stats().parked, 1);
    // The other one becomes reachable without a notification: the retry
    // timer finds it.
    sim.kernel.unreachable.clear();
    sim.advance(Duration::from_secs(5));
    sim.run();
    assert!(
        sim.kernel.ours(&net(b)).is_none(),
        "not before the retry interval"
    );
    sim.advance(Duration::from_secs(6));
    sim.run();
    assert!(sim.kernel.ours(&net(b)).is_some());
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, KernelEvent::AddressAdded { .. }))
    );
    sim.assert_reconciled();
}

#[test]
fn a_missing_device_parks_without_a_request_until_the_link_appears() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    let route = FibRoute {
        prefix: net(p),
        kind: crate::types::RouteKind::Unicast(vec![NextHopSpec::onlink(
            ip("198.18.0.1"),
            TUNNEL_NAME,
        )]),
        pref_src: None,
        metric: None,
    };
    sim.plan.apply(FibOp::Set(route));
    sim.run();
    assert!(sim.sent.is_empty());
    assert_eq!(sim.plan.stats().errors.get(&libc::ENODEV), Some(&1));
    sim.kernel.set_link(TUNNEL, TUNNEL_NAME, true);
    sim.notify();
    sim.run();
    let r = sim
        .kernel
        .ours(&net(p))
        .expect("installed once the device exists");
    assert_eq!(
        r.shape,
        Shape::Unicast(vec![Hop {
            gateway: Some(ip("198.18.0.1")),
            oif: TUNNEL,
            onlink: true,
            weight: 1,
        }])
    );
    assert!(sim.events.contains(&KernelEvent::Link {
        index: TUNNEL,
        name: TUNNEL_NAME.into(),
        up: true
    }));
    sim.assert_reconciled();
}

#[test]
fn a_link_going_down_and_up_is_resynced_and_routes_come_back() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    let dumps = sim.dumps;
    // IPv4 routes through a downed device vanish without RTM_DELROUTE.
    sim.kernel.set_link(ETH, "eth0", false);
    sim.notify();
    assert!(sim.plan.needs_dump());
    sim.run();
    assert_eq!(sim.dumps, dumps + 1);
    assert_eq!(sim.kernel.ours(&net(p)), None);
    assert_eq!(sim.plan.stats().parked, 1, "refused while the link is down");
    sim.kernel.set_link(ETH, "eth0", true);
    sim.notify();
    sim.run();
    assert!(sim.kernel.ours(&net(p)).is_some());
    sim.assert_reconciled();
}

#[test]
fn lost_notifications_or_answers_end_in_a_dump_and_a_correct_table() {
    let mut sim = converged_sim(Kernel::default());
    let prefixes: Vec<String> = (1..=20).map(|i| format!("100.64.{i}.0/24")).collect();
    for p in &prefixes {
        sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    }
    sim.turn();
    sim.lose_answers();
    assert!(sim.plan.needs_dump());
    assert_eq!(sim.plan.in_flight(), 0);
    sim.run();
    sim.kernel.delete(net(&prefixes[0]), METRIC, OURS);
    sim.lose_notes();
    sim.run();
    sim.assert_reconciled();
    assert!(sim.kernel.ours(&net(&prefixes[0])).is_some());
}

#[test]
fn a_failed_send_is_planned_again_as_the_same_change() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    sim.kernel.delete(net(p), METRIC, OURS);
    sim.notify();
    sim.failing_sends = 1;
    sim.turn();
    assert_eq!(sim.plan.in_flight(), 0);
    sim.run();
    let reqs = sim.sent_for(&net(p));
    assert_eq!(kinds(&reqs), ["create", "create"]);
    assert!(reqs[1].restore, "still counted as a restore");
    sim.assert_reconciled();
}

#[test]
fn bulk_mode_sends_no_replace_and_verifies_with_one_dump() {
    let mut kernel = Kernel::default();
    for i in 1..=3 {
        kernel.append(ours_via(&format!("100.64.{i}.0/24"), "198.18.0.2", METRIC));
    }
    let mut sim = Sim::start(&config(8), kernel);
    // Three differing (replaces), and ten new (creates).
    for i in 1..=13 {
        sim.plan
            .apply(FibOp::Set(via(&format!("100.64.{i}.0/24"), "198.18.0.3")));
    }
    sim.plan.apply(FibOp::Converged);
    let dumps = sim.dumps;
    sim.turn();
    assert!(sim.plan.in_bulk());
    assert!(!sim.kernel.listening, "route notifications are off");
    assert!(sim.sent.iter().all(|r| matches!(r.op, Op::Create(_))));
    sim.read(usize::MAX);
    let end = sim
        .plan
        .leave_bulk_if_done(sim.now, false)
        .expect("run over");
    assert!(!end.settled, "replaces wait for the verifying dump");
    sim.kernel.listening = true;
    sim.run();
    assert_eq!(sim.dumps, dumps + 1);
    assert_eq!(sim.plan.stats().bulk_runs, 1);
    assert_eq!(
        sim.sent
            .iter()
            .filter(|r| matches!(r.op, Op::Replace(_)))
            .count(),
        3
    );
    sim.assert_reconciled();
}

#[test]
fn a_route_at_an_old_metric_moves_to_ours_during_a_bulk_run() {
    // Found by the property test: the delete at the old metric succeeded
    // in a bulk run, no notification came, and the create never followed.
    let p = "100.64.3.0/24";
    let mut kernel = Kernel::default();
    kernel.append(ours_via(p, "198.18.0.2", OLD_METRIC));
    let mut sim = Sim::start(&config(3), kernel);
    for i in 1..=3 {
        sim.plan
            .apply(FibOp::Set(via(&format!("100.64.{i}.0/24"), "198.18.0.2")));
    }
    sim.turn();
    assert!(sim.plan.in_bulk());
    sim.plan.apply(FibOp::Converged);
    sim.run();
    assert_eq!(sim.plan.stats().bulk_runs, 1);
    assert_eq!(kinds(&sim.sent_for(&net(p))), ["delete", "create"]);
    sim.assert_reconciled();
}

#[test]
fn a_dump_while_a_request_is_outstanding_looks_at_its_prefix_again() {
    // Found by the property test: the dump discarded the request's
    // notification, the route was gone by then, and the answer (success)
    // left the prefix alone.
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.turn();
    sim.lose_notes();
    sim.kernel.set_link(ETH, "eth0", false);
    sim.turn();
    assert_eq!(
        sim.plan.in_flight(),
        1,
        "dumped with the create outstanding"
    );
    sim.run();
    assert_eq!(kinds(&sim.sent_for(&net(p))), ["create", "create"]);
    assert!(
        sim.plan.is_parked(&net(p)),
        "refused while the link is down"
    );
    sim.kernel.set_link(ETH, "eth0", true);
    sim.notify();
    sim.run();
    assert!(sim.kernel.ours(&net(p)).is_some());
    sim.assert_reconciled();
}

#[test]
fn an_answer_applied_while_a_dump_is_pending_is_looked_at_again() {
    // Found by the property test: the notification was lost in an overrun,
    // the answer came before the dump, and the dump showed no difference
    // from a view that never had the route.
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.turn();
    sim.lose_notes();
    sim.kernel.set_link(ETH, "eth0", false);
    sim.read(usize::MAX);
    assert!(sim.plan.needs_dump());
    sim.run();
    assert_eq!(kinds(&sim.sent_for(&net(p))), ["create", "create"]);
    sim.assert_reconciled();
}

#[test]
fn a_create_meeting_eexist_in_a_bulk_run_is_replanned_after_its_dump() {
    // Found by the property test: the key's holder went before the dump, so
    // the dump showed no change and the prefix was never planned again.
    let (a, b) = ("100.64.1.0/24", "100.64.2.0/24");
    let mut sim = Sim::start(&config(2), Kernel::default());
    sim.plan.apply(FibOp::Converged);
    sim.plan.apply(FibOp::Set(via(a, "198.18.0.2")));
    sim.plan.apply(FibOp::Set(via(b, "198.18.0.2")));
    // Another route holds b's key, unseen.
    sim.kernel.listening = false;
    sim.kernel.append(foreign(b, "198.18.0.9"));
    sim.turn();
    assert!(sim.plan.in_bulk());
    // It goes before the run ends (notifications are off).
    sim.kernel.delete(net(b), METRIC, 4);
    sim.run();
    assert!(
        sim.answered
            .iter()
            .any(|(r, e)| r.prefix == net(b) && *e == libc::EEXIST),
        "{:?}",
        sim.answered
    );
    assert_eq!(
        sim.kernel.ours(&net(b)),
        Some(&ours_via(b, "198.18.0.2", METRIC))
    );
    sim.assert_reconciled();
}

#[test]
fn a_clean_bulk_run_lets_sync_through_before_its_dump() {
    let mut sim = Sim::start(&config(4), Kernel::default());
    sim.plan.apply(FibOp::Converged);
    for i in 1..=6 {
        sim.plan
            .apply(FibOp::Set(via(&format!("100.64.{i}.0/24"), "198.18.0.3")));
    }
    assert!(sim.plan.enter_bulk_if_worth_it(sim.now));
    sim.kernel.listening = false;
    sim.send();
    // Queued input keeps the run going.
    sim.read(usize::MAX);
    assert_eq!(sim.plan.leave_bulk_if_done(sim.now, true), None);
    // ... unless it has gone on too long.
    let late = sim.now + MAX_BULK_RUN;
    let end = sim.plan.leave_bulk_if_done(late, true).expect("capped");
    assert!(end.settled);
    assert!(sim.plan.needs_dump());
}

#[test]
fn the_verify_timer_asks_for_a_dump_that_changes_nothing_when_in_sync() {
    let mut sim = converged_sim(Kernel::default());
    sim.plan
        .apply(FibOp::Set(via("100.64.1.0/24", "198.18.0.2")));
    sim.run();
    let sent = sim.sent.len();
    sim.advance(Duration::from_secs(59));
    assert!(!sim.plan.needs_dump());
    sim.advance(Duration::from_secs(2));
    assert!(sim.plan.needs_dump());
    sim.run();
    assert_eq!(sim.sent.len(), sent);
    assert!(sim.events.contains(&KernelEvent::Resynced));
}

#[test]
fn learned_routes_are_reported_once_and_unlearned_when_gone() {
    let mut cfg = config(0);
    cfg.learn = Some(LearnFilter {
        protocols: vec![3],
        interface_prefixes: vec!["cali".into()],
    });
    let mut kernel = Kernel::default();
    kernel.set_link(7, "cali1234", true);
    kernel.notes.clear();
    let mut sim = Sim::start(&cfg, kernel);
    let pod = KernelRoute {
        shape: Shape::Unicast(vec![Hop {
            gateway: None,
            oif: 7,
            onlink: false,
            weight: 1,
        }]),
        ..kernel_route(net("100.64.9.7/32"), 3, 0, Shape::Blackhole)
    };
    sim.kernel.append(pod.clone());
    // Another protocol, or another interface: not learned.
    sim.kernel.append(KernelRoute {
        protocol: 4,
        ..pod.clone()
    });
    sim.notify();
    let learned: Vec<_> = sim
        .events
        .iter()
        .filter(|e| matches!(e, KernelEvent::Learned(_)))
        .collect();
    assert_eq!(learned.len(), 1, "{:?}", sim.events);
    sim.kernel.delete(pod.prefix, 0, 3);
    sim.notify();
    assert!(sim.events.contains(&KernelEvent::Unlearned(pod.prefix)));
}

#[test]
fn replace_all_makes_the_set_complete_and_declares_convergence() {
    let (keep, drop) = ("100.64.1.0/24", "100.64.2.0/24");
    let mut kernel = Kernel::default();
    kernel.append(ours_via(keep, "198.18.0.2", METRIC));
    kernel.append(ours_via(drop, "198.18.0.2", METRIC));
    let mut sim = Sim::start(&config(0), kernel);
    sim.plan.replace_all(vec![via(keep, "198.18.0.2")]);
    sim.run();
    assert!(sim.plan.stats().converged);
    assert_eq!(kinds(&sim.sent.iter().collect::<Vec<_>>()), ["delete"]);
    assert_eq!(sim.sent[0].prefix, net(drop));
    sim.assert_reconciled();
}

#[test]
fn notifications_of_other_tables_and_stale_metrics_are_kept_apart() {
    let p = "100.64.1.0/24";
    let mut sim = converged_sim(Kernel::default());
    sim.plan.on_route(
        KernelRoute {
            table: 100,
            ..ours_via(p, "198.18.0.2", METRIC)
        },
        RouteChange::Added,
    );
    assert!(sim.plan.view().ours.is_empty());
    sim.kernel.append(ours_via(p, "198.18.0.2", OLD_METRIC));
    sim.notify();
    assert_eq!(
        sim.plan.view().stale_metric.get(&net(p)),
        Some(&vec![OLD_METRIC])
    );
    sim.run();
    assert_eq!(
        sim.sent_for(&net(p))[0].op,
        Op::Delete { metric: OLD_METRIC }
    );
    sim.assert_reconciled();
}

#[test]
fn a_priority_change_moves_our_routes_make_before_break() {
    let mut sim = converged_sim(Kernel::default());
    let p = "100.64.1.0/24";
    let b = "100.64.2.0/26";
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.plan.apply(FibOp::Set(FibRoute::blackhole(net(b))));
    sim.run();
    assert_eq!(
        sim.kernel.table.get(&(net(p), METRIC)).map(Vec::len),
        Some(1)
    );
    let sent_before = sim.sent_for(&net(p)).len();
    sim.plan.apply(FibOp::Priority { v4: 1024, v6: 1024 });
    sim.kernel.metric = 1024;
    sim.run();
    assert_eq!(sim.plan.target().metric_v4, 1024);
    // At the new metric, gone from the old one: no route of ours left at 32.
    assert_eq!(
        sim.kernel.ours(&net(p)),
        Some(&ours_via(p, "198.18.0.2", 1024))
    );
    assert!(sim.kernel.ours(&net(b)).is_some());
    for q in [p, b] {
        assert!(!sim.kernel.table.contains_key(&(net(q), METRIC)), "{q}");
        assert!(sim.kernel.stale_metrics(&net(q)).is_empty(), "{q}");
    }
    // The new route went in before the old one went out.
    let after: Vec<_> = sim.sent_for(&net(p))[sent_before..].to_vec();
    assert_eq!(kinds(&after), ["create", "delete"]);
    assert_eq!(after[1].op, Op::Delete { metric: METRIC });
    sim.assert_reconciled();
    // Same priority again: nothing to do.
    let n = sim.sent.len();
    sim.plan.apply(FibOp::Priority { v4: 1024, v6: 1024 });
    sim.run();
    assert_eq!(sim.sent.len(), n);
}

#[test]
fn a_priority_change_before_convergence_keeps_old_routes_until_then() {
    let mut sim = Sim::start(&config(0), Kernel::default());
    let p = "100.64.1.0/24";
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    sim.plan.apply(FibOp::Priority { v4: 1024, v6: 1024 });
    sim.kernel.metric = 1024;
    sim.run();
    // Installed at the new metric; the old one waits for convergence.
    assert!(sim.kernel.ours(&net(p)).is_some());
    assert_eq!(sim.kernel.stale_metrics(&net(p)), vec![METRIC]);
    sim.plan.apply(FibOp::Converged);
    sim.run();
    assert!(sim.kernel.stale_metrics(&net(p)).is_empty());
    sim.assert_reconciled();
}

#[test]
fn a_route_at_its_own_metric_goes_in_there_and_moves_make_before_break() {
    let mut sim = converged_sim(Kernel::default());
    let p = "100.64.9.7/32";
    let q = "100.64.9.0/26";
    sim.plan
        .apply(FibOp::Set(via(p, "198.18.0.2").at_metric(512)));
    sim.plan.apply(FibOp::Set(via(q, "198.18.0.2")));
    sim.run();
    // Its own key; the other route keeps the family's.
    assert_eq!(
        sim.kernel.ours_at(&net(p), 512),
        Some(&ours_via(p, "198.18.0.2", 512))
    );
    assert!(sim.kernel.ours(&net(p)).is_none());
    assert!(sim.kernel.ours(&net(q)).is_some());
    sim.assert_reconciled();

    // A new metric (the route's priority changed): in at 2147482623 before
    // out at 512, and nothing else touched.
    let before = sim.sent.len();
    sim.plan
        .apply(FibOp::Set(via(p, "198.18.0.2").at_metric(2_147_482_623)));
    sim.run();
    let after: Vec<&super::Request> = sim.sent[before..].iter().collect();
    assert_eq!(kinds(&after), ["create", "delete"]);
    assert!(after.iter().all(|r| r.prefix == net(p)));
    assert_eq!(after[1].op, Op::Delete { metric: 512 });
    assert!(sim.kernel.ours_at(&net(p), 2_147_482_623).is_some());
    assert!(
        sim.kernel
            .metrics_of_ours_except(&net(p), 2_147_482_623)
            .is_empty()
    );
    sim.assert_reconciled();

    // Back to the family's metric, then withdrawn: deleted from its key and
    // the metric of its own forgotten.
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    assert!(sim.kernel.ours(&net(p)).is_some());
    assert!(sim.kernel.stale_metrics(&net(p)).is_empty());
    sim.plan
        .apply(FibOp::Set(via(p, "198.18.0.3").at_metric(300)));
    sim.run();
    sim.plan.apply(FibOp::Remove(net(p)));
    sim.run();
    assert!(sim.kernel.table.keys().all(|(k, _)| *k != net(p)));
    assert!(sim.plan.view().own_metric.is_empty());
    sim.assert_reconciled();
}

#[test]
fn a_route_at_its_own_metric_found_at_start_is_kept_with_no_deletion() {
    let mut kernel = Kernel::default();
    let p = "100.64.9.7/32";
    kernel.append(ours_via(p, "198.18.0.2", 512));
    let mut sim = Sim::start(&config(0), kernel);
    sim.plan
        .apply(FibOp::Set(via(p, "198.18.0.2").at_metric(512)));
    sim.run();
    sim.plan.apply(FibOp::Converged);
    sim.run();
    assert!(
        sim.sent.is_empty(),
        "the route was already as wanted: {:?}",
        sim.sent
    );
    assert!(sim.kernel.ours_at(&net(p), 512).is_some());
    sim.assert_reconciled();
}

#[test]
fn a_foreign_route_on_a_routes_own_key_is_never_replaced() {
    let mut kernel = Kernel::default();
    let p = "100.64.9.7/32";
    kernel.append(kernel_route(net(p), 4, 512, unicast("198.18.0.9")));
    let mut sim = Sim::start(&config(0), kernel);
    sim.plan.apply(FibOp::Converged);
    // Wanted first at the family metric (free), then moved onto the key the
    // static route holds: the kernel's EXCL create would refuse, so the
    // planner must not even try a REPLACE there.
    sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    sim.run();
    assert!(sim.kernel.ours(&net(p)).is_some());
    sim.plan
        .apply(FibOp::Set(via(p, "198.18.0.2").at_metric(512)));
    sim.run();
    assert_eq!(sim.kernel.foreign_at(&net(p), 512), 1);
    assert!(sim.kernel.ours_at(&net(p), 512).is_none());
    assert!(sim.sent.iter().all(|r| !matches!(r.op, Op::Replace(_))));
    // The static route goes: ours takes its key, and the one at the family
    // metric goes after.
    assert!(sim.kernel.delete(net(p), 512, 4));
    sim.notify();
    sim.run();
    assert!(sim.kernel.ours_at(&net(p), 512).is_some());
    assert!(sim.kernel.ours(&net(p)).is_none());
    sim.assert_reconciled();
}
