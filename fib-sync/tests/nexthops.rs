//! Nexthop objects against the real kernel: shared by routes, adopted with
//! no change at restart, restored when someone deletes one, never touching
//! another protocol's objects. Each test in its own network namespace.

mod common;

use std::time::Duration;

use common::*;
use tabby_fib_sync::{FibConfig, FibRoute};

/// `ip -o nexthop show` lines of one protocol.
fn nexthops(ns: &str, proto: &str) -> Vec<String> {
    ipn(ns, &["-o", "nexthop", "show", "protocol", proto])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The nexthop id our route for `prefix` names.
fn nhid_of(ns: &str, prefix: &str) -> Option<String> {
    let line = ours(ns, prefix)?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "nhid")?;
    words.next().map(str::to_owned)
}

#[test]
fn routes_share_objects_and_restart_adopts_them_with_no_change() {
    run_in(&lab(), |n| async move {
        // Another protocol's object and a route of its own on it.
        ip_words(&n, "nexthop add id 4242 via 198.18.0.4 dev t0 proto static");
        ip_words(&n, "route add 100.66.0.0/24 nhid 4242 proto static");
        let total = 5_000u32;
        let mut routes_v4 = hosts_via(66, 1..total / 2, "198.18.0.2");
        routes_v4.extend(hosts_via(66, total / 2..total, "198.18.0.3"));
        let v6: Vec<FibRoute> = (1..200)
            .map(|i| via(&format!("2001:db8:1000:{i:x}::/64"), "2001:db8::2"))
            .collect();
        {
            let (fib, task) = start(FibConfig::default()).await;
            fib.converged().await.unwrap();
            fib.set_many(routes_v4.clone()).await.unwrap();
            fib.set_many(v6.clone()).await.unwrap();
            fib.sync().await.unwrap();
            let s = fib.stats().await.unwrap();
            assert_eq!(s.nexthop_installs, 3, "one object per next hop: {s:?}");
            assert_eq!(s.nexthops, 3, "{s:?}");
            drop(fib);
            task.await.unwrap();
        }
        let objects = nexthops(&n, "84");
        assert_eq!(objects.len(), 3, "{objects:?}");
        let a = nhid_of(&n, &shown(&routes_v4[0].prefix)).expect("route on an object");
        let b = nhid_of(&n, &shown(&routes_v4[routes_v4.len() - 1].prefix)).unwrap();
        assert_ne!(a, b);
        assert!(nhid_of(&n, "2001:db8:1000:1::/64").is_some());
        let table_before = (routes(&n, false, "84"), routes(&n, true, "84"));

        // Restart with the same routes: nothing deleted, replaced or added,
        // before or after convergence.
        let monitor = DelMonitor::start(PROTO);
        let (fib, _task) = start(FibConfig::default()).await;
        fib.set_many(routes_v4.clone()).await.unwrap();
        fib.set_many(v6.clone()).await.unwrap();
        fib.sync().await.unwrap();
        fib.converged().await.unwrap();
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert_eq!(
            (
                s.installs,
                s.replaces,
                s.deletes,
                s.nexthop_installs,
                s.nexthop_deletes
            ),
            (0, 0, 0, 0, 0),
            "{s:?}"
        );
        assert_eq!(s.nexthops, 3, "{s:?}");
        assert!(monitor.finish().is_empty(), "no route deleted on restart");
        assert_eq!(nexthops(&n, "84"), objects, "objects untouched");
        assert_eq!(
            (routes(&n, false, "84"), routes(&n, true, "84")),
            table_before
        );

        // Another protocol's route through our first object keeps it.
        ip_words(
            &n,
            &format!("route add 100.66.1.0/24 nhid {a} proto static"),
        );
        // Withdrawn: the objects only our unwanted routes name are deleted
        // with them (the kernel flushes the routes), the one a foreign route
        // names stays and our routes on it go one by one.
        let monitor = DelMonitor::start(PROTO);
        fib.replace_all(Vec::new()).await.unwrap();
        fib.sync().await.unwrap();
        wait_for_kernel(&n, "our routes withdrawn", Duration::from_secs(10), |n| {
            routes(n, false, "84").is_empty() && routes(n, true, "84").is_empty()
        })
        .await;
        let s = fib.stats().await.unwrap();
        assert_eq!((s.installed, s.nexthop_deletes), (0, 2), "{s:?}");
        assert_eq!(
            nexthops(&n, "84").len(),
            1,
            "the object a foreign route names"
        );
        assert_eq!(routes(&n, false, "static").len(), 2);
        // IPv4 routes flushed with an object are not reported, so only
        // the ones deleted one by one (on the kept object) and IPv6 show.
        let deleted = monitor.finish();
        assert!(
            deleted.len() < routes_v4.len() + v6.len(),
            "{}",
            deleted.len()
        );

        // Once that route goes, so does the object.
        ip_words(&n, "route del 100.66.1.0/24 proto static");
        wait_for_kernel(&n, "last object deleted", Duration::from_secs(10), |n| {
            nexthops(n, "84").is_empty()
        })
        .await;
        assert_eq!(fib.stats().await.unwrap().nexthop_deletes, 3);
        assert_eq!(nexthops(&n, "4").len(), 1);
        assert_eq!(routes(&n, false, "static").len(), 1);
    });
}

#[test]
fn our_nexthop_deleted_by_someone_else_brings_its_routes_back() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        let v4 = hosts_via(67, 0..100, "198.18.0.2");
        fib.set_many(v4.clone()).await.unwrap();
        fib.set(via("2001:db8:1000:67::/64", "2001:db8::2"))
            .await
            .unwrap();
        fib.sync().await.unwrap();
        let first = shown(&v4[0].prefix);
        let id = nhid_of(&n, &first).expect("on an object");
        let id6 = nhid_of(&n, "2001:db8:1000:67::/64").expect("on an object");

        // The kernel deletes the routes with the object.
        ip_words(&n, &format!("nexthop del id {id}"));
        ip_words(&n, &format!("nexthop del id {id6}"));
        wait_for_kernel(&n, "routes restored", Duration::from_secs(10), |n| {
            routes(n, false, "84").len() == 100
                && ours(n, "2001:db8:1000:67::/64").is_some()
                && nexthops(n, "84").len() == 2
        })
        .await;
        let again = nhid_of(&n, &first).expect("restored on an object");
        assert_ne!(again, id, "a new object");
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert_eq!(s.restores, 101, "{s:?}");
    });
}

#[test]
fn without_nexthop_objects_routes_spell_their_next_hop_out() {
    let cfg = FibConfig {
        nexthop_objects: false,
        ..FibConfig::default()
    };
    with_converged_fib(&lab(), cfg, |n, fib| async move {
        fib.set(via("100.68.0.0/24", "198.18.0.2")).await.unwrap();
        fib.sync().await.unwrap();
        let line = ours(&n, "100.68.0.0/24").expect("installed");
        assert!(!line.contains("nhid"), "{line}");
        assert!(nexthops(&n, "84").is_empty());
    });
}
