//! Workload peerings: `BGPPeer` `localWorkloadSelector` (Calico 3.31+), BGP between this
//! node and the workloads (pods) running on it, as confd renders them
//! (`client.go` `localBGPPeerDataAsBGPPeers`, `local_bgp_peer_watcher.go`,
//! `bgp_processor.go` `Local_Workload_*` protocols).
//!
//! - Which workloads: those whose endpoint status file (written by Felix) names the
//!   BGPPeer in `bgpPeerName`; Felix picked that BGPPeer among those selecting this node
//!   and the workload. The BGPPeer must still apply to this node here (`node`,
//!   `nodeSelector` or global), as for any BGPPeer; one that does not exist, or selects
//!   another node, gives nothing.
//! - Addresses: the first of `ipv4Nets` and the first of `ipv6Nets`, one session each. A
//!   list whose first entry is not a CIDR skips the whole endpoint (confd does too).
//! - Session: the BGPPeer's `asNumber` and `localASNumber` and `filters`; passive (the
//!   workload connects); no source address; no password, TTL security, restart or
//!   keepalive time, next-hop mode or `numAllowedLocalASNumbers` (confd carries none of
//!   them for these peers); port 179; route-reflector client if iBGP and this node is a
//!   reflector (confd's rule for any peer without a cluster id). No reverse peering.
//! - The export policy is the one of every other peer (`calico_export_to_bgp_peers`).

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Candidate, Ctx, filter_rules};
use crate::bfd::BfdAnnotation;
use crate::endpoint_status::WorkloadEndpointStatus;
use crate::state::*;
use crate::types::*;

/// The peerings `spec` (a `localWorkloadSelector` BGPPeer that applies to this node)
/// asks for: one per family of each endpoint Felix gave it.
pub(super) fn workload_candidates<'a>(
    ctx: &Ctx<'a>,
    spec: &'a BgpPeer,
    kind: PeerKind,
    warnings: &mut Vec<String>,
) -> Vec<Candidate<'a>> {
    // The API requires asNumber with localWorkloadSelector; model.rs enforces it.
    let Some(peer_as) = spec.as_number else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (file, ep) in &ctx.res.local_endpoints.endpoints {
        if ep.bgp_peer() != Some(spec.name.as_str()) {
            continue;
        }
        let addresses = match workload_addresses(ep) {
            Ok(a) => a,
            Err(problem) => {
                warnings.push(format!(
                    "endpoint status file '{file}' (BGPPeer {}): {problem}; no session to this workload until Felix writes a valid address",
                    spec.name
                ));
                continue;
            }
        };
        if addresses.is_empty() {
            tracing::debug!(file = %file, bgp_peer = %spec.name, "workload has no address yet");
        }
        for ip in addresses {
            out.push(Candidate {
                ip,
                port: None,
                peer_as,
                rr_cluster_id: None,
                calico_node: None,
                calico_peer_ip: false,
                kind,
                spec,
                workload: Some(file.as_str()),
            });
        }
    }
    out
}

/// The first IPv4 and the first IPv6 address of an endpoint, as confd takes them.
fn workload_addresses(ep: &WorkloadEndpointStatus) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for (field, nets) in [("ipv4Nets", &ep.ipv4_nets), ("ipv6Nets", &ep.ipv6_nets)] {
        if let Some(first) = nets.first() {
            let net: IpNet = first
                .trim()
                .parse()
                .map_err(|_| format!("{field}[0] '{first}' is not an address/prefix-length"))?;
            out.push(net.addr());
        }
    }
    Ok(out)
}

/// The session to one workload address (`file` is the candidate's endpoint status file).
pub(super) fn build_workload_peer(
    ctx: &Ctx<'_>,
    me: &Node,
    state: &mut NodeState,
    key: PeerKey,
    file: &str,
    c: Candidate<'_>,
) -> Peer {
    let (spec, peer_as) = (c.spec, c.peer_as);
    let origin = format!("BGPPeer {}, local workload {file}", spec.name);
    let local_as = spec.local_as_number.unwrap_or(state.local_as);
    let internal = peer_as == local_as;
    let v6 = key.address.is_ipv6();
    let normal_priority = state.normal_route_priority(v6);
    let (import_rules, export_rules) = filter_rules(
        ctx,
        spec,
        v6,
        internal,
        normal_priority,
        &origin,
        &mut state.warnings,
    );
    Peer {
        key,
        // confd renders these as their own protocols, whatever the BGPPeer's scope.
        kind: PeerKind::Workload,
        origin,
        calico_node: None,
        peer_as,
        local_as,
        local_as_override: spec.local_as_number,
        passive: true,
        rr_client: internal && me.rr_cluster_id.is_some(),
        password: None,
        ttl_security: None,
        source_address: None,
        next_hop: NextHop::Auto,
        num_allowed_local_as: None,
        graceful_restart_time: None,
        keepalive_time: None,
        reachable_by: None,
        internal,
        filters: spec.filters.clone(),
        import_rules,
        export_rules,
        bfd: spec.bfd.as_ref().and_then(BfdAnnotation::settings),
    }
}
