//! `WatchEvent` for both versions: the current table and best-path changes
//! (`gobgp monitor global rib`) and peer state changes (`gobgp monitor
//! neighbor`), packed by each version's [`Dialect`].

use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};

use super::backend::{Backend, ItemStream};
use crate::Core;
use crate::model::{Path, PeerStatus, PeerWatch, RouteUpdate, RouteWatch, RouteWatchStart};

/// How one API version packs watch events.
pub(super) trait Dialect: 'static {
    type Path: Send + 'static;
    type Event: Send + 'static;
    fn path(prefix: &IpNet, path: &Path, local_as: u32) -> Self::Path;
    fn withdrawal(prefix: &IpNet) -> Self::Path;
    fn table_event(paths: Vec<Self::Path>) -> Self::Event;
    fn peer_state_event(peer: &PeerStatus, local_as: u32) -> Self::Event;
}

/// What a client asked to watch, in neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WatchRequest {
    /// Best-path changes; `Some(true)` sends the current table first.
    pub best: Option<bool>,
    /// Peer state changes.
    pub peers: bool,
    /// Most paths in one event of the current table.
    pub batch: usize,
}

type EvTx<D> = mpsc::Sender<Result<<D as Dialect>::Event, Status>>;

impl Backend {
    /// Starts the watches `req` asks for; the stream ends when the client
    /// goes or the server stops.
    pub async fn watch<D: Dialect>(
        &self,
        req: WatchRequest,
    ) -> Result<Response<ItemStream<D::Event>>, Status> {
        if req.best.is_none() && !req.peers {
            return Err(Status::invalid_argument(
                "nothing to watch: set peer or table",
            ));
        }
        let (tx, rx) = mpsc::channel(self.limits.watch_stream_buffer.max(1));
        let local_as = self.local_as().await;
        if let Some(init) = req.best {
            let watch = self.core.watch_routes(None).await?;
            let core = Arc::clone(&self.core);
            let batch = req.batch.max(1);
            let t = tx.clone();
            tokio::spawn(crate::server::until_stopped(
                self.stop.clone(),
                tx.clone(),
                async move { table_events::<D>(core, watch, init, batch, local_as, t).await },
            ));
        }
        if req.peers {
            let watch = self.core.watch_peers().await?;
            let t = tx.clone();
            tokio::spawn(crate::server::until_stopped(
                self.stop.clone(),
                tx.clone(),
                async move { peer_events::<D>(watch, local_as, t).await },
            ));
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends a snapshot of the table in events of up to `batch` paths; false
/// once the watcher has gone.
async fn send_table<D: Dialect>(
    tx: &EvTx<D>,
    routes: &[(IpNet, Path)],
    batch: usize,
    local_as: u32,
) -> bool {
    for chunk in routes.chunks(batch) {
        let paths = chunk
            .iter()
            .map(|(p, best)| D::path(p, best, local_as))
            .collect();
        if tx.send(Ok(D::table_event(paths))).await.is_err() {
            return false;
        }
    }
    true
}

/// Optional current table, then changes. GoBGP has no resync signal, so a
/// lagging watcher gets the current table again.
async fn table_events<D: Dialect>(
    core: Arc<dyn Core>,
    watch: RouteWatch,
    init: bool,
    batch: usize,
    local_as: u32,
    tx: EvTx<D>,
) {
    let RouteWatch { start, mut updates } = watch;
    let mut last = match start {
        RouteWatchStart::Snapshot { sequence, routes } => {
            if init && !send_table::<D>(&tx, &routes, batch, local_as).await {
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
                    RouteUpdate::BestChanged { prefix, best } => D::path(prefix, best, local_as),
                    RouteUpdate::Withdrawn { prefix } => D::withdrawal(prefix),
                };
                if tx.send(Ok(D::table_event(vec![path]))).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => match core.watch_routes(None).await {
                Ok(w) => {
                    let RouteWatch { start, updates: u } = w;
                    updates = u;
                    if let RouteWatchStart::Snapshot { sequence, routes } = start {
                        last = sequence;
                        if !send_table::<D>(&tx, &routes, batch, local_as).await {
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

/// Every peer state change as a STATE event.
async fn peer_events<D: Dialect>(watch: PeerWatch, local_as: u32, tx: EvTx<D>) {
    let PeerWatch {
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
                if tx
                    .send(Ok(D::peer_state_event(&ev.peer, local_as)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Peer events are state snapshots; missing some is harmless.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
