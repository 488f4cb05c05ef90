//! The BFD benchmark works end to end at a small size: 50 single-hop
//! sessions at 300 ms × 3 from the generator process (`bench bfd-gen`),
//! against tabbyd (one BGPPeer per generator address with the
//! `tabby-routing.io/bfd` annotation, its BGP sessions held Established by
//! the generator) and against FRR's bfdd, a 5 s window with the other core
//! loaded: every session comes Up on both sides, none goes down, both
//! daemons' counters move, and the table prints.
//!
//! Needs root, FRR (bfdd, vtysh), curl and a tabbyd build.

use std::time::{Duration, Instant};

use interop_tests::bench::Dut;
use interop_tests::bench::bfd::{self, BfdLoad, BfdOpts};
use interop_tests::{Need, preflight, tabbyd_bin};

#[test]
fn bfd_bench_at_50_sessions() {
    preflight(&[Need::Root, Need::Frr]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        std::path::Path::new(bfd::BFDD).is_file(),
        "the BFD benchmark needs FRR's bfdd at {} (apt-get install frr)",
        bfd::BFDD
    );
    let tabbyd = tabbyd_bin().unwrap_or_else(|e| panic!("lab test cannot run: {e:#}"));
    let t0 = Instant::now();
    let mut load = BfdLoad::new(50, Duration::from_secs(5));
    load.start_timeout = Duration::from_secs(60);
    load.up_timeout = Duration::from_secs(60);
    let opts = BfdOpts {
        bench_bin: env!("CARGO_BIN_EXE_bench").into(),
        tabbyd: Some(tabbyd),
    };
    let rows = bfd::measure(&[Dut::Tabby, Dut::Frr], &load, &opts, 1);
    let table = bfd::table(&load, &rows);
    println!("{table}");
    bfd::clean(&rows).unwrap_or_else(|e| panic!("{e:#}\n{table}"));
    for r in &rows {
        let run = &r.runs[0];
        // 50 sessions at 300 ms with jitter: about 190 packets a second
        // each way; a loaded CI box may lag, never by half.
        assert!(
            run.pps_to_daemon > 100.0 && run.pps_from_daemon > 100.0,
            "{}: {run:?}",
            bfd::name(r.dut)
        );
        assert!(
            run.daemon_downs.is_some(),
            "{} does not count its Downs",
            bfd::name(r.dut)
        );
        assert!(run.daemon_cpu > 0.0 && run.daemon_rss_mib > 1.0, "{run:?}");
        assert!(run.window_secs >= 4.9, "{run:?}");
    }
    for name in ["| Tabby (tabbyd) | 1/1 |", "| FRR bfdd | 1/1 |"] {
        assert!(table.contains(name), "no row {name:?} in\n{table}");
    }
    assert!(
        t0.elapsed() < Duration::from_secs(90),
        "took {:?}",
        t0.elapsed()
    );
}
