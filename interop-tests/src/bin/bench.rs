//! The Tabby benchmark: BIRD 2, GoBGP, FRR and tabbyd as a route reflector
//! under the same generated load, in network namespaces (needs root).
//!
//! ```sh
//! cargo run --release -p interop-tests --bin bench                 # (a) at 200 and 1000 clients, (b)
//! cargo run --release -p interop-tests --bin bench -- --with-2000  # (a) at 2000 clients too
//! cargo run --release -p interop-tests --bin bench -- --scenario fanout --clients 500 --daemons bird2,frr --reps 3
//! cargo run --release -p interop-tests --bin bench -- --scenario e2e --reps 5  # (d) API → peer's kernel
//! cargo run --release -p interop-tests --bin bench -- --scenario full-table  # (e) 100k prefixes → 1000 clients
//! cargo run --release -p interop-tests --bin bench -- --scenario api --reps 5  # bulk AnnounceRoutes, WatchRoutes
//! cargo run --release -p interop-tests --bin bench -- --scenario fib  # (c) kernel FIB vs ip -batch, BIRD 2
//! cargo run --release -p interop-tests --bin bench -- --scenario fib --fib-v4 100000,1000000 --fib-v6 0
//! cargo run --release -p interop-tests --bin bench -- --scenario kdd  # Kubernetes datastore, 5,000 nodes
//! cargo run --release -p interop-tests --bin bench -- --scenario kdd --kdd-nodes 1000 --reps 3
//! cargo run --release -p interop-tests --bin bench -- --scenario bfd --daemons tabby,frr --reps 3  # 2,000 BFD sessions, 60 s
//! cargo run --release -p interop-tests --bin bench -- --scenario bfd --bfd-sessions 500 --bfd-seconds 20
//! cargo run --release -p interop-tests --bin bench -- --scenario churn  # 100 tabbyds + 2 RRs, BIRD 2 baseline
//! cargo run --release -p interop-tests --bin bench -- --scenario churn --churn-nodes 20 --churn-rates 50,500 --churn-seconds 10
//! ```
//!
//! (c) is not part of `all`: at the default sizes and repetitions it takes
//! about three minutes (every method pauses 3 s after its run). Nor is `kdd`
//! (it needs the lab's kube-apiserver from `scripts/lab-k8s.sh`; several
//! minutes, most of it creating the cluster's objects). Nor is `bfd` (a
//! minute and more per daemon and repetition; tabbyd and FRR's bfdd only,
//! the other daemons are skipped). Its generator and CPU load run as this
//! binary's hidden subcommands `bfd-gen` and `bfd-spin`, separate processes.
//!
//! Tables go to stdout and to `bench-results/<date>-<scenario>.md`.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use interop_tests::bench::{
    Dut, Phase, Row, RunOpts, Shape, Unavailable, api, bfd, bfd_gen, churn, e2e, fib, kdd,
    run_once, table, table_staged,
};
use interop_tests::{Need, preflight};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// (a) route-reflector fan-out, the Calico shape.
    Fanout,
    /// (b) ingest and reflect.
    Ingest,
    /// (e) a full table through the reflector: one client's 100,000
    /// prefixes to 1,000 clients, then withdrawn (not part of `all`).
    FullTable,
    /// (d) end to end: AnnounceRoutes on node A → route in node B's kernel.
    E2e,
    /// The API under load: one AnnounceRoutes with many routes, WatchRoutes
    /// watchers during many changes.
    Api,
    /// (c) routes into a namespace's kernel: tabby-fib-sync against
    /// `ip -batch` and BIRD 2 (not part of `all`).
    Fib,
    /// The Kubernetes datastore against a real kube-apiserver: BGPPeer
    /// apply → Established, a large cluster listed and derived, one Node's
    /// change (not part of `all`).
    Kdd,
    /// BFD at scale: tabbyd and FRR's bfdd under N single-hop sessions from
    /// our generator, the other core loaded (not part of `all`).
    Bfd,
    /// Churn across a cluster of tabbyds with two route reflectors, against
    /// BIRD 2 changed the way confd does (not part of `all`).
    Churn,
    /// (a), (b), (d) and the API load.
    All,
}

/// Route-reflector benchmark against BIRD 2, GoBGP, FRR and tabbyd.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Client counts for (a), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [200usize, 1000])]
    clients: Vec<usize>,
    /// Adds 2000 clients to (a); each anchor may take minutes there.
    #[arg(long)]
    with_2000: bool,
    /// Observer clients in (a), spread over the client range.
    #[arg(long, default_value_t = 8)]
    observers: usize,
    /// Peers in (b).
    #[arg(long, default_value_t = 10)]
    ingest_peers: usize,
    /// Prefixes per peer in (b).
    #[arg(long, default_value_t = 100_000)]
    ingest_prefixes: usize,
    /// Reflector clients receiving the full table in (e).
    #[arg(long, default_value_t = 1000)]
    full_clients: usize,
    /// Prefixes of the full table in (e).
    #[arg(long, default_value_t = 100_000)]
    full_prefixes: usize,
    /// Distinct attribute sets of the full table in (e).
    #[arg(long, default_value_t = 300)]
    full_attr_sets: usize,
    /// Announcements per run in (d).
    #[arg(long, default_value_t = 1000)]
    announcements: usize,
    /// Routes in the API bulk call and in each watched phase.
    #[arg(long, default_value_t = 100_000)]
    api_routes: usize,
    /// WatchRoutes streams during the API load.
    #[arg(long, default_value_t = 10)]
    watchers: usize,
    /// Routes per AnnounceRoutes call in the watched announce phase.
    #[arg(long, default_value_t = 1000)]
    watch_batch: usize,
    /// IPv4 route counts for (c), comma-separated (0: none).
    #[arg(long, value_delimiter = ',', default_values_t = [100_000u32])]
    fib_v4: Vec<u32>,
    /// IPv6 route counts for (c), comma-separated (0: none).
    #[arg(long, value_delimiter = ',', default_values_t = [100_000u32])]
    fib_v6: Vec<u32>,
    /// Nodes in the `kdd` scenario's large cluster (two of them route reflectors).
    #[arg(long, default_value_t = 5000)]
    kdd_nodes: usize,
    /// BFD sessions in the `bfd` scenario (300 ms × 3).
    #[arg(long, default_value_t = 2000)]
    bfd_sessions: usize,
    /// Seconds the `bfd` scenario measures for, once every session is Up.
    #[arg(long, default_value_t = 60)]
    bfd_seconds: u64,
    /// In the `bfd` scenario, leave tabbyd's BGP connections refused instead
    /// of holding its BGP sessions Established.
    #[arg(long)]
    bfd_without_bgp: bool,
    /// Nodes in the `churn` cluster (plus two route reflectors; at most 248).
    #[arg(long, default_value_t = 100)]
    churn_nodes: usize,
    /// Changes per second in the `churn` scenario, one window each.
    #[arg(long, value_delimiter = ',', default_values_t = [25.0f64, 50.0, 75.0, 100.0, 150.0, 200.0, 500.0, 1000.0])]
    churn_rates: Vec<f64>,
    /// Seconds each `churn` rate runs for.
    #[arg(long, default_value_t = 60.0)]
    churn_seconds: f64,
    /// Seconds every change may take to reach every kernel after a window.
    #[arg(long, default_value_t = 10.0)]
    churn_settle: f64,
    /// The rate of the `churn` fault windows (a reflector, then a node,
    /// killed and restarted; Tabby only); 0 skips them.
    #[arg(long, default_value_t = 100.0)]
    churn_fault_rate: f64,
    /// Seconds of each `churn` fault window.
    #[arg(long, default_value_t = 20.0)]
    churn_fault_seconds: f64,
    /// Seed of the `churn` change generator.
    #[arg(long, default_value_t = 17)]
    churn_seed: u64,
    /// Daemons to measure, comma-separated (bird2, gobgp, frr, tabby; in
    /// (c) tabby means tabby-fib-sync, and `ip -batch` always runs).
    #[arg(long, value_delimiter = ',', default_values_t = ["tabby".to_string(), "bird2".into(), "frr".into(), "gobgp".into()])]
    daemons: Vec<String>,
    /// Repetitions per daemon and load (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds each phase (establish, converge) may take before the run is
    /// reported as "> N s"; a daemon that times out is not repeated.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Generator threads (1: every session on one thread).
    #[arg(long, default_value_t = 1)]
    gen_threads: usize,
    /// Handshakes the generator runs at once (BIRD listens with a short
    /// accept queue; an overflowing burst costs seconds of SYN-ACK retries).
    #[arg(long, default_value_t = 32)]
    connect_burst: usize,
    /// Where the markdown files go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

fn main() -> Result<()> {
    // The BFD scenario's helper processes: not for people to run.
    match std::env::args().nth(1).as_deref() {
        Some(bfd_gen::GEN_SUBCOMMAND) => return bfd_gen::main_from(std::env::args().skip(1)),
        Some(bfd_gen::SPIN_SUBCOMMAND) => return bfd_gen::spin_main(),
        _ => {}
    }
    let args = Args::parse();
    preflight(&[Need::Root])?;
    if args.scenario == Scenario::Kdd {
        return kdd_file(&args);
    }
    if args.scenario == Scenario::Churn {
        return churn_file(&args);
    }
    let mut duts = Vec::new();
    for d in &args.daemons {
        let dut = Dut::parse(d)?;
        if args.scenario == Scenario::Bfd && !bfd::supports(dut) {
            eprintln!(
                "{}: not in the bfd scenario (tabby and frr only)",
                dut.key()
            );
            continue;
        }
        let need = match dut {
            Dut::Bird2 => Some(Need::Bird2),
            // (c) has no GoBGP or FRR method.
            _ if args.scenario == Scenario::Fib => None,
            Dut::GoBgp => Some(Need::GoBgp),
            Dut::Frr => Some(Need::Frr),
            Dut::Tabby => None,
        };
        if let Some(n) = need {
            preflight(&[n])?;
        }
        duts.push(dut);
    }
    let opts = RunOpts {
        establish_timeout: Duration::from_secs(args.timeout),
        converge_timeout: Duration::from_secs(args.timeout),
        gen_threads: args.gen_threads,
        connect_burst: args.connect_burst,
        tabbyd: tabbyd_release(),
    };
    let mut clients = args.clients.clone();
    if args.with_2000 && !clients.contains(&2000) {
        clients.push(2000);
    }
    let date = interop_tests::cmd::run_ok("date", &["-u", "+%F"], interop_tests::cmd::CMD_TIMEOUT)?
        .trim()
        .to_string();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    if args.scenario == Scenario::Fib {
        return fib_file(&args, &duts, &date);
    }
    if args.scenario == Scenario::Bfd {
        return bfd_file(&args, &duts, &date, opts.tabbyd.clone());
    }
    let header = machine_header(&args, &date);
    println!("{header}");
    if matches!(args.scenario, Scenario::E2e | Scenario::All) {
        api_file(&args, &opts, &date, "e2e")?;
    }
    if matches!(args.scenario, Scenario::Api | Scenario::All) {
        api_file(&args, &opts, &date, "api")?;
    }
    let mut files: Vec<(&str, Vec<Shape>)> = Vec::new();
    if matches!(args.scenario, Scenario::Fanout | Scenario::All) {
        files.push((
            "fanout",
            clients
                .iter()
                .map(|&c| Shape::Fanout {
                    clients: c,
                    observers: args.observers,
                })
                .collect(),
        ));
    }
    if matches!(args.scenario, Scenario::Ingest | Scenario::All) {
        files.push((
            "ingest",
            vec![Shape::Ingest {
                peers: args.ingest_peers,
                prefixes: args.ingest_prefixes,
            }],
        ));
    }
    if args.scenario == Scenario::FullTable {
        files.push((
            "fulltable",
            vec![Shape::FullTable {
                clients: args.full_clients,
                prefixes: args.full_prefixes,
                attr_sets: args.full_attr_sets,
                observers: args.observers,
            }],
        ));
    }
    for (name, shapes) in files {
        let mut doc = header.clone();
        for shape in shapes {
            let rows: Vec<Row> = duts
                .iter()
                .map(|&d| measure(d, shape, &args, &opts))
                .collect();
            let t = match shape {
                Shape::FullTable { .. } => table_staged(&shape.title(), &rows),
                _ => table(&shape.title(), &rows),
            };
            println!("{t}");
            doc.push_str(&t);
            doc.push('\n');
            doc.push_str(&shape.describe());
            doc.push('\n');
            doc.push('\n');
        }
        doc.push_str(&configs_note(&duts));
        let path = args.out.join(format!("{date}-{name}.md"));
        std::fs::write(&path, &doc).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// (d) or the API load: tabbyd only, `args.reps` fresh pairs of nodes.
fn api_file(args: &Args, opts: &RunOpts, date: &str, name: &str) -> Result<()> {
    let mut doc = api_header(args, date);
    let body = match opts.tabbyd.as_deref() {
        None => "Not measured: no release build of tabbyd (run `cargo build --release -p tabbyd` or set TABBYD_BIN).\n".to_string(),
        Some(bin) if name == "e2e" => {
            let runs: Vec<Result<e2e::E2eRun, String>> = (1..=args.reps)
                .map(|rep| {
                    eprintln!("(d) end to end: run {rep}/{}", args.reps);
                    let r = e2e::run_once(bin, args.announcements).map_err(|e| {
                        eprintln!("  run failed: {e:#}");
                        first_line(&format!("{e:#}"))
                    });
                    if let Ok(r) = &r {
                        eprintln!(
                            "  {} of {} reached B's kernel: p50 {} ms, p99 {} ms, max {} ms",
                            r.kernel.len(),
                            args.announcements,
                            fmt_ms(e2e::quantile_ms(&r.kernel, 0.5)),
                            fmt_ms(e2e::quantile_ms(&r.kernel, 0.99)),
                            fmt_ms(e2e::quantile_ms(&r.kernel, 1.0)),
                        );
                    }
                    r
                })
                .collect();
            format!("{}\n{}", e2e::table(args.announcements, &runs), e2e::describe())
        }
        Some(bin) => {
            let load = api::ApiLoad {
                routes: args.api_routes,
                watchers: args.watchers,
                batch: args.watch_batch,
            };
            let runs: Vec<Result<api::ApiRun, String>> = (1..=args.reps)
                .map(|rep| {
                    eprintln!("API load: run {rep}/{}", args.reps);
                    let r = api::run_once(bin, load).map_err(|e| {
                        eprintln!("  run failed: {e:#}");
                        first_line(&format!("{e:#}"))
                    });
                    if let Ok(r) = &r {
                        eprintln!(
                            "  bulk call {:.3} s ({:.0} routes/s), all in B's kernel after {:.2} s",
                            r.bulk_call.as_secs_f64(),
                            args.api_routes as f64 / r.bulk_call.as_secs_f64().max(1e-9),
                            r.bulk_to_b_kernel.as_secs_f64()
                        );
                    }
                    r
                })
                .collect();
            format!("{}\n{}", api::table(load, &runs), api::describe(load))
        }
    };
    println!("{body}");
    doc.push_str(&body);
    let path = args.out.join(format!("{date}-{name}.md"));
    std::fs::write(&path, &doc).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// (c): every case `args.reps` times, each repetition one pass over the
/// methods, so that ratios compare methods measured side by side.
fn fib_file(args: &Args, duts: &[Dut], date: &str) -> Result<()> {
    let mut methods = vec![fib::Method::IpBatch];
    if duts.contains(&Dut::Tabby) {
        methods.push(fib::Method::Tabby);
    }
    if duts.contains(&Dut::Bird2) {
        methods.push(fib::Method::Bird2);
    }
    let cases: Vec<fib::FibCase> = (args.fib_v4.iter().map(|&n| (false, n)))
        .chain(args.fib_v6.iter().map(|&n| (true, n)))
        .filter(|&(_, n)| n > 0)
        .map(|(v6, routes)| fib::FibCase { v6, routes })
        .collect();
    anyhow::ensure!(
        !cases.is_empty(),
        "no FIB case: give --fib-v4 or --fib-v6 a route count above 0"
    );
    let mut doc = String::new();
    let _ = writeln!(doc, "## Tabby kernel FIB benchmark, {date}\n");
    let _ = writeln!(
        doc,
        "Machine: {}. Median of {} run(s) (min–max).\n",
        machine_line(),
        args.reps
    );
    print!("{doc}");
    for case in cases {
        let reps: Vec<fib::FibRep> = (1..=args.reps)
            .map(|rep| {
                eprintln!("{}: run {rep}/{}", case.title(), args.reps);
                fib::run_rep(case, &methods)
            })
            .collect();
        let t = fib::table(case, &methods, &reps);
        println!("{t}");
        doc.push_str(&t);
        doc.push('\n');
    }
    doc.push_str(&fib::describe());
    let path = args.out.join(format!("{date}-fib.md"));
    std::fs::write(&path, &doc).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// BFD at scale: tabbyd and FRR's bfdd, `args.reps` rounds (see `bench::bfd`).
fn bfd_file(args: &Args, duts: &[Dut], date: &str, tabbyd: Option<PathBuf>) -> Result<()> {
    let mut load = bfd::BfdLoad::new(args.bfd_sessions, Duration::from_secs(args.bfd_seconds));
    load.up_timeout = Duration::from_secs(args.timeout);
    load.bgp = !args.bfd_without_bgp;
    let opts = bfd::BfdOpts {
        bench_bin: std::env::current_exe().context("where is this binary?")?,
        tabbyd,
    };
    let mut doc = String::new();
    let _ = writeln!(doc, "## Tabby BFD benchmark, {date}\n");
    let _ = writeln!(
        doc,
        "Machine: {}. Median of {} run(s) (min–max), the daemons taking turns in each round; bring-up limit {} s.\n",
        machine_line(),
        args.reps,
        args.timeout
    );
    if let Some(bin) = &opts.tabbyd {
        let _ = writeln!(doc, "tabbyd: `{}`.\n", bin.display());
    }
    print!("{doc}");
    let rows = bfd::measure(duts, &load, &opts, args.reps);
    let t = bfd::table(&load, &rows);
    println!("{t}");
    doc.push_str(&t);
    doc.push('\n');
    let d = bfd::describe(&load);
    println!("{d}");
    doc.push_str(&d);
    let path = args.out.join(format!("{date}-bfd.md"));
    std::fs::write(&path, &doc).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Churn across a cluster: Tabby, then the BIRD 2 baseline, in one run
/// (see `bench::churn`).
fn churn_file(args: &Args) -> Result<()> {
    let date = interop_tests::cmd::run_ok("date", &["-u", "+%F"], interop_tests::cmd::CMD_TIMEOUT)?
        .trim()
        .to_string();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut rates = args.churn_rates.clone();
    rates.retain(|r| *r > 0.0);
    rates.sort_by(f64::total_cmp);
    anyhow::ensure!(
        !rates.is_empty(),
        "give --churn-rates at least one rate above 0"
    );
    let opts = churn::ChurnOpts {
        nodes: args.churn_nodes,
        rates,
        window: Duration::from_secs_f64(args.churn_seconds),
        settle: Duration::from_secs_f64(args.churn_settle),
        seed: args.churn_seed,
        setup_limit: Duration::from_secs(args.timeout.max(120)),
        fault_rate: (args.churn_fault_rate > 0.0).then_some(args.churn_fault_rate),
        faults: vec![churn::fault::Fault::Reflector, churn::fault::Fault::Node],
        fault_window: Duration::from_secs_f64(args.churn_fault_seconds),
    };
    let tabbyd = tabbyd_release();
    let mut doc = String::new();
    let _ = writeln!(doc, "## Tabby cluster churn benchmark, {date}\n");
    let _ = writeln!(
        doc,
        "Machine: {}; load average at the start {:.2}. {} nodes + 2 route reflectors; rates {} changes/s, {} s each, {} s to settle; faults at {} changes/s for {} s. tabbyd: `{}`; BIRD {}.\n",
        machine_line(),
        interop_tests::bench::scenario::load_average(),
        opts.nodes,
        opts.rates
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.churn_seconds,
        args.churn_settle,
        args.churn_fault_rate,
        args.churn_fault_seconds,
        tabbyd
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not found".into()),
        bird_version()
    );
    print!("{doc}");
    let mut runs = vec![];
    for d in &args.daemons {
        let flavour = match Dut::parse(d)? {
            Dut::Tabby => churn::cluster::Flavour::Tabby,
            Dut::Bird2 => {
                preflight(&[Need::Bird2])?;
                churn::cluster::Flavour::Bird
            }
            other => {
                eprintln!(
                    "{}: not in the churn scenario (tabby and bird2 only)",
                    other.key()
                );
                continue;
            }
        };
        if flavour == churn::cluster::Flavour::Tabby && tabbyd.is_none() {
            eprintln!(
                "tabby: no release build of tabbyd (run `cargo build --release -p tabbyd` or set TABBYD_BIN)"
            );
            continue;
        }
        runs.push(churn::run(flavour, tabbyd.as_deref(), &opts));
    }
    let body = format!(
        "{}\n{}",
        churn::report::tables(&opts, &runs),
        churn::report::describe(&opts)
    );
    println!("{body}");
    doc.push_str(&body);
    let path = args.out.join(format!("{date}-churn.md"));
    std::fs::write(&path, &doc).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `bird --version`'s answer (it prints to stderr).
fn bird_version() -> String {
    interop_tests::cmd::run("bird", &["--version"], interop_tests::cmd::CMD_TIMEOUT)
        .map(|o| format!("{}{}", o.stdout, o.stderr).trim().to_string())
        .unwrap_or_else(|_| "not found".into())
}

/// The Kubernetes datastore: one lab, three measurements (see `bench::kdd`).
fn kdd_file(args: &Args) -> Result<()> {
    preflight(&[Need::KubeApiServer, Need::Bird2])?;
    let date = interop_tests::cmd::run_ok("date", &["-u", "+%F"], interop_tests::cmd::CMD_TIMEOUT)?
        .trim()
        .to_string();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let opts = kdd::KddOpts {
        nodes: args.kdd_nodes,
        reps: args.reps,
    };
    let mut doc = String::new();
    let _ = writeln!(doc, "## Tabby Kubernetes-datastore benchmark, {date}\n");
    let version = |bin: std::path::PathBuf, args: &[&str]| {
        interop_tests::cmd::run_ok(
            &bin.display().to_string(),
            args,
            interop_tests::cmd::CMD_TIMEOUT,
        )
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "unknown version".into())
    };
    // "Kubernetes v1.37.2" and "etcd Version: 3.7.3".
    let apiserver = version(interop_tests::kube::kube_apiserver_bin(), &["--version"])
        .trim_start_matches("Kubernetes ")
        .to_string();
    let etcd = version(interop_tests::kube::kube_etcd_bin(), &["--version"])
        .trim_start_matches("etcd Version: ")
        .to_string();
    let body = match tabbyd_release() {
        None => "Not measured: no release build of tabbyd (run `cargo build --release -p tabbyd` or set TABBYD_BIN).\n".to_string(),
        Some(bin) => {
            let r = kdd::run(&bin, opts)?;
            let _ = writeln!(
                doc,
                "Machine: {}; load average (1, 5, 15 min) {} at the start, {} at the end; the whole scenario took {:.0} s. API server: kube-apiserver {apiserver} (`-v=0`, RBAC and the Node authorizer) with its own etcd {etcd}, both built by `scripts/lab-k8s.sh`, in its own namespace; kubectl of the same release. Sizes: {} Nodes (2 of them route reflectors), one BlockAffinity each; medians of {} sample(s), min and max beside. tabbyd: `{}`. No anchor: calico-node's confd cannot run here (see below).\n",
                machine_line(),
                r.loadavg_before,
                r.loadavg_after,
                r.elapsed.as_secs_f64(),
                opts.nodes,
                opts.reps,
                bin.display()
            );
            format!("{}\n{}", kdd::tables(&r), kdd::describe(&r))
        }
    };
    println!("{doc}{body}");
    doc.push_str(&body);
    let path = args.out.join(format!("{date}-kdd.md"));
    std::fs::write(&path, &doc).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into())
}

fn api_header(args: &Args, date: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Tabby API benchmark, {date}\n");
    let _ = writeln!(
        o,
        "Machine: {}. {} run(s), each in a fresh lab.\n",
        machine_line(),
        args.reps
    );
    o
}

fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = interop_tests::cmd::run_ok("uname", &["-r"], interop_tests::cmd::CMD_TIMEOUT)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {kernel}")
}

/// Every repetition of one daemon under one load. A timeout ends the series
/// (repeating a run that takes minutes tells nothing new), and so does a
/// daemon that is not available; a failed run is noted and the next tried.
fn measure(dut: Dut, shape: Shape, args: &Args, opts: &RunOpts) -> Row {
    let mut row = Row {
        dut,
        runs: vec![],
        requested: args.reps,
        note: None,
    };
    for rep in 1..=args.reps {
        eprintln!(
            "{} — {}: run {rep}/{}",
            shape.title(),
            dut.name(),
            args.reps
        );
        match run_once(dut, shape, opts) {
            Ok(r) => {
                let timed_out = matches!(r.establish, Phase::TimedOut { .. })
                    || matches!(r.converge, Some(Phase::TimedOut { .. }))
                    || matches!(r.withdraw, Some(Phase::TimedOut { .. }));
                let withdrawn = match r.withdraw {
                    Some(p) => format!(" withdrawn {}", phase_text(Some(p))),
                    None => String::new(),
                };
                eprintln!(
                    "  established {} converged {}{withdrawn} daemon CPU {:.2} s peak RSS {:.0} MiB generator CPU {:.2} s",
                    phase_text(Some(r.establish)),
                    phase_text(r.converge),
                    r.daemon_cpu,
                    r.daemon_rss_mib,
                    r.gen_cpu
                );
                row.runs.push(r);
                if timed_out {
                    if rep < args.reps {
                        row.note = Some(format!(
                            "timed out after {} s in run {rep}; not repeated",
                            args.timeout
                        ));
                    }
                    break;
                }
            }
            Err(e) => {
                let msg = match e.downcast_ref::<Unavailable>() {
                    Some(u) => {
                        eprintln!("{} not available: {u}", dut.key());
                        format!("{} not available: {}", dut.key(), first_line(&u.0))
                    }
                    None => {
                        // A failed run (a daemon closing a session) is
                        // reported and the next fresh lab tried: the table
                        // shows how many runs the medians cover.
                        eprintln!("  run failed: {e:#}");
                        let msg = format!("run {rep} failed: {}", first_line(&format!("{e:#}")));
                        row.note = Some(match row.note.take() {
                            Some(prev) => format!("{prev}; {msg}"),
                            None => msg,
                        });
                        continue;
                    }
                };
                row.note = Some(msg);
                break;
            }
        }
    }
    row
}

/// `$TABBYD_BIN`, else the `tabbyd` built beside this binary (a release
/// build when the bench is one): a debug tabbyd would be no fair measure.
fn tabbyd_release() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TABBYD_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    if !dir.ends_with("release") {
        return None;
    }
    Some(dir.join("tabbyd")).filter(|p| p.is_file())
}

/// The error on one line, short enough for a table cell.
fn first_line(s: &str) -> String {
    let l = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    if l.chars().count() > 300 {
        format!("{}…", l.chars().take(300).collect::<String>())
    } else {
        l
    }
}

fn phase_text(p: Option<Phase>) -> String {
    match p {
        Some(Phase::Done(d)) => format!("{:.2} s", d.as_secs_f64()),
        Some(Phase::TimedOut { limit, done, of }) => {
            format!("> {} s ({done}/{of})", limit.as_secs())
        }
        None => "—".into(),
    }
}

fn machine_header(args: &Args, date: &str) -> String {
    let machine = machine_line();
    let mut o = String::new();
    let _ = writeln!(o, "## Tabby benchmark, {date}\n");
    let _ = writeln!(
        o,
        "Machine: {machine}. Each run is a fresh lab: the daemon under test is the route reflector (AS 64512) in one namespace; the generator opens every session from another, one source address per session. Times: *established* from the first connect until every session is Established; *converged* from release (all sessions send their UPDATEs at once) until every observer holds every prefix it expects. Daemon CPU covers the same interval; peak RSS is the daemon's VmHWM at the end; *host load* is the 1-minute load average when a run started (other work on a shared machine slows every daemon alike, the single-threaded ones most). Median of {} runs (min–max); generator: {} thread(s), at most {} handshakes at once; phase limit {} s.\n",
        args.reps, args.gen_threads, args.connect_burst, args.timeout
    );
    o
}

fn configs_note(duts: &[Dut]) -> String {
    let mut o = String::from("Configurations:\n\n");
    for d in duts {
        let _ = writeln!(o, "- {}: {}", d.name(), d.config_note());
    }
    o
}
