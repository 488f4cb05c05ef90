//! The typed handle through which the API reaches the daemon core.

use ipnet::IpNet;

use crate::model::{
    AdjRib, DaemonStatus, Family, Health, LocalRoute, Owner, PeerConfig, PeerRef, PeerStatus,
    PeerWatch, ResetKind, Route, RouteChange, RouteExplanation, RoutePage, RouteQuery, RouteWatch,
};

/// Why the core refused or failed a request. The API maps each variant to a
/// gRPC status code; the message is shown to the client verbatim, so it
/// should say what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The named object (peer, prefix) does not exist → `NOT_FOUND`.
    #[error("{0}")]
    NotFound(String),
    /// The object exists already (e.g. peer address) → `ALREADY_EXISTS`.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is well-formed but not acceptable → `INVALID_ARGUMENT`.
    #[error("{0}")]
    InvalidArgument(String),
    /// The daemon is in a state where this cannot be done now →
    /// `FAILED_PRECONDITION`.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit would be exceeded → `RESOURCE_EXHAUSTED`.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The feature is not available in this daemon → `UNIMPLEMENTED`.
    #[error("{0}")]
    Unimplemented(String),
    /// The core is shutting down or its event loop does not answer →
    /// `UNAVAILABLE`.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or unexpected failure → `INTERNAL`.
    #[error("{0}")]
    Internal(String),
}

impl From<CoreError> for tonic::Status {
    fn from(e: CoreError) -> tonic::Status {
        match e {
            CoreError::NotFound(m) => tonic::Status::not_found(m),
            CoreError::AlreadyExists(m) => tonic::Status::already_exists(m),
            CoreError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            CoreError::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
            CoreError::ResourceExhausted(m) => tonic::Status::resource_exhausted(m),
            CoreError::Unimplemented(m) => tonic::Status::unimplemented(m),
            CoreError::Unavailable(m) => tonic::Status::unavailable(m),
            CoreError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

/// The daemon core as the API sees it. The daemon implements this over its
/// event loop; every argument has already been validated by the API (prefixes
/// have no host bits, addresses and AS numbers are in range, owners are
/// well-formed), so the core checks only what needs its state (unknown peer →
/// [`CoreError::NotFound`], duplicate peer → [`CoreError::AlreadyExists`]).
///
/// Every method must return promptly: the API does not add timeouts.
#[tonic::async_trait]
pub trait Core: Send + Sync + 'static {
    /// Adds or updates `routes` originated by `owner` (no duplicate prefixes).
    async fn announce_routes(
        &self,
        owner: Owner,
        routes: Vec<LocalRoute>,
    ) -> Result<RouteChange, CoreError>;

    /// Withdraws `owner`'s routes for `prefixes`; unknown prefixes are ignored.
    async fn withdraw_routes(
        &self,
        owner: Owner,
        prefixes: Vec<IpNet>,
    ) -> Result<RouteChange, CoreError>;

    /// Makes `routes` the complete set originated by `owner`, atomically.
    async fn replace_routes(
        &self,
        owner: Owner,
        routes: Vec<LocalRoute>,
    ) -> Result<RouteChange, CoreError>;

    /// One page of the Loc-RIB (see [`RouteQuery`] for ordering and paging).
    async fn list_routes(&self, query: RouteQuery) -> Result<RoutePage, CoreError>;

    /// Starts a watch of best-route changes. With `resume_from = Some(seq)`
    /// the core returns [`crate::model::RouteWatchStart::Replay`] of the
    /// events after `seq` if it still holds them all, else a snapshot. The
    /// broadcast receiver must be subscribed before the snapshot is taken.
    /// [`crate::RouteJournal`] implements this bookkeeping.
    async fn watch_routes(&self, resume_from: Option<u64>) -> Result<RouteWatch, CoreError>;

    /// Every candidate for exactly `prefix` and the export decision per peer;
    /// [`CoreError::NotFound`] when the Loc-RIB has no path for it.
    async fn explain_route(&self, prefix: IpNet) -> Result<RouteExplanation, CoreError>;

    /// The Adj-RIB-In or Adj-RIB-Out of one peer for one family, sorted by
    /// prefix.
    async fn list_adj_rib(
        &self,
        peer: PeerRef,
        rib: AdjRib,
        family: Family,
    ) -> Result<Vec<Route>, CoreError>;

    /// Every configured peer.
    async fn list_peers(&self) -> Result<Vec<PeerStatus>, CoreError>;

    /// One peer.
    async fn get_peer(&self, peer: PeerRef) -> Result<PeerStatus, CoreError>;

    /// Adds a peer (run time only, not persisted).
    async fn add_peer(&self, config: PeerConfig) -> Result<PeerStatus, CoreError>;

    /// Deletes a peer, closing its session with Cease.
    async fn delete_peer(&self, peer: PeerRef) -> Result<(), CoreError>;

    /// Administratively enables a peer.
    async fn enable_peer(&self, peer: PeerRef) -> Result<PeerStatus, CoreError>;

    /// Administratively disables a peer; `reason` is the RFC 8203 shutdown
    /// communication (at most 255 bytes, already checked).
    async fn disable_peer(
        &self,
        peer: PeerRef,
        reason: Option<String>,
    ) -> Result<PeerStatus, CoreError>;

    /// Resets a session.
    async fn reset_peer(
        &self,
        peer: PeerRef,
        kind: ResetKind,
        reason: Option<String>,
    ) -> Result<PeerStatus, CoreError>;

    /// Starts a watch of peer events: every peer now, then changes.
    async fn watch_peers(&self) -> Result<PeerWatch, CoreError>;

    /// The daemon's status.
    async fn status(&self) -> Result<DaemonStatus, CoreError>;

    /// Replaces the log filter (a level or a tracing directive, non-empty,
    /// at most 1,024 bytes); returns the previous one.
    async fn set_log_level(&self, filter: String) -> Result<String, CoreError>;

    /// The effective configuration as a JSON document, secrets redacted.
    async fn effective_config(&self) -> Result<String, CoreError>;

    /// Liveness and readiness. Called periodically by the health service;
    /// must answer quickly (report `live: false` if the event loop does not
    /// answer within a short deadline rather than hanging).
    async fn health(&self) -> Health;
}
