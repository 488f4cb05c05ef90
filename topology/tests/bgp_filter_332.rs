//! Calico 3.32's `BGPFilter` additions: the match fields `peerType`, `communities`,
//! `asPathPrefix`, `priority` and the `operations` `addCommunity`, `prependASPath`,
//! `setPriority`. Read in the CRD's shapes (`projectcalico.org_bgpfilters.yaml`),
//! refused where the CRD refuses, and derived per peer as confd renders them
//! (`if (is_same_as) then { ... }` around a typed rule; operations before `accept;`).

use std::net::IpAddr;

use tabby_topology::*;

fn filter(spec: &str) -> BgpFilter {
    let text = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: f\nspec:\n{spec}\n"
    );
    let r = Resources::from_yaml_str(&text, "t.yaml").unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    (*r.bgp_filters["f"]).clone()
}

/// The one problem of a filter that must be refused, which must name `parts`.
fn refused(rule: &str, parts: &[&str]) {
    let text = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: bad\nspec:\n  importV4:\n{rule}\n---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: good\nspec:\n  importV4:\n    - action: Reject\n"
    );
    let r = Resources::from_yaml_str(&text, "t.yaml").unwrap();
    assert_eq!(r.problems.len(), 1, "{rule}: {:?}", r.problems);
    // The bad filter is skipped, the other one still read.
    assert!(!r.bgp_filters.contains_key("bad"));
    assert!(r.bgp_filters.contains_key("good"));
    for p in parts {
        assert!(r.problems[0].contains(p), "{:?} lacks {p:?}", r.problems[0]);
    }
}

#[test]
fn every_new_field_in_the_crd_shape() {
    let f = filter(
        "  importV4:
    - cidr: 100.64.0.0/16
      matchOperator: In
      prefixLength: {min: 24, max: 28}
      peerType: iBGP
      communities:
        values: [\"65000:100\"]
      asPathPrefix: [65000]
      priority: 512
      action: Accept
      operations:
        - setPriority:
            value: 256
        - addCommunity:
            value: \"65000:200\"
        - prependASPath:
            prefix: [65001, 65002]
    - peerType: eBGP
      communities:
        values: [\"65000:100:999\"]
      asPathPrefix: [\"65000\", \"1.10\"]
      priority: 2147483646
      action: Accept
      operations:
        - addCommunity: {value: \"4200000000:1:2\"}
    - action: Reject",
    );
    let r = &f.import_v4;
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].peer_type, Some(PeerType::Ibgp));
    assert_eq!(r[0].community, Some(Community::Standard(65000, 100)));
    assert_eq!(r[0].as_path_prefix, vec![65000]);
    assert_eq!(r[0].priority, Some(512));
    assert_eq!(
        r[0].operations,
        vec![
            FilterOperation::SetPriority(256),
            FilterOperation::AddCommunity(Community::Standard(65000, 200)),
            FilterOperation::PrependAsPath(vec![65001, 65002]),
        ]
    );
    assert_eq!(r[0].prefix_length, Some((24, 28)));
    assert_eq!(r[1].peer_type, Some(PeerType::Ebgp));
    assert_eq!(r[1].community, Some(Community::Large(65000, 100, 999)));
    // numorstring.ASNumber: a decimal string, or asdot (1.10 = 65546).
    assert_eq!(r[1].as_path_prefix, vec![65000, 65546]);
    assert_eq!(r[1].priority, Some(2_147_483_646));
    assert_eq!(
        r[1].operations,
        vec![FilterOperation::AddCommunity(Community::Large(
            4_200_000_000,
            1,
            2
        ))]
    );
    // A rule without the new fields reads as before.
    assert_eq!(r[2].peer_type, None);
    assert_eq!(r[2].community, None);
    assert!(r[2].as_path_prefix.is_empty());
    assert_eq!(r[2].priority, None);
    assert!(r[2].operations.is_empty());
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    refused(
        "    - {action: Accept, peerType: ebgp}",
        &["BGPFilter 'bad'", "spec.importV4[0].peerType", "ebgp"],
    );
    refused(
        "    - {action: Accept, communities: {values: [\"65536:1\"]}}",
        &["spec.importV4[0].communities.values[0]", "65536:1"],
    );
    refused(
        "    - {action: Accept, communities: {values: [\"no-export\"]}}",
        &["communities.values[0]", "no-export"],
    );
    refused(
        "    - {action: Accept, communities: {values: [\"065000:1\"]}}",
        &["communities.values[0]"],
    );
    refused(
        "    - {action: Accept, communities: {values: [\"65000:1\", \"65000:2\"]}}",
        &["communities.values", "exactly one"],
    );
    refused(
        "    - {action: Accept, communities: {values: []}}",
        &["communities.values", "exactly one"],
    );
    refused(
        "    - {action: Accept, priority: -5}",
        &["spec.importV4[0].priority", "1 to 2147483646", "-5"],
    );
    refused(
        "    - {action: Accept, priority: 0}",
        &["spec.importV4[0].priority"],
    );
    refused(
        "    - {action: Accept, priority: 2147483647}",
        &["spec.importV4[0].priority"],
    );
    refused(
        "    - {action: Accept, priority: \"512\"}",
        &["spec.importV4[0].priority", "a string"],
    );
    refused(
        "    - {action: Accept, asPathPrefix: [65000, x]}",
        &["spec.importV4[0].asPathPrefix[1]", "AS number"],
    );
    refused(
        "    - {action: Accept, asPathPrefix: [0]}",
        &["spec.importV4[0].asPathPrefix[0]", "AS 0"],
    );
    refused(
        "    - {action: Reject, operations: [{setPriority: {value: 10}}]}",
        &[
            "spec.importV4[0].operations",
            "only be used with action Accept",
        ],
    );
    refused(
        "    - {action: Accept, operations: [{setPriority: {value: 0}}]}",
        &["spec.importV4[0].operations[0].setPriority.value"],
    );
    refused(
        "    - {action: Accept, operations: [{setPriority: {}}]}",
        &["operations[0].setPriority.value", "required"],
    );
    refused(
        "    - {action: Accept, operations: [{addCommunity: {value: \"1:2:3:4\"}}]}",
        &["operations[0].addCommunity.value", "1:2:3:4"],
    );
    refused(
        "    - {action: Accept, operations: [{prependASPath: {prefix: []}}]}",
        &["operations[0].prependASPath.prefix", "required"],
    );
    refused(
        "    - {action: Accept, operations: [{prependASPath: {prefix: [1,2,3,4,5,6,7,8,9,10,11]}}]}",
        &["operations[0].prependASPath.prefix", "at most 10"],
    );
    refused(
        "    - {action: Accept, operations: [{setPriority: {value: 5}, addCommunity: {value: \"1:1\"}}]}",
        &["operations[0]", "exactly one operation"],
    );
    refused(
        "    - {action: Accept, operations: [{}]}",
        &["operations[0]", "sets no operation"],
    );
    let eleven = ["{setPriority: {value: 5}}"; 11].join(", ");
    refused(
        &format!("    - {{action: Accept, operations: [{eleven}]}}"),
        &["spec.importV4[0].operations", "at most 10"],
    );
}

fn rule(yaml: &str) -> FilterRule {
    filter(&format!("  exportV4:\n    - {yaml}")).export_v4[0].clone()
}

#[test]
fn peer_type_selects_the_peers_a_rule_applies_to() {
    let ibgp = rule("{action: Reject, peerType: iBGP}");
    let ebgp = rule("{action: Reject, peerType: eBGP}");
    let any = rule("{action: Reject}");
    // Calico: `if (is_same_as) then { <rule> }` / `if (!is_same_as) then { <rule> }`.
    assert!(filter_rule(&ibgp, true, 1024).is_some());
    assert!(filter_rule(&ibgp, false, 1024).is_none());
    assert!(filter_rule(&ebgp, false, 1024).is_some());
    assert!(filter_rule(&ebgp, true, 1024).is_none());
    assert!(filter_rule(&any, true, 1024).is_some());
    assert!(filter_rule(&any, false, 1024).is_some());
}

#[test]
fn matches_and_operations_become_policy_in_order() {
    let r = rule(
        "{cidr: 198.51.100.0/24, matchOperator: In, communities: {values: [\"64512:7\"]},
         asPathPrefix: [64600, 64601], priority: 512, action: Accept,
         operations: [{setPriority: {value: 256}}, {addCommunity: {value: \"64512:8:9\"}},
                      {prependASPath: {prefix: [64513, 64514]}}]}",
    );
    let p = filter_rule(&r, false, 1000).unwrap();
    assert_eq!(
        p.matches,
        vec![
            Match::Prefix(PrefixMatch::within("198.51.100.0/24".parse().unwrap())),
            Match::Community(Community::Standard(64512, 7)),
            Match::AsPathPrefix(vec![64600, 64601]),
            // Own routes carry the normal route priority passed in.
            Match::Priority {
                value: 512,
                local: 1000
            },
        ]
    );
    assert_eq!(
        p.actions,
        vec![
            PolicyAction::SetPriority(256),
            PolicyAction::AddCommunity(Community::Large(64512, 8, 9)),
            PolicyAction::PrependAsPath(vec![64513, 64514]),
            PolicyAction::Accept,
        ]
    );
}

fn facts<'a>(
    communities: &'a [Community],
    as_path: &'a [u32],
    priority: Option<u32>,
) -> RouteFacts<'a> {
    RouteFacts {
        prefix: "198.51.100.0/24".parse().unwrap(),
        from_bgp: true,
        interface: None,
        communities,
        as_path,
        priority,
    }
}

#[test]
fn reference_evaluator_runs_matches_and_operations() {
    let f = filter(
        "  importV4:
    - communities: {values: [\"64512:1\"]}
      action: Accept
      operations:
        - addCommunity: {value: \"64512:2\"}
        - prependASPath: {prefix: [64513, 64514]}
        - setPriority: {value: 300}
    - asPathPrefix: [64600]
      action: Reject
    - priority: 700
      action: Reject",
    );
    let rules: Vec<PolicyRule> = f
        .import_v4
        .iter()
        .filter_map(|r| filter_rule(r, false, 1024))
        .collect();
    let p = Policy {
        rules,
        default: Verdict::Accept,
    };
    let std1 = [Community::Standard(64512, 1)];
    let e = p.evaluate(&facts(&std1, &[64600], None));
    assert_eq!(e.verdict, Verdict::Accept);
    assert_eq!(e.communities, vec![Community::Standard(64512, 2)]);
    assert_eq!(e.prepended, vec![64513, 64514]);
    assert_eq!(e.priority, Some(300));
    // Without the community, the AS path rule decides.
    let e = p.evaluate(&facts(&[], &[64600, 64700], None));
    assert_eq!(e.verdict, Verdict::Reject);
    assert!(e.prepended.is_empty());
    // Neither: the priority rule; a route of this node's counts as 1024, not 700.
    assert_eq!(
        p.evaluate(&facts(&[], &[64700], Some(700))).verdict,
        Verdict::Reject
    );
    assert_eq!(
        p.evaluate(&facts(&[], &[64700], None)).verdict,
        Verdict::Accept
    );
}

const CLUSTER: &str = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false, ipv4NormalRoutePriority: 900}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: same-as}
spec: {peerIP: 198.18.0.1, asNumber: 64512, filters: [typed]}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: other-as}
spec: {peerIP: 198.18.0.2, asNumber: 64513, filters: [typed]}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: typed}
spec:
  exportV4:
    - {peerType: iBGP, priority: 900, action: Accept}
    - {peerType: eBGP, cidr: 203.0.113.0/24, matchOperator: Equal, action: Accept,
       operations: [{prependASPath: {prefix: [64512, 64512]}}]}
    - {action: Reject}
";

#[test]
fn derived_peers_get_the_rules_of_their_type() {
    let res = Resources::from_yaml_str(CLUSTER, "c.yaml").unwrap();
    assert!(res.problems.is_empty(), "{:?}", res.problems);
    let s = derive(&res, "node-a").unwrap();
    let peer = |ip: &str| {
        s.peers
            .values()
            .find(|p| p.key.address == ip.parse::<IpAddr>().unwrap())
            .unwrap()
    };
    let ibgp = peer("198.18.0.1");
    assert!(ibgp.internal);
    assert_eq!(
        ibgp.export_rules,
        vec![
            PolicyRule {
                matches: vec![Match::Priority {
                    value: 900,
                    local: 900
                }],
                actions: vec![PolicyAction::Accept],
            },
            PolicyRule {
                matches: vec![],
                actions: vec![PolicyAction::Reject],
            },
        ]
    );
    let ebgp = peer("198.18.0.2");
    assert!(!ebgp.internal);
    assert_eq!(ebgp.export_rules.len(), 2);
    assert_eq!(
        ebgp.export_rules[0].actions,
        vec![
            PolicyAction::PrependAsPath(vec![64512, 64512]),
            PolicyAction::Accept
        ]
    );
}
