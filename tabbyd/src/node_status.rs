//! This node's routing state as a [`NodeReport`], the plain form the Kubernetes source
//! writes into the node's `CalicoNodeStatus` (peers, routes, agent), built from what the
//! daemon's API already serves.

use std::time::{Duration, Instant, SystemTime};

use tabby_api::model as am;
use tabby_topology::source::kube::status::{
    LearnedFrom, MAX_ROUTES, NodeReport, PeerOrigin, PeerReport, RouteReport,
};

use crate::daemon::Daemon;

/// The report now; `None` before the first configuration.
pub fn report(d: &Daemon) -> Option<NodeReport> {
    let st = d.status(Instant::now());
    if st.local_as == 0 {
        return None;
    }
    let now = SystemTime::now();
    let peers: Vec<PeerReport> = d
        .list_peers_brief(Instant::now())
        .into_iter()
        .map(|p| PeerReport {
            address: p.config.address,
            origin: match p.config.peer_type {
                am::PeerType::NodeMesh => PeerOrigin::NodeMesh,
                am::PeerType::Global => PeerOrigin::GlobalPeer,
                _ => PeerOrigin::NodePeer,
            },
            state: p.state.name(),
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(p.state_since_unix_seconds),
        })
        .collect();
    let mesh: std::collections::HashSet<_> = peers
        .iter()
        .filter(|p| p.origin == PeerOrigin::NodeMesh)
        .map(|p| p.address)
        .collect();
    // One query per family, each as long as the status holds (`MAX_ROUTES`): a large
    // table is not paged through under the core's lock for routes that would be cut.
    let mut routes = Vec::new();
    for family in [am::Family::Ipv4, am::Family::Ipv6] {
        let page = d
            .list_routes(&am::RouteQuery {
                family: Some(family),
                prefix: None,
                best_only: true,
                after: None,
                limit: MAX_ROUTES,
            })
            .ok()?;
        for r in &page.routes {
            let Some(best) = r.paths.first() else {
                continue;
            };
            let (learned_from, gateway) = match best.source {
                am::PathSource::Local(_) => (LearnedFrom::Static, None),
                am::PathSource::Peer(a) if mesh.contains(&a) => {
                    (LearnedFrom::NodeMesh(a), Some(best.next_hop))
                }
                am::PathSource::Peer(a) => (LearnedFrom::BgpPeer(a), Some(best.next_hop)),
            };
            routes.push(RouteReport {
                destination: r.prefix,
                gateway,
                learned_from,
                in_fib: d.in_fib(&r.prefix),
            });
        }
    }
    Some(NodeReport {
        version: format!("tabbyd {}", st.version),
        router_id: st.router_id,
        started: now - Duration::from_secs(st.uptime_seconds),
        last_reconfigured: d.last_reconfigured(),
        ready: d.health().ready,
        peers,
        routes,
    })
}
