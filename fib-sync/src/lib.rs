//! tabby-fib-sync: programs Tabby's best routes into the Linux kernel FIB
//! over rtnetlink, quickly, exactly, and without touching routes it does not
//! own.
//!
//! Owns: the netlink sockets, the desired-versus-kernel reconciliation, the
//! restart rule (routes of our protocol found at start stay untouched until
//! the RIB says it converged), watching the kernel (restoring our routes,
//! link/address events, optional learning of other protocols' routes).
//! Does not own: route selection (tabby-rib), which routes to program (the
//! daemon maps the RIB's best-route changes onto [`FibRoute`]s), or any
//! tunnel device (its name is configuration).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tabby_fib_sync::FibError> {
//! use tabby_fib_sync::{FibConfig, FibRoute, FibSync};
//! let (fib, task) = FibSync::start(FibConfig::default()).await?;
//! tokio::spawn(task.run());
//! fib.set(FibRoute::blackhole("100.64.1.0/26".parse().unwrap())).await?;
//! fib.converged().await?; // after End-of-RIB: stale routes of ours go
//! fib.sync().await?; // wait until the kernel holds it
//! # Ok(()) }
//! ```

mod actor;
mod inflight;
mod learn;
pub mod netns;
mod socket;
mod types;
mod wire;

use std::io;

use ipnet::IpNet;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use actor::FibTask;
use actor::{Command, validate};
pub use types::{
    FibConfig, FibRoute, FibStats, KernelEvent, LearnFilter, NextHopSpec, RT_TABLE_MAIN, RouteKind,
    TABBY_RT_PROTO,
};

/// Errors of the FIB synchroniser.
#[derive(Debug, thiserror::Error)]
pub enum FibError {
    /// A netlink socket could not be opened (needs Linux and, for a large
    /// receive buffer, `CAP_NET_ADMIN`).
    #[error("cannot open the netlink {what} socket: {source}")]
    Socket {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// Netlink I/O failed.
    #[error("netlink: {0}")]
    Io(#[source] io::Error),
    /// The route cannot be programmed as given.
    #[error("route {0} refused: {1}")]
    InvalidRoute(IpNet, String),
    /// The synchroniser task has stopped.
    #[error("the fib-sync task has stopped")]
    Closed,
}

/// Entry point: opens the sockets and reads the kernel's current state.
#[derive(Debug)]
pub struct FibSync;

impl FibSync {
    /// Opens the netlink sockets, dumps links and routes, and returns a
    /// handle plus the task to spawn (`tokio::spawn(task.run())`). Must be
    /// called inside a tokio runtime with I/O and time enabled.
    pub async fn start(config: FibConfig) -> Result<(FibHandle, FibTask), FibError> {
        let (tx, rx) = mpsc::channel(64 * 1024);
        let (events, _) = broadcast::channel(4096);
        let task = FibTask::open(config, rx, events.clone()).await?;
        Ok((FibHandle { tx, events }, task))
    }
}

/// Cheap to clone; dropping every handle stops the task and leaves the
/// routes in the kernel (a restarted daemon adopts them).
#[derive(Debug, Clone)]
pub struct FibHandle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<KernelEvent>,
}

impl FibHandle {
    async fn send(&self, c: Command) -> Result<(), FibError> {
        self.tx.send(c).await.map_err(|_| FibError::Closed)
    }

    /// Wants `route` in the kernel (adds, or replaces the one for its prefix).
    pub async fn set(&self, route: FibRoute) -> Result<(), FibError> {
        self.send(Command::Set(vec![validate(&route)?])).await
    }

    /// `set` for many routes in one message (bulk loads).
    pub async fn set_many(&self, routes: Vec<FibRoute>) -> Result<(), FibError> {
        let routes = routes.iter().map(validate).collect::<Result<Vec<_>, _>>()?;
        self.send(Command::Set(routes)).await
    }

    /// No longer wants a route for `prefix`.
    pub async fn remove(&self, prefix: IpNet) -> Result<(), FibError> {
        self.send(Command::Remove(vec![prefix.trunc()])).await
    }

    /// `remove` for many prefixes.
    pub async fn remove_many(&self, prefixes: Vec<IpNet>) -> Result<(), FibError> {
        self.send(Command::Remove(
            prefixes.into_iter().map(|p| p.trunc()).collect(),
        ))
        .await
    }

    /// Makes `routes` the complete desired set and declares convergence.
    pub async fn replace_all(&self, routes: Vec<FibRoute>) -> Result<(), FibError> {
        let routes = routes.iter().map(validate).collect::<Result<Vec<_>, _>>()?;
        self.send(Command::ReplaceAll(routes)).await
    }

    /// The RIB has converged (End-of-RIB from every peer, or the deferral
    /// timer): install what is missing, replace what differs, and delete our
    /// routes that are no longer wanted. Idempotent.
    pub async fn converged(&self) -> Result<(), FibError> {
        self.send(Command::Converged).await
    }

    /// Resolves once every queued change has been sent and acknowledged.
    /// Routes waiting on a foreign route or an unreachable next hop do not
    /// hold it up (see [`FibStats`]). After a bulk run in which every
    /// request succeeded it does not wait for the verifying dump that
    /// follows (`FibStats::resyncs` counts it when done); after one with a
    /// failure or a deferred replace it does.
    pub async fn sync(&self) -> Result<(), FibError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Sync(tx)).await?;
        rx.await.map_err(|_| FibError::Closed)
    }

    /// Current counters.
    pub async fn stats(&self) -> Result<FibStats, FibError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx)).await?;
        rx.await.map_err(|_| FibError::Closed)
    }

    /// Link and address changes, learned routes, and resync notices. A slow
    /// receiver misses events (`RecvError::Lagged`) and should re-read.
    pub fn subscribe_kernel_events(&self) -> broadcast::Receiver<KernelEvent> {
        self.events.subscribe()
    }
}
