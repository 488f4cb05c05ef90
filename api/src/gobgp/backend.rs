//! What both GoBGP services do with the core once a request is decoded:
//! the same calls, the same checks, the same answers in model types.

use std::pin::Pin;
use std::sync::Arc;

use ipnet::IpNet;
use tabby_proto::gobgp as g;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Response, Status};

use super::GOBGP_OWNER;
use super::paths::SERVED_FAMILIES;
use crate::convert::{check_reason, parse_peer_addr, parse_prefix};
use crate::model::{
    AdjRib, Family, LocalRoute, Owner, PeerStatus, PrefixMatch, ResetKind, Route, RouteQuery,
};
use crate::{Core, CoreError, Limits};

/// A server stream of `T`, as GoBGP's list and watch calls answer.
pub(super) type ItemStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Answers a list call with `items`, already gathered, one message each.
pub(super) fn streamed<T: Send + 'static>(
    items: impl Iterator<Item = T>,
) -> Response<ItemStream<T>> {
    let items: Vec<Result<T, Status>> = items.map(Ok).collect();
    Response::new(Box::pin(tokio_stream::iter(items)))
}

/// A GoBGP table, as tabbyd has them: no VRFs, no per-peer Loc-RIBs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    /// The Loc-RIB.
    Global,
    AdjIn,
    AdjOut,
    /// Any other table type a client names.
    Other,
}

/// How a client's prefix filter matches, when tabbyd can do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    Match(PrefixMatch),
    /// Shorter prefixes (covering routes): not supported.
    Shorter,
}

/// The core and limits both services work over.
#[derive(Clone)]
pub(super) struct Backend {
    pub core: Arc<dyn Core>,
    pub limits: Limits,
    pub stop: watch::Receiver<bool>,
}

fn owner() -> Result<Owner, Status> {
    Owner::new(GOBGP_OWNER).map_err(Status::internal)
}

/// tabbyd keeps one table (no VRFs): `verb` says what the call would do.
fn global_table_only(table: Table, verb: &str) -> Result<(), Status> {
    if table == Table::Global {
        Ok(())
    } else {
        Err(Status::unimplemented(format!(
            "tabbyd {verb} the global table only (no VRFs)"
        )))
    }
}

/// Accepts "ADDR" as a host prefix, as `gobgp global rib ADDR` does.
fn lookup_prefix(s: &str) -> Result<IpNet, Status> {
    match s.parse::<IpNet>() {
        Ok(n) => Ok(n.trunc()),
        Err(_) => match s.parse::<std::net::IpAddr>() {
            Ok(a) => Ok(IpNet::from(a)),
            Err(_) => parse_prefix("prefix", s),
        },
    }
}

/// The one prefix filter of a ListPath call, from (prefix, how) pairs.
pub(super) fn lookup_filter(
    prefixes: &[(&str, Lookup)],
) -> Result<Option<(IpNet, PrefixMatch)>, Status> {
    let Some((prefix, how)) = prefixes.first() else {
        return Ok(None);
    };
    if prefixes.len() > 1 {
        return Err(Status::unimplemented(
            "tabbyd takes one prefix filter at a time",
        ));
    }
    let m = match how {
        Lookup::Match(m) => *m,
        Lookup::Shorter => {
            return Err(Status::unimplemented(
                "shorter-prefixes lookups are not supported by tabbyd",
            ));
        }
    };
    Ok(Some((lookup_prefix(prefix)?, m)))
}

impl Backend {
    pub async fn local_as(&self) -> u32 {
        self.core.status().await.map(|s| s.local_as).unwrap_or(0)
    }

    /// `gobgp global`.
    pub async fn global(&self) -> Result<g::Global, Status> {
        let s = self.core.status().await?;
        Ok(g::Global {
            asn: s.local_as,
            router_id: s.router_id.to_string(),
            listen_port: i32::from(s.bgp_listen_port),
            listen_addresses: s
                .bgp_listen_addresses
                .iter()
                .map(|a| a.to_string())
                .collect(),
            families: SERVED_FAMILIES.to_vec(),
            use_multiple_paths: false,
        })
    }

    /// Every peer, or the one at `address` (none if unknown: GoBGP answers
    /// an empty list and its CLI says "not found neighbor").
    pub async fn peers(&self, address: &str) -> Result<Vec<PeerStatus>, Status> {
        if address.is_empty() {
            return Ok(self.core.list_peers().await?);
        }
        let addr = parse_peer_addr("neighbor address", address)?;
        match self.core.get_peer(addr.into()).await {
            Ok(p) => Ok(vec![p]),
            Err(CoreError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// A hard reset (with an optional RFC 8203 communication) or a soft one.
    pub async fn reset(
        &self,
        address: &str,
        kind: ResetKind,
        communication: &str,
    ) -> Result<(), Status> {
        let addr = parse_peer_addr("neighbor address", address)?;
        let reason = if kind == ResetKind::Hard {
            check_reason("communication", communication)?
        } else {
            None
        };
        self.core.reset_peer(addr.into(), kind, reason).await?;
        Ok(())
    }

    pub async fn enable(&self, address: &str) -> Result<(), Status> {
        let addr = parse_peer_addr("neighbor address", address)?;
        self.core.enable_peer(addr.into()).await?;
        Ok(())
    }

    pub async fn disable(&self, address: &str, communication: &str) -> Result<(), Status> {
        let addr = parse_peer_addr("neighbor address", address)?;
        let reason = check_reason("communication", communication)?;
        self.core.disable_peer(addr.into(), reason).await?;
        Ok(())
    }

    /// `gobgp global rib add`.
    pub async fn add_path(&self, table: Table, route: LocalRoute) -> Result<(), Status> {
        global_table_only(table, "adds paths to")?;
        self.core.announce_routes(owner()?, vec![route]).await?;
        Ok(())
    }

    /// `gobgp global rib del`.
    pub async fn delete_path(&self, table: Table, route: Option<LocalRoute>) -> Result<(), Status> {
        global_table_only(table, "deletes paths from")?;
        let Some(route) = route else {
            return Err(Status::unimplemented(
                "deleting by family or uuid is not supported by tabbyd: give the prefix (gobgp global rib del PREFIX)",
            ));
        };
        self.core
            .withdraw_routes(owner()?, vec![route.prefix])
            .await?;
        Ok(())
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

    /// The routes of `family` matching `filter` in `table`: the Loc-RIB, or
    /// neighbor `name`'s adj-in or adj-out.
    pub async fn table_routes(
        &self,
        table: Table,
        name: &str,
        family: Family,
        filter: Option<(IpNet, PrefixMatch)>,
    ) -> Result<Vec<Route>, Status> {
        let rib = match table {
            Table::Global => return self.all_routes(family, filter).await,
            Table::AdjIn => AdjRib::In,
            Table::AdjOut => AdjRib::Out,
            Table::Other => {
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

    /// `gobgp global rib summary`: destinations and paths of a table.
    pub async fn table_counts(
        &self,
        table: Table,
        name: &str,
        family: Family,
    ) -> Result<(u64, u64), Status> {
        let routes = self.table_routes(table, name, family, None).await?;
        let paths: usize = routes.iter().map(|r| r.paths.len()).sum();
        Ok((routes.len() as u64, paths as u64))
    }
}
