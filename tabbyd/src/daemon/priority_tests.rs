//! Calico 3.32 route priority: kernel metrics from LOCAL_PREF, our routes'
//! LOCAL_PREF, and the host route above the normal priority that leaves its
//! block's aggregation.

use super::*;
use tabby_rib::policy::priority_to_local_pref;

impl Harness {
    /// An iBGP announcement with this LOCAL_PREF (or none).
    fn announce_with_local_pref(&mut self, addr: &str, prefix: &str, lp: Option<u32>) {
        let id = self.id_of(addr);
        let u = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: AsPath::default(),
                next_hop: Some(addr.parse().unwrap()),
                local_pref: lp.map(tabby_bgp::attr::LocalPref::new),
                ..PathAttributes::default()
            },
            nlri: vec![Nlri::new(prefix.parse().unwrap())],
            ..Update::default()
        };
        self.daemon
            .session_event(id, PeerEvent::Update(Box::new(u)), Instant::now());
    }

    /// The metric of the last route fib-sync was asked for on `prefix`.
    fn last_metric(&mut self, prefix: &str) -> Option<Option<u32>> {
        let p: IpNet = prefix.parse().unwrap();
        self.fib_ops().into_iter().rev().find_map(|op| match op {
            FibOp::Set(r) if r.prefix == p => Some(r.metric),
            _ => None,
        })
    }
}

#[test]
fn a_learned_route_goes_to_the_kernel_at_2147483647_minus_its_local_pref() {
    let mut h = harness(0);
    h.load(CLUSTER);
    h.establish("198.18.0.12", 64512, Ipv4Addr::new(198, 18, 0, 12));
    // A node at the normal priority: the family's metric (None follows it).
    h.announce_with_local_pref("198.18.0.12", "100.64.0.64/26", Some(2_147_482_623));
    assert_eq!(h.last_metric("100.64.0.64/26"), Some(None));
    // A live-migrated workload's address at priority 512.
    h.announce_with_local_pref("198.18.0.12", "100.64.0.9/32", Some(2_147_483_135));
    assert_eq!(h.last_metric("100.64.0.9/32"), Some(Some(512)));
    // An older node's LOCAL_PREF 100, as Calico 3.32 programs it.
    h.announce_with_local_pref("198.18.0.12", "100.64.0.128/26", Some(100));
    assert_eq!(h.last_metric("100.64.0.128/26"), Some(Some(2_147_483_547)));
    // No LOCAL_PREF at all: the normal priority.
    h.announce_with_local_pref("198.18.0.12", "100.64.0.192/26", None);
    assert_eq!(h.last_metric("100.64.0.192/26"), Some(None));

    // ipv4NormalRoutePriority 1024 → 512: the route at 1024 keeps its own
    // metric (it still says 1024), the one at 512 now is the normal one.
    h.load(&CLUSTER.replace(
        "spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}",
        "spec: {asNumber: 64512, nodeToNodeMeshEnabled: true, ipv4NormalRoutePriority: 512}",
    ));
    let ops = h.fib_ops();
    assert!(
        ops.iter()
            .any(|op| matches!(op, FibOp::Priority { v4: 512, .. })),
        "{ops:?}"
    );
    let metric_of = |p: &str| {
        let p: IpNet = p.parse().unwrap();
        ops.iter().rev().find_map(|op| match op {
            FibOp::Set(r) if r.prefix == p => Some(r.metric),
            _ => None,
        })
    };
    assert_eq!(metric_of("100.64.0.64/26"), Some(Some(1024)));
    assert_eq!(metric_of("100.64.0.9/32"), Some(None));
}

#[test]
fn a_host_route_above_the_normal_priority_leaves_the_blocks_aggregation() {
    let mut h = harness(0);
    h.load(CLUSTER);
    h.establish("198.18.0.1", 65000, Ipv4Addr::new(198, 18, 0, 1));
    h.commands("198.18.0.1");
    let owner = am::Owner::new("calico-ipam").unwrap();
    let host = |p: &str, priority| am::LocalRoute {
        prefix: p.parse().unwrap(),
        kind: am::RouteKind::Host,
        communities: vec![],
        large_communities: vec![],
        next_hop: None,
        local_pref: None,
        med: None,
        priority,
    };
    // Inside our block 100.64.0.0/26: only the block goes to the ToR...
    h.daemon
        .announce(&owner, vec![host("100.64.0.7/32", None)], Instant::now())
        .unwrap();
    let tor: IpAddr = "198.18.0.1".parse().unwrap();
    let advertised = |h: &Harness| {
        h.daemon
            .get_peer(tor, Instant::now())
            .unwrap()
            .counters
            .prefixes_advertised
    };
    assert_eq!(advertised(&h), 1, "the /32 is aggregated into the block");
    // ...until the workload's priority is raised (512 < 1024).
    h.daemon
        .announce(
            &owner,
            vec![host("100.64.0.7/32", Some(512))],
            Instant::now(),
        )
        .unwrap();
    assert_eq!(advertised(&h), 2, "the elevated /32 is exported");
    let e = h.daemon.explain("100.64.0.7/32".parse().unwrap());
    let best = e.unwrap().candidates.into_iter().next().unwrap();
    assert_eq!(best.path.local_pref, priority_to_local_pref(512).get());
    // A priority below normal is not enough: 2000 > 1024 stays inside.
    h.daemon
        .announce(
            &owner,
            vec![host("100.64.0.7/32", Some(2000))],
            Instant::now(),
        )
        .unwrap();
    assert_eq!(advertised(&h), 1);
}
