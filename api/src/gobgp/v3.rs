//! The GoBGP v3 service (package apipb, `GobgpApi`) for the Debian 3.x
//! `gobgp` CLI: NLRI, attributes and capabilities packed in `Any`.

use std::sync::Arc;

use ipnet::IpNet;
use prost_types::Any;
use tabby_proto::gobgp as g;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::backend::{Backend, ItemStream, Lookup, Table, lookup_filter, streamed};
use super::events::{Dialect, WatchRequest};
use super::mirror::mirrored;
use super::paths::{
    ACCEPTED_ATTRS, PathAttr, PathFacts, family_from_pb, local_route, path_facts, withdrawal_facts,
};
use super::peers::{Capability, peer_parts};
use crate::convert::{check_asn, parse_peer_addr};
use crate::model::{Path, PeerConfig, PeerStatus, PrefixMatch, ResetKind, SessionState};
use crate::{Core, Limits};

/// Serves apipb.GobgpApi over a [`Core`].
#[derive(Clone)]
pub struct GobgpService(Backend);

impl std::fmt::Debug for GobgpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GobgpService").finish_non_exhaustive()
    }
}

impl GobgpService {
    /// A service over `core`; watch streams end when `stop` turns true.
    pub fn new(core: Arc<dyn Core>, limits: Limits, stop: watch::Receiver<bool>) -> GobgpService {
        GobgpService(Backend { core, limits, stop })
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

fn unpack<M: AnyName>(a: &Any) -> Option<Result<M, Status>> {
    (a.type_url == M::type_url()).then(|| {
        M::decode(a.value.as_slice())
            .map_err(|e| Status::invalid_argument(format!("{} does not decode: {e}", a.type_url)))
    })
}

fn pack_nlri(p: g::IpAddressPrefix) -> Any {
    pack(&p)
}

fn pack_attr(a: PathAttr) -> Any {
    match a {
        PathAttr::Origin(m) => pack(&m),
        PathAttr::AsPath(m) => pack(&m),
        PathAttr::NextHop(m) => pack(&m),
        PathAttr::MpReach {
            family,
            next_hops,
            prefixes,
        } => pack(&g::MpReachNlriAttribute {
            family: Some(family),
            next_hops,
            nlris: prefixes.iter().map(pack).collect(),
        }),
        PathAttr::Med(m) => pack(&m),
        PathAttr::LocalPref(m) => pack(&m),
        PathAttr::Communities(m) => pack(&m),
        PathAttr::LargeCommunities(m) => pack(&m),
    }
}

fn unpack_attr(a: &Any) -> Result<PathAttr, Status> {
    if let Some(m) = unpack(a) {
        return Ok(PathAttr::Origin(m?));
    }
    if let Some(m) = unpack(a) {
        return Ok(PathAttr::AsPath(m?));
    }
    if let Some(m) = unpack(a) {
        return Ok(PathAttr::NextHop(m?));
    }
    if let Some(m) = unpack::<g::MpReachNlriAttribute>(a) {
        let m = m?;
        return Ok(PathAttr::MpReach {
            family: m.family.unwrap_or_default(),
            next_hops: m.next_hops,
            prefixes: Vec::new(),
        });
    }
    if let Some(m) = unpack(a) {
        return Ok(PathAttr::Med(m?));
    }
    if let Some(m) = unpack(a) {
        return Ok(PathAttr::LocalPref(m?));
    }
    if let Some(m) = unpack(a) {
        return Ok(PathAttr::Communities(m?));
    }
    if let Some(m) = unpack(a) {
        return Ok(PathAttr::LargeCommunities(m?));
    }
    Err(Status::invalid_argument(format!(
        "path attribute {} is not supported by tabbyd: use {ACCEPTED_ATTRS} only",
        a.type_url
    )))
}

fn pack_cap(c: Capability) -> Any {
    match c {
        Capability::MultiProtocol(m) => pack(&m),
        Capability::RouteRefresh(m) => pack(&m),
        Capability::FourOctetAsn(m) => pack(&m),
    }
}

/// A `gobgp global rib add|del` path → the local route it names.
fn local_route_from_path(p: &g::Path) -> Result<crate::model::LocalRoute, Status> {
    let any = p.nlri.as_ref().ok_or_else(|| {
        Status::invalid_argument("path.nlri is missing: give the prefix as an IPAddressPrefix")
    })?;
    let Some(nlri) = unpack::<g::IpAddressPrefix>(any) else {
        return Err(Status::unimplemented(format!(
            "NLRI type {} is not supported by tabbyd: only IPv4/IPv6 unicast prefixes",
            any.type_url
        )));
    };
    let attrs = p
        .pattrs
        .iter()
        .map(unpack_attr)
        .collect::<Result<Vec<_>, _>>()?;
    local_route(&nlri?, attrs)
}

mirrored!(tabby_proto::gobgp);

type PeerStream = ItemStream<g::ListPeerResponse>;
type PathStream = ItemStream<g::ListPathResponse>;
type EventStream = ItemStream<g::WatchEventResponse>;

#[tonic::async_trait]
impl g::gobgp_api_server::GobgpApi for GobgpService {
    async fn get_bgp(
        &self,
        _req: Request<g::GetBgpRequest>,
    ) -> Result<Response<g::GetBgpResponse>, Status> {
        get_bgp(&self.0).await
    }

    type WatchEventStream = EventStream;

    async fn watch_event(
        &self,
        req: Request<g::WatchEventRequest>,
    ) -> Result<Response<EventStream>, Status> {
        watch_event(&self.0, req.into_inner(), 256).await
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
        self.0.core.add_peer(cfg).await?;
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
        self.0.core.delete_peer(addr.into()).await?;
        Ok(Response::new(()))
    }

    type ListPeerStream = PeerStream;

    async fn list_peer(
        &self,
        req: Request<g::ListPeerRequest>,
    ) -> Result<Response<PeerStream>, Status> {
        list_peer(&self.0, req.into_inner()).await
    }

    async fn reset_peer(&self, req: Request<g::ResetPeerRequest>) -> Result<Response<()>, Status> {
        use g::reset_peer_request::SoftResetDirection as D;
        let req = req.into_inner();
        let kind = if req.soft {
            match D::try_from(req.direction) {
                Ok(D::In) => ResetKind::SoftIn,
                Ok(D::Out) => ResetKind::SoftOut,
                Ok(D::Both) => ResetKind::SoftBoth,
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
        self.0.reset(&req.address, kind, &req.communication).await?;
        Ok(Response::new(()))
    }

    async fn enable_peer(
        &self,
        req: Request<g::EnablePeerRequest>,
    ) -> Result<Response<()>, Status> {
        self.0.enable(&req.into_inner().address).await?;
        Ok(Response::new(()))
    }

    async fn disable_peer(
        &self,
        req: Request<g::DisablePeerRequest>,
    ) -> Result<Response<()>, Status> {
        let req = req.into_inner();
        self.0.disable(&req.address, &req.communication).await?;
        Ok(Response::new(()))
    }

    async fn add_path(
        &self,
        req: Request<g::AddPathRequest>,
    ) -> Result<Response<g::AddPathResponse>, Status> {
        let req = req.into_inner();
        let path = req
            .path
            .ok_or_else(|| Status::invalid_argument("path is missing"))?;
        self.0
            .add_path(table(req.table_type), local_route_from_path(&path)?)
            .await?;
        Ok(Response::new(g::AddPathResponse { uuid: Vec::new() }))
    }

    async fn delete_path(
        &self,
        req: Request<g::DeletePathRequest>,
    ) -> Result<Response<()>, Status> {
        let req = req.into_inner();
        let route = req.path.as_ref().map(local_route_from_path).transpose()?;
        self.0.delete_path(table(req.table_type), route).await?;
        Ok(Response::new(()))
    }

    type ListPathStream = PathStream;

    async fn list_path(
        &self,
        req: Request<g::ListPathRequest>,
    ) -> Result<Response<PathStream>, Status> {
        list_path(&self.0, req.into_inner()).await
    }

    async fn get_table(
        &self,
        req: Request<g::GetTableRequest>,
    ) -> Result<Response<g::GetTableResponse>, Status> {
        Ok(Response::new(get_table(&self.0, req.into_inner()).await?))
    }
}
