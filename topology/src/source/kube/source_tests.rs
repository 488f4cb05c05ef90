//! The Kubernetes source's bookkeeping, driven with feed messages and no API server: lists,
//! re-lists, bad objects, failures and what the snapshots and their problems say.

use super::*;
use crate::source::kube::convert::Converted;
use serde_json::json;

/// A feed whose task does nothing: messages are handed in by the test.
fn idle_feed() -> FeedState {
    FeedState {
        task: tokio::spawn(async {}),
        synced: false,
        pending: None,
        failure: None,
        started: Instant::now(),
    }
}

/// A source whose kind feeds exist (idle tasks), as after `connect`.
fn source() -> KubeSource {
    let mut s = KubeSource::new(
        KubeTarget::Kubeconfig("/nonexistent".into()),
        Some("tabby-system".into()),
    );
    for kind in CUSTOM_KINDS.into_iter().chain([Kind::Node]) {
        s.feeds.insert(FeedId::Kind(kind), idle_feed());
    }
    s
}

fn peer(name: &str, asn: u64) -> Msg {
    let obj = json!({"metadata": {"name": name}, "spec": {"peerIP": "192.0.2.1", "asNumber": asn}});
    Msg::Apply {
        name: name.into(),
        converted: Box::new(convert::custom(Kind::BgpPeer, &obj)),
    }
}

fn bad_peer(name: &str) -> Msg {
    Msg::Apply {
        name: name.into(),
        converted: Box::new(Converted {
            resource: Err(TopologyError::Parse {
                origin: "test".into(),
                reason: format!("BGPPeer {name} is broken"),
            }),
            warnings: vec![],
        }),
    }
}

fn list(s: &mut KubeSource, kind: Kind, items: Vec<Msg>) {
    let id = FeedId::Kind(kind);
    assert!(s.handle(id.clone(), Msg::Init).is_none());
    for m in items {
        assert!(s.handle(id.clone(), m).is_none());
    }
    assert!(s.handle(id, Msg::InitDone).is_none());
}

fn fail(forbidden: bool) -> Msg {
    Msg::Failed(Failure {
        forbidden,
        gone: false,
        not_found: false,
        reason: if forbidden {
            "bgppeers is forbidden (403)".into()
        } else {
            "connection refused".into()
        },
    })
}

#[tokio::test]
async fn first_snapshot_waits_for_every_collection() {
    let mut s = source();
    list(&mut s, Kind::BgpPeer, vec![peer("tor", 65001)]);
    assert!(
        !s.ready_to_emit(Instant::now()),
        "four kinds not listed yet"
    );
    for k in [
        Kind::BgpConfiguration,
        Kind::BgpFilter,
        Kind::IpPool,
        Kind::BlockAffinity,
        Kind::Node,
    ] {
        list(&mut s, k, vec![]);
    }
    assert!(s.ready_to_emit(Instant::now()));
    let snap = s.snapshot();
    assert_eq!(snap.bgp_peers.len(), 1);
    assert!(snap.problems.is_empty());
}

#[tokio::test]
async fn a_relist_replaces_the_set_and_a_bad_object_keeps_its_last_good_version() {
    let mut s = source();
    list(
        &mut s,
        Kind::BgpPeer,
        vec![peer("a", 65001), peer("b", 65002)],
    );
    // Re-list (after 410 Gone): a is now invalid, b is gone, c is new.
    list(&mut s, Kind::BgpPeer, vec![bad_peer("a"), peer("c", 65003)]);
    let snap = s.snapshot();
    let names: Vec<&String> = snap.bgp_peers.keys().collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(snap.bgp_peers["a"].as_number, Some(65001), "last good a");
    assert_eq!(snap.problems.len(), 1);
    assert!(
        snap.problems[0].contains("BGPPeer a is broken"),
        "{:?}",
        snap.problems
    );
    // Fixed by a watch event: the problem goes.
    assert!(
        s.handle(FeedId::Kind(Kind::BgpPeer), peer("a", 65010))
            .is_none()
    );
    let snap = s.snapshot();
    assert_eq!(snap.bgp_peers["a"].as_number, Some(65010));
    assert!(snap.problems.is_empty());
    // A delete removes the object (and would remove its problem).
    assert!(
        s.handle(
            FeedId::Kind(Kind::BgpPeer),
            Msg::Delete { name: "c".into() }
        )
        .is_none()
    );
    assert_eq!(s.snapshot().bgp_peers.len(), 1);
}

#[tokio::test]
async fn objects_of_a_relist_are_not_applied_before_it_completes() {
    let mut s = source();
    list(&mut s, Kind::BgpPeer, vec![peer("a", 65001)]);
    let id = FeedId::Kind(Kind::BgpPeer);
    s.handle(id.clone(), Msg::Init);
    s.handle(id.clone(), peer("b", 65002));
    assert_eq!(s.resources.bgp_peers.len(), 1, "half a list is not a state");
    assert!(s.resources.bgp_peers.contains_key("a"));
    s.handle(id, Msg::InitDone);
    let names: Vec<&String> = s.resources.bgp_peers.keys().collect();
    assert_eq!(names, ["b"]);
}

#[tokio::test]
async fn forbidden_settles_the_feed_and_is_a_problem_until_it_recovers() {
    let mut s = source();
    let id = FeedId::Kind(Kind::BgpFilter);
    for k in [
        Kind::BgpConfiguration,
        Kind::BgpPeer,
        Kind::IpPool,
        Kind::BlockAffinity,
        Kind::Node,
    ] {
        list(&mut s, k, vec![]);
    }
    // Forbidden before the first snapshot: not an Err (it travels in the snapshot).
    assert!(s.handle(id.clone(), fail(true)).is_none());
    assert!(s.ready_to_emit(Instant::now()));
    let snap = s.snapshot();
    assert_eq!(snap.problems.len(), 1);
    assert!(
        snap.problems[0].contains("forbidden")
            && snap.problems[0].contains("list and watch on bgpfilters"),
        "{:?}",
        snap.problems
    );
    // The same failure again changes nothing; recovery clears it.
    assert!(s.handle(id.clone(), fail(true)).is_none());
    assert!(s.dirty_since.is_none());
    assert!(s.handle(id, Msg::Recovered).is_none());
    assert!(s.dirty_since.is_some());
    assert!(s.snapshot().problems.is_empty());
}

#[tokio::test]
async fn an_unreachable_server_before_the_first_snapshot_is_said_once() {
    let mut s = source();
    let id = FeedId::Kind(Kind::Node);
    let e = s.handle(id.clone(), fail(false)).expect("reported");
    assert!(e.to_string().contains("connection refused"), "{e}");
    assert!(s.handle(id.clone(), fail(false)).is_none(), "not twice");
    assert!(!s.ready_to_emit(Instant::now()), "waiting is the cure");
    // After the first snapshot the same failure is a problem, not an error.
    s.feeds.values_mut().for_each(|f| f.synced = true);
    s.snapshot();
    s.handle(id.clone(), Msg::Recovered);
    assert!(s.handle(id, fail(false)).is_none());
    assert_eq!(s.snapshot().problems.len(), 1);
}

#[tokio::test]
async fn a_secret_takes_the_namespace_it_was_read_from() {
    let mut s = source();
    let obj = json!({"metadata": {"name": "tor"}, "spec": {"peerIP": "192.0.2.1", "asNumber": 65001,
        "password": {"secretKeyRef": {"name": "bgp-passwords", "key": "tor"}}}});
    list(
        &mut s,
        Kind::BgpPeer,
        vec![Msg::Apply {
            name: "tor".into(),
            converted: Box::new(convert::custom(Kind::BgpPeer, &obj)),
        }],
    );
    let id = FeedId::Secret("bgp-passwords".into());
    s.feeds.insert(id.clone(), idle_feed());
    let secret = json!({"metadata": {"name": "bgp-passwords", "namespace": "elsewhere"},
                        "data": {"tor": "czNjcjN0"}});
    list_secret(&mut s, &id, convert::secret(&secret));
    let snap = s.snapshot();
    let (ns, name) = snap.secrets.keys().next().expect("the secret");
    assert_eq!(
        (ns.as_str(), name.as_str()),
        ("tabby-system", "bgp-passwords")
    );
}

fn list_secret(s: &mut KubeSource, id: &FeedId, c: Converted) {
    s.handle(id.clone(), Msg::Init);
    s.handle(
        id.clone(),
        Msg::Apply {
            name: "bgp-passwords".into(),
            converted: Box::new(c),
        },
    );
    s.handle(id.clone(), Msg::InitDone);
}
