//! Deriving one node's state in a 5,000-node cluster: full mesh (4,999 sessions), a
//! rack-selected BGPPeer to two ToRs, one block per node, three pools, a BGPFilter.
//! Target: well under 100 ms per derivation.

use std::fmt::Write;
use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, criterion_group, criterion_main};
use tabby_topology::{Resources, derive, diff};

const NODES: u32 = 5_000;

fn cluster_yaml(nodes: u32) -> String {
    let mut y = String::new();
    y.push_str("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  asNumber: 64512\n  nodeToNodeMeshEnabled: true\n  serviceClusterIPs: [{cidr: 198.19.0.0/16}]\n  prefixAdvertisements: [{cidr: 100.64.0.0/10, communities: ['64512:100']}]\n");
    for (name, cidr, enc) in [
        ("pods", "100.64.0.0/12", "ipipMode: Always"),
        ("pods-vx", "100.80.0.0/12", "vxlanMode: Always"),
        ("private", "100.96.0.0/12", "disableBGPExport: true"),
    ] {
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: {name}}}\nspec: {{cidr: {cidr}, {enc}}}\n"
        );
    }
    y.push_str("---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: edge}\nspec:\n  exportV4: [{action: Reject, matchOperator: NotIn, cidr: 100.64.0.0/10}]\n  importV4: [{action: Accept, matchOperator: In, cidr: 0.0.0.0/0, prefixLength: {max: 24}}]\n");
    for rack in 0..20 {
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: tor-{rack}}}\nspec: {{nodeSelector: \"rack == 'r{rack}'\", peerIP: 198.18.255.{}, asNumber: 65000, filters: [edge]}}\n",
            rack + 1
        );
    }
    for i in 0..nodes {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 10)) + i);
        let block = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i * 64);
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: node-{i}, labels: {{rack: r{}}}}}\nspec: {{bgp: {{ipv4Address: {ip}/16}}}}\n---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {{name: b-{i}}}\nspec: {{node: node-{i}, cidr: {block}/26, state: confirmed}}\n",
            i % 20
        );
    }
    y
}

fn bench(c: &mut Criterion) {
    let text = cluster_yaml(NODES);
    let res = Resources::from_yaml_str(&text, "bench").expect("bench cluster parses");
    let state = derive(&res, "node-2500").expect("derives");
    assert_eq!(state.peers.len(), NODES as usize - 1 + 1, "mesh + one ToR");

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
