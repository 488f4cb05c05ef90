//! Helpers shared by the scenario tests: building UPDATEs, wiring RIBs.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipnet::IpNet;
use tabby_bgp::attr::{AsPath, LocalPref, Med, NextHop, Origin};
use tabby_bgp::message::{MpReach, Update};
use tabby_bgp::{Asn, Family, Nlri, PathAttributes};
use tabby_rib::*;

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// An IPv4 announcement with ORIGIN IGP.
pub fn announce(prefixes: &[&str], next_hop: &str, as_path: &[u32]) -> Update {
    let nh = ip(next_hop);
    let attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence(as_path.iter().map(|a| Asn(*a))),
        next_hop: match nh {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        },
        ..Default::default()
    };
    with_attrs(prefixes, next_hop, attributes)
}

/// An announcement with explicit attributes (IPv6 goes in MP_REACH).
/// Peer `peer` announces `prefixes` as [`announce`] builds them; the
/// update must apply.
pub fn learn(
    r: &mut Rib,
    peer: u32,
    prefixes: &[&str],
    next_hop: &str,
    as_path: &[u32],
) -> ApplyOutcome {
    r.apply_update(PeerId(peer), &announce(prefixes, next_hop, as_path))
        .expect("update applies")
}

/// Peer `peer` announces `prefixes` with `attributes`, as [`with_attrs`]
/// builds them; the update must apply.
pub fn learn_with(
    r: &mut Rib,
    peer: u32,
    prefixes: &[&str],
    next_hop: &str,
    attributes: PathAttributes,
) -> ApplyOutcome {
    r.apply_update(PeerId(peer), &with_attrs(prefixes, next_hop, attributes))
        .expect("update applies")
}

pub fn with_attrs(prefixes: &[&str], next_hop: &str, mut attributes: PathAttributes) -> Update {
    let nlri: Vec<Nlri> = prefixes.iter().map(|p| Nlri::new(net(p))).collect();
    let nh = ip(next_hop);
    if nlri
        .first()
        .is_some_and(|n| n.family() == Family::IPV6_UNICAST)
    {
        attributes.next_hop = None;
        Update {
            attributes,
            mp_reach: Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::new(nh),
                nlri,
            }),
            ..Default::default()
        }
    } else {
        if let IpAddr::V4(a) = nh {
            attributes.next_hop = Some(a);
        }
        Update {
            attributes,
            nlri,
            ..Default::default()
        }
    }
}

pub fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes.iter().map(|p| Nlri::new(net(p))).collect(),
        ..Default::default()
    }
}

/// The UPDATEs among `out` addressed to `peer`, flattened.
pub fn updates_for(out: &[Outgoing], peer: PeerId) -> Vec<Update> {
    out.iter()
        .flat_map(|o| o.updates_for(peer).expect("RIB output must decode"))
        .collect()
}

/// Announced prefixes (classic and MP) in `updates`, in order.
pub fn announced(updates: &[Update]) -> Vec<IpNet> {
    updates
        .iter()
        .flat_map(|u| {
            u.nlri
                .iter()
                .chain(u.mp_reach.iter().flat_map(|m| m.nlri.iter()))
                .map(|n| n.prefix)
        })
        .collect()
}

pub fn withdrawn(updates: &[Update]) -> Vec<IpNet> {
    updates
        .iter()
        .flat_map(|u| {
            u.withdrawn
                .iter()
                .chain(u.mp_unreach.iter().flat_map(|m| m.withdrawn.iter()))
                .map(|n| n.prefix)
        })
        .collect()
}

/// A line per UPDATE, stable, for golden comparisons.
pub fn render(updates: &[Update]) -> Vec<String> {
    updates
        .iter()
        .map(|u| {
            if let Some(f) = u.as_end_of_rib() {
                return format!("EOR {f}");
            }
            let mut s = String::new();
            let w = withdrawn(std::slice::from_ref(u));
            if !w.is_empty() {
                s.push_str(&format!(
                    "W {:?} ",
                    w.iter().map(|p| p.to_string()).collect::<Vec<_>>()
                ));
            }
            let a = announced(std::slice::from_ref(u));
            if !a.is_empty() {
                let at = &u.attributes;
                let nh = u
                    .mp_reach
                    .as_ref()
                    .map(|m| m.next_hop.addr)
                    .or(at.next_hop.map(IpAddr::V4))
                    .map(|x| x.to_string())
                    .unwrap_or_default();
                s.push_str(&format!(
                    "A {:?} nh={} path=[{}] lp={:?} med={:?} orig={:?} cl={:?} comm={:?}",
                    a.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    nh,
                    at.as_path,
                    at.local_pref.map(LocalPref::get),
                    at.med.map(Med::get),
                    at.originator_id.map(|o| o.to_string()),
                    at.cluster_list
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>(),
                    at.communities
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>(),
                ));
            }
            s.trim_end().to_string()
        })
        .collect()
}

pub fn now() -> Instant {
    Instant::now()
}

// ------------------------------------------------------------------ network

use std::collections::HashMap;
use std::time::Duration;

use tabby_bgp::codec::CodecCtx;

/// One simulated BGP speaker: a RIB and its sessions.
pub struct Speaker {
    pub name: String,
    pub rib: Rib,
    pub addr: Ipv4Addr,
    /// local peer id → (remote speaker, remote's id for us, ctx toward it)
    pub links: HashMap<PeerId, (usize, PeerId, CodecCtx)>,
    next_id: u32,
}

/// Several speakers wired in memory. UPDATEs travel through the real codec
/// (encode, then decode) so what the RIB builds is what a peer would parse.
pub struct Net {
    pub sp: Vec<Speaker>,
    pub now: Instant,
    pub log: Vec<String>,
    /// Session parameters used by `link` (GR, LLGR, ...).
    pub session_template: fn(Ipv4Addr) -> PeerSession,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            sp: Vec::new(),
            now: Instant::now(),
            log: Vec::new(),
            session_template: PeerSession::basic,
        }
    }
}

impl Net {
    pub fn speaker(&mut self, name: &str, asn: u32, cluster: Option<&str>) -> usize {
        let i = self.sp.len();
        let addr = Ipv4Addr::new(198, 18, 0, (i + 1) as u8);
        let mut c = RibConfig::new(addr, Asn(asn));
        c.cluster_id = cluster.map(v4);
        c.max_paths = 2;
        c.local_addresses = vec![IpAddr::V4(addr)];
        self.sp.push(Speaker {
            name: name.to_string(),
            rib: Rib::new(c),
            addr,
            links: HashMap::new(),
            next_id: 1,
        });
        i
    }

    /// Speaker `i`'s best route to `prefix`.
    pub fn best(&self, i: usize, prefix: &str) -> Option<BestRoute> {
        self.sp[i].rib.best(&net(prefix))
    }

    fn peer_cfg(&self, from: usize, to: usize) -> PeerConfig {
        let asn = self.sp[to].rib.config().local_asn;
        let mut p = PeerConfig::new(IpAddr::V4(self.sp[to].addr), asn);
        p.local_v4 = Some(self.sp[from].addr);
        p.local_v6 = Some(format!("2001:db8::{}", from + 1).parse().unwrap());
        p
    }

    /// Configures a session a↔b (with per-side tweaks) and brings it up.
    pub fn link(
        &mut self,
        a: usize,
        b: usize,
        tweak_a: impl Fn(&mut PeerConfig),
        tweak_b: impl Fn(&mut PeerConfig),
    ) -> (PeerId, PeerId) {
        let ida = PeerId(self.sp[a].next_id);
        self.sp[a].next_id += 1;
        let idb = PeerId(self.sp[b].next_id);
        self.sp[b].next_id += 1;
        let mut ca = self.peer_cfg(a, b);
        tweak_a(&mut ca);
        let mut cb = self.peer_cfg(b, a);
        tweak_b(&mut cb);
        let ebgp = ca.peer_asn != self.sp[a].rib.config().local_asn;
        let ctx = CodecCtx {
            four_octet_as: true,
            ebgp,
            ..CodecCtx::default()
        };
        self.sp[a].rib.add_peer(ida, ca).unwrap();
        self.sp[b].rib.add_peer(idb, cb).unwrap();
        self.sp[a].links.insert(ida, (b, idb, ctx.clone()));
        self.sp[b].links.insert(idb, (a, ida, ctx));
        self.up(a, ida);
        self.up(b, idb);
        (ida, idb)
    }

    /// Brings one side of a configured session up.
    pub fn up(&mut self, a: usize, id: PeerId) {
        let (b, _, _) = self.sp[a].links[&id].clone();
        let s = (self.session_template)(self.sp[b].addr);
        self.sp[a].rib.peer_up(id, s, self.now).unwrap();
    }

    pub fn down(&mut self, a: usize, id: PeerId, kind: DownKind) {
        self.sp[a].rib.peer_down(id, kind, self.now).unwrap();
    }

    /// Delivers UPDATEs until no speaker has anything to send. Sessions
    /// that are down on the receiving side drop what is sent to them.
    pub fn pump(&mut self) {
        for _round in 0..50 {
            let mut moved = false;
            for i in 0..self.sp.len() {
                let out = self.sp[i].rib.drain_outgoing();
                for o in out {
                    for &pid in o.to.peers() {
                        let Some((j, rid, ctx)) = self.sp[i].links.get(&pid).cloned() else {
                            continue;
                        };
                        assert!(
                            o.batch.ctx().encodes_like(&ctx),
                            "the group encodes as the session negotiated"
                        );
                        for d in o.updates_for(pid).expect("RIB output must decode") {
                            let from = self.sp[i].name.clone();
                            let to = self.sp[j].name.clone();
                            for line in render(std::slice::from_ref(&d)) {
                                self.log.push(format!("{from} -> {to}: {line}"));
                            }
                            moved = true;
                            match self.sp[j].rib.apply_update(rid, &d) {
                                Ok(_) | Err(RibError::PeerNotUp(_)) => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("network did not converge in 50 rounds");
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        for s in &mut self.sp {
            s.rib.on_timer(self.now);
        }
    }

    /// Each speaker's best routes, one line each.
    pub fn tables(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.sp {
            for (p, b) in s.rib.best_routes() {
                let hops: Vec<String> = b.next_hops.iter().map(|h| h.addr.to_string()).collect();
                let a = &b.attributes.attrs;
                out.push(format!(
                    "{}: {p} via [{}] {}path=[{}] lp={:?} orig={:?} cl={:?}{}",
                    s.name,
                    hops.join(","),
                    if b.local { "local " } else { "" },
                    a.as_path,
                    a.local_pref.map(LocalPref::get),
                    a.originator_id.map(|o| o.to_string()),
                    a.cluster_list
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>(),
                    if b.stale { " STALE" } else { "" },
                ));
            }
        }
        out
    }

    pub fn clear_log(&mut self) {
        self.log.clear();
    }
}

/// Compares `actual` with the golden file `tests/golden/<name>.txt`;
/// `TABBY_UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, actual: &[String]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    let text = actual.join("\n") + "\n";
    if std::env::var_os("TABBY_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with TABBY_UPDATE_GOLDEN=1 and review it",
            path.display()
        )
    });
    if want != text {
        panic!("golden mismatch for {name}\n--- want\n{want}\n--- got\n{text}");
    }
}

pub fn tweak_none(_: &mut PeerConfig) {}
pub fn tweak_client(p: &mut PeerConfig) {
    p.rr_client = true;
}
