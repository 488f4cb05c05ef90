//! [`tabby_api::Core`] for the daemon: each call locks the core briefly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ipnet::IpNet;
use tabby_api::model::{
    AdjRib, DaemonStatus, Family, Health, LocalRoute, Owner, PeerConfig, PeerRef, PeerStatus,
    PeerWatch, ResetKind, Route, RouteChange, RouteExplanation, RoutePage, RouteQuery, RouteWatch,
};
use tabby_api::{Core, CoreError};

use crate::bfd_link::BfdView;
use crate::daemon::{Daemon, merge_bfd_info};
use crate::metrics::{KindLabel, Metrics};

/// The API's handle on the daemon core.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    daemon: Arc<Mutex<Daemon>>,
    metrics: Arc<Metrics>,
    bfd: Option<BfdView>,
}

impl CoreHandle {
    pub fn new(daemon: Arc<Mutex<Daemon>>, metrics: Arc<Metrics>, bfd: Option<BfdView>) -> Self {
        CoreHandle {
            daemon,
            metrics,
            bfd,
        }
    }

    /// The BFD driver's snapshot of every session, by peer (empty when no
    /// driver runs). Read before the core is locked: it awaits the driver.
    async fn bfd_sessions(&self) -> HashMap<IpAddr, tabby_bfd_driver::SessionInfo> {
        let Some(handle) = self.bfd.as_ref().and_then(|v| v.borrow().clone()) else {
            return HashMap::new();
        };
        handle
            .sessions()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.peer, s))
            .collect()
    }

    async fn with_bfd(&self, mut peers: Vec<PeerStatus>) -> Vec<PeerStatus> {
        if peers.iter().all(|p| p.bfd.is_none()) {
            return peers;
        }
        let infos = self.bfd_sessions().await;
        for p in &mut peers {
            if let (Some(b), Some(info)) = (p.bfd.as_mut(), infos.get(&p.config.address)) {
                merge_bfd_info(b, info);
            }
        }
        peers
    }

    fn lock(&self, method: &str) -> Result<MutexGuard<'_, Daemon>, CoreError> {
        self.metrics
            .api_calls
            .get_or_create(&KindLabel {
                kind: method.to_owned(),
            })
            .inc();
        self.daemon
            .lock()
            .map_err(|_| CoreError::Internal("the daemon core failed; restart tabbyd".into()))
    }
}

#[tonic::async_trait]
impl Core for CoreHandle {
    async fn announce_routes(
        &self,
        owner: Owner,
        routes: Vec<LocalRoute>,
    ) -> Result<RouteChange, CoreError> {
        self.lock("AnnounceRoutes")?
            .announce(&owner, routes, Instant::now())
    }

    async fn withdraw_routes(
        &self,
        owner: Owner,
        prefixes: Vec<IpNet>,
    ) -> Result<RouteChange, CoreError> {
        self.lock("WithdrawRoutes")?
            .withdraw(&owner, prefixes, Instant::now())
    }

    async fn replace_routes(
        &self,
        owner: Owner,
        routes: Vec<LocalRoute>,
    ) -> Result<RouteChange, CoreError> {
        self.lock("ReplaceRoutes")?
            .replace(&owner, routes, Instant::now())
    }

    async fn list_routes(&self, query: RouteQuery) -> Result<RoutePage, CoreError> {
        let mut d = self.lock("ListRoutes")?;
        d.keep_route_order();
        d.list_routes(&query)
    }

    async fn watch_routes(&self, resume_from: Option<u64>) -> Result<RouteWatch, CoreError> {
        self.lock("WatchRoutes")?.watch_routes(resume_from)
    }

    async fn explain_route(&self, prefix: IpNet) -> Result<RouteExplanation, CoreError> {
        self.lock("ExplainRoute")?.explain(prefix)
    }

    async fn list_adj_rib(
        &self,
        peer: PeerRef,
        rib: AdjRib,
        family: Family,
    ) -> Result<Vec<Route>, CoreError> {
        self.lock("ListAdjRib")?.adj_rib(peer, rib, family)
    }

    async fn list_peers(&self) -> Result<Vec<PeerStatus>, CoreError> {
        let peers = self.lock("ListPeers")?.list_peers(Instant::now());
        Ok(self.with_bfd(peers).await)
    }

    async fn get_peer(&self, address: PeerRef) -> Result<PeerStatus, CoreError> {
        let peer = self.lock("GetPeer")?.get_peer(address, Instant::now())?;
        Ok(self.with_bfd(vec![peer]).await.remove(0))
    }

    async fn add_peer(&self, config: PeerConfig) -> Result<PeerStatus, CoreError> {
        self.lock("AddPeer")?.add_api_peer(config, Instant::now())
    }

    async fn delete_peer(&self, address: PeerRef) -> Result<(), CoreError> {
        self.lock("DeletePeer")?
            .delete_peer(address, Instant::now())
    }

    async fn enable_peer(&self, address: PeerRef) -> Result<PeerStatus, CoreError> {
        self.lock("EnablePeer")?
            .enable_peer(address, true, None, Instant::now())
    }

    async fn disable_peer(
        &self,
        address: PeerRef,
        reason: Option<String>,
    ) -> Result<PeerStatus, CoreError> {
        self.lock("DisablePeer")?
            .enable_peer(address, false, reason, Instant::now())
    }

    async fn reset_peer(
        &self,
        address: PeerRef,
        kind: ResetKind,
        _reason: Option<String>,
    ) -> Result<PeerStatus, CoreError> {
        self.lock("ResetPeer")?
            .reset_peer(address, kind, Instant::now())
    }

    async fn watch_peers(&self) -> Result<PeerWatch, CoreError> {
        Ok(self.lock("WatchPeers")?.watch_peers(Instant::now()))
    }

    async fn status(&self) -> Result<DaemonStatus, CoreError> {
        Ok(self.lock("Status")?.status(Instant::now()))
    }

    async fn set_log_level(&self, filter: String) -> Result<String, CoreError> {
        self.lock("SetLogLevel")?.set_log_level(filter)
    }

    async fn effective_config(&self) -> Result<String, CoreError> {
        Ok(self.lock("GetConfig")?.effective_config())
    }

    async fn health(&self) -> Health {
        match self.daemon.try_lock() {
            Ok(d) => d.health(),
            // Busy is alive; a poisoned lock is not.
            Err(std::sync::TryLockError::WouldBlock) => Health {
                live: true,
                ready: false,
                reasons: vec!["the core is busy".into()],
            },
            Err(std::sync::TryLockError::Poisoned(_)) => Health {
                live: false,
                ready: false,
                reasons: vec!["the daemon core failed".into()],
            },
        }
    }
}
