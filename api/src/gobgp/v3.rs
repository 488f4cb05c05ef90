//! The GoBGP v3 compatible service (package apipb), so the stock `gobgp`
//! CLI works against tabbyd: `gobgp global`, `neighbor`, `global rib`,
//! `global rib add|del`, `neighbor add|del`, `neighbor ADDR reset|softreset`,
//! `neighbor ADDR adj-in|adj-out`, `monitor global rib`, `monitor neighbor`.
//! Methods outside that subset answer UNIMPLEMENTED (tonic's router does so
//! for methods the proto does not declare).

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use prost_types::{Any, Timestamp};
use tabby_proto::gobgp as g;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert::{check_asn, check_reason, parse_addr, parse_peer_addr, parse_prefix};
use crate::model::{
    AdjRib, Family, LargeCommunity, LocalRoute, Origin, Owner, Path, PathSource, PeerConfig,
    PeerStatus, PrefixMatch, ResetKind, Route, RouteKind, RouteQuery, RouteUpdate, RouteWatchStart,
    SessionState,
};
use crate::{Core, Limits};

/// The owner recorded for routes added with `gobgp global rib add`.
pub const GOBGP_OWNER: &str = "gobgp-api";

/// Serves apipb.GobgpApi over a [`Core`].
#[derive(Clone)]
pub struct GobgpService {
    core: Arc<dyn Core>,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for GobgpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GobgpService").finish_non_exhaustive()
    }
}

impl GobgpService {
    /// A service over `core`; watch streams end when `stop` turns true.
    pub fn new(core: Arc<dyn Core>, limits: Limits, stop: watch::Receiver<bool>) -> GobgpService {
        GobgpService { core, limits, stop }
    }
}

/// The full protobuf name of each apipb message packed in `Any`; Go's anypb
/// resolves `type.googleapis.com/apipb.NAME`.
trait AnyName: prost::Message + Default {
    const NAME: &'static str;
    fn type_url() -> String {
        format!("{}{}", g::TYPE_URL_PREFIX, Self::NAME)
    }
}

macro_rules! any_names {
    ($($t:ident => $n:literal),* $(,)?) => {
        $(impl AnyName for g::$t { const NAME: &'static str = $n; })*
    };
}

any_names! {
    IpAddressPrefix => "IPAddressPrefix",
    OriginAttribute => "OriginAttribute",
    AsPathAttribute => "AsPathAttribute",
    NextHopAttribute => "NextHopAttribute",
    MultiExitDiscAttribute => "MultiExitDiscAttribute",
    LocalPrefAttribute => "LocalPrefAttribute",
    CommunitiesAttribute => "CommunitiesAttribute",
    LargeCommunitiesAttribute => "LargeCommunitiesAttribute",
    MpReachNlriAttribute => "MpReachNLRIAttribute",
    MultiProtocolCapability => "MultiProtocolCapability",
    RouteRefreshCapability => "RouteRefreshCapability",
    FourOctetAsnCapability => "FourOctetASNCapability",
}

fn pack<M: AnyName>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn family_pb(f: Family) -> g::Family {
    g::Family {
        afi: match f {
            Family::Ipv4 => g::family::Afi::Ip as i32,
            Family::Ipv6 => g::family::Afi::Ip6 as i32,
        },
        safi: g::family::Safi::Unicast as i32,
    }
}

fn family_from_pb(f: Option<&g::Family>) -> Result<Family, Status> {
    let Some(f) = f else { return Ok(Family::Ipv4) };
    match (f.afi, f.safi) {
        (1, 1) => Ok(Family::Ipv4),
        (2, 1) => Ok(Family::Ipv6),
        (afi, safi) => Err(Status::unimplemented(format!(
            "address family afi {afi} safi {safi} is not carried by tabbyd: use -a ipv4 or -a ipv6"
        ))),
    }
}

fn timestamp(unix: SystemTime) -> Timestamp {
    let d = unix.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

fn ago(seconds: u64) -> Timestamp {
    timestamp(
        SystemTime::now()
            .checked_sub(Duration::from_secs(seconds))
            .unwrap_or(UNIX_EPOCH),
    )
}

fn nlri(prefix: &IpNet) -> Any {
    pack(&g::IpAddressPrefix {
        prefix_len: u32::from(prefix.prefix_len()),
        prefix: prefix.addr().to_string(),
    })
}

/// A model path → apipb.Path with attributes as GoBGP's CLI expects them
/// (NEXT_HOP for IPv4, MP_REACH_NLRI for IPv6; RFC 4760 §3).
fn path_pb(prefix: &IpNet, p: &Path, local_as: u32) -> g::Path {
    let family = Family::of_prefix(prefix);
    let mut pattrs = vec![pack(&g::OriginAttribute {
        origin: match p.origin {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        },
    })];
    if !p.as_path.is_empty() {
        pattrs.push(pack(&g::AsPathAttribute {
            segments: vec![g::AsSegment {
                r#type: g::as_segment::Type::AsSequence as i32,
                numbers: p.as_path.clone(),
            }],
        }));
    }
    match family {
        Family::Ipv4 => pattrs.push(pack(&g::NextHopAttribute {
            next_hop: p.next_hop.to_string(),
        })),
        Family::Ipv6 => pattrs.push(pack(&g::MpReachNlriAttribute {
            family: Some(family_pb(family)),
            next_hops: vec![p.next_hop.to_string()],
            nlris: vec![nlri(prefix)],
        })),
    }
    if let Some(med) = p.med {
        pattrs.push(pack(&g::MultiExitDiscAttribute { med }));
    }
    if matches!(p.source, PathSource::Local(_)) || p.local_pref != 0 {
        pattrs.push(pack(&g::LocalPrefAttribute {
            local_pref: p.local_pref,
        }));
    }
    if !p.communities.is_empty() {
        pattrs.push(pack(&g::CommunitiesAttribute {
            communities: p.communities.clone(),
        }));
    }
    if !p.large_communities.is_empty() {
        pattrs.push(pack(&g::LargeCommunitiesAttribute {
            communities: p
                .large_communities
                .iter()
                .map(|c| g::LargeCommunity {
                    global_admin: c.global_admin,
                    local_data1: c.local_data1,
                    local_data2: c.local_data2,
                })
                .collect(),
        }));
    }
    let (neighbor_ip, source_asn, external) = match &p.source {
        PathSource::Local(_) => (String::new(), local_as, false),
        PathSource::Peer(a) => (
            a.to_string(),
            p.as_path.first().copied().unwrap_or(local_as),
            true,
        ),
    };
    g::Path {
        nlri: Some(nlri(prefix)),
        pattrs,
        age: Some(ago(p.age_seconds)),
        best: p.best,
        family: Some(family_pb(family)),
        source_asn,
        neighbor_ip,
        stale: p.stale,
        is_from_external: external,
        ..Default::default()
    }
}

fn withdraw_pb(prefix: &IpNet) -> g::Path {
    g::Path {
        nlri: Some(nlri(prefix)),
        is_withdraw: true,
        age: Some(timestamp(SystemTime::now())),
        family: Some(family_pb(Family::of_prefix(prefix))),
        ..Default::default()
    }
}

fn destination(r: &Route, local_as: u32) -> g::Destination {
    g::Destination {
        prefix: r.prefix.to_string(),
        paths: r
            .paths
            .iter()
            .map(|p| path_pb(&r.prefix, p, local_as))
            .collect(),
    }
}

fn session_state(s: SessionState) -> g::peer_state::SessionState {
    use g::peer_state::SessionState as S;
    match s {
        SessionState::Idle => S::Idle,
        SessionState::Connect => S::Connect,
        SessionState::Active => S::Active,
        SessionState::OpenSent => S::Opensent,
        SessionState::OpenConfirm => S::Openconfirm,
        SessionState::Established => S::Established,
    }
}

/// A model peer → apipb.Peer, every sub-message present (the CLI
/// dereferences them without checking).
fn peer_pb(p: &PeerStatus, local_as: u32) -> g::Peer {
    let c = &p.config;
    let local = c.local_as.unwrap_or(local_as);
    let ptype = if c.remote_as == local {
        g::PeerType::Internal
    } else {
        g::PeerType::External
    } as i32;
    let families: Vec<Family> = if c.families.is_empty() {
        vec![Family::of_addr(&c.address)]
    } else {
        c.families.clone()
    };
    let hold = u64::from(c.hold_time.unwrap_or(90));
    let keepalive = c.keepalive.map(u64::from).unwrap_or(hold / 3);
    let since = UNIX_EPOCH + Duration::from_secs(p.state_since_unix_seconds);
    let established = p.state == SessionState::Established;
    let caps = |fams: &[Family]| -> Vec<Any> {
        let mut v: Vec<Any> = fams
            .iter()
            .map(|f| {
                pack(&g::MultiProtocolCapability {
                    family: Some(family_pb(*f)),
                })
            })
            .collect();
        v.push(pack(&g::RouteRefreshCapability {}));
        v.push(pack(&g::FourOctetAsnCapability { asn: local }));
        v
    };
    let (sent, rcvd) = (
        g::Message {
            notification: p.counters.notifications_sent,
            update: p.counters.updates_sent,
            keepalive: p.counters.keepalives_sent,
            total: p.counters.messages_sent,
            ..Default::default()
        },
        g::Message {
            notification: p.counters.notifications_received,
            update: p.counters.updates_received,
            keepalive: p.counters.keepalives_received,
            total: p.counters.messages_received,
            ..Default::default()
        },
    );
    g::Peer {
        conf: Some(g::PeerConf {
            description: c.description.clone(),
            local_asn: local,
            neighbor_address: c.address.to_string(),
            peer_asn: c.remote_as,
            r#type: ptype,
            admin_down: !p.enabled,
            ..Default::default()
        }),
        ebgp_multihop: Some(g::EbgpMultihop {
            enabled: c.ebgp_multihop_ttl.is_some(),
            multihop_ttl: c.ebgp_multihop_ttl.map(u32::from).unwrap_or(0),
        }),
        route_reflector: Some(g::RouteReflector {
            route_reflector_client: c.route_reflector_client,
            route_reflector_cluster_id: String::new(),
        }),
        state: Some(g::PeerState {
            description: c.description.clone(),
            local_asn: local,
            messages: Some(g::Messages {
                received: Some(rcvd),
                sent: Some(sent),
            }),
            neighbor_address: c.address.to_string(),
            peer_asn: c.remote_as,
            r#type: ptype,
            queues: Some(g::Queues::default()),
            session_state: session_state(p.state) as i32,
            admin_state: if p.enabled {
                g::peer_state::AdminState::Up
            } else {
                g::peer_state::AdminState::Down
            } as i32,
            flops: u32::try_from(p.counters.flaps).unwrap_or(u32::MAX),
            local_cap: caps(&families),
            remote_cap: if established {
                caps(&p.negotiated_families)
            } else {
                Vec::new()
            },
            router_id: p
                .remote_router_id
                .map(|r| r.to_string())
                .unwrap_or_default(),
            ..Default::default()
        }),
        timers: Some(g::Timers {
            config: Some(g::TimersConfig {
                connect_retry: 5,
                hold_time: hold,
                keepalive_interval: keepalive,
                ..Default::default()
            }),
            state: Some(g::TimersState {
                hold_time: hold,
                keepalive_interval: keepalive,
                negotiated_hold_time: u64::from(p.negotiated_hold_time),
                uptime: (p.state_since_unix_seconds != 0 && established).then(|| timestamp(since)),
                downtime: (p.state_since_unix_seconds != 0 && !established)
                    .then(|| timestamp(since)),
                ..Default::default()
            }),
        }),
        transport: Some(g::Transport {
            local_address: p.local_address.map(|a| a.to_string()).unwrap_or_default(),
            passive_mode: c.passive,
            remote_address: c.address.to_string(),
            remote_port: 179,
            ..Default::default()
        }),
        route_server: Some(g::RouteServer::default()),
        afi_safis: families
            .iter()
            .map(|f| {
                // Counters are per session in Tabby; report them under the
                // session's first family so totals stay right.
                let first = Some(*f) == families.first().copied();
                g::AfiSafi {
                    config: Some(g::AfiSafiConfig {
                        family: Some(family_pb(*f)),
                        enabled: true,
                    }),
                    state: Some(g::AfiSafiState {
                        family: Some(family_pb(*f)),
                        enabled: true,
                        received: if first {
                            p.counters.prefixes_received
                        } else {
                            0
                        },
                        accepted: if first {
                            p.counters.prefixes_accepted
                        } else {
                            0
                        },
                        advertised: if first {
                            p.counters.prefixes_advertised
                        } else {
                            0
                        },
                    }),
                    prefix_limits: None,
                }
            })
            .collect(),
    }
}

fn unpack<M: AnyName>(a: &Any) -> Option<Result<M, Status>> {
    (a.type_url == M::type_url()).then(|| {
        M::decode(a.value.as_slice())
            .map_err(|e| Status::invalid_argument(format!("{} does not decode: {e}", a.type_url)))
    })
}

/// A `gobgp global rib add|del` path → prefix and local route.
fn local_route_from_path(p: &g::Path) -> Result<LocalRoute, Status> {
    let any = p.nlri.as_ref().ok_or_else(|| {
        Status::invalid_argument("path.nlri is missing: give the prefix as an IPAddressPrefix")
    })?;
    let n = match unpack::<g::IpAddressPrefix>(any) {
        Some(r) => r?,
        None => {
            return Err(Status::unimplemented(format!(
                "NLRI type {} is not supported by tabbyd: only IPv4/IPv6 unicast prefixes",
                any.type_url
            )));
        }
    };
    let prefix = parse_prefix("path.nlri", &format!("{}/{}", n.prefix, n.prefix_len))?;
    let mut route = LocalRoute {
        prefix,
        kind: RouteKind::Unspecified,
        communities: Vec::new(),
        large_communities: Vec::new(),
        next_hop: None,
    };
    let mut next_hop: Option<String> = None;
    for a in &p.pattrs {
        if let Some(nh) = unpack::<g::NextHopAttribute>(a) {
            next_hop = Some(nh?.next_hop);
        } else if let Some(mp) = unpack::<g::MpReachNlriAttribute>(a) {
            next_hop = mp?.next_hops.into_iter().next();
        } else if let Some(c) = unpack::<g::CommunitiesAttribute>(a) {
            route.communities = c?.communities;
        } else if let Some(c) = unpack::<g::LargeCommunitiesAttribute>(a) {
            route.large_communities = c?
                .communities
                .iter()
                .map(|c| LargeCommunity {
                    global_admin: c.global_admin,
                    local_data1: c.local_data1,
                    local_data2: c.local_data2,
                })
                .collect();
        } else if let Some(o) = unpack::<g::OriginAttribute>(a) {
            // The CLI always sends an ORIGIN (INCOMPLETE unless told
            // otherwise); tabbyd originates every local route as IGP.
            o?;
        } else if let Some(asp) = unpack::<g::AsPathAttribute>(a) {
            if asp?.segments.iter().any(|s| !s.numbers.is_empty()) {
                return Err(Status::invalid_argument(
                    "locally originated routes carry an empty AS_PATH: drop the aspath argument",
                ));
            }
        } else {
            return Err(Status::invalid_argument(format!(
                "path attribute {} is not supported by tabbyd: use nexthop, community and large-community only",
                a.type_url
            )));
        }
    }
    if let Some(nh) = next_hop.filter(|s| !s.is_empty()) {
        let addr = parse_addr("nexthop", &nh)?;
        // GoBGP fills "0.0.0.0" / "::" when no nexthop was given.
        if !addr.is_unspecified() {
            if Family::of_addr(&addr) != Family::of_prefix(&prefix) {
                return Err(Status::invalid_argument(format!(
                    "nexthop {addr} is not of the prefix's family ({prefix}): give an address of the same family"
                )));
            }
            route.next_hop = Some(addr);
        }
    }
    Ok(route)
}

fn owner() -> Result<Owner, Status> {
    Owner::new(GOBGP_OWNER).map_err(Status::internal)
}

/// A server stream of `T`, as GoBGP's list calls answer.
type ItemStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;
type PeerStream = ItemStream<g::ListPeerResponse>;
type PathStream = ItemStream<g::ListPathResponse>;
type EventStream = ItemStream<g::WatchEventResponse>;

/// Answers a list call with `items`, already gathered, one message each.
fn streamed<T: Send + 'static>(items: impl Iterator<Item = T>) -> Response<ItemStream<T>> {
    let items: Vec<Result<T, Status>> = items.map(Ok).collect();
    Response::new(Box::pin(tokio_stream::iter(items)))
}

/// tabbyd keeps one table (no VRFs): `verb` says what the call would do.
fn global_table_only(table_type: i32, verb: &str) -> Result<(), Status> {
    if table_type == g::TableType::Global as i32 {
        Ok(())
    } else {
        Err(Status::unimplemented(format!(
            "tabbyd {verb} the global table only (no VRFs)"
        )))
    }
}

impl GobgpService {
    async fn local_as(&self) -> u32 {
        self.core.status().await.map(|s| s.local_as).unwrap_or(0)
    }

    /// Every Loc-RIB route of `family` matching `filter`, through pages.
    async fn all_routes(
        &self,
        family: Family,
        filter: Option<(IpNet, PrefixMatch)>,
    ) -> Result<Vec<Route>, Status> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .core
                .list_routes(RouteQuery {
                    family: Some(family),
                    prefix: filter,
                    best_only: false,
                    after,
                    limit: self.limits.max_page_size,
                })
                .await?;
            after = page.routes.last().map(|r| r.prefix);
            out.extend(page.routes);
            if !page.more || after.is_none() {
                return Ok(out);
            }
        }
    }

    /// The routes of `family` matching `filter` in GoBGP's table
    /// `table_type`: the global table (Loc-RIB), or peer `name`'s adj-in or
    /// adj-out.
    async fn table_routes(
        &self,
        table_type: i32,
        name: &str,
        family: Family,
        filter: Option<(IpNet, PrefixMatch)>,
    ) -> Result<Vec<Route>, Status> {
        let rib = match g::TableType::try_from(table_type) {
            Ok(g::TableType::Global) => return self.all_routes(family, filter).await,
            Ok(g::TableType::AdjIn) => AdjRib::In,
            Ok(g::TableType::AdjOut) => AdjRib::Out,
            _ => {
                return Err(Status::unimplemented(
                    "tabbyd has the global, adj-in and adj-out tables only",
                ));
            }
        };
        let peer = parse_peer_addr("neighbor address", name)?;
        let mut routes = self.core.list_adj_rib(peer.into(), rib, family).await?;
        if let Some((net, m)) = filter {
            routes.retain(|r| match m {
                PrefixMatch::Exact => r.prefix == net,
                PrefixMatch::Longer => net.contains(&r.prefix),
            });
        }
        Ok(routes)
    }
}

fn lookup_filter(
    prefixes: &[g::TableLookupPrefix],
) -> Result<Option<(IpNet, PrefixMatch)>, Status> {
    let Some(l) = prefixes.first() else {
        return Ok(None);
    };
    if prefixes.len() > 1 {
        return Err(Status::unimplemented(
            "tabbyd takes one prefix filter at a time",
        ));
    }
    let net = match IpNet::from_str_any(&l.prefix) {
        Some(n) => n,
        None => parse_prefix("prefix", &l.prefix)?,
    };
    let m = match g::table_lookup_prefix::Type::try_from(l.r#type) {
        Ok(g::table_lookup_prefix::Type::Exact) => PrefixMatch::Exact,
        Ok(g::table_lookup_prefix::Type::Longer) => PrefixMatch::Longer,
        _ => {
            return Err(Status::unimplemented(
                "shorter-prefixes lookups are not supported by tabbyd",
            ));
        }
    };
    Ok(Some((net.trunc(), m)))
}

/// Accepts "ADDR" as a host prefix, as `gobgp global rib ADDR` does.
trait FromStrAny {
    fn from_str_any(s: &str) -> Option<IpNet>;
}

impl FromStrAny for IpNet {
    fn from_str_any(s: &str) -> Option<IpNet> {
        s.parse::<IpNet>()
            .ok()
            .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
    }
}

#[tonic::async_trait]
impl g::gobgp_api_server::GobgpApi for GobgpService {
    async fn get_bgp(
        &self,
        _req: Request<g::GetBgpRequest>,
    ) -> Result<Response<g::GetBgpResponse>, Status> {
        let s = self.core.status().await?;
        Ok(Response::new(g::GetBgpResponse {
            global: Some(g::Global {
                asn: s.local_as,
                router_id: s.router_id.to_string(),
                listen_port: i32::from(s.bgp_listen_port),
                listen_addresses: s
                    .bgp_listen_addresses
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                families: vec![65537, 131073],
                use_multiple_paths: false,
            }),
        }))
    }

    type WatchEventStream = EventStream;

    async fn watch_event(
        &self,
        req: Request<g::WatchEventRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let req = req.into_inner();
        let (tx, rx) = mpsc::channel(self.limits.watch_stream_buffer.max(1));
        let local_as = self.local_as().await;
        let mut started = false;
        if let Some(table) = &req.table {
            let mut init = false;
            for f in &table.filters {
                match g::watch_event_request::table::filter::Type::try_from(f.r#type) {
                    Ok(g::watch_event_request::table::filter::Type::Best) => init |= f.init,
                    _ => {
                        return Err(Status::unimplemented(
                            "tabbyd watches best paths only (gobgp monitor global rib)",
                        ));
                    }
                }
            }
            let watch = self.core.watch_routes(None).await?;
            let tx = tx.clone();
            let core = Arc::clone(&self.core);
            tokio::spawn(crate::server::until_stopped(
                self.stop.clone(),
                tx.clone(),
                async move { table_events(core, watch, init, local_as, tx).await },
            ));
            started = true;
        }
        if req.peer.is_some() {
            let watch = self.core.watch_peers().await?;
            let tx = tx.clone();
            tokio::spawn(crate::server::until_stopped(
                self.stop.clone(),
                tx.clone(),
                async move { peer_events(watch, local_as, tx).await },
            ));
            started = true;
        }
        if !started {
            return Err(Status::invalid_argument(
                "nothing to watch: set peer or table",
            ));
        }
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as EventStream
        ))
    }

    async fn add_peer(&self, req: Request<g::AddPeerRequest>) -> Result<Response<()>, Status> {
        let p = req
            .into_inner()
            .peer
            .ok_or_else(|| Status::invalid_argument("peer is missing"))?;
        let conf = p.conf.unwrap_or_default();
        if !conf.neighbor_interface.is_empty() {
            return Err(Status::unimplemented(
                "unnumbered (interface) neighbors are not supported by tabbyd",
            ));
        }
        let address = parse_peer_addr("neighbor address", &conf.neighbor_address)?;
        let remote_as = check_asn("peer as", conf.peer_asn)?;
        let mut cfg = PeerConfig::new(address, remote_as);
        if conf.local_asn != 0 {
            cfg.local_as = Some(check_asn("local-as", conf.local_asn)?);
        }
        cfg.description = conf.description;
        if let Some(m) = p.ebgp_multihop.filter(|m| m.enabled) {
            cfg.ebgp_multihop_ttl = Some(u8::try_from(m.multihop_ttl).map_err(|_| {
                Status::invalid_argument(format!(
                    "ebgp-multihop-ttl {} is above 255",
                    m.multihop_ttl
                ))
            })?);
        }
        cfg.route_reflector_client = p.route_reflector.is_some_and(|r| r.route_reflector_client);
        if let Some(t) = p.timers.and_then(|t| t.config) {
            if t.hold_time != 0 {
                if t.hold_time < 3 || t.hold_time > 65535 {
                    return Err(Status::invalid_argument(format!(
                        "hold time {} is out of range: use 3..65535 (RFC 4271 §4.2)",
                        t.hold_time
                    )));
                }
                cfg.hold_time = u16::try_from(t.hold_time).ok();
            }
            if t.keepalive_interval != 0 {
                let hold = u64::from(cfg.hold_time.unwrap_or(90));
                if t.keepalive_interval >= hold {
                    return Err(Status::invalid_argument(format!(
                        "keepalive interval {} must be below the hold time {hold}",
                        t.keepalive_interval
                    )));
                }
                cfg.keepalive = u16::try_from(t.keepalive_interval).ok();
            }
        }
        cfg.passive = p.transport.is_some_and(|t| t.passive_mode);
        for a in &p.afi_safis {
            let f = family_from_pb(a.config.as_ref().and_then(|c| c.family.as_ref()))?;
            if !cfg.families.contains(&f) {
                cfg.families.push(f);
            }
        }
        self.core.add_peer(cfg).await?;
        Ok(Response::new(()))
    }

    async fn delete_peer(
        &self,
        req: Request<g::DeletePeerRequest>,
    ) -> Result<Response<()>, Status> {
        let req = req.into_inner();
        if !req.interface.is_empty() {
            return Err(Status::unimplemented(
                "unnumbered (interface) neighbors are not supported by tabbyd",
            ));
        }
        let addr = parse_peer_addr("neighbor address", &req.address)?;
        self.core.delete_peer(addr.into()).await?;
        Ok(Response::new(()))
    }

    type ListPeerStream = PeerStream;

    async fn list_peer(
        &self,
        req: Request<g::ListPeerRequest>,
    ) -> Result<Response<PeerStream>, Status> {
        let req = req.into_inner();
        let local_as = self.local_as().await;
        let peers = if req.address.is_empty() {
            self.core.list_peers().await?
        } else {
            let addr = parse_peer_addr("neighbor address", &req.address)?;
            match self.core.get_peer(addr.into()).await {
                Ok(p) => vec![p],
                // GoBGP answers an empty list; its CLI then says "not found neighbor".
                Err(crate::CoreError::NotFound(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            }
        };
        Ok(streamed(peers.iter().map(|p| g::ListPeerResponse {
            peer: Some(peer_pb(p, local_as)),
        })))
    }

    async fn reset_peer(&self, req: Request<g::ResetPeerRequest>) -> Result<Response<()>, Status> {
        let req = req.into_inner();
        let addr = parse_peer_addr("neighbor address", &req.address)?;
        let kind = if req.soft {
            match g::reset_peer_request::SoftResetDirection::try_from(req.direction) {
                Ok(g::reset_peer_request::SoftResetDirection::In) => ResetKind::SoftIn,
                Ok(g::reset_peer_request::SoftResetDirection::Out) => ResetKind::SoftOut,
                Ok(g::reset_peer_request::SoftResetDirection::Both) => ResetKind::SoftBoth,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "soft reset direction {} is unknown",
                        req.direction
                    )));
                }
            }
        } else {
            ResetKind::Hard
        };
        let reason = if kind == ResetKind::Hard {
            check_reason("communication", &req.communication)?
        } else {
            None
        };
        self.core.reset_peer(addr.into(), kind, reason).await?;
        Ok(Response::new(()))
    }

    async fn enable_peer(
        &self,
        req: Request<g::EnablePeerRequest>,
    ) -> Result<Response<()>, Status> {
        let addr = parse_peer_addr("neighbor address", &req.into_inner().address)?;
        self.core.enable_peer(addr.into()).await?;
        Ok(Response::new(()))
    }

    async fn disable_peer(
        &self,
        req: Request<g::DisablePeerRequest>,
    ) -> Result<Response<()>, Status> {
        let req = req.into_inner();
        let addr = parse_peer_addr("neighbor address", &req.address)?;
        let reason = check_reason("communication", &req.communication)?;
        self.core.disable_peer(addr.into(), reason).await?;
        Ok(Response::new(()))
    }

    async fn add_path(
        &self,
        req: Request<g::AddPathRequest>,
    ) -> Result<Response<g::AddPathResponse>, Status> {
        let req = req.into_inner();
        global_table_only(req.table_type, "adds paths to")?;
        let path = req
            .path
            .ok_or_else(|| Status::invalid_argument("path is missing"))?;
        let route = local_route_from_path(&path)?;
        self.core.announce_routes(owner()?, vec![route]).await?;
        Ok(Response::new(g::AddPathResponse { uuid: Vec::new() }))
    }

    async fn delete_path(
        &self,
        req: Request<g::DeletePathRequest>,
    ) -> Result<Response<()>, Status> {
        let req = req.into_inner();
        global_table_only(req.table_type, "deletes paths from")?;
        let Some(path) = req.path else {
            return Err(Status::unimplemented(
                "deleting by family or uuid is not supported by tabbyd: give the prefix (gobgp global rib del PREFIX)",
            ));
        };
        let route = local_route_from_path(&path)?;
        self.core
            .withdraw_routes(owner()?, vec![route.prefix])
            .await?;
        Ok(Response::new(()))
    }

    type ListPathStream = PathStream;

    async fn list_path(
        &self,
        req: Request<g::ListPathRequest>,
    ) -> Result<Response<PathStream>, Status> {
        let req = req.into_inner();
        let family = family_from_pb(req.family.as_ref())?;
        let filter = lookup_filter(&req.prefixes)?;
        let local_as = self.local_as().await;
        let routes = self
            .table_routes(req.table_type, &req.name, family, filter)
            .await?;
        Ok(streamed(routes.iter().map(|r| g::ListPathResponse {
            destination: Some(destination(r, local_as)),
        })))
    }

    async fn get_table(
        &self,
        req: Request<g::GetTableRequest>,
    ) -> Result<Response<g::GetTableResponse>, Status> {
        let req = req.into_inner();
        let family = family_from_pb(req.family.as_ref())?;
        let routes = self
            .table_routes(req.table_type, &req.name, family, None)
            .await?;
        let paths: usize = routes.iter().map(|r| r.paths.len()).sum();
        Ok(Response::new(g::GetTableResponse {
            num_destination: routes.len() as u64,
            num_path: paths as u64,
            num_accepted: paths as u64,
        }))
    }
}

type EvTx = mpsc::Sender<Result<g::WatchEventResponse, Status>>;

fn table_event(paths: Vec<g::Path>) -> g::WatchEventResponse {
    g::WatchEventResponse {
        event: Some(g::watch_event_response::Event::Table(
            g::watch_event_response::TableEvent { paths },
        )),
    }
}

/// Sends a snapshot of the table in events of up to 256 paths; false once
/// the watcher has gone.
async fn send_table(tx: &EvTx, routes: &[(IpNet, Path)], local_as: u32) -> bool {
    for chunk in routes.chunks(256) {
        let paths = chunk
            .iter()
            .map(|(p, best)| path_pb(p, best, local_as))
            .collect();
        if tx.send(Ok(table_event(paths))).await.is_err() {
            return false;
        }
    }
    true
}

/// `gobgp monitor global rib`: optional current table, then changes. GoBGP
/// has no resync signal, so a lagging watcher gets the current table again.
async fn table_events(
    core: Arc<dyn Core>,
    watch: crate::model::RouteWatch,
    init: bool,
    local_as: u32,
    tx: EvTx,
) {
    let crate::model::RouteWatch { start, mut updates } = watch;
    let mut last = match start {
        RouteWatchStart::Snapshot { sequence, routes } => {
            if init && !send_table(&tx, &routes, local_as).await {
                return;
            }
            sequence
        }
        RouteWatchStart::Replay(evs) => evs.last().map(|e| e.sequence).unwrap_or(0),
    };
    loop {
        let ev = tokio::select! {
            _ = tx.closed() => return,
            r = updates.recv() => r,
        };
        match ev {
            Ok(ev) if ev.sequence <= last => {}
            Ok(ev) => {
                last = ev.sequence;
                let path = match &ev.update {
                    RouteUpdate::BestChanged { prefix, best } => path_pb(prefix, best, local_as),
                    RouteUpdate::Withdrawn { prefix } => withdraw_pb(prefix),
                };
                if tx.send(Ok(table_event(vec![path]))).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => match core.watch_routes(None).await {
                Ok(w) => {
                    let crate::model::RouteWatch { start, updates: u } = w;
                    updates = u;
                    if let RouteWatchStart::Snapshot { sequence, routes } = start {
                        last = sequence;
                        if !send_table(&tx, &routes, local_as).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            },
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// `gobgp monitor neighbor`: every peer state change as a STATE event.
async fn peer_events(watch: crate::model::PeerWatch, local_as: u32, tx: EvTx) {
    let crate::model::PeerWatch {
        sequence,
        mut updates,
        ..
    } = watch;
    let mut last = sequence;
    loop {
        let ev = tokio::select! {
            _ = tx.closed() => return,
            r = updates.recv() => r,
        };
        match ev {
            Ok(ev) if ev.sequence <= last => {}
            Ok(ev) => {
                last = ev.sequence;
                let resp = g::WatchEventResponse {
                    event: Some(g::watch_event_response::Event::Peer(
                        g::watch_event_response::PeerEvent {
                            r#type: g::watch_event_response::peer_event::Type::State as i32,
                            peer: Some(peer_pb(&ev.peer, local_as)),
                        },
                    )),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
            // Peer events are state snapshots; missing some is harmless.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
