//! Calico's `projectcalico.org/v3` wire model: one YAML/JSON object in, one validated
//! [`Resource`] out. Field names are Calico's own (camelCase); defaults are Calico's
//! (`asNumber` 64512, `nodeToNodeMeshEnabled` true, `blockSize` 26/122, `sourceAddress`
//! UseNodeIP, `reversePeering` Auto). Validation follows what Calico's API server rejects.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use base64::Engine;
use ipnet::IpNet;
use serde_yaml_ng::Value;

use crate::bfd::{BFD_ANNOTATION, BfdAnnotation};
use crate::bgp_filter;
use crate::bmp::BMP_STATIONS_ANNOTATION;
use crate::error::TopologyError;
use crate::fields::{Fields, describe};
use crate::selector::Selector;
use crate::types::*;

pub(crate) const CALICO_API_VERSION: &str = "projectcalico.org/v3";

/// Reads one object. `Ok(None)`: a kind Tabby does not use (logged at debug, ignored).
/// `kind_hint` fills in a missing `kind` (etcd keys carry it in their path).
pub fn parse_object(
    value: &Value,
    origin: &str,
    kind_hint: Option<Kind>,
) -> Result<Option<Resource>, TopologyError> {
    let Value::Mapping(map) = value else {
        return Err(TopologyError::Parse {
            origin: origin.to_string(),
            reason: format!(
                "expected a mapping with apiVersion/kind/metadata/spec, found {}",
                describe(value)
            ),
        });
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str);
    let kind_str = map.get("kind").and_then(Value::as_str);
    let kind = match kind_str {
        Some(k) => Kind::from_kind_str(k),
        None => kind_hint,
    };
    let Some(kind) = kind else {
        tracing::debug!(
            origin,
            kind = kind_str,
            api_version,
            "ignoring a kind Tabby does not use"
        );
        return Ok(None);
    };
    // A `kind: Node` of apiVersion v1 is a Kubernetes Node, not Calico's: ignore it.
    let expected_api = match kind {
        Kind::Secret | Kind::Service => "v1",
        Kind::EndpointSlice => "discovery.k8s.io/v1",
        _ => CALICO_API_VERSION,
    };
    if let Some(api) = api_version
        && api != expected_api
    {
        tracing::debug!(
            origin,
            kind = kind.as_str(),
            api_version = api,
            "ignoring an apiVersion Tabby does not use"
        );
        return Ok(None);
    }
    let mut meta = Fields::new(kind, "?", "metadata", map.get("metadata"))?;
    let name = meta.nonempty("name")?.ok_or_else(|| TopologyError::Parse {
        origin: origin.to_string(),
        reason: format!("a {kind} has no metadata.name"),
    })?;
    let namespace = meta.nonempty("namespace")?;
    let labels = meta.string_map("labels")?;
    // The BFD annotation is read apart: a bad value of it never rejects the resource.
    let annotations =
        meta.string_map_except("annotations", &[BFD_ANNOTATION, BMP_STATIONS_ANNOTATION])?;
    let bmp_stations = map
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(BMP_STATIONS_ANNOTATION))
        .and_then(crate::bmp::from_yaml);
    let bfd = map
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(BFD_ANNOTATION))
        .and_then(BfdAnnotation::from_yaml);
    // Other metadata (uid, resourceVersion, creationTimestamp…) is bookkeeping: not reported.

    let name = name.as_str();
    let resource = match kind {
        Kind::Node => Resource::Node(parse_node(name, labels, &annotations, map.get("spec"))?),
        Kind::BgpConfiguration => {
            let mut cfg = parse_bgp_configuration(name, map.get("spec"), bfd)?;
            cfg.bmp_stations = bmp_stations;
            Resource::BgpConfiguration(cfg)
        }
        Kind::BgpPeer => Resource::BgpPeer(parse_bgp_peer(name, map.get("spec"), bfd)?),
        Kind::IpPool => Resource::IpPool(parse_ip_pool(name, map.get("spec"))?),
        Kind::BgpFilter => Resource::BgpFilter(bgp_filter::parse(name, map.get("spec"))?),
        Kind::BlockAffinity => {
            Resource::BlockAffinity(parse_block_affinity(name, map.get("spec"))?)
        }
        Kind::Secret => Resource::Secret(parse_secret(name, namespace, value)?),
        Kind::Service => Resource::Service(crate::services::parse_service(
            namespace.as_deref(),
            name,
            value,
        )?),
        Kind::EndpointSlice => Resource::EndpointSlice(crate::services::parse_endpoint_slice(
            namespace.as_deref(),
            name,
            value,
        )?),
    };
    Ok(Some(resource))
}

fn net_of(f: &Fields<'_>, key: &str, s: &str) -> Result<IpNet, TopologyError> {
    // Calico accepts a bare address where a CIDR is expected and reads it as a host route.
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| f.err(key, format!("'{s}' is not a CIDR such as 100.64.0.0/16")))
}

fn parse_node(
    name: &str,
    labels: std::collections::BTreeMap<String, String>,
    annotations: &std::collections::BTreeMap<String, String>,
    spec: Option<&Value>,
) -> Result<Node, TopologyError> {
    let mut spec = Fields::new(Kind::Node, name, "spec", spec)?;
    let mut bgp = spec.sub("bgp")?;
    let ipv4 = match bgp.nonempty("ipv4Address")? {
        None => None,
        Some(s) => Some(match net_of(&bgp, "ipv4Address", &s)? {
            IpNet::V4(n) => n,
            IpNet::V6(_) => return Err(bgp.err("ipv4Address", format!("'{s}' is not IPv4"))),
        }),
    };
    let ipv6 = match bgp.nonempty("ipv6Address")? {
        None => None,
        Some(s) => Some(match net_of(&bgp, "ipv6Address", &s)? {
            IpNet::V6(n) => n,
            IpNet::V4(_) => return Err(bgp.err("ipv6Address", format!("'{s}' is not IPv6"))),
        }),
    };
    let as_number = bgp.as_number("asNumber")?;
    let rr_field = bgp.nonempty("routeReflectorClusterID")?;
    let _ = bgp.raw("ipv4IPIPTunnelAddr");
    bgp.finish();
    let rr = match rr_field {
        Some(s) => Some((s, "spec.bgp.routeReflectorClusterID")),
        None => annotations
            .get(RR_CLUSTER_ID_ANNOTATION)
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                (
                    s.clone(),
                    "metadata.annotations[projectcalico.org/RouteReflectorClusterID]",
                )
            }),
    };
    let rr_cluster_id = match rr {
        None => None,
        Some((s, field)) => Some(s.trim().parse::<Ipv4Addr>().map_err(|_| {
            TopologyError::invalid(
                "Node",
                name,
                field,
                format!(
                    "'{s}' is not a cluster id in dotted-quad form such as 198.18.0.100 (RFC 4456 §7)"
                ),
            )
        })?),
    };
    // Other spec sections (addresses, wireguard, orchRefs…) belong to Felix: not ours to report.
    Ok(Node {
        name: name.to_string(),
        labels,
        ipv4,
        ipv6,
        as_number,
        rr_cluster_id,
    })
}

fn parse_secret_ref(
    f: &mut Fields<'_>,
    key: &'static str,
) -> Result<Option<SecretKeyRef>, TopologyError> {
    let mut pw = f.sub(key)?;
    let mut r = pw.sub("secretKeyRef")?;
    let name = r.nonempty("name")?;
    let k = r.nonempty("key")?;
    let optional = r.bool("optional")?.unwrap_or(false);
    let out = match (name, k) {
        (None, None) => None,
        (Some(name), Some(key)) => Some(SecretKeyRef {
            name,
            key,
            optional,
        }),
        (None, Some(_)) => return Err(r.err("name", "a secretKeyRef needs the Secret's name")),
        (Some(_), None) => {
            return Err(r.err("key", "a secretKeyRef needs the key inside the Secret"));
        }
    };
    r.finish();
    pw.finish();
    Ok(out)
}

pub(crate) fn parse_community(s: &str) -> Option<Community> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    match parts.as_slice() {
        [a, b] => Some(Community::Standard(a.parse().ok()?, b.parse().ok()?)),
        [a, b, c] => Some(Community::Large(
            a.parse().ok()?,
            b.parse().ok()?,
            c.parse().ok()?,
        )),
        _ => None,
    }
}

fn parse_bgp_configuration(
    name: &str,
    spec: Option<&Value>,
    bfd: Option<BfdAnnotation>,
) -> Result<BgpConfiguration, TopologyError> {
    let mut f = Fields::new(Kind::BgpConfiguration, name, "spec", spec)?;
    let mut cfg = BgpConfiguration {
        name: name.to_string(),
        bfd,
        log_severity_screen: f.nonempty("logSeverityScreen")?,
        node_to_node_mesh_enabled: f.bool("nodeToNodeMeshEnabled")?,
        as_number: f.as_number("asNumber")?,
        ..Default::default()
    };
    if let Some(p) = f.uint("listenPort", u64::from(u16::MAX))? {
        if p == 0 {
            return Err(f.err("listenPort", "must be from 1 to 65535"));
        }
        cfg.listen_port = u16::try_from(p).ok();
    }
    cfg.bind_mode = match f.nonempty("bindMode")?.as_deref() {
        None => None,
        Some("None") => Some(BindMode::None),
        Some("NodeIP") => Some(BindMode::NodeIp),
        Some(other) => return Err(f.err("bindMode", format!("'{other}' is not None or NodeIP"))),
    };
    for (key, out) in [
        ("serviceClusterIPs", &mut cfg.service_cluster_ips),
        ("serviceExternalIPs", &mut cfg.service_external_ips),
        ("serviceLoadBalancerIPs", &mut cfg.service_load_balancer_ips),
    ] {
        for (i, item) in f.list(key)?.iter().enumerate() {
            let mut b = Fields::new(
                Kind::BgpConfiguration,
                name,
                f.path_of(&format!("{key}[{i}]")),
                Some(item),
            )?;
            if let Some(c) = b.nonempty("cidr")? {
                out.push(net_of(&b, "cidr", &c)?.trunc());
            }
            b.finish();
        }
    }
    // Named communities first: prefixAdvertisements may refer to them by name.
    let mut named = Vec::new();
    for (i, item) in f.list("communities")?.iter().enumerate() {
        let mut c = Fields::new(
            Kind::BgpConfiguration,
            name,
            f.path_of(&format!("communities[{i}]")),
            Some(item),
        )?;
        let cname = c
            .nonempty("name")?
            .ok_or_else(|| c.err("name", "a community needs a name"))?;
        let value = c
            .nonempty("value")?
            .ok_or_else(|| c.err("value", "a community needs a value"))?;
        let community = parse_community(&value).ok_or_else(|| {
            c.err(
                "value",
                format!("'{value}' is not aa:nn (16-bit each) or aa:nn:mm (32-bit each)"),
            )
        })?;
        c.finish();
        named.push((cname, community));
    }
    for (i, item) in f.list("prefixAdvertisements")?.iter().enumerate() {
        let mut p = Fields::new(
            Kind::BgpConfiguration,
            name,
            f.path_of(&format!("prefixAdvertisements[{i}]")),
            Some(item),
        )?;
        let cidr = p
            .nonempty("cidr")?
            .ok_or_else(|| p.err("cidr", "a prefix advertisement needs a cidr"))?;
        let cidr = net_of(&p, "cidr", &cidr)?.trunc();
        let mut communities = Vec::new();
        for (j, c) in p.string_list("communities")?.iter().enumerate() {
            let resolved = named
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, v)| *v)
                .or_else(|| parse_community(c))
                .ok_or_else(|| {
                    p.err(
                        &format!("communities[{j}]"),
                        format!("'{c}' is neither a community named in spec.communities nor aa:nn / aa:nn:mm"),
                    )
                })?;
            communities.push(resolved);
        }
        p.finish();
        cfg.prefix_advertisements
            .push(PrefixAdvertisement { cidr, communities });
    }
    cfg.node_mesh_password = parse_secret_ref(&mut f, "nodeMeshPassword")?;
    cfg.node_mesh_max_restart_time = f.duration("nodeMeshMaxRestartTime")?;
    cfg.ignored_interfaces = f.string_list("ignoredInterfaces")?;
    cfg.service_load_balancer_aggregation =
        match f.nonempty("serviceLoadBalancerAggregation")?.as_deref() {
            None => None,
            Some("Enabled") => Some(true),
            Some("Disabled") => Some(false),
            Some(other) => {
                return Err(f.err(
                    "serviceLoadBalancerAggregation",
                    format!("'{other}' is not Enabled or Disabled"),
                ));
            }
        };
    cfg.program_cluster_routes = match f.nonempty("programClusterRoutes")?.as_deref() {
        None => None,
        Some("Enabled") => Some(ProgramClusterRoutes::Enabled),
        Some("Disabled") => Some(ProgramClusterRoutes::Disabled),
        Some("EnabledIPIPOnly") => Some(ProgramClusterRoutes::EnabledIpipOnly),
        Some("EnabledNoEncapOnly") => Some(ProgramClusterRoutes::EnabledNoEncapOnly),
        Some(other) => {
            return Err(f.err(
                "programClusterRoutes",
                format!(
                    "'{other}' is not Enabled, Disabled, EnabledIPIPOnly or EnabledNoEncapOnly"
                ),
            ));
        }
    };
    for (key, out) in [
        (
            "ipv4NormalRoutePriority",
            &mut cfg.ipv4_normal_route_priority,
        ),
        (
            "ipv6NormalRoutePriority",
            &mut cfg.ipv6_normal_route_priority,
        ),
    ] {
        if let Some(p) = f.uint(key, 2_147_483_646)? {
            if p == 0 {
                return Err(f.err(key, "must be from 1 to 2147483646"));
            }
            *out = u32::try_from(p).ok();
        }
    }
    f.finish();

    // Calico's API refuses cluster-wide settings on per-node configurations.
    if name != "default" {
        let global_only = [
            (
                "nodeToNodeMeshEnabled",
                cfg.node_to_node_mesh_enabled.is_some(),
            ),
            ("asNumber", cfg.as_number.is_some()),
            ("serviceClusterIPs", !cfg.service_cluster_ips.is_empty()),
            ("serviceExternalIPs", !cfg.service_external_ips.is_empty()),
            (
                "serviceLoadBalancerIPs",
                !cfg.service_load_balancer_ips.is_empty(),
            ),
            ("nodeMeshPassword", cfg.node_mesh_password.is_some()),
            (
                "nodeMeshMaxRestartTime",
                cfg.node_mesh_max_restart_time.is_some(),
            ),
        ];
        if let Some((field, _)) = global_only.iter().find(|(_, set)| *set) {
            return Err(TopologyError::invalid(
                "BGPConfiguration",
                name,
                format!("spec.{field}"),
                "can only be set in BGPConfiguration 'default'",
            ));
        }
        if !name.starts_with("node.") {
            return Err(TopologyError::invalid(
                "BGPConfiguration",
                name,
                "metadata.name",
                "must be 'default' or 'node.<node name>'",
            ));
        }
    }
    Ok(cfg)
}

/// `peerIP`: `A.B.C.D`, `A.B.C.D:port`, `X::Y` or `[X::Y]:port`.
fn parse_peer_ip(s: &str) -> Option<(IpAddr, Option<u16>)> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let sa = s.parse::<SocketAddr>().ok()?;
    Some((sa.ip(), Some(sa.port())))
}

fn parse_bgp_peer(
    name: &str,
    spec: Option<&Value>,
    bfd: Option<BfdAnnotation>,
) -> Result<BgpPeer, TopologyError> {
    let mut f = Fields::new(Kind::BgpPeer, name, "spec", spec)?;
    let node = f.nonempty("node")?;
    let node_selector = parse_selector_field(&mut f, "nodeSelector")?;
    let peer_selector = parse_selector_field(&mut f, "peerSelector")?;
    let peer_ip = match f.nonempty("peerIP")? {
        None => None,
        Some(s) => Some(parse_peer_ip(&s).ok_or_else(|| {
            f.err(
                "peerIP",
                format!("'{s}' is not an address, A.B.C.D:port or [X::Y]:port"),
            )
        })?),
    };
    if let Some((_, Some(0))) = peer_ip {
        return Err(f.err("peerIP", "port 0 is not a port"));
    }
    let as_number = f.as_number("asNumber")?;
    let keep_original_next_hop = f.bool("keepOriginalNextHop")?.unwrap_or(false);
    let next_hop_mode = match f.nonempty("nextHopMode")?.as_deref() {
        None | Some("Auto") => NextHopMode::Auto,
        Some("Self") => NextHopMode::SelfAddr,
        Some("Keep") => NextHopMode::Keep,
        Some(o) => return Err(f.err("nextHopMode", format!("'{o}' is not Auto, Self or Keep"))),
    };
    let password = parse_secret_ref(&mut f, "password")?;
    let source_address = match f.nonempty("sourceAddress")?.as_deref() {
        None | Some("UseNodeIP") => SourceAddress::UseNodeIp,
        Some("None") => SourceAddress::None,
        Some(o) => return Err(f.err("sourceAddress", format!("'{o}' is not UseNodeIP or None"))),
    };
    let max_restart_time = f.duration("maxRestartTime")?;
    let keepalive_time = f.duration("keepaliveTime")?;
    let num_allowed_local_as_numbers = f
        .uint("numAllowedLocalASNumbers", u64::from(u32::MAX))?
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0);
    // GTSM hop count, RFC 5082 §3: 1..=255.
    let ttl_security = f
        .uint("ttlSecurity", 255)?
        .and_then(|v| u8::try_from(v).ok())
        .filter(|v| *v > 0);
    let reachable_by = f.ip("reachableBy")?;
    let filters = f.string_list("filters")?;
    let local_as_number = f.as_number("localASNumber")?;
    let reverse_peering = match f.nonempty("reversePeering")?.as_deref() {
        None | Some("Auto") => ReversePeering::Auto,
        Some("Manual") => ReversePeering::Manual,
        Some(o) => return Err(f.err("reversePeering", format!("'{o}' is not Auto or Manual"))),
    };
    // Workload peerings: which workloads is Felix's choice (its endpoint status files).
    let local_workload_selector = parse_selector_field(&mut f, "localWorkloadSelector")?;
    f.finish();

    let err = |field: &str, reason: &str| {
        TopologyError::invalid("BGPPeer", name, format!("spec.{field}"), reason)
    };
    if node.is_some() && node_selector.is_some() {
        return Err(err(
            "nodeSelector",
            "node and nodeSelector cannot both be set",
        ));
    }
    // Calico's CRD rules (BGPPeerSpec's XValidation): a workload peering names no remote
    // address or node, and needs the workloads' AS.
    if local_workload_selector.is_some() {
        if peer_ip.is_some() {
            return Err(err(
                "peerIP",
                "peerIP must be empty when localWorkloadSelector is set",
            ));
        }
        if peer_selector.is_some() {
            return Err(err(
                "peerSelector",
                "peerSelector must be empty when localWorkloadSelector is set",
            ));
        }
        if as_number.is_none() {
            return Err(err(
                "asNumber",
                "asNumber is required when localWorkloadSelector is set (the workloads' AS)",
            ));
        }
    }
    if peer_selector.is_some() && (peer_ip.is_some() || as_number.is_some()) {
        return Err(err(
            "peerSelector",
            "peerSelector cannot be combined with peerIP or asNumber",
        ));
    }
    if peer_selector.is_none() && peer_ip.is_none() && local_workload_selector.is_none() {
        return Err(err(
            "peerIP",
            "one of peerIP, peerSelector or localWorkloadSelector is required",
        ));
    }
    // asNumber is optional with peerIP too (as in Calico's API): for a Calico node's
    // address, derivation takes that node's AS; for any other address it warns.
    if let (Some(gw), Some((ip, _))) = (reachable_by, peer_ip)
        && gw.is_ipv4() != ip.is_ipv4()
    {
        return Err(err(
            "reachableBy",
            "must be of the same address family as peerIP",
        ));
    }
    for (i, fname) in filters.iter().enumerate() {
        if fname.trim().is_empty() {
            return Err(TopologyError::invalid(
                "BGPPeer",
                name,
                format!("spec.filters[{i}]"),
                "empty filter name",
            ));
        }
    }
    Ok(BgpPeer {
        name: name.to_string(),
        node,
        node_selector,
        peer_ip,
        as_number,
        peer_selector,
        keep_original_next_hop,
        next_hop_mode,
        password,
        source_address,
        max_restart_time,
        keepalive_time,
        num_allowed_local_as_numbers,
        ttl_security,
        reachable_by,
        filters,
        local_as_number,
        reverse_peering,
        local_workload_selector,
        bfd,
    })
}

fn parse_selector_field(
    f: &mut Fields<'_>,
    key: &'static str,
) -> Result<Option<Selector>, TopologyError> {
    match f.nonempty(key)? {
        None => Ok(None),
        Some(s) => Selector::parse(&s)
            .map(Some)
            .map_err(|e| f.err(key, format!("'{s}': {e}"))),
    }
}

fn parse_encap(f: &mut Fields<'_>, key: &'static str) -> Result<EncapMode, TopologyError> {
    match f.nonempty(key)?.as_deref() {
        None | Some("Never") => Ok(EncapMode::Never),
        Some("Always") => Ok(EncapMode::Always),
        Some("CrossSubnet") => Ok(EncapMode::CrossSubnet),
        Some(o) => Err(f.err(key, format!("'{o}' is not Never, Always or CrossSubnet"))),
    }
}

fn parse_ip_pool(name: &str, spec: Option<&Value>) -> Result<IpPool, TopologyError> {
    let mut f = Fields::new(Kind::IpPool, name, "spec", spec)?;
    let cidr_s = f
        .nonempty("cidr")?
        .ok_or_else(|| f.err("cidr", "required"))?;
    let cidr = cidr_s.trim().parse::<IpNet>().map_err(|_| {
        f.err(
            "cidr",
            format!("'{cidr_s}' is not a CIDR such as 100.64.0.0/16"),
        )
    })?;
    if cidr.trunc() != cidr {
        return Err(f.err(
            "cidr",
            format!(
                "'{cidr_s}' has host bits set; did you mean {}?",
                cidr.trunc()
            ),
        ));
    }
    let (min_block, max_len, default_block) = match cidr {
        IpNet::V4(_) => (20u8, 32u8, 26u8),
        IpNet::V6(_) => (116, 128, 122),
    };
    let block_size = match f.uint("blockSize", u64::from(max_len))? {
        None => default_block,
        Some(b) => u8::try_from(b).unwrap_or(max_len),
    };
    if block_size < min_block {
        return Err(f.err(
            "blockSize",
            format!("must be from {min_block} to {max_len}"),
        ));
    }
    if block_size < cidr.prefix_len() {
        return Err(f.err(
            "blockSize",
            format!(
                "/{block_size} blocks do not fit in the /{} pool",
                cidr.prefix_len()
            ),
        ));
    }
    let ipip_mode = parse_encap(&mut f, "ipipMode")?;
    let vxlan_mode = parse_encap(&mut f, "vxlanMode")?;
    if ipip_mode != EncapMode::Never && vxlan_mode != EncapMode::Never {
        return Err(f.err("vxlanMode", "ipipMode and vxlanMode cannot both be enabled"));
    }
    if ipip_mode != EncapMode::Never && cidr.addr().is_ipv6() {
        return Err(f.err(
            "ipipMode",
            "IP-in-IP carries IPv4 only; use Never for an IPv6 pool",
        ));
    }
    let pool = IpPool {
        name: name.to_string(),
        cidr,
        block_size,
        ipip_mode,
        vxlan_mode,
        disabled: f.bool("disabled")?.unwrap_or(false),
        disable_bgp_export: f.bool("disableBGPExport")?.unwrap_or(false),
        nat_outgoing: f.bool("natOutgoing")?.unwrap_or(false),
    };
    for felix_only in [
        "nodeSelector",
        "allowedUses",
        "assignmentMode",
        "ipip",
        "nat-outgoing",
    ] {
        let _ = f.raw(felix_only);
    }
    f.finish();
    Ok(pool)
}

fn parse_block_affinity(name: &str, spec: Option<&Value>) -> Result<BlockAffinity, TopologyError> {
    let mut f = Fields::new(Kind::BlockAffinity, name, "spec", spec)?;
    let node = f
        .nonempty("node")?
        .ok_or_else(|| f.err("node", "required"))?;
    let cidr_s = f
        .nonempty("cidr")?
        .ok_or_else(|| f.err("cidr", "required"))?;
    let cidr = cidr_s
        .trim()
        .parse::<IpNet>()
        .map_err(|_| f.err("cidr", format!("'{cidr_s}' is not a CIDR")))?
        .trunc();
    // Calico's template treats an affinity without state as confirmed.
    let state = match f.nonempty("state")?.as_deref() {
        None | Some("confirmed") => AffinityState::Confirmed,
        Some("pending") => AffinityState::Pending,
        Some("pendingDeletion") => AffinityState::PendingDeletion,
        Some(o) => {
            return Err(f.err(
                "state",
                format!("'{o}' is not confirmed, pending or pendingDeletion"),
            ));
        }
    };
    let deleted = f.bool("deleted")?.unwrap_or(false);
    let _ = f.raw("type");
    f.finish();
    Ok(BlockAffinity {
        name: name.to_string(),
        node,
        cidr,
        state,
        deleted,
    })
}

/// Secrets without a namespace land in this one: where calico-node's own namespace usually is.
pub const DEFAULT_SECRET_NAMESPACE: &str = "calico-system";

fn parse_secret(
    name: &str,
    namespace: Option<String>,
    value: &Value,
) -> Result<Secret, TopologyError> {
    let mut data = std::collections::BTreeMap::new();
    let mut f = Fields::new(Kind::Secret, name, "", Some(value))?;
    for (k, v) in f.string_map("data")? {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| f.err(&format!("data.{k}"), "not valid base64"))?;
        let s =
            String::from_utf8(bytes).map_err(|_| f.err(&format!("data.{k}"), "not UTF-8 text"))?;
        data.insert(k, s);
    }
    // stringData wins over data, as in Kubernetes.
    data.extend(f.string_map("stringData")?);
    Ok(Secret {
        namespace: namespace.unwrap_or_else(|| DEFAULT_SECRET_NAMESPACE.to_string()),
        name: name.to_string(),
        data,
    })
}
