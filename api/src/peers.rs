//! The tabby.v1 Peers service.

use std::pin::Pin;
use std::sync::Arc;

use tabby_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert::{
    check_reason, parse_peer_ref, peer_config_from_pb, peer_to_pb, session_state_to_pb,
};
use crate::model::{PeerChange, PeerEvent, PeerStatus, ResetKind};
use crate::{Core, Limits};

/// Serves tabby.v1.Peers over a [`Core`].
#[derive(Clone)]
pub struct PeersService {
    core: Arc<dyn Core>,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for PeersService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeersService").finish_non_exhaustive()
    }
}

impl PeersService {
    /// A service over `core`; watch streams end when `stop` turns true.
    pub fn new(core: Arc<dyn Core>, limits: Limits, stop: watch::Receiver<bool>) -> PeersService {
        PeersService { core, limits, stop }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::PeerEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::peers_server::Peers for PeersService {
    async fn list_peers(
        &self,
        _req: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        let mut peers = self.core.list_peers().await?;
        peers.sort_by_key(|p| p.config.address);
        Ok(Response::new(pb::ListPeersResponse {
            peers: peers.iter().map(peer_to_pb).collect(),
        }))
    }

    async fn get_peer(
        &self,
        req: Request<pb::GetPeerRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let addr = parse_peer_ref("address", &req.into_inner().address)?;
        Ok(Response::new(peer_to_pb(&self.core.get_peer(addr).await?)))
    }

    async fn add_peer(
        &self,
        req: Request<pb::AddPeerRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let cfg = peer_config_from_pb(req.into_inner().config.as_ref())?;
        Ok(Response::new(peer_to_pb(&self.core.add_peer(cfg).await?)))
    }

    async fn delete_peer(
        &self,
        req: Request<pb::DeletePeerRequest>,
    ) -> Result<Response<pb::DeletePeerResponse>, Status> {
        let addr = parse_peer_ref("address", &req.into_inner().address)?;
        self.core.delete_peer(addr).await?;
        Ok(Response::new(pb::DeletePeerResponse {}))
    }

    async fn enable_peer(
        &self,
        req: Request<pb::EnablePeerRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let addr = parse_peer_ref("address", &req.into_inner().address)?;
        Ok(Response::new(peer_to_pb(
            &self.core.enable_peer(addr).await?,
        )))
    }

    async fn disable_peer(
        &self,
        req: Request<pb::DisablePeerRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let req = req.into_inner();
        let addr = parse_peer_ref("address", &req.address)?;
        let reason = check_reason("reason", &req.reason)?;
        Ok(Response::new(peer_to_pb(
            &self.core.disable_peer(addr, reason).await?,
        )))
    }

    async fn reset_peer(
        &self,
        req: Request<pb::ResetPeerRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let req = req.into_inner();
        let addr = parse_peer_ref("address", &req.address)?;
        let kind = match pb::ResetKind::try_from(req.kind) {
            Ok(pb::ResetKind::Hard) => ResetKind::Hard,
            Ok(pb::ResetKind::SoftIn) => ResetKind::SoftIn,
            Ok(pb::ResetKind::SoftOut) => ResetKind::SoftOut,
            Ok(pb::ResetKind::SoftBoth) => ResetKind::SoftBoth,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "kind {} is unknown: use RESET_KIND_HARD (0), SOFT_IN (1), SOFT_OUT (2) or SOFT_BOTH (3)",
                    req.kind
                )));
            }
        };
        let reason = check_reason("reason", &req.reason)?;
        if reason.is_some() && kind != ResetKind::Hard {
            return Err(Status::invalid_argument(
                "reason is only sent with a hard reset (a soft reset sends no NOTIFICATION): drop it or use RESET_KIND_HARD",
            ));
        }
        Ok(Response::new(peer_to_pb(
            &self.core.reset_peer(addr, kind, reason).await?,
        )))
    }

    type WatchPeersStream = EventStream;

    async fn watch_peers(
        &self,
        _req: Request<pb::WatchPeersRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let watch = self.core.watch_peers().await?;
        let (tx, rx) = mpsc::channel(self.limits.watch_stream_buffer.max(1));
        let core = Arc::clone(&self.core);
        let stop = self.stop.clone();
        tokio::spawn(crate::server::until_stopped(stop, tx.clone(), async move {
            if let Err(why) = run_peer_watch(core, watch, tx).await {
                tracing::debug!(reason = why, "peer watcher ended");
            }
        }));
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as EventStream
        ))
    }
}

type Tx = mpsc::Sender<Result<pb::PeerEvent, Status>>;

fn peer_event(sequence: u64, kind: pb::PeerEventKind, peer: Option<&PeerStatus>) -> pb::PeerEvent {
    pb::PeerEvent {
        sequence,
        kind: kind as i32,
        peer: peer.map(peer_to_pb),
        previous_state: 0,
    }
}

async fn send(tx: &Tx, ev: pb::PeerEvent) -> Result<(), &'static str> {
    tx.send(Ok(ev)).await.map_err(|_| "client went away")
}

async fn send_snapshot(
    sequence: u64,
    mut peers: Vec<PeerStatus>,
    tx: &Tx,
) -> Result<(), &'static str> {
    peers.sort_by_key(|p| p.config.address);
    for p in &peers {
        send(
            tx,
            peer_event(sequence, pb::PeerEventKind::Snapshot, Some(p)),
        )
        .await?;
    }
    send(
        tx,
        peer_event(sequence, pb::PeerEventKind::EndOfSnapshot, None),
    )
    .await
}

fn change_to_pb(ev: &PeerEvent) -> pb::PeerEvent {
    let (kind, previous) = match &ev.change {
        PeerChange::Added => (pb::PeerEventKind::Added, 0),
        PeerChange::StateChanged { previous } => (
            pb::PeerEventKind::StateChanged,
            session_state_to_pb(*previous) as i32,
        ),
        PeerChange::Removed => (pb::PeerEventKind::Removed, 0),
    };
    pb::PeerEvent {
        sequence: ev.sequence,
        kind: kind as i32,
        peer: Some(peer_to_pb(&ev.peer)),
        previous_state: previous,
    }
}

/// Feeds one WatchPeers stream; bounded like the route watcher (lag →
/// RESYNC and a fresh snapshot).
async fn run_peer_watch(
    core: Arc<dyn Core>,
    watch: crate::model::PeerWatch,
    tx: Tx,
) -> Result<(), &'static str> {
    let crate::model::PeerWatch {
        sequence,
        peers,
        mut updates,
    } = watch;
    let mut last = sequence;
    send_snapshot(sequence, peers, &tx).await?;
    loop {
        let lagged = tokio::select! {
            _ = tx.closed() => return Err("client went away"),
            r = updates.recv() => match r {
                Ok(ev) if ev.sequence <= last => false,
                Ok(ev) => {
                    last = ev.sequence;
                    send(&tx, change_to_pb(&ev)).await?;
                    false
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(missed = n, "peer watcher lagged; sending resync");
                    true
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = tx.send(Err(Status::unavailable("peer feed closed: tabbyd is shutting down; reconnect"))).await;
                    return Err("feed closed");
                }
            }
        };
        if lagged {
            send(&tx, peer_event(last, pb::PeerEventKind::Resync, None)).await?;
            let fresh = match core.watch_peers().await {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return Err("core refused resync");
                }
            };
            last = fresh.sequence;
            updates = fresh.updates;
            send_snapshot(fresh.sequence, fresh.peers, &tx).await?;
        }
    }
}
