//! The churn scenario's measurements work: a 6-node cluster with two route
//! reflectors, Tabby and then the BIRD 2 baseline, one low rate for a few
//! seconds, then one reflector killed and restarted under churn. Every change
//! is seen in every other node's kernel and timed, nothing is lost, every
//! kernel ends equal to the desired state, and the report has its rows.

use std::time::{Duration, Instant};

use interop_tests::bench::churn::{self, ChurnOpts, cluster::Flavour, fault::Fault};
use interop_tests::{Need, preflight, tabbyd_bin};

#[test]
fn churn_on_a_small_cluster_tabby_and_bird() {
    preflight(&[Need::Root, Need::Bird2]).unwrap_or_else(|e| panic!("{e}"));
    let tabbyd = tabbyd_bin().unwrap_or_else(|e| panic!("lab test cannot run: {e:#}"));
    let t0 = Instant::now();
    let opts = ChurnOpts {
        nodes: 6,
        rates: vec![20.0],
        window: Duration::from_secs(3),
        settle: Duration::from_secs(10),
        seed: 17,
        setup_limit: Duration::from_secs(60),
        fault_rate: Some(20.0),
        faults: vec![Fault::Reflector],
        fault_window: Duration::from_secs(8),
    };
    let mut runs = vec![];
    for flavour in [Flavour::Tabby, Flavour::Bird] {
        let r = churn::run(flavour, Some(&tabbyd), &opts);
        assert_eq!(r.error, None, "{}", flavour.name());
        assert!(r.setup.is_some(), "{}", flavour.name());
        assert_eq!(r.rates.len(), 1, "{}", flavour.name());
        let w = &r.rates[0];
        assert_eq!(w.window.stopped_at, None, "{}: fell behind", flavour.name());
        assert_eq!(w.issued, 60, "{}: 20/s for 3 s", flavour.name());
        assert_eq!((w.lost, w.failed), (0, 0), "{}", flavour.name());
        assert_eq!(
            w.latency.len(),
            w.issued,
            "{}: every change timed",
            flavour.name()
        );
        assert_eq!(w.lag.len(), w.issued, "{}", flavour.name());
        assert!(
            w.kernel.clean() && w.kernel.routes >= 6 * 6,
            "{}: {:?}",
            flavour.name(),
            w.kernel
        );
        assert!(w.node_cpu > 0.0, "{}", flavour.name());
        runs.push(r);
    }
    // The reflector fault ran on Tabby only: the other reflector carried
    // every route, nothing was deleted that should stay.
    assert!(runs[1].faults.is_empty());
    let f = match runs[0].faults.as_slice() {
        [Ok(f)] => f,
        other => panic!("one reflector fault expected: {other:?}"),
    };
    assert_eq!(f.fault, Fault::Reflector);
    assert!(f.run.issued > 100, "{}", f.run.issued);
    assert_eq!((f.run.lost, f.run.failed), (0, 0));
    assert_eq!(f.run.latency.len(), f.run.issued);
    assert!(f.run.kernel.clean(), "{:?}", f.run.kernel);
    assert_eq!(f.deletions_others, 0);

    let md = churn::report::tables(&opts, &runs);
    assert_eq!(
        md.matches("| Tabby (tabbyd, ReplaceRoutes) | 20 | 60 |")
            .count(),
        1,
        "{md}"
    );
    assert_eq!(
        md.matches("| BIRD 2 (config rewrite + birdc configure) | 20 | 60 |")
            .count(),
        1,
        "{md}"
    );
    assert!(
        md.contains("| one of two reflectors killed (-9) and restarted | 20 |"),
        "{md}"
    );
    eprintln!("churn smoke test: {:?}", t0.elapsed());
    assert!(
        t0.elapsed() < Duration::from_secs(90),
        "took {:?}",
        t0.elapsed()
    );
}
