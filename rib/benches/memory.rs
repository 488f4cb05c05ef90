//! Bytes per path of a full table (10 peers x 100k IPv4 prefixes), counted
//! by a global allocator that tallies live bytes. Separate from the timing
//! benches so the counting does not slow them.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

mod common;
use common::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    let updates = ingest_updates();
    let rib0 = ingest_rib();
    let region = Region::new(GLOBAL);
    let mut rib = rib0;
    ingest(&mut rib, &updates);
    rib.drain_best_changes();
    let s = region.change();
    let live = s.bytes_allocated as i64 - s.bytes_deallocated as i64;
    let st = rib.stats();
    println!(
        "ingest memory: {} paths, {} prefixes, {} attribute sets, {:.1} MB live, {:.1} bytes/path",
        st.paths,
        st.prefixes,
        st.attribute_sets,
        live as f64 / 1e6,
        live as f64 / st.paths as f64
    );
}
