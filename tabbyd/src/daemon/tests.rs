//! The daemon core driven without sockets or a kernel: a recording
//! [`Sessions`] stands in for the BGP driver and the FIB channel is read
//! directly, so every rule of the wiring is checked in memory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tabby_bgp::attr::{AsPath, Origin};
use tabby_bgp::capability::Capability;
use tabby_bgp::fsm::{Down, DownReason, State};
use tabby_bgp::message::{Open, Update};
use tabby_bgp::negotiated::Negotiated;
use tabby_bgp::{Asn, Family, Nlri, PathAttributes};
use tabby_fib_sync::RouteKind;
use tabby_rib::PeerId;
use tokio::sync::mpsc;

use super::*;
use crate::sessions::{SessionHandle, SessionSpec, Sessions};
use tabby_bgp_driver::{PeerCommand, PeerEvent};

/// Commands each spawned session received, by peer address and port.
type Log = Arc<Mutex<Vec<(SocketAddr, PeerId, mpsc::UnboundedReceiver<PeerCommand>)>>>;

/// `peer` names a session by address (any port) or by address and port.
fn names(peer: &str, remote: SocketAddr) -> bool {
    match peer.parse::<SocketAddr>() {
        Ok(sa) => sa == remote,
        Err(_) => peer.parse::<IpAddr>().unwrap() == remote.ip(),
    }
}

struct Recorder {
    log: Log,
}

impl Sessions for Recorder {
    fn listen(&mut self, _addrs: Vec<SocketAddr>) -> Result<(), String> {
        Ok(())
    }

    fn spawn(&mut self, id: PeerId, spec: SessionSpec) -> Result<SessionHandle, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.log.lock().unwrap().push((spec.remote, id, rx));
        Ok(SessionHandle::new(tx))
    }
}

/// Two mesh nodes, a pool, node-a's block and a top-of-rack BGPPeer; the
/// `tabbyd plan` tests read the same file.
const CLUSTER: &str = include_str!("../../tests/fixtures/cluster.yaml");

struct Harness {
    daemon: Daemon,
    log: Log,
    fib: mpsc::UnboundedReceiver<FibOp>,
    bfd: BfdLog,
}

/// BFD sessions the daemon asked for, in order.
type BfdLog = Arc<Mutex<Vec<(IpAddr, Option<tabby_bfd_driver::SessionSpec>)>>>;

struct BfdRecorder {
    log: BfdLog,
}

impl BfdSessions for BfdRecorder {
    fn set(&mut self, peer: IpAddr, spec: Option<tabby_bfd_driver::SessionSpec>) {
        self.log.lock().unwrap().push((peer, spec));
    }
}

fn harness(max_prefixes: u32) -> Harness {
    let log: Log = Arc::default();
    let (fib_tx, fib) = mpsc::unbounded_channel();
    let mut daemon = Daemon::new(
        Options {
            node_name: "node-a".into(),
            tunnel_device: "tunl0".into(),
            deferral_time: Duration::from_secs(30),
            log_level: "info".into(),
            max_prefixes,
        },
        Box::new(Recorder { log: log.clone() }),
        Some(fib_tx),
        None,
        Arc::new(Metrics::default()),
        Instant::now(),
    );
    let bfd: BfdLog = Arc::default();
    daemon.set_bfd(Box::new(BfdRecorder { log: bfd.clone() }));
    Harness {
        daemon,
        log,
        fib,
        bfd,
    }
}

impl Harness {
    fn load(&mut self, yaml: &str) {
        let res = topo::Resources::from_yaml_str(yaml, "test.yaml").unwrap();
        self.daemon.apply_resources(&res, Instant::now());
    }

    /// The latest session spawned for `addr` (`ip` or `ip:port`).
    fn id_of(&self, addr: &str) -> PeerId {
        let log = self.log.lock().unwrap();
        log.iter()
            .rev()
            .find(|(remote, _, _)| names(addr, *remote))
            .map(|(_, id, _)| *id)
            .unwrap()
    }

    /// What the sessions for `addr` (`ip` or `ip:port`) were told since the last call.
    fn commands(&self, addr: &str) -> Vec<PeerCommand> {
        let mut log = self.log.lock().unwrap();
        let mut out = Vec::new();
        for (_, _, rx) in log.iter_mut().filter(|(remote, _, _)| names(addr, *remote)) {
            while let Ok(c) = rx.try_recv() {
                out.push(c);
            }
        }
        out
    }

    fn fib_ops(&mut self) -> Vec<FibOp> {
        let mut v = Vec::new();
        while let Ok(op) = self.fib.try_recv() {
            v.push(op);
        }
        v
    }

    /// Brings the session up; returns the wire format it negotiated.
    fn establish(
        &mut self,
        addr: &str,
        peer_as: u32,
        router_id: Ipv4Addr,
    ) -> tabby_bgp::codec::CodecCtx {
        self.establish_with(addr, peer_as, router_id, false)
    }

    /// The same, with graceful restart and its N bit (RFC 8538) on both
    /// sides when `n_bit`.
    fn establish_with(
        &mut self,
        addr: &str,
        peer_as: u32,
        router_id: Ipv4Addr,
        n_bit: bool,
    ) -> tabby_bgp::codec::CodecCtx {
        let id = self.id_of(addr);
        let open = |asn: u32, rid| Open {
            version: 4,
            my_as: asn.min(u16::MAX as u32) as u16,
            hold_time: 90,
            bgp_id: rid,
            capabilities: [
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::FourOctetAs(Asn(asn)),
            ]
            .into_iter()
            .chain(n_bit.then(|| {
                Capability::GracefulRestart(tabby_bgp::capability::GracefulRestart {
                    restart_state: false,
                    notification: true,
                    restart_time: 120,
                    families: vec![tabby_bgp::capability::GrFamily {
                        family: Family::IPV4_UNICAST,
                        forwarding_preserved: true,
                    }],
                })
            }))
            .collect(),
            unknown_params: vec![],
        };
        let neg = Negotiated::new(
            &open(64512, Ipv4Addr::new(198, 18, 0, 11)),
            &open(peer_as, router_id),
            None,
        );
        let ctx = neg.codec_ctx();
        let now = Instant::now();
        self.daemon.session_event(
            id,
            PeerEvent::StateChanged {
                from: State::OpenConfirm,
                to: State::Established,
            },
            now,
        );
        self.daemon
            .session_event(id, PeerEvent::Established(Box::new(neg)), now);
        ctx
    }

    fn announce(&mut self, addr: &str, path: &[u32], prefixes: &[&str], next_hop: Ipv4Addr) {
        let id = self.id_of(addr);
        let u = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: AsPath::from_sequence(path.iter().map(|a| Asn(*a))),
                next_hop: Some(next_hop),
                ..PathAttributes::default()
            },
            nlri: prefixes
                .iter()
                .map(|p| Nlri::new(p.parse().unwrap()))
                .collect(),
            ..Update::default()
        };
        self.daemon
            .session_event(id, PeerEvent::Update(Box::new(u)), Instant::now());
    }
}

#[test]
fn every_configured_peer_gets_a_started_session() {
    let mut h = harness(0);
    h.load(CLUSTER);
    for peer in ["198.18.0.1", "198.18.0.12"] {
        let cmds = h.commands(peer);
        assert!(
            matches!(cmds.first(), Some(PeerCommand::Start)),
            "{peer}: {cmds:?}"
        );
    }
    assert_eq!(h.daemon.list_peers(Instant::now()).len(), 2);
}

#[test]
fn own_block_is_blackholed_and_learned_routes_go_via_the_peer() {
    let mut h = harness(0);
    h.load(CLUSTER);
    let ops = h.fib_ops();
    assert!(
        ops.iter().any(|op| matches!(op, FibOp::Set(r)
            if r.prefix == "100.64.0.0/26".parse().unwrap() && r.kind == RouteKind::Blackhole)),
        "own block not blackholed: {ops:?}"
    );
    h.establish("198.18.0.1", 65000, Ipv4Addr::new(198, 18, 0, 1));
    h.announce(
        "198.18.0.1",
        &[65000],
        &["198.19.7.0/24"],
        Ipv4Addr::new(198, 18, 0, 1),
    );
    let ops = h.fib_ops();
    let set = ops
        .iter()
        .find_map(|op| match op {
            FibOp::Set(r) if r.prefix == "198.19.7.0/24".parse().unwrap() => Some(r),
            _ => None,
        })
        .expect("learned route programmed");
    match &set.kind {
        RouteKind::Unicast(hops) => {
            assert_eq!(hops.len(), 1);
            assert_eq!(hops[0].gateway, "198.18.0.1".parse::<IpAddr>().unwrap());
            assert!(!hops[0].onlink);
        }
        other => panic!("expected a gateway route, got {other:?}"),
    }
    // Our block goes to the top-of-rack router.
    let cmds = h.commands("198.18.0.1");
    assert!(
        cmds.iter()
            .any(|c| matches!(c, PeerCommand::SendShared { .. })),
        "nothing advertised to the ToR: {cmds:?}"
    );
    // The counters say the same: one route in, our block out.
    let tor = h
        .daemon
        .get_peer("198.18.0.1".parse::<IpAddr>().unwrap(), Instant::now())
        .unwrap();
    assert_eq!(tor.counters.prefixes_accepted, 1);
    assert_eq!(tor.counters.prefixes_advertised, 1, "{tor:?}");
}

#[test]
fn session_loss_without_graceful_restart_removes_the_kernel_route() {
    let mut h = harness(0);
    h.load(CLUSTER);
    h.establish("198.18.0.1", 65000, Ipv4Addr::new(198, 18, 0, 1));
    h.announce(
        "198.18.0.1",
        &[65000],
        &["198.19.7.0/24"],
        Ipv4Addr::new(198, 18, 0, 1),
    );
    h.fib_ops();
    let id = h.id_of("198.18.0.1");
    h.daemon.session_event(
        id,
        PeerEvent::Down(Down {
            reason: DownReason::ConnectionLost,
            was_established: true,
            stale: None,
        }),
        Instant::now(),
    );
    let ops = h.fib_ops();
    assert!(
        ops.iter()
            .any(|op| matches!(op, FibOp::Remove(p) if *p == "198.19.7.0/24".parse().unwrap())),
        "{ops:?}"
    );
}

#[test]
fn session_transitions_are_counted_per_peer() {
    let mut h = harness(0);
    h.load(CLUSTER);
    h.establish("198.18.0.1", 65000, Ipv4Addr::new(198, 18, 0, 1));
    let id = h.id_of("198.18.0.1");
    h.daemon.session_event(
        id,
        PeerEvent::StateChanged {
            from: State::Established,
            to: State::Idle,
        },
        Instant::now(),
    );
    h.establish("198.18.0.1", 65000, Ipv4Addr::new(198, 18, 0, 1));
    let count = |to: &str| {
        h.daemon
            .metrics
            .session_transitions
            .get_or_create(&crate::metrics::SessionTransitionLabel {
                peer: "198.18.0.1".into(),
                to: to.into(),
            })
            .get()
    };
    assert_eq!((count("established"), count("down")), (2, 1));
}

#[test]
fn max_prefixes_closes_the_session_with_cease_1() {
    let mut h = harness(2);
    h.load(CLUSTER);
    h.establish("198.18.0.1", 65000, Ipv4Addr::new(198, 18, 0, 1));
    h.commands("198.18.0.1");
    h.announce(
        "198.18.0.1",
        &[65000],
        &["198.19.1.0/24", "198.19.2.0/24"],
        Ipv4Addr::new(198, 18, 0, 1),
    );
    assert!(
        !h.commands("198.18.0.1")
            .iter()
            .any(|c| matches!(c, PeerCommand::Cease(_))),
        "at the limit is allowed"
    );
    h.announce(
        "198.18.0.1",
        &[65000],
        &["198.19.3.0/24"],
        Ipv4Addr::new(198, 18, 0, 1),
    );
    let cmds = h.commands("198.18.0.1");
    let n = cmds
        .iter()
        .find_map(|c| match c {
            PeerCommand::Cease(n) => Some(n),
            _ => None,
        })
        .expect("Cease sent");
    assert_eq!(
        n.kind(),
        tabby_bgp::notification::NotificationKind::Cease(
            tabby_bgp::notification::Cease::MaxPrefixesReached(Some(
                tabby_bgp::notification::PrefixLimit {
                    family: Family::IPV4_UNICAST,
                    limit: 2
                }
            ))
        )
    );
    // RFC 4486 §4: AFI 1, SAFI 1, the limit 2.
    assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 2]);
}

#[test]
fn two_bgppeers_for_one_address_on_two_ports_are_two_sessions() {
    // confd renders `peerIP: <ip>:<port>` BGPPeers as one BIRD protocol
    // per address and port: a peer may run a speaker on each port.
    let two = format!(
        "{CLUSTER}---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: speaker-150}}\n\
         spec: {{peerIP: '198.51.100.1:150', asNumber: 65001}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: speaker-166}}\n\
         spec: {{peerIP: '198.51.100.1:166', asNumber: 65002}}\n"
    );
    let mut h = harness(0);
    h.load(&two);
    assert!(
        h.daemon.config_warnings.is_empty(),
        "{:?}",
        h.daemon.config_warnings
    );
    let (a, b) = (h.id_of("198.51.100.1:150"), h.id_of("198.51.100.1:166"));
    assert_ne!(a, b);
    for s in ["198.51.100.1:150", "198.51.100.1:166"] {
        let cmds = h.commands(s);
        assert!(
            matches!(cmds.first(), Some(PeerCommand::Start)),
            "{s}: {cmds:?}"
        );
    }
    let now = Instant::now();
    let ports: Vec<(u16, u32)> = h
        .daemon
        .list_peers(now)
        .iter()
        .filter(|p| p.config.address == IpAddr::from([198, 51, 100, 1]))
        .map(|p| {
            (
                p.settings.as_ref().map_or(0, |s| s.port),
                p.config.remote_as,
            )
        })
        .collect();
    assert_eq!(ports, vec![(150, 65001), (166, 65002)]);
    // Each session's routes are its own.
    h.establish("198.51.100.1:150", 65001, Ipv4Addr::new(198, 51, 100, 1));
    h.establish("198.51.100.1:166", 65002, Ipv4Addr::new(198, 51, 100, 2));
    h.announce(
        "198.51.100.1:150",
        &[65001],
        &["203.0.113.0/26"],
        Ipv4Addr::new(198, 51, 100, 1),
    );
    h.announce(
        "198.51.100.1:166",
        &[65002],
        &["203.0.113.64/26"],
        Ipv4Addr::new(198, 51, 100, 1),
    );
    let rib = h.daemon.rib.as_ref().unwrap();
    for (prefix, peer) in [("203.0.113.0/26", a), ("203.0.113.64/26", b)] {
        let best = rib.best(&prefix.parse().unwrap()).expect(prefix);
        assert!(
            matches!(best.source, RouteSource::Peer { peer: p, .. } if p == peer),
            "{prefix}: {:?}",
            best.source
        );
    }
    // The API names peers by address: it says which ports there are
    // rather than pick one.
    let e = h
        .daemon
        .get_peer(IpAddr::from([198, 51, 100, 1]), now)
        .expect_err("ambiguous");
    assert!(
        matches!(&e, CoreError::FailedPrecondition(m) if m.contains("150, 166") && m.contains("198.51.100.1:150")),
        "{e:?}"
    );
    // Named with its port, each is there.
    let at = |port| am::PeerRef {
        address: IpAddr::from([198, 51, 100, 1]),
        port: Some(port),
    };
    let p = h.daemon.get_peer(at(166), now).expect(":166");
    assert_eq!(p.config.remote_as, 65002);
    assert!(matches!(
        h.daemon.get_peer(at(179), now),
        Err(CoreError::NotFound(_))
    ));
    h.daemon
        .enable_peer(at(150), false, None, now)
        .expect("disable :150");
    assert!(
        h.commands("198.51.100.1:150")
            .iter()
            .any(|c| matches!(c, PeerCommand::Stop(_)))
    );
    h.daemon
        .enable_peer(at(150), true, None, now)
        .expect("enable :150");
    assert!(
        h.commands("198.51.100.1:150")
            .iter()
            .any(|c| matches!(c, PeerCommand::Start))
    );
    // One BGPPeer removed: its session stops, the other is untouched and
    // keeps its routes.
    h.load(&two.replace(
        "spec: {peerIP: '198.51.100.1:150', asNumber: 65001}",
        "spec: {peerIP: '198.51.100.1:150', asNumber: 65001, node: node-b}",
    ));
    assert!(
        h.commands("198.51.100.1:150")
            .iter()
            .any(|c| matches!(c, PeerCommand::Stop(_))),
        "the :150 session stops"
    );
    // It only hears that the other session's route went.
    let other = h.commands("198.51.100.1:166");
    assert!(
        other
            .iter()
            .all(|c| matches!(c, PeerCommand::SendShared { .. })),
        "{other:?}"
    );
    let rib = h.daemon.rib.as_ref().unwrap();
    assert!(rib.best(&"203.0.113.0/26".parse().unwrap()).is_none());
    assert!(rib.best(&"203.0.113.64/26".parse().unwrap()).is_some());
    assert_eq!(
        h.daemon
            .get_peer(IpAddr::from([198, 51, 100, 1]), now)
            .expect("one session left")
            .config
            .remote_as,
        65002
    );
}

#[test]
fn changing_one_peer_touches_only_that_session() {
    let mut h = harness(0);
    h.load(CLUSTER);
    let tor_before = h.id_of("198.18.0.1");
    let mesh_before = h.id_of("198.18.0.12");
    h.commands("198.18.0.1");
    h.commands("198.18.0.12");
    h.load(&CLUSTER.replace("asNumber: 65000", "asNumber: 65001"));
    assert_ne!(
        h.id_of("198.18.0.1"),
        tor_before,
        "the ToR session is re-created"
    );
    assert_eq!(
        h.id_of("198.18.0.12"),
        mesh_before,
        "the mesh session is untouched"
    );
    assert!(
        h.commands("198.18.0.12").is_empty(),
        "no command to the mesh peer"
    );
}

#[test]
fn api_owners_cannot_use_the_topology_owner_and_announce_counts() {
    let mut h = harness(0);
    h.load(CLUSTER);
    let owner = am::Owner::new(TOPOLOGY_OWNER).unwrap();
    assert!(matches!(
        h.daemon.announce(&owner, vec![], Instant::now()),
        Err(CoreError::InvalidArgument(_))
    ));
    let ipam = am::Owner::new("ipam").unwrap();
    let route = |p: &str| am::LocalRoute {
        prefix: p.parse().unwrap(),
        kind: am::RouteKind::PodBlock,
        communities: vec![],
        large_communities: vec![],
        next_hop: None,
        priority: None,
        local_pref: None,
        med: None,
    };
    let c = h
        .daemon
        .replace(
            &ipam,
            vec![route("100.64.1.0/26"), route("100.64.2.0/26")],
            Instant::now(),
        )
        .unwrap();
    assert_eq!((c.added, c.removed), (2, 0));
    let c = h
        .daemon
        .replace(&ipam, vec![route("100.64.2.0/26")], Instant::now())
        .unwrap();
    assert_eq!((c.added, c.unchanged, c.removed), (0, 1, 1));
    // The counts come from the RIB's own record of the owner's routes.
    let again = h
        .daemon
        .announce(
            &ipam,
            vec![route("100.64.2.0/26"), route("100.64.3.0/26")],
            Instant::now(),
        )
        .unwrap();
    assert_eq!((again.added, again.unchanged, again.updated), (1, 1, 0));
    let mut changed = route("100.64.3.0/26");
    changed.kind = am::RouteKind::Unspecified;
    let c = h
        .daemon
        .announce(&ipam, vec![changed], Instant::now())
        .unwrap();
    assert_eq!((c.added, c.unchanged, c.updated), (0, 0, 1));
    let w = h
        .daemon
        .withdraw(
            &ipam,
            vec![
                "100.64.3.0/26".parse().unwrap(),
                "100.64.7.0/26".parse().unwrap(),
            ],
            Instant::now(),
        )
        .unwrap();
    assert_eq!((w.removed, w.unchanged), (1, 1));
    let c = h.daemon.replace(&ipam, vec![], Instant::now()).unwrap();
    assert_eq!((c.added, c.removed), (0, 1));
    let ops = h.fib_ops();
    assert!(
        ops.iter()
            .any(|op| matches!(op, FibOp::Remove(p) if *p == "100.64.1.0/26".parse().unwrap())),
        "a block moved away is no longer blackholed: {ops:?}"
    );
}

#[test]
fn routes_announced_without_a_kind_are_not_blackholed() {
    let mut h = harness(0);
    h.load(CLUSTER);
    h.fib_ops();
    let owner = am::Owner::new("gobgp-api").unwrap();
    let route = |p: &str, kind| am::LocalRoute {
        prefix: p.parse().unwrap(),
        kind,
        communities: vec![],
        large_communities: vec![],
        next_hop: None,
        priority: None,
        local_pref: None,
        med: None,
    };
    h.daemon
        .announce(
            &owner,
            vec![
                route("100.64.9.0/26", am::RouteKind::Unspecified),
                route("100.64.10.0/26", am::RouteKind::PodBlock),
            ],
            Instant::now(),
        )
        .unwrap();
    let ops = h.fib_ops();
    assert!(
        !ops.iter()
            .any(|op| matches!(op, FibOp::Set(r) if r.prefix == "100.64.9.0/26".parse().unwrap())),
        "{ops:?}"
    );
    assert!(
        ops.iter()
            .any(|op| matches!(op, FibOp::Set(r) if r.prefix == "100.64.10.0/26".parse().unwrap() && r.kind == RouteKind::Blackhole)),
        "{ops:?}"
    );
}

const V6_MESH: &str = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24, ipv6Address: 2001:db8::11/64}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b}
spec: {bgp: {ipv6Address: 2001:db8::12/64}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-c}
spec: {bgp: {ipv6Address: 2001:db8::13/64}}
";

/// A node reached over IPv6 alone carries IPv4 on that session (RFC 8950);
/// when it gains an IPv4 address, its IPv6 session is re-established
/// without IPv4 (a new OPEN) and an IPv4 session appears. Other sessions
/// are untouched.
#[test]
fn ipv4_leaves_the_ipv6_session_when_an_ipv4_session_appears() {
    let mut h = harness(0);
    h.load(V6_MESH);
    let b6 = h.id_of("2001:db8::12");
    let c6 = h.id_of("2001:db8::13");
    h.commands("2001:db8::13");
    h.load(&V6_MESH.replace(
        "{bgp: {ipv6Address: 2001:db8::12/64}}",
        "{bgp: {ipv4Address: 198.18.0.12/24, ipv6Address: 2001:db8::12/64}}",
    ));
    let _ = h.id_of("198.18.0.12");
    assert_ne!(
        h.id_of("2001:db8::12"),
        b6,
        "node-b's IPv6 session is re-established without IPv4"
    );
    assert_eq!(h.id_of("2001:db8::13"), c6, "node-c's session is untouched");
    assert!(
        h.commands("2001:db8::13").is_empty(),
        "no command to node-c"
    );
}

/// What each session was handed: its update group's batches, encoded once
/// in the wire format that session negotiated, and counted as sent.
#[test]
fn each_peer_gets_its_groups_batches_in_its_wire_format() {
    let mut h = harness(0);
    h.load(CLUSTER);
    let mesh = h.establish("198.18.0.12", 64512, Ipv4Addr::new(198, 18, 0, 12));
    let tor = h.establish("198.18.0.1", 65000, Ipv4Addr::new(198, 18, 0, 1));
    // iBGP and eBGP decode differently but encode alike here.
    assert_ne!(mesh, tor);
    for (addr, ctx) in [("198.18.0.12", mesh), ("198.18.0.1", tor)] {
        let id = h.id_of(addr);
        let mut updates = Vec::new();
        let mut messages = 0;
        for c in h.commands(addr) {
            let PeerCommand::SendShared { batch, member } = c else {
                continue;
            };
            assert_eq!(member, id.0, "{addr}: named by its peer id");
            assert!(batch.ctx().encodes_like(&ctx), "{addr}: {:?}", batch.ctx());
            messages += batch.messages_for(member);
            let out = tabby_rib::Outgoing {
                to: tabby_rib::Recipients::Peer(id),
                batch,
            };
            updates.extend(out.updates_for(id).expect("decodes"));
        }
        let announced: Vec<String> = updates
            .iter()
            .flat_map(|u| u.nlri.iter().map(|n| n.prefix.to_string()))
            .collect();
        assert_eq!(announced, vec!["100.64.0.0/26"], "{addr}");
        assert!(
            updates
                .iter()
                .any(|u| u.as_end_of_rib() == Some(Family::IPV4_UNICAST)),
            "{addr}: End-of-RIB"
        );
        let status = h
            .daemon
            .get_peer(addr.parse::<IpAddr>().unwrap(), Instant::now())
            .unwrap();
        assert_eq!(status.counters.updates_sent, messages, "{addr}");
    }
}

#[test]
fn an_as_change_keeps_what_api_clients_gave() {
    // A new AS rebuilds the RIB and every session; the IPAM's routes and
    // the operator's peers are not the datastore's to drop.
    let mut h = harness(0);
    h.load(CLUSTER);
    let now = Instant::now();
    let ipam = am::Owner::new("ipam").unwrap();
    let pod = am::LocalRoute {
        prefix: "100.64.0.9/32".parse().unwrap(),
        kind: am::RouteKind::Unspecified,
        communities: vec![],
        large_communities: vec![],
        next_hop: None,
        priority: None,
        local_pref: None,
        med: None,
    };
    h.daemon.replace(&ipam, vec![pod], now).unwrap();
    h.daemon
        .add_api_peer(
            am::PeerConfig::new(IpAddr::from([198, 18, 0, 99]), 65099),
            now,
        )
        .unwrap();
    let before = h.id_of("198.18.0.99");
    h.load(&CLUSTER.replace("asNumber: 64512", "asNumber: 64513"));
    assert_eq!(h.daemon.state.as_ref().unwrap().local_as, 64513);
    let api = h
        .daemon
        .get_peer(IpAddr::from([198, 18, 0, 99]), now)
        .expect("the API peer is still there");
    assert_eq!(api.config.remote_as, 65099);
    assert_ne!(h.id_of("198.18.0.99"), before, "with a new session");
    let best = h
        .daemon
        .rib
        .as_ref()
        .unwrap()
        .best(&"100.64.0.9/32".parse().unwrap())
        .expect("the IPAM's route is still originated");
    assert!(
        matches!(&best.source, RouteSource::Local { owner, .. } if owner == "ipam"),
        "{:?}",
        best.source
    );
}

#[test]
fn an_api_peer_gets_the_topology_defaults() {
    let res = topo::Resources::from_yaml_str(CLUSTER, "test").unwrap();
    let state = topo::derive(&res, "node-a").unwrap();
    let mut cfg = am::PeerConfig::new("198.18.0.99".parse().unwrap(), 65099);
    cfg.hold_time = Some(30);
    cfg.keepalive = Some(10);
    let p = api_peer(&state, &cfg);
    let spec = Daemon::session_spec(&state, &p);
    // Graceful restart as for the cluster's peers (it was missing for API peers).
    assert_eq!(
        spec.config.graceful_restart.map(|g| g.restart_time),
        Some(120)
    );
    assert_eq!(spec.remote, "198.18.0.99:179".parse().unwrap());
    assert_eq!(spec.local_address, Some("198.18.0.11".parse().unwrap()));
    // The export policy is the node's, as for a global BGPPeer; import accepts.
    let rib = convert::peer_config(&state, &p);
    assert!(rib.export.is_some() && rib.import.is_some());
    assert!(!p.internal && p.kind == topo::PeerKind::Global);
}

#[test]
fn a_listen_port_change_swaps_the_listener_and_keeps_other_sessions() {
    let mut h = harness(0);
    h.load(CLUSTER);
    let tor = h.id_of("198.18.0.1");
    h.commands("198.18.0.1");
    let mesh_before = h.id_of("198.18.0.12");
    h.load(&CLUSTER.replace(
        "spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}",
        "spec: {asNumber: 64512, nodeToNodeMeshEnabled: true, listenPort: 1790}",
    ));
    // The ToR's session (port 179 on its side) is untouched…
    assert_eq!(h.id_of("198.18.0.1"), tor);
    let cmds = h.commands("198.18.0.1");
    assert!(
        !cmds.iter().any(|c| matches!(c, PeerCommand::Stop(_))),
        "{cmds:?}"
    );
    // …the mesh peer listens on the new port too, so its session is new.
    assert_ne!(h.id_of("198.18.0.12"), mesh_before);
}

#[path = "bfd_tests.rs"]
mod bfd_tests;

#[path = "peer_settings_tests.rs"]
mod peer_settings_tests;

#[path = "calico_fields_tests.rs"]
mod calico_fields_tests;

#[path = "priority_tests.rs"]
mod priority_tests;

#[path = "bmp_tests.rs"]
mod bmp_tests;
