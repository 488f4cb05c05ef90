//! The tabby.v1 Routes service.

use std::pin::Pin;
use std::sync::Arc;

use tabby_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert::{
    explanation_to_pb, family_filter, local_routes_from_pb, parse_prefix, path_to_pb, route_to_pb,
};
use crate::model::{
    Family, Owner, PrefixMatch, RouteEvent, RouteQuery, RouteUpdate, RouteWatchStart,
};
use crate::{Core, Limits};

/// Serves tabby.v1.Routes over a [`Core`].
#[derive(Clone)]
pub struct RoutesService {
    core: Arc<dyn Core>,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for RoutesService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutesService")
            .field("limits", &self.limits)
            .finish()
    }
}

impl RoutesService {
    /// A service over `core`; watch streams end when `stop` turns true.
    pub fn new(core: Arc<dyn Core>, limits: Limits, stop: watch::Receiver<bool>) -> RoutesService {
        RoutesService { core, limits, stop }
    }
}

fn owner(s: &str) -> Result<Owner, Status> {
    Owner::new(s).map_err(Status::invalid_argument)
}

fn change_to_pb(c: crate::model::RouteChange) -> pb::RouteChangeResponse {
    pb::RouteChangeResponse {
        added: c.added,
        updated: c.updated,
        removed: c.removed,
        unchanged: c.unchanged,
        sequence: c.sequence,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RouteEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::routes_server::Routes for RoutesService {
    async fn announce_routes(
        &self,
        req: Request<pb::AnnounceRoutesRequest>,
    ) -> Result<Response<pb::RouteChangeResponse>, Status> {
        let req = req.into_inner();
        let owner = owner(&req.owner)?;
        let routes = local_routes_from_pb(&req.routes, self.limits.max_routes_per_request)?;
        if routes.is_empty() {
            return Err(Status::invalid_argument(
                "routes is empty: give at least one route to announce",
            ));
        }
        let change = self.core.announce_routes(owner, routes).await?;
        Ok(Response::new(change_to_pb(change)))
    }

    async fn withdraw_routes(
        &self,
        req: Request<pb::WithdrawRoutesRequest>,
    ) -> Result<Response<pb::RouteChangeResponse>, Status> {
        let req = req.into_inner();
        let owner = owner(&req.owner)?;
        if req.prefixes.len() > self.limits.max_routes_per_request {
            return Err(Status::resource_exhausted(format!(
                "{} prefixes in one request; at most {} allowed: split the request",
                req.prefixes.len(),
                self.limits.max_routes_per_request
            )));
        }
        if req.prefixes.is_empty() {
            return Err(Status::invalid_argument(
                "prefixes is empty: give the prefixes to withdraw (ReplaceRoutes with no routes withdraws all)",
            ));
        }
        let prefixes = req
            .prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| parse_prefix(&format!("prefixes[{i}]"), p))
            .collect::<Result<Vec<_>, _>>()?;
        let change = self.core.withdraw_routes(owner, prefixes).await?;
        Ok(Response::new(change_to_pb(change)))
    }

    async fn replace_routes(
        &self,
        req: Request<pb::ReplaceRoutesRequest>,
    ) -> Result<Response<pb::RouteChangeResponse>, Status> {
        let req = req.into_inner();
        let owner = owner(&req.owner)?;
        let routes = local_routes_from_pb(&req.routes, self.limits.max_routes_per_request)?;
        let change = self.core.replace_routes(owner, routes).await?;
        Ok(Response::new(change_to_pb(change)))
    }

    async fn list_routes(
        &self,
        req: Request<pb::ListRoutesRequest>,
    ) -> Result<Response<pb::ListRoutesResponse>, Status> {
        let req = req.into_inner();
        let family = family_filter("family", req.family)?;
        let prefix = if req.prefix.trim().is_empty() {
            None
        } else {
            let p = parse_prefix("prefix", &req.prefix)?;
            if let Some(f) = family
                && f != Family::of_prefix(&p)
            {
                return Err(Status::invalid_argument(format!(
                    "prefix {p} is {} but family asks for {}: drop one of the two filters",
                    Family::of_prefix(&p).name(),
                    f.name()
                )));
            }
            let m = match pb::PrefixMatch::try_from(req.r#match) {
                Ok(pb::PrefixMatch::Exact) => PrefixMatch::Exact,
                Ok(pb::PrefixMatch::Longer) => PrefixMatch::Longer,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "match {} is unknown: use PREFIX_MATCH_EXACT (0) or PREFIX_MATCH_LONGER (1)",
                        req.r#match
                    )));
                }
            };
            Some((p, m))
        };
        let limit = match req.page_size as usize {
            0 => self.limits.default_page_size,
            n if n > self.limits.max_page_size => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} is above the maximum {}: ask for fewer and follow next_page_token",
                    self.limits.max_page_size
                )));
            }
            n => n,
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(parse_prefix("page_token", &req.page_token).map_err(|_| {
                Status::invalid_argument(
                    "page_token is not one this server issued: pass next_page_token unchanged, or empty for the first page",
                )
            })?)
        };
        let page = self
            .core
            .list_routes(RouteQuery {
                family,
                prefix,
                best_only: req.best_only,
                after,
                limit,
            })
            .await?;
        let next_page_token = match (page.more, page.routes.last()) {
            (true, Some(last)) => last.prefix.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListRoutesResponse {
            routes: page.routes.iter().map(route_to_pb).collect(),
            next_page_token,
        }))
    }

    type WatchRoutesStream = EventStream;

    async fn watch_routes(
        &self,
        req: Request<pb::WatchRoutesRequest>,
    ) -> Result<Response<Self::WatchRoutesStream>, Status> {
        let req = req.into_inner();
        let family = family_filter("family", req.family)?;
        let resume = (req.resume_from_sequence != 0).then_some(req.resume_from_sequence);
        let watch = self.core.watch_routes(resume).await?;
        let (tx, rx) = mpsc::channel(self.limits.watch_stream_buffer.max(1));
        let core = Arc::clone(&self.core);
        let resync_first =
            resume.is_some() && matches!(watch.start, RouteWatchStart::Snapshot { .. });
        let stop = self.stop.clone();
        tokio::spawn(crate::server::until_stopped(stop, tx.clone(), async move {
            if let Err(closed) =
                run_route_watch(core, watch, family, resume, resync_first, tx).await
            {
                tracing::debug!(reason = closed, "route watcher ended");
            }
        }));
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as EventStream
        ))
    }

    async fn explain_route(
        &self,
        req: Request<pb::ExplainRouteRequest>,
    ) -> Result<Response<pb::ExplainRouteResponse>, Status> {
        let prefix = parse_prefix("prefix", &req.into_inner().prefix)?;
        let e = self.core.explain_route(prefix).await?;
        Ok(Response::new(explanation_to_pb(&e)))
    }
}

fn event(sequence: u64, kind: pb::RouteEventKind) -> pb::RouteEvent {
    pb::RouteEvent {
        sequence,
        kind: kind as i32,
        prefix: String::new(),
        best: None,
    }
}

fn update_to_pb(ev: &RouteEvent) -> pb::RouteEvent {
    match &ev.update {
        RouteUpdate::BestChanged { prefix, best } => pb::RouteEvent {
            sequence: ev.sequence,
            kind: pb::RouteEventKind::BestChanged as i32,
            prefix: prefix.to_string(),
            best: Some(path_to_pb(best)),
        },
        RouteUpdate::Withdrawn { prefix } => pb::RouteEvent {
            sequence: ev.sequence,
            kind: pb::RouteEventKind::Withdrawn as i32,
            prefix: prefix.to_string(),
            best: None,
        },
    }
}

type Tx = mpsc::Sender<Result<pb::RouteEvent, Status>>;

async fn send(tx: &Tx, ev: pb::RouteEvent) -> Result<(), &'static str> {
    tx.send(Ok(ev)).await.map_err(|_| "client went away")
}

/// Sends the start of a watch; returns the last sequence covered (`resumed`
/// for an empty replay).
async fn send_start(
    start: RouteWatchStart,
    family: Option<Family>,
    resumed: u64,
    tx: &Tx,
) -> Result<u64, &'static str> {
    match start {
        RouteWatchStart::Snapshot { sequence, routes } => {
            for (prefix, best) in routes {
                if family.is_some_and(|f| f != Family::of_prefix(&prefix)) {
                    continue;
                }
                send(
                    tx,
                    pb::RouteEvent {
                        sequence,
                        kind: pb::RouteEventKind::Snapshot as i32,
                        prefix: prefix.to_string(),
                        best: Some(path_to_pb(&best)),
                    },
                )
                .await?;
            }
            send(tx, event(sequence, pb::RouteEventKind::EndOfSnapshot)).await?;
            Ok(sequence)
        }
        RouteWatchStart::Replay(events) => {
            let mut last = resumed;
            for ev in events {
                last = ev.sequence;
                if family.is_none_or(|f| f == Family::of_prefix(ev.update.prefix())) {
                    send(tx, update_to_pb(&ev)).await?;
                }
            }
            Ok(last)
        }
    }
}

/// Feeds one WatchRoutes stream. The outgoing channel is bounded, so a slow
/// client stops this task, its broadcast receiver falls behind, and on lag
/// the client is told to RESYNC and gets a fresh snapshot: memory stays
/// bounded whatever the client does.
async fn run_route_watch(
    core: Arc<dyn Core>,
    watch: crate::model::RouteWatch,
    family: Option<Family>,
    resume: Option<u64>,
    resync_first: bool,
    tx: Tx,
) -> Result<(), &'static str> {
    if resync_first {
        // The client asked to resume but the core no longer holds the events.
        send(&tx, event(resume.unwrap_or(0), pb::RouteEventKind::Resync)).await?;
    }
    let crate::model::RouteWatch { start, mut updates } = watch;
    let mut last = send_start(start, family, resume.unwrap_or(0), &tx).await?;
    loop {
        let lagged = tokio::select! {
            _ = tx.closed() => return Err("client went away"),
            r = updates.recv() => match r {
                Ok(ev) if ev.sequence <= last => continue,
                // A gap means events were lost between start and feed.
                Ok(ev) if ev.sequence != last + 1 => true,
                Ok(ev) => {
                    last = ev.sequence;
                    if family.is_none_or(|f| f == Family::of_prefix(ev.update.prefix())) {
                        send(&tx, update_to_pb(&ev)).await?;
                    }
                    false
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(missed = n, "route watcher lagged");
                    true
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = tx.send(Err(Status::unavailable("route feed closed: tabbyd is shutting down; reconnect and resume"))).await;
                    return Err("feed closed");
                }
            }
        };
        if lagged {
            // Catch up from the history when it still holds every missed
            // event: the client sees an unbroken stream. Only when it does
            // not is the client told to resync and sent a fresh snapshot.
            let fresh = match core.watch_routes(Some(last)).await {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return Err("core refused resync");
                }
            };
            if matches!(fresh.start, RouteWatchStart::Snapshot { .. }) {
                send(&tx, event(last, pb::RouteEventKind::Resync)).await?;
                last = send_start(fresh.start, family, 0, &tx).await?;
            } else {
                tracing::debug!(
                    from = last,
                    "route watcher lagged; replaying from the history"
                );
                last = send_start(fresh.start, family, last, &tx).await?;
            }
            updates = fresh.updates;
        }
    }
}
