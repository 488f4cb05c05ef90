//! Bench binary: CPU time (not wall time) per derivation of one node of the 5,000-node
//! cluster, read from /proc/thread-self/stat, so the figure holds on a loaded machine where
//! criterion's wall-clock numbers mostly measure the scheduler.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{NODES, cluster_yaml};
use tabby_topology::{Resources, derive};

/// utime + stime of this thread, in clock ticks (USER_HZ, 100 on Linux).
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us with no argument: keep
    // that quick.
    let iterations: u32 = if std::env::args().any(|a| a == "--bench") {
        200
    } else {
        2
    };
    let text = cluster_yaml(NODES);
    let res = Resources::from_yaml_str(&text, "bench").expect("bench cluster parses");
    // Warm up allocator and caches.
    for _ in 0..3 {
        black_box(derive(&res, "node-2500").expect("derives"));
    }
    let (Some(t0), w0) = (thread_cpu_ticks(), Instant::now()) else {
        println!("derive_cpu: /proc/thread-self/stat unavailable; nothing measured");
        return;
    };
    for _ in 0..iterations {
        black_box(derive(black_box(&res), black_box("node-2500")).expect("derives"));
    }
    let ticks = thread_cpu_ticks().unwrap_or(t0) - t0;
    let wall = w0.elapsed();
    let cpu_ms = ticks as f64 * 10.0 / f64::from(iterations);
    println!(
        "derive_cpu: {NODES}-node cluster, one node: {cpu_ms:.2} ms CPU per derivation \
         ({:.2} ms wall) over {iterations} iterations (±{:.2} ms tick resolution)",
        wall.as_secs_f64() * 1e3 / f64::from(iterations),
        10.0 / f64::from(iterations)
    );
}
