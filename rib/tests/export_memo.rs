//! Export results are shared between prefixes with the same attributes and
//! source only where the export policy, run per prefix, leaves a route as
//! it is.

mod common;

use common::*;
use std::sync::Arc;
use tabby_bgp::attr::{AsPath, Community, Origin};
use tabby_bgp::{Asn, PathAttributes};
use tabby_rib::*;

fn rib() -> Rib {
    let mut c = RibConfig::new(v4("198.18.0.1"), Asn(64512));
    c.local_addresses = vec![ip("198.18.0.1")];
    Rib::new(c)
}

fn up(r: &mut Rib, id: u32, addr: &str, asn: u32, export: Option<Policy>) {
    let mut p = PeerConfig::new(ip(addr), Asn(asn));
    p.local_v4 = Some(v4("198.18.0.1"));
    p.export = export.map(Arc::new);
    r.add_peer(PeerId(id), p).unwrap();
    let a = match ip(addr) {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => unreachable!("IPv4 peers only here"),
    };
    r.peer_up(PeerId(id), PeerSession::basic(a), now()).unwrap();
}

fn attrs(communities: &[Community]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence([Asn(65001)]),
        communities: communities.to_vec(),
        ..Default::default()
    }
}

/// One UPDATE, one attribute set, three prefixes: a policy that rejects one
/// of them by prefix must still see each prefix on its own.
#[test]
fn prefix_policies_are_evaluated_per_prefix() {
    let mut r = rib();
    let only_two = Policy::new("not-1", Verdict::Accept).rule(
        Rule::new("drop 1", Some(Verdict::Reject)).matching(Match::Cidr {
            op: CidrOp::Equal,
            cidr: net("100.64.1.0/26"),
        }),
    );
    up(&mut r, 1, "198.18.0.2", 65001, None);
    up(&mut r, 2, "198.18.0.3", 65002, Some(only_two));
    r.drain_outgoing();
    learn_with(
        &mut r,
        1,
        &["100.64.1.0/26", "100.64.2.0/26", "100.64.3.0/26"],
        "198.18.0.2",
        attrs(&[]),
    );
    let got = announced(&updates_for(&r.drain_outgoing(), PeerId(2)));
    assert_eq!(got, vec![net("100.64.2.0/26"), net("100.64.3.0/26")]);
}

/// Without prefix conditions, prefixes sharing attributes share the result
/// (rejected or modified alike), and different attributes still differ.
#[test]
fn attribute_policies_treat_each_attribute_set_alike() {
    let mut r = rib();
    let tagged = Community::new(65001, 9);
    let pol = Policy::new("tag", Verdict::Accept)
        .rule(Rule::new("drop tagged", Some(Verdict::Reject)).matching(Match::Community(tagged)))
        .rule(Rule::new("mark", None).action(Action::AddCommunity(Community::new(64512, 7))));
    up(&mut r, 1, "198.18.0.2", 65001, None);
    up(&mut r, 2, "198.18.0.3", 65002, Some(pol));
    r.drain_outgoing();
    learn_with(
        &mut r,
        1,
        &["100.64.1.0/26", "100.64.2.0/26"],
        "198.18.0.2",
        attrs(&[tagged]),
    );
    learn_with(
        &mut r,
        1,
        &["100.64.3.0/26", "100.64.4.0/26"],
        "198.18.0.2",
        attrs(&[]),
    );
    let out = updates_for(&r.drain_outgoing(), PeerId(2));
    assert_eq!(
        announced(&out),
        vec![net("100.64.3.0/26"), net("100.64.4.0/26")]
    );
    let lines = render(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(r#"comm=["64512:7"]"#), "{lines:?}");
}

/// Prefix rules that modify some routes: those prefixes get the change,
/// the others (same attributes, same source) are shared unmodified.
#[test]
fn prefix_rules_that_modify_apply_to_their_prefixes_only() {
    let mut r = rib();
    let pol = Policy::new("mark-2", Verdict::Accept).rule(
        Rule::new("mark 2", None)
            .matching(Match::Cidr {
                op: CidrOp::Equal,
                cidr: net("100.64.2.0/26"),
            })
            .action(Action::AddCommunity(Community::new(64512, 2))),
    );
    up(&mut r, 1, "198.18.0.2", 65001, None);
    up(&mut r, 2, "198.18.0.3", 65002, Some(pol));
    r.drain_outgoing();
    r.apply_update(
        PeerId(1),
        &with_attrs(
            &["100.64.1.0/26", "100.64.2.0/26", "100.64.3.0/26"],
            "198.18.0.2",
            attrs(&[]),
        ),
    )
    .unwrap();
    let out = updates_for(&r.drain_outgoing(), PeerId(2));
    let mut lines = render(&out);
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let marked: Vec<&String> = lines.iter().filter(|l| l.contains("64512:2")).collect();
    assert_eq!(marked.len(), 1, "{lines:?}");
    assert!(marked[0].contains(r#"["100.64.2.0/26"]"#), "{lines:?}");
    let plain: Vec<&String> = lines.iter().filter(|l| !l.contains("64512:2")).collect();
    assert!(
        plain[0].contains(r#"["100.64.1.0/26", "100.64.3.0/26"]"#),
        "{lines:?}"
    );
}
