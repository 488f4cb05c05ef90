//! The GoBGP v4 service (package api, `GoBgpService`) for the 4.x `gobgp`
//! CLI and other v4 clients: typed NLRI, attributes and capabilities (oneofs
//! where v3 had `Any`), and enums numbered from 1 (0 is unset).

use std::sync::Arc;

use ipnet::IpNet;
use tabby_proto::gobgp as g;
use tabby_proto::gobgp4 as a;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::backend::{Backend, ItemStream, Lookup, Table, lookup_filter, streamed};
use super::events::{Dialect, WatchRequest};
use super::mirror::mirrored;
use super::paths::{
    ACCEPTED_ATTRS, PathAttr, PathFacts, family_from_pb, local_route, path_facts, withdrawal_facts,
};
use super::peers::{Capability, peer_parts};
use crate::model::{LocalRoute, Path, PeerStatus, PrefixMatch, ResetKind, SessionState};
use crate::{Core, Limits};

/// Serves api.GoBgpService over a [`Core`].
#[derive(Clone)]
pub struct GoBgpV4Service(Backend);

impl std::fmt::Debug for GoBgpV4Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoBgpV4Service").finish_non_exhaustive()
    }
}

impl GoBgpV4Service {
    /// A service over `core`; watch streams end when `stop` turns true.
    pub fn new(core: Arc<dyn Core>, limits: Limits, stop: watch::Receiver<bool>) -> GoBgpV4Service {
        GoBgpV4Service(Backend { core, limits, stop })
    }
}

fn pack_nlri(prefix: g::IpAddressPrefix) -> a::Nlri {
    a::Nlri {
        nlri: Some(a::nlri::Nlri::Prefix(prefix)),
    }
}

fn pack_attr(attr: PathAttr) -> a::Attribute {
    use a::attribute::Attr;
    let attr = match attr {
        PathAttr::Origin(m) => Attr::Origin(m),
        PathAttr::AsPath(m) => Attr::AsPath(m),
        PathAttr::NextHop(m) => Attr::NextHop(m),
        PathAttr::MpReach {
            family,
            next_hops,
            prefixes,
        } => Attr::MpReach(a::MpReachNlriAttribute {
            family: Some(family),
            next_hops,
            nlris: prefixes.into_iter().map(pack_nlri).collect(),
        }),
        PathAttr::Med(m) => Attr::MultiExitDisc(m),
        PathAttr::LocalPref(m) => Attr::LocalPref(m),
        PathAttr::Communities(m) => Attr::Communities(m),
        PathAttr::LargeCommunities(m) => Attr::LargeCommunities(m),
    };
    a::Attribute { attr: Some(attr) }
}

/// A client's attribute; an unset oneof is one of v4's members that this
/// subset does not declare (aggregator, AIGP, extended communities, ...).
fn attr_from_pb(attr: &a::Attribute) -> Result<PathAttr, Status> {
    use a::attribute::Attr;
    let Some(attr) = &attr.attr else {
        return Err(Status::invalid_argument(format!(
            "a path attribute is not supported by tabbyd: use {ACCEPTED_ATTRS} only"
        )));
    };
    Ok(match attr {
        Attr::Origin(m) => PathAttr::Origin(*m),
        Attr::AsPath(m) => PathAttr::AsPath(m.clone()),
        Attr::NextHop(m) => PathAttr::NextHop(m.clone()),
        Attr::MpReach(m) => PathAttr::MpReach {
            family: m.family.unwrap_or_default(),
            next_hops: m.next_hops.clone(),
            prefixes: Vec::new(),
        },
        Attr::MultiExitDisc(m) => PathAttr::Med(*m),
        Attr::LocalPref(m) => PathAttr::LocalPref(*m),
        Attr::Communities(m) => PathAttr::Communities(m.clone()),
        Attr::LargeCommunities(m) => PathAttr::LargeCommunities(m.clone()),
    })
}

fn pack_cap(c: Capability) -> a::Capability {
    use a::capability::Cap;
    a::Capability {
        cap: Some(match c {
            Capability::MultiProtocol(m) => Cap::MultiProtocol(m),
            Capability::RouteRefresh(m) => Cap::RouteRefresh(m),
            Capability::FourOctetAsn(m) => Cap::FourOctetAsn(m),
        }),
    }
}

/// A `gobgp global rib add|del` path → the local route it names.
fn local_route_from_path(p: &a::Path) -> Result<LocalRoute, Status> {
    let n = p.nlri.as_ref().ok_or_else(|| {
        Status::invalid_argument("path.nlri is missing: give the prefix as an IPAddressPrefix")
    })?;
    let Some(a::nlri::Nlri::Prefix(prefix)) = &n.nlri else {
        return Err(Status::unimplemented(
            "this NLRI type is not supported by tabbyd: only IPv4/IPv6 unicast prefixes",
        ));
    };
    let attrs = p
        .pattrs
        .iter()
        .map(attr_from_pb)
        .collect::<Result<Vec<_>, _>>()?;
    local_route(prefix, attrs)
}

mirrored!(tabby_proto::gobgp4);

type PeerStream = ItemStream<a::ListPeerResponse>;
type PathStream = ItemStream<a::ListPathResponse>;
type EventStream = ItemStream<a::WatchEventResponse>;

#[tonic::async_trait]
impl a::go_bgp_service_server::GoBgpService for GoBgpV4Service {
    async fn get_bgp(
        &self,
        _req: Request<a::GetBgpRequest>,
    ) -> Result<Response<a::GetBgpResponse>, Status> {
        get_bgp(&self.0).await
    }

    type WatchEventStream = EventStream;

    async fn watch_event(
        &self,
        req: Request<a::WatchEventRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let req = req.into_inner();
        // 0 leaves the size of the current table's events to the server.
        let batch = match req.batch_size {
            0 => 256,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        watch_event(&self.0, req, batch).await
    }

    type ListPeerStream = PeerStream;

    async fn list_peer(
        &self,
        req: Request<a::ListPeerRequest>,
    ) -> Result<Response<PeerStream>, Status> {
        list_peer(&self.0, req.into_inner()).await
    }

    async fn reset_peer(
        &self,
        req: Request<a::ResetPeerRequest>,
    ) -> Result<Response<a::ResetPeerResponse>, Status> {
        use a::reset_peer_request::Direction as D;
        let req = req.into_inner();
        let kind = if req.soft {
            match D::try_from(req.direction) {
                Ok(D::In) => ResetKind::SoftIn,
                Ok(D::Out) => ResetKind::SoftOut,
                // Unset means both, as the CLI's `softreset`.
                Ok(D::Both | D::Unspecified) => ResetKind::SoftBoth,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "soft reset direction {} is unknown: use 1 (in), 2 (out) or 3 (both)",
                        req.direction
                    )));
                }
            }
        } else {
            ResetKind::Hard
        };
        self.0.reset(&req.address, kind, &req.communication).await?;
        Ok(Response::new(a::ResetPeerResponse {}))
    }

    async fn shutdown_peer(
        &self,
        req: Request<a::ShutdownPeerRequest>,
    ) -> Result<Response<a::ShutdownPeerResponse>, Status> {
        let req = req.into_inner();
        self.0.disable(&req.address, &req.communication).await?;
        Ok(Response::new(a::ShutdownPeerResponse {}))
    }

    async fn enable_peer(
        &self,
        req: Request<a::EnablePeerRequest>,
    ) -> Result<Response<a::EnablePeerResponse>, Status> {
        self.0.enable(&req.into_inner().address).await?;
        Ok(Response::new(a::EnablePeerResponse {}))
    }

    async fn disable_peer(
        &self,
        req: Request<a::DisablePeerRequest>,
    ) -> Result<Response<a::DisablePeerResponse>, Status> {
        let req = req.into_inner();
        self.0.disable(&req.address, &req.communication).await?;
        Ok(Response::new(a::DisablePeerResponse {}))
    }

    async fn add_path(
        &self,
        req: Request<a::AddPathRequest>,
    ) -> Result<Response<a::AddPathResponse>, Status> {
        let req = req.into_inner();
        let path = req
            .path
            .ok_or_else(|| Status::invalid_argument("path is missing"))?;
        self.0
            .add_path(table(req.table_type), local_route_from_path(&path)?)
            .await?;
        Ok(Response::new(a::AddPathResponse { uuid: Vec::new() }))
    }

    async fn delete_path(
        &self,
        req: Request<a::DeletePathRequest>,
    ) -> Result<Response<a::DeletePathResponse>, Status> {
        let req = req.into_inner();
        let route = req.path.as_ref().map(local_route_from_path).transpose()?;
        self.0.delete_path(table(req.table_type), route).await?;
        Ok(Response::new(a::DeletePathResponse {}))
    }

    type ListPathStream = PathStream;

    async fn list_path(
        &self,
        req: Request<a::ListPathRequest>,
    ) -> Result<Response<PathStream>, Status> {
        list_path(&self.0, req.into_inner()).await
    }

    async fn get_table(
        &self,
        req: Request<a::GetTableRequest>,
    ) -> Result<Response<a::GetTableResponse>, Status> {
        Ok(Response::new(get_table(&self.0, req.into_inner()).await?))
    }
}
