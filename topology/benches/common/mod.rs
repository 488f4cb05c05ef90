//! The synthetic cluster both benches derive from.

use std::fmt::Write;
use std::net::Ipv4Addr;

pub const NODES: u32 = 5_000;

pub fn cluster_yaml(nodes: u32) -> String {
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
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: node-{i}-uplink}}\nspec: {{node: node-{i}, peerIP: 198.18.254.{}, asNumber: 65001}}\n",
            i % 250 + 1
        );
    }
    y
}
