//! Several speakers wired in memory, UPDATEs through the real codec, golden
//! outputs in tests/golden/ (regenerate with TABBY_UPDATE_GOLDEN=1 and review
//! the diff).

mod common;

use common::*;
use std::time::Duration;
use tabby_bgp::capability::{GrFamily, GracefulRestart};
use tabby_bgp::{Family, PathAttributes};
use tabby_rib::*;

const AS: u32 = 64512;

fn originate(net: &mut Net, i: usize, prefix: &str) {
    net.sp[i]
        .rib
        .originate(common::net(prefix), "ipam", LocalRoute::default());
}

/// RR with two clients and two non-clients (RFC 4456 §6): client routes go
/// to everyone, non-client routes only to clients; reflected routes carry
/// ORIGINATOR_ID and CLUSTER_LIST, next hop unchanged.
#[test]
fn rr_with_clients_and_non_clients() {
    let mut n = Net::default();
    let rr = n.speaker("rr", AS, Some("198.18.0.100"));
    let c1 = n.speaker("c1", AS, None);
    let c2 = n.speaker("c2", AS, None);
    let n1 = n.speaker("n1", AS, None);
    let n2 = n.speaker("n2", AS, None);
    for c in [c1, c2] {
        n.link(rr, c, tweak_client, tweak_none);
    }
    for x in [n1, n2] {
        n.link(rr, x, tweak_none, tweak_none);
    }
    n.pump();
    n.clear_log();
    originate(&mut n, c1, "100.64.1.0/26");
    originate(&mut n, c2, "100.64.2.0/26");
    originate(&mut n, n1, "100.64.3.0/26");
    n.pump();
    let mut out = n.tables();
    out.push(String::from("--- updates"));
    out.extend(n.log.iter().cloned());
    golden("rr_clients_non_clients", &out);
    // The rules, independent of the golden text:
    assert!(
        n.best(n2, "100.64.3.0/26").is_none(),
        "non-client to non-client must not reflect"
    );
    let b = n.best(c1, "100.64.3.0/26").unwrap();
    assert_eq!(
        b.next_hops[0].addr,
        ip("198.18.0.4"),
        "next hop unchanged on reflection"
    );
    assert_eq!(b.attributes.attrs.originator_id, Some(v4("198.18.0.4")));
    assert_eq!(b.attributes.attrs.cluster_list, vec![v4("198.18.0.100")]);
}

/// Two reflectors serving the same clients. Same cluster id: each drops the
/// other's reflection as a cluster loop (RFC 4456 §8). Different ids: the
/// reflection is kept as a backup path and loses on CLUSTER_LIST length.
#[test]
fn two_reflectors_same_and_different_cluster_id() {
    for (name, id1, id2) in [
        ("two_rr_same_cluster", "198.18.0.100", "198.18.0.100"),
        ("two_rr_different_cluster", "198.18.0.100", "198.18.0.101"),
    ] {
        let mut n = Net::default();
        let rr1 = n.speaker("rr1", AS, Some(id1));
        let rr2 = n.speaker("rr2", AS, Some(id2));
        let c1 = n.speaker("c1", AS, None);
        let c2 = n.speaker("c2", AS, None);
        n.link(rr1, rr2, tweak_none, tweak_none);
        for c in [c1, c2] {
            n.link(rr1, c, tweak_client, tweak_none);
            n.link(rr2, c, tweak_client, tweak_none);
        }
        n.pump();
        n.clear_log();
        originate(&mut n, c1, "100.64.1.0/26");
        n.pump();
        let mut out = n.tables();
        for (i, s) in n.sp.iter().enumerate().take(2) {
            let e = s.rib.explain(&common::net("100.64.1.0/26"));
            for c in &e.candidates {
                out.push(format!(
                    "explain {i} {}: best={} lost_at={:?} cl={:?}",
                    s.name,
                    c.best,
                    c.lost_at.map(|s| s.as_str()),
                    c.attributes
                        .attrs
                        .cluster_list
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                ));
            }
        }
        golden(name, &out);
        let paths_rr2 = n.sp[rr2]
            .rib
            .explain(&common::net("100.64.1.0/26"))
            .candidates
            .len();
        if id1 == id2 {
            assert_eq!(paths_rr2, 1, "same cluster: reflection from rr1 is a loop");
        } else {
            assert_eq!(paths_rr2, 2, "different cluster: reflection kept as backup");
        }
        // c2 learns the route either way, next hop c1.
        assert_eq!(
            n.best(c2, "100.64.1.0/26").unwrap().next_hops[0].addr,
            ip("198.18.0.3")
        );
    }
}

/// Calico ToR design: each node its own AS under an eBGP top-of-rack.
/// eBGP prepends, strips LOCAL_PREF, sets next hop self; AS-loop rejection
/// stops the node's own route coming back.
#[test]
fn ebgp_top_of_rack() {
    let mut n = Net::default();
    let tor = n.speaker("tor", 65000, None);
    let a = n.speaker("node-a", 64512, None);
    let b = n.speaker("node-b", 64513, None);
    n.link(tor, a, tweak_none, tweak_none);
    n.link(tor, b, tweak_none, tweak_none);
    n.pump();
    n.clear_log();
    originate(&mut n, a, "100.64.1.0/26");
    originate(&mut n, b, "100.64.2.0/26");
    n.sp[a].rib.originate(
        common::net("2001:db8:1000::/122"),
        "ipam",
        LocalRoute::default(),
    );
    n.pump();
    let mut out = n.tables();
    out.push(String::from("--- updates"));
    out.extend(n.log.iter().cloned());
    golden("ebgp_tor", &out);
    let r = n.best(b, "100.64.1.0/26").unwrap();
    assert_eq!(
        r.next_hops[0].addr,
        ip("198.18.0.1"),
        "ToR sets next hop self"
    );
    assert_eq!(r.attributes.attrs.as_path.to_string(), "65000 64512");
}

fn gr_session(router_id: std::net::Ipv4Addr) -> PeerSession {
    let mut s = PeerSession::basic(router_id);
    s.graceful_restart = Some(GracefulRestart {
        restart_state: false,
        notification: true,
        restart_time: 120,
        families: vec![
            GrFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            },
            GrFamily {
                family: Family::IPV6_UNICAST,
                forwarding_preserved: true,
            },
        ],
    });
    s
}

/// A net whose sessions all negotiate graceful restart, with speakers a
/// (cluster 198.18.0.100), b and c, not yet linked.
fn gr_speakers() -> (Net, usize, usize, usize) {
    let mut n = Net {
        session_template: gr_session,
        ..Net::default()
    };
    let a = n.speaker("a", AS, Some("198.18.0.100"));
    let b = n.speaker("b", AS, None);
    let c = n.speaker("c", AS, None);
    (n, a, b, c)
}

/// RFC 4724: B restarts; A keeps B's routes as stale (still used, still
/// advertised to C), B comes back and re-announces part of them, End-of-RIB
/// sweeps the rest. Then a second restart where B never returns: the restart
/// timer sweeps. Then a Hard Reset flushes at once.
#[test]
fn graceful_restart_with_stale_sweep() {
    let (mut n, a, b, c) = gr_speakers();
    let (a_b, b_a) = n.link(a, b, tweak_client, tweak_none);
    n.link(a, c, tweak_client, tweak_none);
    for p in ["100.64.1.0/26", "100.64.2.0/26", "100.64.3.0/26"] {
        originate(&mut n, b, p);
    }
    n.pump();
    n.clear_log();
    n.sp[a].rib.drain_best_changes();
    let mut out = Vec::new();

    // B's control plane dies (e.g. kill -9): A sees the TCP session drop.
    n.down(a, a_b, DownKind::Graceful);
    n.down(b, b_a, DownKind::Flush);
    n.pump();
    out.push(String::from("=== after b went down"));
    out.extend(n.tables());
    assert!(n.best(a, "100.64.1.0/26").unwrap().stale);
    assert!(
        n.sp[a].rib.drain_best_changes().is_empty(),
        "marking stale must not churn the FIB"
    );
    assert!(n.sp[a].rib.next_deadline().is_some());

    // B restarts with only two of its three routes.
    n.sp[b]
        .rib
        .withdraw_local(common::net("100.64.3.0/26"), "ipam");
    n.up(a, a_b);
    n.up(b, b_a);
    n.pump();
    out.push(String::from("=== after b returned and sent End-of-RIB"));
    out.extend(n.tables());
    out.push(String::from("--- updates"));
    out.extend(n.log.iter().cloned());
    n.clear_log();
    assert!(n.best(c, "100.64.3.0/26").is_none());
    assert!(!n.best(a, "100.64.1.0/26").unwrap().stale);

    // Second failure: B never comes back; the restart timer sweeps.
    n.down(a, a_b, DownKind::Graceful);
    n.down(b, b_a, DownKind::Flush);
    n.advance(Duration::from_secs(60));
    assert!(n.best(a, "100.64.1.0/26").is_some());
    n.advance(Duration::from_secs(61));
    n.pump();
    out.push(String::from("=== after the restart timer expired"));
    out.extend(n.tables());
    assert!(n.best(a, "100.64.1.0/26").is_none());

    // Hard Reset (RFC 8538): flush at once.
    n.up(a, a_b);
    n.up(b, b_a);
    n.pump();
    assert!(n.best(a, "100.64.1.0/26").is_some());
    n.down(a, a_b, DownKind::Flush);
    assert!(n.best(a, "100.64.1.0/26").is_none());
    golden("graceful_restart", &out);
}

/// RFC 4724 §4.1: a restarting speaker defers selection until End-of-RIB
/// from every GR peer (or the deferral timer): no best changes before.
#[test]
fn restarting_speaker_defers_selection() {
    let (mut n, a, b, c) = gr_speakers();
    let t = n.now;
    n.sp[a].rib.defer_selection(t + Duration::from_secs(300));
    originate(&mut n, b, "100.64.1.0/26");
    originate(&mut n, c, "100.64.2.0/26");
    let (_, b_a) = n.link(a, b, tweak_client, tweak_none);
    let (a_c, _) = n.link(a, c, tweak_client, tweak_none);
    // Deliver B's routes and End-of-RIB only.
    let out = n.sp[b].rib.drain_outgoing();
    for o in &out {
        for u in o.updates_for(b_a).unwrap() {
            n.sp[a].rib.apply_update(PeerId(1), &u).unwrap();
        }
    }
    assert_eq!(o_peers(&out), vec![b_a]);
    assert!(n.sp[a].rib.is_deferring());
    assert!(n.sp[a].rib.drain_best_changes().is_empty());
    assert!(n.sp[a].rib.drain_outgoing().is_empty());
    // C's End-of-RIB ends deferral: the full table comes out at once.
    n.pump();
    assert!(!n.sp[a].rib.is_deferring());
    assert!(n.sp[a].rib.selection_complete());
    let changes = n.sp[a].rib.drain_best_changes();
    let prefixes: Vec<String> = changes.iter().map(|c| c.prefix.to_string()).collect();
    assert_eq!(prefixes, vec!["100.64.1.0/26", "100.64.2.0/26"]);
    assert!(n.best(c, "100.64.1.0/26").is_some());
    let _ = a_c;
}

fn o_peers(out: &[Outgoing]) -> Vec<PeerId> {
    let mut v: Vec<PeerId> = out.iter().flat_map(|o| o.to.peers().to_vec()).collect();
    v.dedup();
    v
}

/// The deferral timer ends deferral when a peer never sends End-of-RIB.
#[test]
fn deferral_timer_expires() {
    let mut n = Net {
        session_template: gr_session,
        ..Net::default()
    };
    let a = n.speaker("a", AS, None);
    let b = n.speaker("b", AS, None);
    let t = n.now;
    n.sp[a].rib.defer_selection(t + Duration::from_secs(30));
    n.sp[a]
        .rib
        .originate(common::net("100.64.9.0/26"), "ipam", LocalRoute::default());
    n.sp[a]
        .rib
        .add_peer(
            PeerId(1),
            PeerConfig::new(ip("198.18.0.2"), tabby_bgp::Asn(AS)),
        )
        .unwrap();
    assert_eq!(
        n.sp[a].rib.next_deadline(),
        Some(t + Duration::from_secs(30))
    );
    n.advance(Duration::from_secs(31));
    assert!(!n.sp[a].rib.is_deferring());
    assert_eq!(n.sp[a].rib.drain_best_changes().len(), 1);
    let _ = (b, PathAttributes::default());
}

/// The per-peer "advertised" count follows the group's Adj-RIB-Out with
/// split horizon: a client is not counted for its own route.
#[test]
fn advertised_counts_apply_split_horizon() {
    let mut n = Net::default();
    let rr = n.speaker("rr", AS, Some("198.18.0.100"));
    let c1 = n.speaker("c1", AS, None);
    let c2 = n.speaker("c2", AS, None);
    let (to_c1, _) = n.link(rr, c1, tweak_client, tweak_none);
    let (to_c2, _) = n.link(rr, c2, tweak_client, tweak_none);
    n.pump();
    let v4 = Family::IPV4_UNICAST;
    assert_eq!(n.sp[rr].rib.advertised_count(to_c1, v4), 0);
    originate(&mut n, c1, "100.64.1.0/26");
    originate(&mut n, c1, "100.64.1.64/26");
    originate(&mut n, c2, "100.64.2.0/26");
    originate(&mut n, rr, "100.64.9.0/26");
    n.pump();
    let rib = &n.sp[rr].rib;
    assert_eq!(
        rib.advertised_count(to_c1, v4),
        2,
        "c2's block and the RR's own"
    );
    assert_eq!(
        rib.advertised_count(to_c2, v4),
        3,
        "c1's two blocks and the RR's own"
    );
    assert_eq!(rib.advertised_count(to_c1, Family::IPV6_UNICAST), 0);
    n.sp[c1]
        .rib
        .withdraw_local(common::net("100.64.1.64/26"), "ipam");
    n.pump();
    assert_eq!(n.sp[rr].rib.advertised_count(to_c2, v4), 2);
    assert_eq!(n.sp[rr].rib.advertised_count(to_c1, v4), 2);
}

/// Reflector clients whose export policies differ only in name (a daemon
/// names them after each peer) share one update group; different rules
/// mean different groups.
#[test]
fn policies_equal_but_for_their_name_share_a_group() {
    use std::sync::Arc;
    let named = |name: &str, default: Verdict| {
        let mut rule = Rule::new(format!("{name}#0"), Some(Verdict::Reject));
        rule.matches.push(Match::PrefixRange {
            cidr: common::net("100.127.0.0/16"),
            ge: None,
            le: None,
        });
        let p = Arc::new(Policy {
            name: name.to_string(),
            rules: vec![rule],
            default,
        });
        move |c: &mut PeerConfig| {
            tweak_client(c);
            c.export = Some(p.clone());
        }
    };
    let mut n = Net::default();
    let rr = n.speaker("rr", AS, Some("198.18.0.100"));
    let c1 = n.speaker("c1", AS, None);
    let c2 = n.speaker("c2", AS, None);
    let c3 = n.speaker("c3", AS, None);
    let (a, _) = n.link(
        rr,
        c1,
        named("export 198.18.0.2", Verdict::Accept),
        tweak_none,
    );
    let (b, _) = n.link(
        rr,
        c2,
        named("export 198.18.0.3", Verdict::Accept),
        tweak_none,
    );
    let (c, _) = n.link(
        rr,
        c3,
        named("export 198.18.0.4", Verdict::Reject),
        tweak_none,
    );
    n.pump();
    let rib = &n.sp[rr].rib;
    assert!(rib.group_of(a).is_some());
    assert_eq!(rib.group_of(a), rib.group_of(b));
    assert_ne!(rib.group_of(a), rib.group_of(c));
}
