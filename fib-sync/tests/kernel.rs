//! fib-sync against the real kernel, each test in its own network namespace.

mod common;

use std::time::Duration;

use common::*;
use tabby_fib_sync::{FibConfig, FibOp, FibRoute, KernelEvent, NextHopSpec, RouteKind};

#[test]
fn install_replace_withdraw_v4_v6() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        set_v4_and_v6(&fib, "100.64.1.0/24", "2001:db8:1000:1::/64").await;
        let v4 = ours(&n, "100.64.1.0/24").expect("v4 route installed");
        assert!(v4.contains("via 198.18.0.2 dev t0 metric 32"), "{v4}");
        let v6 = ours(&n, "2001:db8:1000:1::/64").expect("v6 route installed");
        assert!(v6.contains("via 2001:db8::2 dev t0 metric 32"), "{v6}");

        // Replace: new gateway, and a preferred source.
        let mut r = via("100.64.1.0/24", "198.18.0.3");
        r.pref_src = Some(ip("198.18.0.1"));
        set_and_sync(&fib, [r, via("2001:db8:1000:1::/64", "2001:db8::3")]).await;
        let v4 = ours(&n, "100.64.1.0/24").unwrap();
        assert!(
            v4.contains("via 198.18.0.3") && v4.contains("src 198.18.0.1"),
            "{v4}"
        );
        assert!(
            ours(&n, "2001:db8:1000:1::/64")
                .unwrap()
                .contains("via 2001:db8::3")
        );
        assert_eq!(
            routes(&n, false, "84").len(),
            1,
            "replace must not leave a second route"
        );

        let s = fib.stats().await.unwrap();
        assert_eq!((s.installs, s.replaces), (2, 2), "{s:?}");

        fib.remove(net("100.64.1.0/24")).await.unwrap();
        fib.remove(net("2001:db8:1000:1::/64")).await.unwrap();
        fib.sync().await.unwrap();
        assert!(routes(&n, false, "84").is_empty());
        assert!(routes(&n, true, "84").is_empty());
        assert_eq!(fib.stats().await.unwrap().deletes, 2);
    });
}

#[test]
fn ecmp_add_and_shrink() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        let v4 = net("100.64.2.0/24");
        let v6 = net("2001:db8:1000:2::/64");
        set_and_sync(
            &fib,
            [
                FibRoute::ecmp(v4, ["198.18.0.2", "198.18.0.3", "198.18.0.4"].map(ip)),
                FibRoute::ecmp(v6, ["2001:db8::2", "2001:db8::3", "2001:db8::4"].map(ip)),
            ],
        )
        .await;
        for (p, gws) in [
            ("100.64.2.0/24", ["198.18.0.2", "198.18.0.3", "198.18.0.4"]),
            (
                "2001:db8:1000:2::/64",
                ["2001:db8::2", "2001:db8::3", "2001:db8::4"],
            ),
        ] {
            let line = ours(&n, p).expect("ecmp route");
            for g in gws {
                assert!(line.contains(&format!("nexthop via {g} dev t0")), "{line}");
            }
        }
        // Shrink to two, with a weight.
        let mut hops = vec![
            NextHopSpec::gateway(ip("198.18.0.2")),
            NextHopSpec::gateway(ip("198.18.0.4")),
        ];
        hops[1].weight = 3;
        let weighted = FibRoute {
            prefix: v4,
            kind: RouteKind::Unicast(hops),
            pref_src: None,
            metric: None,
        };
        set_and_sync(
            &fib,
            [
                weighted,
                FibRoute::ecmp(v6, ["2001:db8::2", "2001:db8::4"].map(ip)),
            ],
        )
        .await;
        let line = ours(&n, "100.64.2.0/24").unwrap();
        assert!(
            line.contains("nexthop via 198.18.0.2 dev t0 weight 1"),
            "{line}"
        );
        assert!(
            line.contains("nexthop via 198.18.0.4 dev t0 weight 3"),
            "{line}"
        );
        assert!(!line.contains("198.18.0.3"), "{line}");
        let line = ours(&n, "2001:db8:1000:2::/64").unwrap();
        assert!(
            line.contains("2001:db8::2") && line.contains("2001:db8::4"),
            "{line}"
        );
        assert!(!line.contains("2001:db8::3"), "{line}");
        // And down to a single path.
        set_and_sync(&fib, [FibRoute::via(v6, ip("2001:db8::4"))]).await;
        let line = ours(&n, "2001:db8:1000:2::/64").unwrap();
        assert!(
            line.contains("via 2001:db8::4 dev t0") && !line.contains("nexthop"),
            "{line}"
        );
        assert_eq!(routes(&n, true, "84").len(), 1);
    });
}

#[test]
fn blackhole_blocks() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        set_and_sync(
            &fib,
            [
                FibRoute::blackhole(net("100.64.3.0/26")),
                FibRoute::blackhole(net("2001:db8:1000:3::/122")),
            ],
        )
        .await;
        assert!(
            routes(&n, false, "84")
                .iter()
                .any(|l| l.starts_with("blackhole 100.64.3.0/26 metric 32"))
        );
        assert!(
            routes(&n, true, "84")
                .iter()
                .any(|l| l.starts_with("blackhole 2001:db8:1000:3::/122"))
        );
        // A more specific per-pod route (another component's) wins.
        ip_words(&n, "route add 100.64.3.5/32 dev t0 proto boot");
        let got = ip_words(&n, "route get 100.64.3.5");
        assert!(got.contains("dev t0"), "{got}");
        // Blackhole → gateway route is a replace in place.
        set_and_sync(&fib, [via("100.64.3.0/26", "198.18.0.2")]).await;
        assert!(
            ours(&n, "100.64.3.0/26")
                .unwrap()
                .contains("via 198.18.0.2")
        );
    });
}

#[test]
fn onlink_via_device() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        // 198.18.9.1 is not on any connected subnet: only onlink makes it usable.
        let r = FibRoute {
            prefix: net("100.64.4.0/26"),
            kind: RouteKind::Unicast(vec![NextHopSpec::onlink(ip("198.18.9.1"), "t0")]),
            pref_src: None,
            metric: None,
        };
        // A device that does not exist yet: parked, then installed when it appears.
        let later = FibRoute {
            prefix: net("100.64.5.0/26"),
            kind: RouteKind::Unicast(vec![NextHopSpec::onlink(ip("198.18.9.2"), "tunx")]),
            pref_src: None,
            metric: None,
        };
        set_and_sync(&fib, [r, later]).await;
        let line = ours(&n, "100.64.4.0/26").expect("onlink route");
        assert!(
            line.contains("via 198.18.9.1 dev t0") && line.contains("onlink"),
            "{line}"
        );
        assert!(ours(&n, "100.64.5.0/26").is_none());
        assert_eq!(fib.stats().await.unwrap().parked, 1);
        ip_words(&n, "link add tunx type veth peer name tuny");
        ip_words(&n, "link set tunx up");
        ip_words(&n, "link set tuny up");
        wait_for_kernel(
            &n,
            "route via the new device",
            Duration::from_secs(10),
            |n| {
                ours(n, "100.64.5.0/26")
                    .is_some_and(|l| l.contains("dev tunx") && l.contains("onlink"))
            },
        )
        .await;
    });
}

#[test]
fn unreachable_gateway_retried_when_address_appears() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        set_and_sync(&fib, [via("100.64.6.0/24", "198.18.7.2")]).await;
        assert!(ours(&n, "100.64.6.0/24").is_none());
        let s = fib.stats().await.unwrap();
        assert_eq!(s.parked, 1, "{s:?}");
        assert!(s.errors.contains_key(&libc::ENETUNREACH), "{s:?}");
        ip_words(&n, "addr add 198.18.7.1/24 dev t0");
        wait_for_kernel(
            &n,
            "route once the gateway is reachable",
            Duration::from_secs(10),
            |n| ours(n, "100.64.6.0/24").is_some(),
        )
        .await;
    });
}

#[test]
fn restart_keeps_valid_routes_and_removes_stale_after_convergence() {
    run_in(&lab(), |n| async move {
        let total = 10_000u32;
        let first = hosts_via(64, 0..total, "198.18.0.2");
        {
            let (fib, task) = start(FibConfig::default()).await;
            fib.set_many(first.clone()).await.unwrap();
            fib.converged().await.unwrap();
            fib.sync().await.unwrap();
            let s = fib.stats().await.unwrap();
            assert_eq!(s.installs, u64::from(total));
            assert_eq!(s.bulk_runs, 1, "10k routes go in bulk mode: {s:?}");
            // "kill -9": the handle goes away, nothing is withdrawn.
            drop(fib);
            task.await.unwrap();
        }
        assert_eq!(routes(&n, false, "84").len(), total as usize);
        // On one shared nexthop object (this kernel has them).
        assert!(
            routes(&n, false, "84").iter().all(|l| l.contains("nhid")),
            "routes name a nexthop object"
        );

        let monitor = DelMonitor::start(PROTO);
        let (fib, _task) = start(FibConfig::default()).await;
        // The restarted RIB relearns all but the last 100 (stale), with 50
        // next hops changed.
        let mut second: Vec<FibRoute> = first[..(total - 100) as usize].to_vec();
        for r in second.iter_mut().take(50) {
            *r = FibRoute::via(r.prefix, ip("198.18.0.3"));
        }
        let new: Vec<FibRoute> = (0..20)
            .map(|i| FibRoute::via(net(&format!("100.65.0.{i}/32")), ip("198.18.0.2")))
            .collect();
        fib.set_many(second.clone()).await.unwrap();
        fib.set_many(new.clone()).await.unwrap();
        fib.sync().await.unwrap();
        // Before convergence: nothing inherited was touched, new ones are in.
        let before = fib.stats().await.unwrap();
        assert_eq!(
            (before.installs, before.replaces, before.deletes),
            (20, 0, 0),
            "{before:?}"
        );
        // The new routes joined the adopted object.
        assert_eq!(
            (
                before.nexthop_installs,
                before.nexthop_deletes,
                before.nexthops
            ),
            (0, 0, 1),
            "{before:?}"
        );
        assert_eq!(routes(&n, false, "84").len(), total as usize + 20);
        fib.converged().await.unwrap();
        fib.sync().await.unwrap();
        let after = fib.stats().await.unwrap();
        assert_eq!((after.replaces, after.deletes), (50, 100), "{after:?}");
        // One object for the changed next hop; the adopted one is still used.
        assert_eq!(
            (
                after.nexthop_installs,
                after.nexthop_deletes,
                after.nexthops
            ),
            (1, 0, 2),
            "{after:?}"
        );
        let deleted = monitor.finish();
        let stale: std::collections::BTreeSet<_> = first[(total - 100) as usize..]
            .iter()
            .map(|r| r.prefix)
            .collect();
        let seen: std::collections::BTreeSet<_> = deleted.iter().copied().collect();
        assert_eq!(
            deleted.len(),
            100,
            "exactly the stale routes are deleted, once each"
        );
        assert_eq!(seen, stale, "no valid route was deleted");
        let now = our_prefixes(&n);
        assert_eq!(now.len(), (total - 100 + 20) as usize);
        assert!(
            ours(&n, &shown(&second[0].prefix))
                .unwrap()
                .contains("via 198.18.0.3")
        );
    });
}

#[test]
fn foreign_routes_are_never_touched() {
    let ns = lab();
    let n = ns.name().to_string();
    // Same prefix and metric as ours, three other protocols, both families.
    let foreign = [
        ("100.64.10.0/24", "boot", false),
        ("100.64.11.0/24", "static", false),
        ("100.64.12.0/24", "99", false),
        ("2001:db8:1000:10::/64", "boot", true),
        ("2001:db8:1000:11::/64", "static", true),
        ("2001:db8:1000:12::/64", "99", true),
    ];
    for (p, proto, v6) in foreign {
        let gw = if v6 { "2001:db8::9" } else { "198.18.0.9" };
        ipn(
            &n,
            &["route", "add", p, "via", gw, "proto", proto, "metric", "32"],
        );
    }
    let snapshot = |n: &str| {
        let mut all = Vec::new();
        for proto in ["boot", "static", "99"] {
            all.extend(routes(n, false, proto));
            all.extend(routes(n, true, proto));
        }
        all.sort();
        all
    };
    let before = snapshot(&n);
    assert_eq!(before.len(), 6);
    let n2 = n.clone();
    ns.block_on(move || async move {
        let (fib, task) = start(FibConfig::default()).await;
        fib.converged().await.unwrap();
        for round in 0..20u32 {
            for (p, _, v6) in foreign {
                let gw = if v6 {
                    format!("2001:db8::{}", 2 + round % 3)
                } else {
                    format!("198.18.0.{}", 2 + round % 3)
                };
                fib.set(FibRoute::via(net(p), ip(&gw))).await.unwrap();
            }
            if round % 4 == 3 {
                for (p, _, _) in foreign {
                    fib.remove(net(p)).await.unwrap();
                }
            }
            fib.sync().await.unwrap();
        }
        for (p, _, v6) in foreign {
            let gw = if v6 { "2001:db8::2" } else { "198.18.0.2" };
            fib.set(FibRoute::via(net(p), ip(gw))).await.unwrap();
        }
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert_eq!(s.blocked_by_foreign, 6, "{s:?}");
        assert_eq!(s.installs, 0, "{s:?}");
        assert!(routes(&n2, false, "84").is_empty() && routes(&n2, true, "84").is_empty());

        // A foreign route appended beside ours later: we step aside, it stays.
        set_and_sync(&fib, [via("100.64.13.0/24", "198.18.0.2")]).await;
        assert!(ours(&n2, "100.64.13.0/24").is_some());
        ip_words(
            &n2,
            "route append 100.64.13.0/24 via 198.18.0.9 proto static metric 32",
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        set_and_sync(&fib, [via("100.64.13.0/24", "198.18.0.3")]).await;
        let st = routes(&n2, false, "static");
        assert!(
            st.iter()
                .any(|l| l.starts_with("100.64.13.0/24 via 198.18.0.9")),
            "{st:?}"
        );

        // When a foreign route goes away, ours takes the key.
        ip_words(&n2, "route del 100.64.10.0/24 proto boot metric 32");
        wait_for_kernel(
            &n2,
            "our route after the foreign one left",
            Duration::from_secs(10),
            |n| ours(n, "100.64.10.0/24").is_some(),
        )
        .await;
        // Shutdown leaves everything.
        drop(fib);
        task.await.unwrap();
    })
    .unwrap();
    let mut after = snapshot(&n);
    after.retain(|l| !l.starts_with("100.64.13.0/24"));
    let mut expect = before.clone();
    expect.retain(|l| !l.starts_with("100.64.10.0/24"));
    assert_eq!(after, expect, "foreign routes changed");
}

#[test]
fn our_route_deleted_or_changed_by_someone_else_comes_back() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        set_v4_and_v6(&fib, "100.64.20.0/24", "2001:db8:1000:20::/64").await;
        ip_words(&n, "route del 100.64.20.0/24 proto 84");
        ip_words(&n, "-6 route del 2001:db8:1000:20::/64 proto 84");
        wait_for_kernel(
            &n,
            "deleted routes restored",
            Duration::from_secs(10),
            |n| ours(n, "100.64.20.0/24").is_some() && ours(n, "2001:db8:1000:20::/64").is_some(),
        )
        .await;
        // Changed under us (same protocol, other gateway): put back.
        ip_words(
            &n,
            "route replace 100.64.20.0/24 via 198.18.0.7 proto 84 metric 32",
        );
        wait_for_kernel(&n, "changed route restored", Duration::from_secs(10), |n| {
            ours(n, "100.64.20.0/24").is_some_and(|l| l.contains("via 198.18.0.2"))
        })
        .await;
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert!(s.restores >= 3, "{s:?}");
    });
}

#[test]
fn event_socket_overrun_ends_with_kernel_equal_to_desired() {
    // Bulk mode off: this test is about the event socket overflowing.
    let cfg = FibConfig {
        event_rcvbuf: Some(4096),
        bulk_threshold: 0,
        ..FibConfig::default()
    };
    with_converged_fib(&lab(), cfg, |n, fib| async move {
        let prefix = |i: u32| host(66, i);
        let mut desired = std::collections::BTreeSet::new();
        // 50k changes: 30k adds, 10k replaces, 10k removes.
        let adds = hosts_via(66, 0..30_000, "198.18.0.2");
        fib.set_many(adds).await.unwrap();
        let reps = hosts_via(66, 0..10_000, "198.18.0.3");
        fib.set_many(reps).await.unwrap();
        fib.remove_many((20_000..30_000).map(prefix).collect())
            .await
            .unwrap();
        for i in 0..20_000 {
            desired.insert(shown(&prefix(i)));
        }
        fib.sync().await.unwrap();
        // Someone deletes a few of ours while the event socket overflows.
        for i in [5u32, 15_000] {
            ipn(&n, &["route", "del", &shown(&prefix(i)), "proto", "84"]);
        }
        let more = hosts_via(66, 40_000..45_000, "198.18.0.2");
        for i in 40_000..45_000 {
            desired.insert(shown(&prefix(i)));
        }
        fib.set_many(more).await.unwrap();
        fib.sync().await.unwrap();
        let want = desired.clone();
        wait_for_kernel(
            &n,
            "kernel equal to desired",
            Duration::from_secs(30),
            move |n| our_prefixes(n) == want,
        )
        .await;
        let s = fib.stats().await.unwrap();
        assert!(
            s.resyncs >= 2,
            "the overrun must have forced a resync: {s:?}"
        );
        assert!(
            s.errors.contains_key(&libc::ENOBUFS),
            "ENOBUFS counted: {s:?}"
        );
        let v4 = routes(&n, false, "84");
        assert_eq!(v4.len(), desired.len());
        assert!(
            v4.iter()
                .filter(|l| l.starts_with("100.66.0."))
                .take(5)
                .all(|l| l.contains("via 198.18.0.3"))
        );
    });
}

#[test]
fn bulk_mode_respects_foreign_keys_and_replaces_after_verifying() {
    let ns = lab();
    let n = ns.name().to_string();
    let prefix = |i: u32| host(67, i);
    for i in [10u32, 5000, 19_999] {
        let p = shown(&prefix(i));
        ip_words(
            &n,
            &format!("route add {p} via 198.18.0.9 proto static metric 32"),
        );
    }
    with_converged_fib(&ns, FibConfig::default(), move |n2, fib| async move {
        let all = hosts_via(67, 0..20_000, "198.18.0.2");
        fib.set_many(all).await.unwrap();
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert_eq!(s.bulk_runs, 1, "{s:?}");
        assert_eq!(
            (s.installs, s.installed, s.blocked_by_foreign),
            (19_997, 19_997, 3),
            "{s:?}"
        );
        // Someone deletes one of ours during the next bulk run; replaces wait
        // for the verifying dump and then go out as REPLACE.
        let reps = hosts_via(67, 0..8_000, "198.18.0.3");
        fib.set_many(reps).await.unwrap();
        ipn(
            &n2,
            &["route", "del", &shown(&prefix(15_000)), "proto", "84"],
        );
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert_eq!(s.bulk_runs, 2, "{s:?}");
        assert_eq!(s.replaces, 7_998, "two of the 8000 keys are foreign: {s:?}");
        assert_eq!(s.restores, 1, "{s:?}");
        let v4 = routes(&n2, false, "84");
        assert_eq!(v4.len(), 19_997);
        assert_eq!(
            v4.iter().filter(|l| l.contains("via 198.18.0.3")).count(),
            7_998
        );
        let st = routes(&n2, false, "static");
        assert_eq!(st.len(), 3, "foreign routes intact: {st:?}");
        assert!(st.iter().all(|l| l.contains("via 198.18.0.9")));
    });
}

#[test]
fn link_down_and_up_restores_routes() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        let mut events = fib.subscribe_kernel_events();
        set_v4_and_v6(&fib, "100.64.30.0/24", "2001:db8:1000:30::/64").await;
        // The kernel flushes routes through a downed device (IPv4 without
        // telling anyone); they must come back with the link.
        ip_words(&n, "link set t0 down");
        wait_for_kernel(
            &n,
            "kernel flushed the routes",
            Duration::from_secs(10),
            |n| ours(n, "100.64.30.0/24").is_none(),
        )
        .await;
        next_event(
            &mut events,
            "a link-down event for t0",
            Duration::from_secs(5),
            |e| {
                matches!(e, KernelEvent::Link { name, up: false, .. } if name == "t0").then_some(())
            },
        )
        .await;
        ip_words(&n, "link set t0 up");
        // IPv6 drops global addresses on link down (keep_addr_on_down=0):
        // the gateway is reachable again only once the address is back.
        ip_words(&n, "-6 addr add 2001:db8::1/64 dev t0 nodad");
        wait_for_kernel(
            &n,
            "routes back with the link",
            Duration::from_secs(15),
            |n| ours(n, "100.64.30.0/24").is_some() && ours(n, "2001:db8:1000:30::/64").is_some(),
        )
        .await;
    });
}

#[test]
fn learns_device_routes_of_selected_protocols() {
    run_in(&lab(), |n| async move {
        let cfg = FibConfig {
            learn: Some(tabby_fib_sync::LearnFilter {
                protocols: vec![3],
                interface_prefixes: vec!["t0".into()],
            }),
            ..FibConfig::default()
        };
        let (fib, _task) = start(cfg).await;
        let mut events = fib.subscribe_kernel_events();
        ip_words(&n, "route add 198.19.5.7/32 dev t0 proto boot");
        ip_words(&n, "route add 198.19.5.8/32 dev t0 proto static");
        let r = next_event(
            &mut events,
            "a learned route",
            Duration::from_secs(5),
            |e| match e {
                KernelEvent::Learned(r) => Some(r),
                _ => None,
            },
        )
        .await;
        assert_eq!(
            r.prefix,
            net("198.19.5.7/32"),
            "only proto boot on t0 is learned"
        );
        match &r.kind {
            RouteKind::Unicast(h) => assert_eq!(h[0].device.as_deref(), Some("t0")),
            k => panic!("{k:?}"),
        }
        ip_words(&n, "route del 198.19.5.7/32 dev t0 proto boot");
        let p = next_event(
            &mut events,
            "an unlearn event",
            Duration::from_secs(5),
            |e| match e {
                KernelEvent::Unlearned(p) => Some(p),
                KernelEvent::Learned(r) => panic!("learned {r:?}"),
                _ => None,
            },
        )
        .await;
        assert_eq!(p, net("198.19.5.7/32"));
    });
}

#[test]
fn restart_under_foreign_churn_deletes_nothing_valid() {
    let ns = lab();
    let n = ns.name().to_string();
    // Churn: another protocol adds and removes 2000 routes over and over,
    // so the start-up dumps run while the table changes (the kernel may
    // flag them NLM_F_DUMP_INTR; either way nothing valid may go).
    let mut add = String::new();
    let mut del = String::new();
    for i in 0..2000u32 {
        add.push_str(&format!(
            "route add 198.19.{}.{}/32 via 198.18.0.9 proto 99\n",
            i / 256,
            i % 256
        ));
        del.push_str(&format!(
            "route del 198.19.{}.{}/32 proto 99\n",
            i / 256,
            i % 256
        ));
    }
    let dir = std::env::temp_dir();
    let (fa, fd) = (
        dir.join(format!("churn-add-{}", std::process::id())),
        dir.join(format!("churn-del-{}", std::process::id())),
    );
    std::fs::write(&fa, add).unwrap();
    std::fs::write(&fd, del).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (n, stop, fa, fd) = (n.clone(), stop.clone(), fa.clone(), fd.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for f in [&fa, &fd] {
                    let _ = std::process::Command::new("ip")
                        .args(["-n", &n, "-batch"])
                        .arg(f)
                        .output();
                }
            }
        })
    };
    let result = ns.block_on(move || async move {
        let want = hosts_via(68, 0..20_000, "198.18.0.2");
        {
            let (fib, task) = start(FibConfig::default()).await;
            fib.set_many(want.clone()).await.unwrap();
            fib.converged().await.unwrap();
            fib.sync().await.unwrap();
            drop(fib);
            task.await.unwrap();
        }
        let mut retries = 0;
        for _ in 0..3 {
            let monitor = DelMonitor::start(PROTO);
            let (fib, task) = start(FibConfig::default()).await;
            fib.set_many(want.clone()).await.unwrap();
            fib.converged().await.unwrap();
            fib.sync().await.unwrap();
            let s = fib.stats().await.unwrap();
            retries += s.dump_retries;
            assert_eq!((s.installs, s.replaces, s.deletes), (0, 0, 0), "{s:?}");
            drop(fib);
            task.await.unwrap();
            assert_eq!(
                monitor.finish(),
                Vec::<ipnet::IpNet>::new(),
                "valid routes were deleted"
            );
        }
        retries
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = churn.join();
    let _ = std::fs::remove_file(&fa);
    let _ = std::fs::remove_file(&fd);
    let retries = result.unwrap();
    eprintln!("interrupted dumps repeated: {retries}");
    assert_eq!(routes(ns.name(), false, "84").len(), 20_000);
}

#[test]
fn replace_all_converges_and_keeps_unchanged_routes_untouched() {
    run_in(&lab(), |n| async move {
        let prefix = |i: u32| host(69, i);
        let (fib, _task) = start(FibConfig::default()).await;
        let first = hosts_via(69, 0..10, "198.18.0.2");
        fib.set_many(first.clone()).await.unwrap();
        fib.sync().await.unwrap();
        assert!(!fib.stats().await.unwrap().converged);
        let monitor = DelMonitor::start(PROTO);
        // Keep 0..5 as they are, change 5, drop 6..10, add 20.
        let mut next: Vec<FibRoute> = first[..6].to_vec();
        next[5] = FibRoute::via(prefix(5), ip("198.18.0.3"));
        next.push(FibRoute::blackhole(prefix(20)));
        fib.replace_all(next).await.unwrap();
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert!(s.converged, "{s:?}");
        assert_eq!((s.installs, s.replaces, s.deletes), (11, 1, 4), "{s:?}");
        let mut deleted = monitor.finish();
        deleted.sort();
        assert_eq!(deleted, (6..10).map(prefix).collect::<Vec<_>>());
        assert!(ours(&n, "100.69.0.5").unwrap().contains("via 198.18.0.3"));
        assert_eq!(our_prefixes(&n).len(), 7);
        assert!(
            our_prefixes(&n).contains("100.69.0.20"),
            "blackhole listed by prefix"
        );
        // Withdraw-all.
        fib.replace_all(Vec::new()).await.unwrap();
        fib.sync().await.unwrap();
        assert!(our_prefixes(&n).is_empty());
    });
}

#[test]
fn periodic_verification_changes_nothing_when_in_sync() {
    let cfg = FibConfig {
        verify_interval: Some(Duration::from_millis(200)),
        ..FibConfig::default()
    };
    with_converged_fib(&lab(), cfg, |_, fib| async move {
        set_and_sync(
            &fib,
            [
                via("100.64.40.0/24", "198.18.0.2"),
                FibRoute::blackhole(net("2001:db8:1000:40::/64")),
            ],
        )
        .await;
        let before = fib.stats().await.unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
        fib.sync().await.unwrap();
        let after = fib.stats().await.unwrap();
        assert!(
            after.resyncs >= before.resyncs + 3,
            "{before:?} -> {after:?}"
        );
        assert_eq!(
            (
                after.installs,
                after.replaces,
                after.deletes,
                after.restores
            ),
            (
                before.installs,
                before.replaces,
                before.deletes,
                before.restores
            ),
            "a verification of a table in sync must not send anything"
        );
    });
}

#[test]
fn create_meeting_our_own_unseen_route_adopts_it() {
    let ns = lab();
    let n = ns.name().to_string();
    let last = shown(&host(70, 29_999));
    // While the bulk run has route notifications off, someone adds a route
    // with our protocol on a key we are about to create: the create meets
    // EEXIST, the verifying dump shows the route as ours, and it is
    // replaced with what the RIB wants (adopted, not duplicated).
    let intruder = {
        let (n, last) = (n.clone(), last.clone());
        std::thread::spawn(move || {
            wait_for("the bulk run to start", Duration::from_secs(30), || {
                ours(&n, "100.70.0.0").is_some()
            });
            ip_words(
                &n,
                &format!("route add {last} via 198.18.0.7 proto 84 metric 32"),
            );
        })
    };
    let cfg = FibConfig {
        max_in_flight: 8,
        ..FibConfig::default()
    };
    let stats = with_converged_fib(&ns, cfg, |n, fib| async move {
        let all = hosts_via(70, 0..30_000, "198.18.0.2");
        fib.set_many(all).await.unwrap();
        fib.sync().await.unwrap();
        let line = ours(&n, &last).expect("route present");
        assert!(line.contains("via 198.18.0.2"), "{line}");
        assert_eq!(routes(&n, false, "84").len(), 30_000, "one route per key");
        fib.stats().await.unwrap()
    });
    intruder.join().unwrap();
    assert!(
        stats.errors.contains_key(&libc::EEXIST),
        "the create met the intruder: {stats:?}"
    );
    assert_eq!(stats.replaces, 1, "{stats:?}");
}

#[test]
fn sync_waits_for_the_verifying_dump_only_after_a_bulk_run_with_failures() {
    with_converged_fib(&lab(), FibConfig::default(), |n, fib| async move {
        let r0 = fib.stats().await.unwrap().resyncs;
        let mut events = fib.subscribe_kernel_events();
        // Whether a verification finished since the last look.
        let mut verified = move || {
            let mut seen = false;
            while let Ok(e) = events.try_recv() {
                seen |= matches!(e, KernelEvent::Resynced);
            }
            seen
        };

        // Five routes via a gateway on no link fail (ENETUNREACH): what
        // becomes of them is settled after the dump, so sync waits for it.
        let mut first = hosts_via(71, 0..10_000, "198.18.0.2");
        first.extend(hosts_via(71, 10_000..10_005, "198.18.7.7"));
        fib.set_many(first).await.unwrap();
        fib.sync().await.unwrap();
        assert!(verified(), "sync waited for the verifying dump");
        let s = fib.stats().await.unwrap();
        assert_eq!(s.bulk_runs, 1, "{s:?}");
        assert_eq!(s.resyncs, r0 + 1, "verified before sync resolved: {s:?}");
        assert_eq!((s.installed, s.parked), (10_000, 5), "{s:?}");

        // A clean run: sync resolves once everything is acknowledged; the
        // verification that follows finds the table as requested (the
        // kernel's spelling of each route differs only in the interface it
        // chose) and sends nothing.
        let second = hosts_via(71, 10_005..20_005, "198.18.0.2");
        fib.set_many(second).await.unwrap();
        fib.sync().await.unwrap();
        assert!(!verified(), "sync resolved before the verifying dump");
        let s = fib.stats().await.unwrap();
        assert_eq!((s.bulk_runs, s.installs), (2, 20_000), "{s:?}");
        let t0 = std::time::Instant::now();
        let s = loop {
            let s = fib.stats().await.unwrap();
            if s.resyncs >= r0 + 2 {
                break s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no verification: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        fib.sync().await.unwrap();
        let after = fib.stats().await.unwrap();
        assert_eq!(
            (
                after.installs,
                after.replaces,
                after.deletes,
                after.installed
            ),
            (20_000, 0, 0, 20_000),
            "the verification changed nothing: {s:?} then {after:?}"
        );
        assert_eq!(routes(&n, false, "84").len(), 20_000);
    });
}

#[test]
fn ipv4_route_via_ipv6_gateway_is_installed_once_and_recognised() {
    let cfg = FibConfig {
        verify_interval: Some(Duration::from_millis(200)),
        ..FibConfig::default()
    };
    with_converged_fib(&lab(), cfg, |n, fib| async move {
        // RFC 8950: an IPv4 prefix learned with an IPv6 next hop.
        set_and_sync(&fib, [via("100.64.50.0/24", "2001:db8::2")]).await;
        let line = ours(&n, "100.64.50.0/24").expect("v4 route via inet6 installed");
        assert!(line.contains("via inet6 2001:db8::2 dev t0"), "{line}");

        // Dumps and verifications must see it as ours and as wanted: nothing is
        // re-sent (a mismatch would replace it on every verification).
        let before = fib.stats().await.unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
        fib.sync().await.unwrap();
        let after = fib.stats().await.unwrap();
        assert!(after.resyncs >= before.resyncs + 3, "{after:?}");
        assert_eq!(
            (after.installs, after.replaces, after.restores),
            (1, 0, 0),
            "{after:?}"
        );
        assert_eq!(after.installed, 1, "{after:?}");

        // Moving to an IPv4 gateway and back replaces in place.
        set_and_sync(&fib, [via("100.64.50.0/24", "198.18.0.2")]).await;
        assert!(
            ours(&n, "100.64.50.0/24")
                .unwrap()
                .contains("via 198.18.0.2 dev t0")
        );
        set_and_sync(&fib, [via("100.64.50.0/24", "2001:db8::2")]).await;
        assert!(
            ours(&n, "100.64.50.0/24")
                .unwrap()
                .contains("via inet6 2001:db8::2")
        );
        assert_eq!(routes(&n, false, "84").len(), 1);
        assert_eq!(fib.stats().await.unwrap().replaces, 2);

        // Someone deletes it: restored with the IPv6 gateway.
        ip_words(&n, "route del 100.64.50.0/24 proto 84");
        wait_for_kernel(&n, "route restored", Duration::from_secs(10), |n| {
            ours(n, "100.64.50.0/24").is_some_and(|l| l.contains("via inet6 2001:db8::2"))
        })
        .await;

        // An IPv6 route via an IPv4 gateway does not exist in Linux: refused at set.
        assert!(
            fib.set(via("2001:db8:1000:50::/64", "198.18.0.2"))
                .await
                .is_err()
        );
        fib.remove(net("100.64.50.0/24")).await.unwrap();
        fib.sync().await.unwrap();
        assert!(routes(&n, false, "84").is_empty());
    });
}

#[test]
fn the_op_stream_applies_in_order_and_outlives_the_handle() {
    run_in(&lab(), |n| async move {
        let p = |i: u32| host(71, i);
        let (fib, task) = start(FibConfig::default()).await;
        // A synchronous producer, as the daemon core: no await between sends.
        let ops = fib.ops();
        let send = |op| ops.send(op).expect("fib-sync is running");
        send(FibOp::Converged);
        for i in 0..10 {
            send(FibOp::Set(FibRoute::via(p(i), ip("198.18.0.2"))));
        }
        send(FibOp::Remove(p(0)));
        send(FibOp::Set(FibRoute::via(p(1), ip("198.18.0.3"))));
        // Refused (no next hop): p(2) keeps the route it had.
        send(FibOp::Set(FibRoute {
            prefix: p(2),
            kind: RouteKind::Unicast(Vec::new()),
            pref_src: None,
            metric: None,
        }));
        // `sync` covers the ops queued before it.
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert_eq!((s.desired, s.installs, s.refused), (9, 9, 1), "{s:?}");
        assert!(ours(&n, "100.71.0.1").unwrap().contains("via 198.18.0.3"));
        assert!(ours(&n, "100.71.0.2").unwrap().contains("via 198.18.0.2"));
        assert!(ours(&n, "100.71.0.0").is_none(), "set then removed");

        // Without a handle the task keeps serving the op sender ...
        drop(fib);
        send(FibOp::Remove(p(3)));
        wait_for_kernel(&n, "100.71.0.3 removed", Duration::from_secs(5), |n| {
            ours(n, "100.71.0.3").is_none()
        })
        .await;
        // ... and stops when it goes too, leaving the routes.
        drop(ops);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task stops")
            .expect("without failing");
        assert_eq!(our_prefixes(&n).len(), 8);
    });
}

#[test]
fn a_route_at_its_own_metric_moves_and_survives_a_restart_untouched() {
    run_in(&lab(), |n| async move {
        let elevated = via("100.64.7.9/32", "198.18.0.2").at_metric(512);
        let normal = via("100.64.7.0/26", "198.18.0.2");
        let v6 = via("2001:db8:1000:7::9/128", "2001:db8::2").at_metric(2_147_483_547);
        {
            let (fib, task) = start(FibConfig::default()).await;
            fib.converged().await.unwrap();
            set_and_sync(&fib, [elevated.clone(), normal.clone(), v6.clone()]).await;
            let r = ours(&n, "100.64.7.9").expect("elevated route installed");
            assert!(r.contains("metric 512"), "{r}");
            let r = ours(&n, "100.64.7.0/26").expect("normal route installed");
            assert!(r.contains("metric 32"), "{r}");
            let r = ours(&n, "2001:db8:1000:7::9").expect("v6 route installed");
            assert!(r.contains("metric 2147483547"), "{r}");

            // The priority changes: one route at the new metric, none left at
            // the old one.
            set_and_sync(&fib, [elevated.clone().at_metric(256)]).await;
            let all = routes(&n, false, "84");
            let at: Vec<&String> = all
                .iter()
                .filter(|r| r.starts_with("100.64.7.9 "))
                .collect();
            assert_eq!(at.len(), 1, "{all:?}");
            assert!(at[0].contains("metric 256"), "{all:?}");
            // "kill -9".
            drop(fib);
            task.await.unwrap();
        }
        // Restarted and wanting the same: nothing deleted or replaced.
        let monitor = DelMonitor::start(PROTO);
        let (fib, _task) = start(FibConfig::default()).await;
        set_and_sync(&fib, [elevated.at_metric(256), normal, v6]).await;
        fib.converged().await.unwrap();
        fib.sync().await.unwrap();
        let s = fib.stats().await.unwrap();
        assert_eq!((s.installs, s.replaces, s.deletes), (0, 0, 0), "{s:?}");
        assert!(monitor.finish().is_empty(), "a valid route was deleted");
        assert!(ours(&n, "100.64.7.9").unwrap().contains("metric 256"));
    });
}
