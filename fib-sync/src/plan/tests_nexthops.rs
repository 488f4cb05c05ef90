//! The nexthop-object rules, scenario by scenario, against the simulated
//! kernel: objects created before the routes that name them, shared, deleted
//! after their last route, adopted at restart, restored when someone else
//! deletes them, and the fallback when the kernel refuses them.

use super::Planned;
use super::sim::*;
use crate::types::{FibConfig, FibOp, FibRoute};
use crate::wire::{KernelNexthop, NhOp, NhSpec, Shape};

use super::tests::{ip, net, via};

fn cfg(bulk_threshold: usize) -> FibConfig {
    FibConfig {
        nexthop_objects: true,
        ..config(bulk_threshold)
    }
}

fn spec(gw: &str) -> NhSpec {
    NhSpec {
        gateway: ip(gw),
        oif: ETH,
        onlink: false,
    }
}

/// The id of the kernel's object of ours for `gw`.
fn object_for(k: &Kernel, gw: &str) -> Option<u32> {
    k.our_nexthops()
        .into_iter()
        .find(|(_, s)| *s == spec(gw))
        .map(|(id, _)| id)
}

fn nh_of(k: &Kernel, p: &str) -> Option<u32> {
    k.ours(&net(p)).and_then(|r| r.nh_id)
}

/// Position in the send order of the create of object `id`, and of the
/// first route request naming it.
fn create_then_first_use(sim: &Sim, id: u32) -> (usize, usize) {
    let create = sim
        .order
        .iter()
        .position(
            |r| matches!(r, Planned::Nexthop(n) if matches!(n.op, NhOp::Create(i, _) if i == id)),
        )
        .expect("object created");
    let used = sim
        .order
        .iter()
        .position(|r| match r {
            Planned::Route(r) => match &r.op {
                super::Op::Create(w) | super::Op::Replace(w) => w.nh == Some(id),
                super::Op::Delete { .. } => false,
            },
            Planned::Nexthop(_) => false,
        })
        .expect("object used");
    (create, used)
}

fn started(bulk: usize) -> Sim {
    let mut sim = Sim::start(&cfg(bulk), Kernel::default());
    sim.plan.apply(FibOp::Converged);
    sim.run();
    sim
}

#[test]
fn routes_share_one_object_per_next_hop_created_before_them() {
    let mut sim = started(0);
    for p in ["100.64.1.0/24", "100.64.2.0/24", "100.64.3.0/24"] {
        sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    }
    sim.plan
        .apply(FibOp::Set(via("100.64.4.0/24", "198.18.0.3")));
    sim.plan.apply(FibOp::Set(FibRoute::ecmp(
        net("100.64.5.0/24"),
        [ip("198.18.0.2"), ip("198.18.0.3")],
    )));
    sim.plan
        .apply(FibOp::Set(FibRoute::blackhole(net("100.64.6.0/24"))));
    sim.plan
        .apply(FibOp::Set(via("2001:db8:1000:1::/64", "2001:db8::2")));
    sim.run();

    let a = object_for(&sim.kernel, "198.18.0.2").expect("object for .2");
    let b = object_for(&sim.kernel, "198.18.0.3").expect("object for .3");
    let c = object_for(&sim.kernel, "2001:db8::2").expect("object for 2001:db8::2");
    assert_eq!(
        sim.kernel.our_nexthops().len(),
        3,
        "one object per next hop"
    );
    assert_eq!(sim.sent_nh.len(), 3, "each created once");
    for p in ["100.64.1.0/24", "100.64.2.0/24", "100.64.3.0/24"] {
        assert_eq!(nh_of(&sim.kernel, p), Some(a), "{p} shares .2's object");
    }
    assert_eq!(nh_of(&sim.kernel, "100.64.4.0/24"), Some(b));
    assert_eq!(nh_of(&sim.kernel, "2001:db8:1000:1::/64"), Some(c));
    // ECMP and blackhole routes spell themselves out.
    assert_eq!(nh_of(&sim.kernel, "100.64.5.0/24"), None);
    assert_eq!(nh_of(&sim.kernel, "100.64.6.0/24"), None);
    assert!(sim.kernel.ours(&net("100.64.5.0/24")).is_some());
    for id in [a, b, c] {
        let (create, used) = create_then_first_use(&sim, id);
        assert!(create < used, "object {id} created before its first route");
    }
    // Ids are from our range: protocol 84 in the top byte.
    assert!([a, b, c].iter().all(|id| id >> 24 == u32::from(OURS)));
    assert_eq!(sim.plan.stats().nexthops, 3);
    sim.assert_reconciled();
}

#[test]
fn an_object_goes_only_after_its_last_route_and_a_moved_route_changes_object() {
    let mut sim = started(0);
    let ps = ["100.64.1.0/24", "100.64.2.0/24", "100.64.3.0/24"];
    for p in ps {
        sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    }
    sim.run();
    let a = object_for(&sim.kernel, "198.18.0.2").unwrap();

    sim.plan.apply(FibOp::Remove(net(ps[0])));
    sim.run();
    // Moved to another next hop: replaced onto a new object.
    sim.plan.apply(FibOp::Set(via(ps[1], "198.18.0.3")));
    sim.run();
    let b = object_for(&sim.kernel, "198.18.0.3").unwrap();
    assert_eq!(nh_of(&sim.kernel, ps[1]), Some(b));
    assert_eq!(
        object_for(&sim.kernel, "198.18.0.2"),
        Some(a),
        "still used by {}",
        ps[2]
    );
    assert!(sim.sent_nh.iter().all(|n| !matches!(n.op, NhOp::Delete(_))));

    let before = sim.order.len();
    sim.plan.apply(FibOp::Remove(net(ps[2])));
    sim.run();
    let after: Vec<&Planned> = sim.order[before..].iter().collect();
    assert!(
        matches!(after.as_slice(), [Planned::Nexthop(n)] if n.op == NhOp::Delete(a)),
        "the last route goes with its object, in one request: {after:?}"
    );
    assert_eq!(object_for(&sim.kernel, "198.18.0.2"), None);
    assert_eq!(sim.kernel.ours(&net(ps[2])), None);
    let s = sim.plan.stats();
    assert_eq!(
        (s.nexthop_deletes, s.deletes, s.installed),
        (1, 2, 1),
        "{s:?}"
    );
    sim.assert_reconciled();
}

#[test]
fn a_withdraw_flushes_an_object_with_its_routes_unless_one_is_wanted_or_foreign() {
    for bulk in [0, 4] {
        let mut sim = started(bulk);
        let v4: Vec<String> = (0..32).map(|i| format!("100.64.{i}.0/24")).collect();
        let v6: Vec<String> = (0..32)
            .map(|i| format!("2001:db8:1000:{i:x}::/64"))
            .collect();
        for p in &v4 {
            sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
        }
        for p in &v6 {
            sim.plan.apply(FibOp::Set(via(p, "2001:db8::2")));
        }
        sim.run();
        let a = object_for(&sim.kernel, "198.18.0.2").unwrap();

        // All but one IPv4 route withdrawn: the one left keeps the object,
        // the rest go one by one.
        let before = sim.sent.len();
        for p in &v4[1..] {
            sim.plan.apply(FibOp::Remove(net(p)));
        }
        sim.run();
        assert_eq!(sim.sent.len() - before, 31);
        assert!(sim.kernel.nexthops.contains_key(&a));

        // Withdraw everything: two requests, one per object.
        let before = (sim.sent.len(), sim.sent_nh.len());
        sim.plan.replace_all(Vec::new());
        sim.run();
        assert_eq!(
            sim.sent.len(),
            before.0,
            "no route request: {:?}",
            &sim.sent[before.0..]
        );
        assert_eq!(sim.sent_nh.len() - before.1, 2);
        assert!(sim.kernel.table.is_empty(), "{:?}", sim.kernel.table);
        assert!(sim.kernel.our_nexthops().is_empty());
        let s = sim.plan.stats();
        assert_eq!((s.installed, s.deletes), (0, 31 + 33), "{s:?}");
        sim.assert_reconciled();
    }
}

#[test]
fn an_object_a_foreign_route_names_is_never_flushed() {
    let mut sim = started(0);
    let ps = ["100.64.1.0/24", "100.64.2.0/24"];
    for p in ps {
        sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    }
    sim.run();
    let a = object_for(&sim.kernel, "198.18.0.2").unwrap();
    // Someone else routes through our object.
    let mut theirs = kernel_route(
        net("100.64.9.0/24"),
        4,
        METRIC,
        Shape::Unicast(vec![hop_of(&spec("198.18.0.2"))]),
    );
    theirs.nh_id = Some(a);
    sim.kernel.append(theirs);
    sim.notify();

    sim.plan.replace_all(Vec::new());
    sim.run();
    assert_eq!(sim.sent.len(), 4, "our two routes deleted one by one");
    assert!(sim.sent_nh.iter().all(|n| !matches!(n.op, NhOp::Delete(_))));
    assert!(sim.kernel.nexthops.contains_key(&a), "kept while named");
    assert_eq!(sim.kernel.foreign_on_key(&net("100.64.9.0/24")), 1);

    // Once their route goes, so does our object.
    sim.kernel.delete(net("100.64.9.0/24"), METRIC, 4);
    sim.notify();
    sim.run();
    assert!(!sim.kernel.nexthops.contains_key(&a));
}

/// A kernel as a previous run of ours left it: two objects of ours (one
/// unused), a foreign object, routes naming ours.
fn kernel_left_behind() -> (Kernel, u32, u32) {
    let mut k = Kernel::default();
    let used = (u32::from(OURS) << 24) | 7;
    let unused = (u32::from(OURS) << 24) | 8;
    let theirs = (u32::from(OURS) << 24) | 9;
    for (id, protocol, gw) in [
        (used, OURS, "198.18.0.2"),
        (unused, OURS, "198.18.0.3"),
        (theirs, 4, "198.18.0.4"),
    ] {
        k.nexthops.insert(
            id,
            KernelNexthop {
                id,
                protocol,
                spec: Some(spec(gw)),
            },
        );
    }
    for p in ["100.64.1.0/24", "100.64.2.0/24"] {
        let mut r = kernel_route(
            net(p),
            OURS,
            METRIC,
            Shape::Unicast(vec![hop_of(&spec("198.18.0.2"))]),
        );
        r.nh_id = Some(used);
        k.append(r);
    }
    // A foreign route naming the foreign object.
    let mut r = kernel_route(
        net("100.64.9.0/24"),
        4,
        METRIC,
        Shape::Unicast(vec![hop_of(&spec("198.18.0.4"))]),
    );
    r.nh_id = Some(theirs);
    k.append(r);
    k.notes.clear();
    (k, used, theirs)
}

#[test]
fn restart_adopts_objects_and_routes_with_no_delete_and_no_replace() {
    let (kernel, used, theirs) = kernel_left_behind();
    let mut sim = Sim::start(&cfg(0), kernel);
    for p in ["100.64.1.0/24", "100.64.2.0/24"] {
        sim.plan.apply(FibOp::Set(via(p, "198.18.0.2")));
    }
    // A new route to the adopted next hop joins its object.
    sim.plan
        .apply(FibOp::Set(via("100.64.3.0/24", "198.18.0.2")));
    sim.run();
    assert!(sim.sent_nh.is_empty(), "nothing deleted before convergence");
    assert_eq!(nh_of(&sim.kernel, "100.64.3.0/24"), Some(used));
    assert_eq!(sim.sent.len(), 1, "only the new route: {:?}", sim.sent);

    sim.plan.apply(FibOp::Converged);
    sim.run();
    assert_eq!(
        sim.sent.len(),
        1,
        "adopted routes untouched: {:?}",
        sim.sent
    );
    // The unused object of ours goes; the foreign one and its route stay.
    assert_eq!(sim.sent_nh.len(), 1);
    assert!(matches!(sim.sent_nh[0].op, NhOp::Delete(id) if id != used && id != theirs));
    assert!(sim.kernel.nexthops.contains_key(&theirs));
    assert!(sim.kernel.nexthops.contains_key(&used));
    assert_eq!(sim.kernel.foreign_on_key(&net("100.64.9.0/24")), 1);
    sim.assert_reconciled();
}

#[test]
fn an_object_deleted_by_someone_else_comes_back_with_its_routes() {
    for bulk in [0, 2] {
        let mut sim = started(bulk);
        let ps = ["100.64.1.0/24", "100.64.2.0/24", "2001:db8:1000:1::/64"];
        sim.plan.apply(FibOp::Set(via(ps[0], "198.18.0.2")));
        sim.plan.apply(FibOp::Set(via(ps[1], "198.18.0.2")));
        sim.plan.apply(FibOp::Set(via(ps[2], "2001:db8::2")));
        sim.run();
        let a = object_for(&sim.kernel, "198.18.0.2").unwrap();
        let c = object_for(&sim.kernel, "2001:db8::2").unwrap();

        // `ip nexthop del id A`, `ip nexthop del id C`: the kernel deletes the
        // routes too (reporting only the IPv6 one).
        assert!(sim.kernel.remove_nexthop(a, true));
        assert!(sim.kernel.remove_nexthop(c, true));
        assert!(sim.kernel.ours(&net(ps[0])).is_none());
        sim.notify();
        sim.run();
        for p in ps {
            let r = sim.kernel.ours(&net(p));
            assert!(r.is_some_and(|r| r.nh_id.is_some()), "{p} restored: {r:?}");
        }
        assert_eq!(sim.plan.stats().restores, 3);
        sim.assert_reconciled();
    }
}

#[test]
fn a_kernel_refusing_objects_falls_back_to_per_route_next_hops() {
    let kernel = Kernel {
        nexthops_refused: Some(libc::EOPNOTSUPP),
        ..Kernel::default()
    };
    let mut sim = Sim::start(&cfg(0), kernel);
    sim.plan.apply(FibOp::Converged);
    sim.plan
        .apply(FibOp::Set(via("100.64.1.0/24", "198.18.0.2")));
    sim.plan
        .apply(FibOp::Set(via("100.64.2.0/24", "198.18.0.2")));
    sim.run();
    assert!(!sim.plan.uses_nexthops());
    assert_eq!(sim.sent_nh.len(), 1, "tried once");
    for p in ["100.64.1.0/24", "100.64.2.0/24"] {
        let r = sim.kernel.ours(&net(p)).expect("installed");
        assert_eq!(r.nh_id, None);
    }
    sim.assert_reconciled();
}

#[test]
fn a_refused_next_hop_spells_itself_out_and_moves_onto_an_object_on_retry() {
    let mut sim = started(0);
    sim.kernel.set_link(ETH, "eth0", false);
    sim.notify();
    sim.plan
        .apply(FibOp::Set(via("100.64.1.0/24", "198.18.0.2")));
    sim.run();
    assert!(sim.plan.is_parked(&net("100.64.1.0/24")));
    sim.kernel.set_link(ETH, "eth0", true);
    sim.notify();
    sim.settle();
    let a = object_for(&sim.kernel, "198.18.0.2").expect("object made on retry");
    assert_eq!(nh_of(&sim.kernel, "100.64.1.0/24"), Some(a));
    sim.assert_reconciled();
}

#[test]
fn a_bulk_run_on_objects_is_verified_without_a_replace() {
    let mut sim = started(4);
    for i in 0..64u8 {
        let p = format!("100.64.{i}.0/24");
        sim.plan.apply(FibOp::Set(via(&p, "198.18.0.2")));
    }
    sim.run();
    assert_eq!(sim.plan.stats().bulk_runs, 1);
    assert_eq!(sim.sent_nh.len(), 1);
    assert_eq!(sim.plan.stats().installs, 64);
    assert_eq!(
        sim.plan.stats().replaces,
        0,
        "the dump confirms what the acks recorded"
    );
    sim.assert_reconciled();
}
