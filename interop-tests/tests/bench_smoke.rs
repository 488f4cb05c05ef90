//! The benchmark's generator is correct: against BIRD 2 as the reflector,
//! with 20 clients, every observer ends up holding every other client's
//! four blocks, well within the time limits; and the full-table scenario
//! (e) runs end to end, announcement and withdrawal, against BIRD 2 and
//! tabbyd.

use std::time::{Duration, Instant};

use interop_tests::bench::{Dut, Phase, RunOpts, Shape, run_once};
use interop_tests::{Need, preflight};

#[test]
fn generator_fanout_against_bird2() {
    preflight(&[Need::Root, Need::Bird2]).unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let opts = RunOpts {
        establish_timeout: Duration::from_secs(10),
        converge_timeout: Duration::from_secs(10),
        gen_threads: 1,
        connect_burst: 32,
        tabbyd: None,
    };
    let shape = Shape::Fanout {
        clients: 20,
        observers: 4,
    };
    let r = run_once(Dut::Bird2, shape, &opts).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(matches!(r.establish, Phase::Done(_)), "{:?}", r.establish);
    assert!(
        matches!(r.converge, Some(Phase::Done(_))),
        "{:?}",
        r.converge
    );
    assert_eq!(r.observers.len(), 4);
    for (held, expected) in &r.observers {
        assert_eq!(
            *expected,
            4 * 19,
            "an observer expects every other client's blocks"
        );
        assert_eq!(held, expected, "an observer is missing blocks");
    }
    assert!(r.daemon_rss_mib > 0.0);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
}

/// (e) at a small size: 2,000 prefixes under 50 attribute sets from one
/// client to 12 others, then withdrawn.
#[test]
fn full_table_is_reflected_and_withdrawn() {
    preflight(&[Need::Root, Need::Bird2]).unwrap_or_else(|e| panic!("{e}"));
    let tabbyd = interop_tests::daemon::tabbyd_bin().unwrap_or_else(|e| panic!("{e:#}"));
    let opts = RunOpts {
        establish_timeout: Duration::from_secs(15),
        converge_timeout: Duration::from_secs(15),
        gen_threads: 1,
        connect_burst: 32,
        tabbyd: Some(tabbyd),
    };
    let shape = Shape::FullTable {
        clients: 12,
        prefixes: 2000,
        attr_sets: 50,
        observers: 3,
    };
    for dut in [Dut::Tabby, Dut::Bird2] {
        let r = run_once(dut, shape, &opts).unwrap_or_else(|e| panic!("{}: {e:#}", dut.key()));
        assert!(
            matches!(r.converge, Some(Phase::Done(_))),
            "{}: {:?}",
            dut.key(),
            r.converge
        );
        assert!(
            matches!(r.withdraw, Some(Phase::Done(_))),
            "{}: {:?}",
            dut.key(),
            r.withdraw
        );
        assert_eq!(r.observers.len(), 3);
        // After the withdrawal every observer holds nothing of its 2,000.
        for (held, expected) in &r.observers {
            assert_eq!((*held, *expected), (0, 2000), "{}", dut.key());
        }
        assert!(r.converge_cpu.is_some() && r.withdraw_cpu.is_some());
    }
}

#[test]
fn tabby_without_a_binary_is_reported_not_run() {
    preflight(&[Need::Root]).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOpts {
        establish_timeout: Duration::from_secs(5),
        converge_timeout: Duration::from_secs(5),
        gen_threads: 1,
        connect_burst: 32,
        tabbyd: None,
    };
    let shape = Shape::Fanout {
        clients: 2,
        observers: 1,
    };
    let e = run_once(Dut::Tabby, shape, &opts).expect_err("no tabbyd binary was given");
    assert!(
        e.downcast_ref::<interop_tests::bench::Unavailable>()
            .is_some(),
        "{e:#}"
    );
}
