//! tabbyd: the Tabby daemon. Wires the BGP sessions, the RIB, the kernel FIB,
//! the gRPC API and the cluster datastore together and owns the runtime.
//!
//! Owns: the tokio runtime and every task (the event loop, the datastore
//! source, the API server, the metrics and health listener, the
//! CalicoNodeStatus writer, the BFD link), command-line flags and logging,
//! and the daemon core ([`daemon`]). Does not own: the protocol
//! (`tabby-bgp`, `tabby-bfd`), sockets to peers (`tabby-bgp-driver`,
//! `tabby-bfd-driver`), route selection (`tabby-rib`), netlink
//! (`tabby-fib-sync`), the API's wire types (`tabby-api`) or reading the
//! cluster's resources (`tabby-topology`).

mod args;
mod bfd_link;
mod bmp;
mod convert;
mod core_api;
mod daemon;
mod fib_errors;
mod logging;
mod metrics;
mod node_status;
mod plan;
mod sessions;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tabby_fib_sync::{FibConfig, FibSync};
use tabby_topology::{DatastoreSpec, EndpointStatusWatcher, LocalEndpoints, Resources, Source};
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::args::Args;
use crate::daemon::{Daemon, Options};
use crate::metrics::Metrics;

fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Some(args::Command::Plan(plan)) => return plan::run(&args, plan),
        Some(args::Command::Metrics) => return metrics::print_series(),
        None => {}
    }
    let log = match logging::init(&args.log_level, args.log_format) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tabbyd: {e}");
            return ExitCode::from(2);
        }
    };
    let datastore: DatastoreSpec = match args.datastore.parse() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tabbyd: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread: the daemon core, every session and the API share it.
    // Measured against two workers, it takes less CPU and less memory (one
    // malloc arena, no cross-thread frees) for the same convergence time.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tabbyd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // The core runs as a task like the sessions, not as the `block_on`
    // future, which the scheduler polls after every few dozen tasks: with
    // thousands of sessions the core would pump many small batches (and
    // queue one command per batch at every session) instead of a few
    // large ones.
    let core = runtime.block_on(async move {
        tokio::spawn(run(args, datastore, log))
            .await
            .unwrap_or_else(|e| Err(format!("the daemon core failed: {e}")))
    });
    match core {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("tabbyd: {e}");
            ExitCode::from(1)
        }
    }
}

fn node_name(args: &Args) -> Result<String, String> {
    if let Some(n) = &args.node_name {
        return Ok(n.clone());
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "cannot read the host name; pass --node-name".to_owned())
}

async fn run(args: Args, datastore: DatastoreSpec, log: logging::LogControl) -> Result<(), String> {
    let node = node_name(&args)?;
    info!(node = %node, datastore = %args.datastore, fib = !args.no_fib, "tabbyd starting");
    std::fs::create_dir_all(&args.run_dir).map_err(|e| {
        format!(
            "cannot create the run directory {}: {e}; set --run-dir",
            args.run_dir.display()
        )
    })?;

    let metrics = Arc::new(Metrics::default());
    let registry = Arc::new(metrics.register());

    // Kernel FIB.
    let fib_tx = if args.no_fib {
        None
    } else {
        let mut cfg = FibConfig::default();
        if let Some(p) = args.kernel_protocol {
            cfg.protocol = p;
        }
        cfg.table = args.kernel_table;
        let (fib, task) = FibSync::start(cfg).await.map_err(|e| {
            format!("cannot program the kernel: {e}; run as root (CAP_NET_ADMIN) or pass --no-fib")
        })?;
        tokio::spawn(async move {
            if let Err(e) = task.run().await {
                error!(error = %e, "kernel FIB synchroniser stopped");
            }
        });
        // The daemon pushes its changes, in order, straight into fib-sync.
        let ops = fib.ops();
        tokio::spawn(fib_errors::poll(fib, metrics.clone()));
        Some(ops)
    };

    // BGP sessions.
    let (ev_tx, mut ev_rx) = mpsc::channel(sessions::EVENT_QUEUE);
    let speaker = Box::new(sessions::Speaker::new(ev_tx));

    let daemon = Arc::new(Mutex::new(Daemon::new(
        Options {
            node_name: node.clone(),
            tunnel_device: args.tunnel_device.clone(),
            deferral_time: Duration::from_secs(args.deferral_time),
            log_level: args.log_level.clone(),
            max_prefixes: args.max_prefixes,
        },
        speaker,
        fib_tx,
        Some(log),
        metrics.clone(),
        Instant::now(),
    )));

    lock(&daemon)?
        .set_derive_options(tabby_topology::DeriveOptions::from_env().map_err(|e| e.to_string())?);

    // BMP: one task per monitoring station; a station that connects takes
    // its snapshot under the core's lock.
    {
        let core = Arc::downgrade(&daemon);
        let snapshot: bmp::station::SnapshotFn = Arc::new(move |id| {
            let d = core.upgrade()?;
            let mut d = d.lock().ok()?;
            d.bmp_snapshot(id, Instant::now())
        });
        let node = node.clone();
        let mut d = lock(&daemon)?;
        d.set_bmp_runner(Box::new(move |task| {
            tokio::spawn(bmp::station::run(task, node.clone(), snapshot.clone()));
        }));
        d.set_bmp_stats_interval(Duration::from_secs(args.bmp_stats_interval));
        d.set_bmp_flag_stations(args.bmp_stations.iter().copied().collect());
    }

    // BFD: the driver starts with the first peer that asks for it.
    let (bfd_tx, mut bfd_rx) = mpsc::channel(1024);
    let (bfd, bfd_view) = bfd_link::start(bfd_tx, metrics.clone());
    lock(&daemon)?.set_bfd(Box::new(bfd));

    if let Some(addr) = args.metrics {
        let registry = registry.clone();
        let d = daemon.clone();
        let refresh: metrics::Refresh = Arc::new(move || {
            if let Ok(d) = d.lock() {
                d.refresh_prefix_gauges();
            }
        });
        let d = daemon.clone();
        let health: metrics::HealthCheck = Arc::new(move || match d.lock() {
            Ok(d) => {
                let h = d.health();
                (h.live, h.ready, h.reasons)
            }
            Err(_) => (false, false, vec!["the daemon core panicked".into()]),
        });
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, registry, refresh, health).await {
                error!(error = %e, "metrics endpoint stopped");
            }
        });
    }

    // CalicoNodeStatus, where the Kubernetes datastore holds one for this node.
    if let DatastoreSpec::Kubernetes(target) = &datastore {
        let d = daemon.clone();
        let reporter: tabby_topology::source::kube::status::Reporter =
            Arc::new(move || d.lock().ok().and_then(|d| node_status::report(&d)));
        tokio::spawn(tabby_topology::source::kube::status::run(
            target.clone(),
            node.clone(),
            reporter,
        ));
    }

    // Datastore.
    let (ds_tx, mut ds_rx) = mpsc::channel(4);
    let secret_namespace = args.secret_namespace.clone();
    tokio::spawn(async move {
        let mut source = Source::open(&datastore, secret_namespace);
        loop {
            let r = source.next().await;
            if ds_tx.send(r).await.is_err() {
                return;
            }
        }
    });

    // Felix's endpoint status files (workload peerings), beside the datastore.
    let (mut endpoints, mut ep_rx) = watch_endpoint_status(&args).await;
    // The datastore's last snapshot, re-derived with each new set of endpoints.
    let mut resources: Option<Arc<Resources>> = None;

    // API.
    let api_cfg = api_config(&args)?;
    let core = Arc::new(core_api::CoreHandle::new(
        daemon.clone(),
        metrics.clone(),
        Some(bfd_view),
    ));
    let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bound = tabby_api::bind(core, api_cfg)
        .await
        .map_err(|e| format!("cannot serve the API: {e}"))?;
    tokio::spawn(async move {
        let stop = async move {
            let _ = api_stop_rx.await;
        };
        if let Err(e) = bound.run(stop).await {
            error!(error = %e, "API server stopped");
        }
    });

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;

    loop {
        let deadline = lock(&daemon)?.next_deadline();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = ev_rx.recv() => {
                let Some((id, ev)) = ev else { break };
                // Absorb what else is queued, then pump once: UPDATEs that
                // arrived together leave in shared batches. Bounded by
                // PUMP_ROUTES: a pump's pending changes are held in memory
                // until it runs. The queue itself is short (it bounds the
                // parsed routes waiting), so when it empties the sessions
                // get to run and queue more before the pump: a burst from
                // many peers still leaves in few batches.
                let routes = event_routes(&ev);
                lock(&daemon)?.absorb_session_event(id, ev, Instant::now());
                gather(routes, |room| {
                    let mut d = lock(&daemon)?;
                    let now = Instant::now();
                    let mut take = Take::default();
                    while take.routes < room {
                        let Ok((id, ev)) = ev_rx.try_recv() else { break };
                        take.events += 1;
                        take.routes += event_routes(&ev);
                        d.absorb_session_event(id, ev, now);
                    }
                    Ok(take)
                })
                .await?;
                lock(&daemon)?.pump(Instant::now());
            }
            n = bfd_rx.recv() => {
                if let Some((peer, notice)) = n {
                    let mut d = lock(&daemon)?;
                    d.bfd_event(peer, notice, Instant::now());
                    d.pump(Instant::now());
                }
            }
            r = ds_rx.recv() => {
                match r {
                    Some(Ok(res)) => {
                        lock(&daemon)?.apply_resources(
                            &res.with_local_endpoints(endpoints.clone()),
                            Instant::now(),
                        );
                        resources = Some(res);
                    }
                    Some(Err(e)) => lock(&daemon)?.datastore_error(&e.to_string()),
                    None => break,
                }
            }
            Some(eps) = ep_rx.recv() => {
                endpoints = eps;
                if let Some(res) = &resources {
                    lock(&daemon)?
                        .apply_resources(&res.with_local_endpoints(endpoints.clone()), Instant::now());
                }
            }
            _ = sleep => lock(&daemon)?.on_timer(Instant::now()),
            _ = tokio::signal::ctrl_c() => { info!("interrupted"); break; }
            _ = sigterm.recv() => { info!("SIGTERM"); break; }
        }
    }
    // Leave kernel routes in place and let peers keep ours as stale
    // (graceful restart): no NOTIFICATION, the connections just close.
    info!("tabbyd stopping: kernel routes stay, peers keep our routes for the restart time");
    lock(&daemon)?.detach_all();
    // BMP stations get Termination.
    lock(&daemon)?.stop_bmp();
    let _ = api_stop_tx.send(());
    // Let the session tasks close their connections.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// Reads Felix's endpoint status directory once (so the first derivation has the
/// workloads, as confd waits for its watcher to be in sync) and then watches it: each
/// change arrives on the channel.
async fn watch_endpoint_status(args: &Args) -> (LocalEndpoints, mpsc::Receiver<LocalEndpoints>) {
    let dir = tabby_topology::endpoint_status_dir(&args.endpoint_status_path_prefix);
    info!(dir = %dir.display(), "watching Felix's endpoint status files for workload BGP peers");
    let mut watcher = EndpointStatusWatcher::new(dir);
    let first = watcher.next().await;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let eps = watcher.next().await;
            if tx.send(eps).await.is_err() {
                return;
            }
        }
    });
    (first, rx)
}

/// What one gathering round took from the session queue.
#[derive(Debug, Default)]
struct Take {
    events: usize,
    routes: usize,
}

/// Gathers a burst after its first event (which carried `routes`): each
/// round takes what the sessions queued, with room for the routes still
/// allowed, then lets them run. Stops once `PUMP_ROUTES` are pending, a
/// round after the first takes nothing, or `PUMP_ROUNDS` rounds are done.
/// The daemon is locked only inside a round, so API calls get their turn
/// between rounds. Returns the routes gathered.
async fn gather(
    mut routes: usize,
    mut round: impl FnMut(usize) -> Result<Take, String>,
) -> Result<usize, String> {
    for n in 1..=PUMP_ROUNDS {
        let take = round(PUMP_ROUTES.saturating_sub(routes))?;
        routes += take.routes;
        if routes >= PUMP_ROUTES || (take.events == 0 && n > 1) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(routes)
}

/// Routes (announced or withdrawn) absorbed before the RIB's output is
/// pumped out: large enough that fan-out batches stay large, small enough
/// that a full-table burst does not hold a million pending changes.
const PUMP_ROUTES: usize = 32_768;
/// Times the loop lets the sessions run to gather a burst before it pumps.
const PUMP_ROUNDS: usize = 64;

/// How many routes a session event carries (1 for the others).
fn event_routes(ev: &tabby_bgp_driver::PeerEvent) -> usize {
    match ev {
        tabby_bgp_driver::PeerEvent::Update(u) => {
            u.nlri.len()
                + u.withdrawn.len()
                + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len())
                + u.mp_unreach.as_ref().map_or(0, |m| m.withdrawn.len())
        }
        _ => 1,
    }
}

fn lock(d: &Arc<Mutex<Daemon>>) -> Result<std::sync::MutexGuard<'_, Daemon>, String> {
    d.lock()
        .map_err(|_| "the daemon core failed; restart tabbyd".to_owned())
}

fn api_config(args: &Args) -> Result<tabby_api::ApiConfig, String> {
    let mut cfg = tabby_api::ApiConfig::default();
    if let Some(path) = args.api.strip_prefix("unix:") {
        cfg.unix_socket = Some(PathBuf::from(path));
    } else if let Some(addr) = args.api.strip_prefix("tcp:") {
        let addr = addr
            .parse()
            .map_err(|e| format!("--api tcp:{addr}: {e}; use tcp:HOST:PORT"))?;
        cfg.unix_socket = None;
        cfg.tcp = Some(tabby_api::TcpListen { addr, tls: None });
    } else {
        return Err(format!(
            "--api {:?} is not understood: use unix:PATH or tcp:HOST:PORT",
            args.api
        ));
    }
    cfg.gobgp = args.gobgp_api;
    cfg.gobgp_v4 = args.gobgp_v4_api;
    Ok(cfg)
}

#[cfg(test)]
mod gather_tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use super::*;

    /// A stand-in for the sessions: a task that queues `per_turn` events of
    /// `routes` routes each time it runs, `turns` times.
    fn sessions(turns: usize, per_turn: usize, routes: usize) -> Rc<RefCell<Vec<usize>>> {
        let queue = Rc::new(RefCell::new(Vec::new()));
        let q = queue.clone();
        tokio::task::spawn_local(async move {
            for _ in 0..turns {
                q.borrow_mut().extend(std::iter::repeat_n(routes, per_turn));
                tokio::task::yield_now().await;
            }
        });
        queue
    }

    /// A round as the daemon loop takes one: events until the room is used.
    fn take(queue: &RefCell<Vec<usize>>, room: usize, rounds: &Cell<usize>) -> Take {
        rounds.set(rounds.get() + 1);
        let mut q = queue.borrow_mut();
        let mut t = Take::default();
        while t.routes < room {
            let Some(r) = q.pop() else { break };
            t.events += 1;
            t.routes += r;
        }
        t
    }

    async fn local<F: std::future::Future>(f: F) -> F::Output {
        tokio::task::LocalSet::new().run_until(f).await
    }

    #[tokio::test]
    async fn a_burst_is_gathered_while_the_sessions_keep_queueing() {
        local(async {
            // Nothing is queued when the first round runs: the sessions
            // queue their UPDATEs only once the loop yields.
            let queue = sessions(5, 10, 1);
            let rounds = Cell::new(0);
            let routes = gather(1, |room| Ok(take(&queue, room, &rounds)))
                .await
                .unwrap();
            assert_eq!(routes, 1 + 5 * 10, "every event of the burst, one pump");
            assert!(rounds.get() > 5, "took {} rounds", rounds.get());
            assert!(queue.borrow().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn gathering_stops_at_the_route_limit() {
        local(async {
            let queue = sessions(1_000, 4, 1_000);
            let rounds = Cell::new(0);
            let routes = gather(0, |room| Ok(take(&queue, room, &rounds)))
                .await
                .unwrap();
            assert!(routes >= PUMP_ROUTES, "{routes}");
            assert!(
                routes < PUMP_ROUTES + 1_000,
                "{routes}: one event past the room at most"
            );
            assert!(rounds.get() < PUMP_ROUNDS);
        })
        .await;
    }

    #[tokio::test]
    async fn a_quiet_queue_ends_gathering_after_one_empty_round() {
        local(async {
            let queue = sessions(0, 0, 0);
            let rounds = Cell::new(0);
            let routes = gather(3, |room| Ok(take(&queue, room, &rounds)))
                .await
                .unwrap();
            assert_eq!(routes, 3);
            // The first round may find nothing yet; the second ends it.
            assert_eq!(rounds.get(), 2);
        })
        .await;
    }

    #[tokio::test]
    async fn a_failed_lock_ends_gathering_with_its_error() {
        let r = gather(1, |_| Err("the daemon core failed".to_owned())).await;
        assert_eq!(r.unwrap_err(), "the daemon core failed");
    }
}
