//! Deriving one node's state in a 5,000-node cluster: full mesh (4,999 sessions), 20
//! rack-selected BGPPeers, 5,000 node-specific BGPPeers (one per node), one block per node,
//! three pools, a BGPFilter.
//! Target: well under 100 ms per derivation.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tabby_topology::{Resources, derive, diff};

mod common;
use common::{NODES, cluster_yaml};

fn bench(c: &mut Criterion) {
    let text = cluster_yaml(NODES);
    let res = Resources::from_yaml_str(&text, "bench").expect("bench cluster parses");
    let state = derive(&res, "node-2500").expect("derives");
    assert_eq!(
        state.peers.len(),
        NODES as usize - 1 + 2,
        "mesh + rack ToR + uplink"
    );

    c.bench_function("derive/5000-node mesh, one node", |b| {
        b.iter(|| derive(black_box(&res), black_box("node-2500")).expect("derives"))
    });

    let mut res2 = res.clone();
    res2.delete(tabby_topology::Kind::Node, None, "node-17");
    let state2 = derive(&res2, "node-2500").expect("derives");
    c.bench_function("diff/5000-node states, one peer removed", |b| {
        b.iter(|| diff(black_box(&state), black_box(&state2)))
    });

    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    g.bench_function("5000-node cluster YAML", |b| {
        b.iter(|| Resources::from_yaml_str(black_box(&text), "bench").expect("parses"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
