//! `CalicoNodeStatus`: where Calico's tooling reads a node's routing state. When one exists
//! for this node, Tabby fills its `status` as calico-node does: the agent (class `Agent`),
//! the BGP sessions (`BGP`: address, type, state, since; counts per family) and the routes
//! (`Routes`), each only when `spec.classes` asks for it. Written when the object appears or
//! its spec changes, then every `updatePeriodSeconds` (0: never again), and only when the
//! content changed. The status subresource is used where the CRD has one (Calico 3.34+ and
//! Tabby's CRDs), else the whole object is replaced, as calico-node ≤ 3.32 does.
//!
//! The daemon supplies the data as a plain [`NodeReport`]; nothing here knows its types.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use ipnet::IpNet;
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value as Json, json};
use tokio::time::Instant;

use super::{KubeTarget, client_for, detect_group};

/// How a peering came to be, in Calico's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerOrigin {
    NodeMesh,
    NodePeer,
    GlobalPeer,
}

/// One BGP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    pub address: IpAddr,
    pub origin: PeerOrigin,
    /// The FSM state as Calico spells it: Idle, Connect, Active, OpenSent, OpenConfirm,
    /// Established.
    pub state: &'static str,
    /// When the session entered that state.
    pub since: SystemTime,
}

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnedFrom {
    /// Originated by this node (a block, a service address): a blackhole or local route.
    Static,
    NodeMesh(IpAddr),
    BgpPeer(IpAddr),
}

/// One best route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteReport {
    pub destination: IpNet,
    /// The next hop; `None` for blackhole and local routes.
    pub gateway: Option<IpAddr>,
    pub learned_from: LearnedFrom,
    /// Programmed in the kernel (`FIB`), else only in the RIB.
    pub in_fib: bool,
}

/// This node's routing state, as the daemon sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    pub version: String,
    pub router_id: Ipv4Addr,
    pub started: SystemTime,
    pub last_reconfigured: Option<SystemTime>,
    pub ready: bool,
    pub peers: Vec<PeerReport>,
    pub routes: Vec<RouteReport>,
}

/// Gives the current report (`None` before the first configuration).
pub type Reporter = Arc<dyn Fn() -> Option<NodeReport> + Send + Sync>;

/// At most this many routes per family go into one status (an object must stay well under
/// etcd's 1.5 MB); the counts in `bgp` stay exact.
pub const MAX_ROUTES: usize = 2000;

/// `YYYY-MM-DD HH:MM:SS` in UTC, the form BIRD's `show protocols` gives calico-node.
fn bird_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// RFC 3339 (`metav1.Time`).
fn rfc3339(t: SystemTime) -> String {
    bird_time(t).replacen(' ', "T", 1) + "Z"
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The `status` of a CalicoNodeStatus for `classes` (`Agent`, `BGP`, `Routes`), without
/// `lastUpdated`.
pub fn status_json(r: &NodeReport, classes: &[String]) -> Json {
    let has = |c: &str| classes.iter().any(|x| x == c);
    let mut status = serde_json::Map::new();
    if has("Agent") {
        let agent = json!({
            "state": if r.ready { "Ready" } else { "NotReady" },
            "version": r.version,
            "routerID": r.router_id.to_string(),
            "lastBootTime": bird_time(r.started),
            "lastReconfigurationTime": r.last_reconfigured.map(bird_time).unwrap_or_default(),
        });
        status.insert(
            "agent".into(),
            json!({"birdV4": agent.clone(), "birdV6": agent}),
        );
    }
    if has("BGP") {
        let mut bgp = serde_json::Map::new();
        for (v6, fam) in [(false, "V4"), (true, "V6")] {
            let peers: Vec<&PeerReport> = r
                .peers
                .iter()
                .filter(|p| p.address.is_ipv6() == v6)
                .collect();
            let up = peers.iter().filter(|p| p.state == "Established").count();
            bgp.insert(format!("numberEstablished{fam}"), json!(up));
            bgp.insert(
                format!("numberNotEstablished{fam}"),
                json!(peers.len() - up),
            );
            let list: Vec<Json> = peers
                .iter()
                .map(|p| {
                    json!({
                        "peerIP": p.address.to_string(),
                        "type": match p.origin {
                            PeerOrigin::NodeMesh => "NodeMesh",
                            PeerOrigin::NodePeer => "NodePeer",
                            PeerOrigin::GlobalPeer => "GlobalPeer",
                        },
                        "state": p.state,
                        "since": bird_time(p.since),
                    })
                })
                .collect();
            bgp.insert(format!("peers{fam}"), Json::Array(list));
        }
        status.insert("bgp".into(), Json::Object(bgp));
    }
    if has("Routes") {
        let mut routes = serde_json::Map::new();
        for (v6, fam) in [(false, "V4"), (true, "V6")] {
            let list: Vec<Json> = r
                .routes
                .iter()
                .filter(|x| x.destination.addr().is_ipv6() == v6)
                .take(MAX_ROUTES)
                .map(|x| {
                    let (source, peer) = match x.learned_from {
                        LearnedFrom::Static => ("Static", None),
                        LearnedFrom::NodeMesh(a) => ("NodeMesh", Some(a)),
                        LearnedFrom::BgpPeer(a) => ("BGPPeer", Some(a)),
                    };
                    let mut from = json!({"sourceType": source});
                    if let Some(a) = peer {
                        from["peerIP"] = json!(a.to_string());
                    }
                    json!({
                        "type": if x.in_fib { "FIB" } else { "RIB" },
                        "destination": x.destination.to_string(),
                        "gateway": x.gateway.map_or("N/A".to_string(), |g| g.to_string()),
                        "interface": "",
                        "learnedFrom": from,
                    })
                })
                .collect();
            routes.insert(format!("routes{fam}"), Json::Array(list));
        }
        status.insert("routes".into(), Json::Object(routes));
    }
    Json::Object(status)
}

/// One CalicoNodeStatus of this node, as last seen.
struct Tracked {
    obj: DynamicObject,
    generation: i64,
    /// The generation last written for, when, and what.
    written: Option<(i64, Instant, Json)>,
}

impl Tracked {
    fn classes(&self) -> Vec<String> {
        self.obj.data["spec"]["classes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn period(&self) -> Option<Duration> {
        self.obj.data["spec"]["updatePeriodSeconds"]
            .as_u64()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    }

    /// When the next write is due (`None`: not before the spec changes).
    fn due(&self, now: Instant) -> Option<Instant> {
        match &self.written {
            None => Some(now),
            Some((g, _, _)) if *g != self.generation => Some(now),
            Some((_, at, _)) => self.period().map(|p| *at + p),
        }
    }
}

/// Keeps this node's CalicoNodeStatus objects filled until dropped. Problems (no
/// permission, no CRD) are logged once each and retried with back-off; they never touch
/// routing.
pub async fn run(target: KubeTarget, node: String, report: Reporter) {
    let mut backoff = Duration::from_secs(1);
    let (client, group) = loop {
        match client_for(&target).await {
            Ok(c) => match detect_group(&c).await {
                Ok(g) => break (c, g),
                Err(e) => tracing::debug!(error = %e, "node status: API server not reachable yet"),
            },
            Err(e) => tracing::debug!(error = %e, "node status: no Kubernetes client yet"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    };
    let ar = group.api_resource_named("CalicoNodeStatus", "caliconodestatuses");
    tracing::debug!(group = ?group, "node status: watching CalicoNodeStatus");
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let stream = watcher::watcher(api.clone(), watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    let mut tracked: BTreeMap<String, Tracked> = BTreeMap::new();
    let mut last_problem = String::new();
    loop {
        let now = Instant::now();
        let next_due = tracked.values().filter_map(|t| t.due(now)).min();
        let ev = match next_due {
            Some(at) => tokio::time::timeout_at(at, stream.next()).await.ok(),
            None => Some(stream.next().await),
        };
        match ev {
            Some(None) => return,
            Some(Some(Ok(Event::Apply(o) | Event::InitApply(o)))) => {
                if o.data["spec"]["node"].as_str() != Some(node.as_str()) {
                    continue;
                }
                let name = o.metadata.name.clone().unwrap_or_default();
                let generation = o.metadata.generation.unwrap_or(0);
                let old = tracked.remove(&name);
                if old.is_none() {
                    tracing::info!(object = %name, "reporting this node's status in CalicoNodeStatus");
                }
                let written = old.and_then(|t| t.written);
                tracked.insert(
                    name,
                    Tracked {
                        obj: o,
                        generation,
                        written,
                    },
                );
            }
            Some(Some(Ok(Event::Delete(o)))) => {
                tracked.remove(&o.metadata.name.unwrap_or_default());
            }
            Some(Some(Ok(Event::Init | Event::InitDone))) => {}
            Some(Some(Err(e))) => {
                let text = e.to_string();
                if text != last_problem {
                    tracing::warn!(error = %text, "cannot watch CalicoNodeStatus; node status is not reported (grant list and watch on caliconodestatuses)");
                    last_problem = text;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            None => {}
        }
        let now = Instant::now();
        if !tracked
            .values()
            .any(|t| t.due(now).is_some_and(|d| d <= now))
        {
            continue;
        }
        // Built only when a write is due: it reads the daemon's tables under its lock.
        let Some(r) = report() else {
            // No configuration yet: nothing to say; look again in a moment.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        for (name, t) in tracked.iter_mut() {
            if t.due(now).is_none_or(|d| d > now) {
                continue;
            }
            let status = status_json(&r, &t.classes());
            if t.written.as_ref().is_some_and(|(_, _, s)| *s == status) {
                // Same content: calico-node skips the write too.
                t.written = Some((t.generation, now, status));
                continue;
            }
            let mut obj = t.obj.clone();
            let mut full = status.clone();
            full["lastUpdated"] = json!(rfc3339(SystemTime::now()));
            obj.data["status"] = full;
            let pp = PostParams::default();
            let res = match api.replace_status(name, &pp, &obj).await {
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                    // No status subresource (Calico's CRDs before 3.34): the whole object.
                    api.replace(name, &pp, &obj).await
                }
                other => other,
            };
            match res {
                Ok(new) => {
                    t.obj = new;
                    t.written = Some((t.generation, now, status));
                    tracing::debug!(object = %name, "CalicoNodeStatus written");
                }
                Err(e) => {
                    // A conflict resolves with the next watch event; others are retried
                    // at the next period (or spec change).
                    let text = format!("cannot write CalicoNodeStatus {name}: {e}");
                    if text != last_problem {
                        tracing::warn!(error = %text, "node status not reported");
                        last_problem = text;
                    }
                    t.written = Some((t.generation, now, Json::Null));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn report() -> NodeReport {
        NodeReport {
            version: "tabbyd 0.1.0".into(),
            router_id: "192.0.2.1".parse().unwrap(),
            started: at(1_796_601_600), // 2026-12-07 00:00:00
            last_reconfigured: Some(at(1_796_601_661)),
            ready: true,
            peers: vec![
                PeerReport {
                    address: "192.0.2.2".parse().unwrap(),
                    origin: PeerOrigin::NodeMesh,
                    state: "Established",
                    since: at(1_796_601_700),
                },
                PeerReport {
                    address: "192.0.2.3".parse().unwrap(),
                    origin: PeerOrigin::GlobalPeer,
                    state: "Active",
                    since: at(1_796_601_700),
                },
                PeerReport {
                    address: "2001:db8::2".parse().unwrap(),
                    origin: PeerOrigin::NodePeer,
                    state: "Established",
                    since: at(1_796_601_700),
                },
            ],
            routes: vec![
                RouteReport {
                    destination: "198.51.100.0/26".parse().unwrap(),
                    gateway: None,
                    learned_from: LearnedFrom::Static,
                    in_fib: true,
                },
                RouteReport {
                    destination: "198.51.100.64/26".parse().unwrap(),
                    gateway: Some("192.0.2.2".parse().unwrap()),
                    learned_from: LearnedFrom::NodeMesh("192.0.2.2".parse().unwrap()),
                    in_fib: true,
                },
            ],
        }
    }

    #[test]
    fn times_as_bird_and_kubernetes_write_them() {
        assert_eq!(bird_time(at(0)), "1970-01-01 00:00:00");
        assert_eq!(bird_time(at(1_796_601_661)), "2026-12-07 00:01:01");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn status_has_only_the_classes_asked_for() {
        let s = status_json(&report(), &["BGP".into()]);
        assert!(s.get("agent").is_none() && s.get("routes").is_none());
        let bgp = &s["bgp"];
        assert_eq!(bgp["numberEstablishedV4"], 1);
        assert_eq!(bgp["numberNotEstablishedV4"], 1);
        assert_eq!(bgp["numberEstablishedV6"], 1);
        assert_eq!(bgp["peersV4"][0]["peerIP"], "192.0.2.2");
        assert_eq!(bgp["peersV4"][0]["type"], "NodeMesh");
        assert_eq!(bgp["peersV4"][1]["type"], "GlobalPeer");
        assert_eq!(bgp["peersV4"][1]["state"], "Active");
        assert_eq!(bgp["peersV6"][0]["type"], "NodePeer");
        assert_eq!(bgp["peersV4"][0]["since"], "2026-12-07 00:01:40");

        let s = status_json(&report(), &["Agent".into(), "Routes".into()]);
        assert_eq!(s["agent"]["birdV4"]["state"], "Ready");
        assert_eq!(s["agent"]["birdV4"]["routerID"], "192.0.2.1");
        assert_eq!(s["agent"]["birdV6"]["lastBootTime"], "2026-12-07 00:00:00");
        let r = &s["routes"]["routesV4"];
        assert_eq!(r[0]["gateway"], "N/A");
        assert_eq!(r[0]["learnedFrom"]["sourceType"], "Static");
        assert_eq!(r[1]["type"], "FIB");
        assert_eq!(r[1]["learnedFrom"]["peerIP"], "192.0.2.2");
        assert_eq!(s["routes"]["routesV6"], json!([]));
    }
}
