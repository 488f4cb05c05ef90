//! The benchmark's generator is correct: against BIRD 2 as the reflector,
//! with 20 clients, every observer ends up holding every other client's
//! four blocks, well within the time limits.

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
