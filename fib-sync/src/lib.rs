//! tabby-fib-sync: programs Tabby's best routes into the Linux kernel FIB
//! over rtnetlink, quickly, exactly, and without touching routes it does not
//! own.
//!
//! Owns: the netlink sockets, the desired-versus-kernel reconciliation, the
//! restart rule (routes of our protocol found at start stay untouched until
//! the RIB says it converged), watching the kernel (restoring our routes,
//! link/address events, optional learning of other protocols' routes), and
//! the nexthop objects of our protocol (one per distinct gateway and device,
//! shared by every single-path route through it with `RTA_NH_ID`, ids
//! `protocol << 24 | n`; created before the first route that names them,
//! deleted after the last one goes, or with its routes when none of them is
//! wanted (one request for a whole next hop's withdraw), adopted at restart
//! like our routes, put back with their routes when someone deletes them). A kernel without
//! nexthop objects (the start-up dump is refused, or the first create gets
//! EOPNOTSUPP) gets next hops spelled out per route, as do ECMP and
//! blackhole routes and gateways of the other family.
//! Does not own: route selection (tabby-rib), which routes to program (the
//! daemon maps the RIB's best-route changes onto [`FibOp`]s), or any
//! tunnel device (its name is configuration).
//!
//! Inside, the reconciliation is a planner without I/O (`plan.rs`, over the
//! kernel view of `view.rs` and the nexthop book of `nexthops.rs`): route
//! changes, kernel notifications, dumps and
//! request results in, route requests out as data, the time passed in. The
//! task (`actor.rs`) owns the sockets, the channels and the clock, and only
//! moves data between them and the planner.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tabby_fib_sync::FibError> {
//! use tabby_fib_sync::{FibConfig, FibOp, FibRoute, FibSync};
//! let (fib, task) = FibSync::start(FibConfig::default()).await?;
//! tokio::spawn(task.run());
//! fib.set(FibRoute::blackhole("100.64.1.0/26".parse().unwrap())).await?;
//! // From synchronous code: an ordered stream of changes.
//! let ops = fib.ops();
//! let _ = ops.send(FibOp::Remove("100.64.2.0/26".parse().unwrap()));
//! fib.converged().await?; // after End-of-RIB: stale routes of ours go
//! fib.sync().await?; // wait until the kernel holds it
//! # Ok(()) }
//! ```

mod actor;
mod failure_log;
mod inflight;
mod learn;
mod maps;
pub mod netns;
mod nexthops;
mod plan;
mod request;
mod socket;
mod types;
mod view;
mod wire;

use std::io;

use ipnet::IpNet;
use tokio::sync::{broadcast, mpsc, oneshot};

use actor::Command;
pub use actor::FibTask;
use types::validate;
pub use types::{
    FibConfig, FibOp, FibRoute, FibStats, KernelEvent, LearnFilter, NextHopSpec, RT_TABLE_MAIN,
    RouteKind, TABBY_RT_PROTO,
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
        let (commands, commands_rx) = mpsc::channel(1024);
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let task = FibTask::open(config, commands_rx, ops_rx, events.clone()).await?;
        Ok((
            FibHandle {
                commands,
                ops,
                events,
            },
            task,
        ))
    }
}

/// Cheap to clone; dropping every handle and every sender from
/// [`FibHandle::ops`] stops the task and leaves the routes in the kernel (a
/// restarted daemon adopts them).
///
/// `set`, `set_many`, `remove`, `remove_many` and `converged` join the
/// same ordered stream as [`FibHandle::ops`]; `replace_all`, `stats` and
/// `sync` come after every change queued before them.
#[derive(Debug, Clone)]
pub struct FibHandle {
    commands: mpsc::Sender<Command>,
    ops: mpsc::UnboundedSender<FibOp>,
    events: broadcast::Sender<KernelEvent>,
}

impl FibHandle {
    async fn send(&self, c: Command) -> Result<(), FibError> {
        self.commands.send(c).await.map_err(|_| FibError::Closed)
    }

    fn push(&self, op: FibOp) -> Result<(), FibError> {
        self.ops.send(op).map_err(|_| FibError::Closed)
    }

    /// A sender of route changes, applied in the order sent (per prefix the
    /// last one wins; `Converged` applies to everything sent before it).
    /// For synchronous callers: sending never waits. Routes are checked as
    /// [`set`](Self::set) checks them; an invalid one is refused with a
    /// warning, counted in [`FibStats::refused`], and leaves its prefix's
    /// desired route as it was. Sending fails once the task has stopped.
    pub fn ops(&self) -> mpsc::UnboundedSender<FibOp> {
        self.ops.clone()
    }

    /// Wants `route` in the kernel (adds, or replaces the one for its prefix).
    pub async fn set(&self, route: FibRoute) -> Result<(), FibError> {
        self.push(FibOp::Set(validate(route)?))
    }

    /// `set` for many routes; refuses them all if one is invalid.
    pub async fn set_many(&self, routes: Vec<FibRoute>) -> Result<(), FibError> {
        let routes = routes
            .into_iter()
            .map(validate)
            .collect::<Result<Vec<_>, _>>()?;
        routes
            .into_iter()
            .try_for_each(|r| self.push(FibOp::Set(r)))
    }

    /// No longer wants a route for `prefix`.
    pub async fn remove(&self, prefix: IpNet) -> Result<(), FibError> {
        self.push(FibOp::Remove(prefix.trunc()))
    }

    /// `remove` for many prefixes.
    pub async fn remove_many(&self, prefixes: Vec<IpNet>) -> Result<(), FibError> {
        prefixes
            .into_iter()
            .try_for_each(|p| self.push(FibOp::Remove(p.trunc())))
    }

    /// Makes `routes` the complete desired set and declares convergence.
    /// Resolves once the task has taken the new set.
    pub async fn replace_all(&self, routes: Vec<FibRoute>) -> Result<(), FibError> {
        let routes = routes
            .into_iter()
            .map(validate)
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = oneshot::channel();
        self.send(Command::ReplaceAll(routes, tx)).await?;
        rx.await.map_err(|_| FibError::Closed)
    }

    /// The RIB has converged (End-of-RIB from every peer, or the deferral
    /// timer): install what is missing, replace what differs, and delete our
    /// routes that are no longer wanted. Idempotent.
    pub async fn converged(&self) -> Result<(), FibError> {
        self.push(FibOp::Converged)
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
