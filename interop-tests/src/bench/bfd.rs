//! BFD at scale: N single-hop BFD sessions (300 ms × 3 by default) from
//! our own generator process ([`super::bfd_gen`]) towards tabbyd and towards
//! FRR's bfdd, each in a fresh lab, with the other core loaded. Measured
//! over a window of S seconds once every session is Up at its timers: the
//! daemon's CPU (utime + stime from `/proc`, as seconds of CPU per second),
//! its peak RSS, false Downs as the generator and as the daemon saw them,
//! and the packet rates.
//!
//! The lab: the daemon's namespace and the generator's, one veth; the
//! generator's N source addresses are the lab's bulk addresses on its end,
//! routed from the daemon via one neighbour (see `Lab::attach_bulk`). With
//! two or more CPUs the daemon is pinned to CPU 0, and the generator and a
//! busy loop (`bench bfd-spin`) to CPU 1, the busy loop running from before
//! the window until after it.
//!
//! tabbyd reads one BGPPeer per generator address (iBGP, the
//! `tabby-routing.io/bfd` annotation on each), so it runs N BFD sessions
//! and N BGP sessions; the generator holds those BGP sessions Established
//! and idle (KEEPALIVEs only), unless told to leave them refused. bfdd runs
//! alone (no zebra, no bgpd) with N `peer` blocks, as
//! `bfd-driver/tests/frr_interop.rs` runs it.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::anchors::{ASN, Dut};
use super::bfd_gen::{self, Down, GenArgs, Report, Window};
use super::report::{median, spread, spread_text};
use super::scenario::{Unavailable, load_average};
use crate::cmd;
use crate::daemon::{Daemon, DaemonKind, Datastore, TabbydOpts};
use crate::lab::{Lab, Ns};
use crate::procfs;

/// FRR's BFD daemon.
pub const BFDD: &str = "/usr/lib/frr/bfdd";
/// The label of the daemon under test in the lab.
const DUT: &str = "dut";
/// Pause between all Up and the window, and after the busy loop starts.
const SETTLE: Duration = Duration::from_secs(2);
/// vtysh on thousands of peers prints megabytes of JSON.
const VTY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon may take to configure every session, by default.
/// bfdd 8.4 opens a socket per peer and slows down as it goes: 2,000 peers
/// took it two to three minutes of CPU here.
pub const START_LIMIT: Duration = Duration::from_secs(600);
/// tabbyd's `--metrics` address, inside its namespace.
const METRICS: &str = "127.0.0.1:9901";

/// The load of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BfdLoad {
    pub sessions: usize,
    /// The measured window.
    pub window: Duration,
    pub interval_ms: u64,
    pub multiplier: u8,
    /// How long the daemon may take to configure every session.
    pub start_timeout: Duration,
    /// How long bring-up (every session Up on both sides) may take.
    pub up_timeout: Duration,
    /// The generator holds tabbyd's BGP sessions Established (else it
    /// leaves them refused).
    pub bgp: bool,
    /// Pin the daemon to CPU 0 and load CPU 1 (needs two CPUs).
    pub load_other_core: bool,
}

impl BfdLoad {
    /// The load: 2,000 sessions at 300 ms × 3 for 60 s.
    pub fn new(sessions: usize, window: Duration) -> BfdLoad {
        BfdLoad {
            sessions,
            window,
            interval_ms: 300,
            multiplier: 3,
            start_timeout: START_LIMIT,
            up_timeout: Duration::from_secs(120),
            bgp: true,
            load_other_core: true,
        }
    }

    pub fn title(&self) -> String {
        format!(
            "BFD scale: {} single-hop sessions at {} ms × {}, {} s window",
            self.sessions,
            self.interval_ms,
            self.multiplier,
            fmt_secs(self.window)
        )
    }
}

/// What runs: the binary with the `bfd-gen` and `bfd-spin` subcommands
/// (the bench itself) and tabbyd.
#[derive(Debug, Clone)]
pub struct BfdOpts {
    pub bench_bin: PathBuf,
    pub tabbyd: Option<PathBuf>,
}

/// Whether the scenario measures `dut` (tabbyd and FRR's bfdd).
pub fn supports(dut: Dut) -> bool {
    matches!(dut, Dut::Tabby | Dut::Frr)
}

/// The daemon's name in the table.
pub fn name(dut: Dut) -> &'static str {
    match dut {
        Dut::Frr => "FRR bfdd",
        _ => dut.name(),
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct BfdRun {
    /// From starting the daemon until it has every session configured.
    pub configured_secs: f64,
    /// From adding the sessions until every one is Up at the configured
    /// timers, as the generator sees it (with BGP: every BGP session
    /// Established too).
    pub up_secs: f64,
    /// Sessions that left Up during bring-up.
    pub bringup_flaps: u64,
    /// The window's real length.
    pub window_secs: f64,
    /// The other core was loaded during the window.
    pub loaded: bool,
    /// Daemon CPU seconds per second over the window.
    pub daemon_cpu: f64,
    /// Daemon peak RSS (VmHWM) at the end, MiB.
    pub daemon_rss_mib: f64,
    /// Generator CPU seconds per second over the window.
    pub gen_cpu: f64,
    /// Sessions that left Up in the window, as the generator saw them.
    pub gen_downs: u64,
    /// The same as the daemon counts them; `None` when it does not say.
    pub daemon_downs: Option<u64>,
    /// BFD packets per second the daemon sent and received (the generator's
    /// counts).
    pub pps_from_daemon: f64,
    pub pps_to_daemon: f64,
    /// The daemon's own counts, when it has them (received, sent).
    pub daemon_pps: Option<(f64, f64)>,
    /// BGP sessions tabbyd closed in the window.
    pub bgp_drops: u64,
    /// UDP datagrams the kernel dropped for a full receive buffer in the
    /// window (`RcvbufErrors`), in the daemon's namespace and the
    /// generator's: BFD packets lost before either process saw them.
    pub rcvbuf_drops: (u64, u64),
    /// The first downs of the window.
    pub downs: Vec<Down>,
    /// The 1-minute load average when the window started.
    pub host_load: f64,
}

/// Every run of one daemon.
#[derive(Debug, Clone)]
pub struct BfdRow {
    pub dut: Dut,
    pub runs: Vec<BfdRun>,
    pub requested: usize,
    /// Failed runs, or why the daemon was not measured.
    pub notes: Vec<String>,
}

/// Runs `load` once against `dut` in a fresh lab.
pub fn run_once(dut: Dut, load: &BfdLoad, opts: &BfdOpts) -> Result<BfdRun> {
    ensure!(load.sessions >= 1, "no sessions to run");
    ensure!(supports(dut), "the BFD scenario runs tabbyd and FRR's bfdd");
    if dut == Dut::Frr && !Path::new(BFDD).is_file() {
        return Err(Unavailable(format!("no {BFDD} (apt-get install frr)")).into());
    }
    if dut == Dut::Tabby && opts.tabbyd.is_none() {
        return Err(Unavailable(
            "no release build of tabbyd: run `cargo build --release -p tabbyd` or set TABBYD_BIN"
                .into(),
        )
        .into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = load.load_other_core && cpus >= 2;
    let mut lab = Lab::new("bench-bfd")?;
    let dut_ns = lab.ns("dut")?;
    let gen_ns = lab.ns("gen")?;
    let seg = lab.link(&dut_ns, &gen_ns)?;
    let addrs = lab.attach_bulk(&seg, &gen_ns, load.sessions)?;
    let me = seg.v4(&dut_ns)?;
    let gen_if = seg.ifname(&gen_ns)?.to_string();

    let started = Instant::now();
    let side = match dut {
        Dut::Frr => start_bfdd(&mut lab, &dut_ns, me, &addrs, load, pin)?,
        _ => {
            let bin = opts.tabbyd.as_deref().context("no tabbyd")?;
            start_tabbyd(&mut lab, &dut_ns, bin, me, &addrs, load, pin)
                .map_err(|e| Unavailable(format!("tabbyd did not start: {e:#}")))?
        }
    };
    let configured_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "  {} has its {} sessions configured after {configured_secs:.2} s",
        name(dut),
        load.sessions
    );

    let args = GenArgs {
        peer: me,
        first: *addrs.first().context("no generator address")?,
        count: load.sessions,
        iface: Some(gen_if),
        interval_ms: load.interval_ms,
        multiplier: load.multiplier,
        bgp_asn: (dut == Dut::Tabby && load.bgp).then_some(ASN),
        up_timeout: load.up_timeout.as_secs().max(1),
    };
    let mut generator = GenProc::spawn(
        &gen_ns,
        &opts.bench_bin,
        &args,
        pin.then_some(1),
        &lab.path("bfd-gen.log"),
    )?;
    let (up_secs, bringup_flaps) = match generator
        .next(load.up_timeout + Duration::from_secs(30))?
    {
        Report::Up { secs, flaps } => (secs, flaps),
        Report::NotUp {
            secs,
            bfd_up,
            bgp_established,
            of,
        } => {
            let bgp = if args.bgp_asn.is_some() {
                format!(", {bgp_established}/{of} BGP Established")
            } else {
                String::new()
            };
            bail!(
                "not all Up within {secs:.0} s: {bfd_up}/{of} BFD sessions Up at {} ms{bgp} (generator's view); the daemon says {}",
                load.interval_ms,
                side.up_text()
            );
        }
        other => bail!("the generator said {other:?} instead of up"),
    };
    eprintln!(
        "  all {} sessions Up after {up_secs:.2} s (generator)",
        load.sessions
    );
    // The daemon's view: every one of its sessions Up too.
    let t = Instant::now();
    let remaining = load
        .up_timeout
        .saturating_sub(Duration::from_secs_f64(up_secs))
        .max(Duration::from_secs(10));
    loop {
        lab.check_alive(DUT)?;
        match side.up() {
            Ok(Some((up, of))) if up >= load.sessions && of >= load.sessions => break,
            Ok(None) => break,
            Ok(Some(_)) | Err(_) if t.elapsed() < remaining => {
                std::thread::sleep(Duration::from_secs(1))
            }
            Ok(Some((up, of))) => bail!(
                "the generator has every session Up but {} says {up} of {of} Up after another {:.0} s",
                name(dut),
                t.elapsed().as_secs_f64()
            ),
            Err(e) => return Err(e.context(format!("asking {} for its sessions", name(dut)))),
        }
    }
    std::thread::sleep(SETTLE);

    let spinner = if pin {
        let s = Spinner::spawn(&opts.bench_bin, 1)?;
        std::thread::sleep(SETTLE);
        Some(s)
    } else {
        None
    };
    let c0 = side.counters()?;
    let r0 = (udp_rcvbuf_errors(&dut_ns)?, udp_rcvbuf_errors(&gen_ns)?);
    let host_load = load_average();
    let t0 = Instant::now();
    let d0 = lab.stats(DUT)?;
    let g0 = procfs::stats(generator.pid)?;
    generator.send(&format!("measure {}", load.window.as_secs_f64()))?;
    let w: Window = match generator.next(load.window + Duration::from_secs(60))? {
        Report::Window(w) => w,
        other => bail!("the generator said {other:?} instead of its window"),
    };
    let g1 = procfs::stats(generator.pid)?;
    let d1 = lab.stats(DUT)?;
    let wall = t0.elapsed().as_secs_f64();
    let r1 = (udp_rcvbuf_errors(&dut_ns)?, udp_rcvbuf_errors(&gen_ns)?);
    let c1 = side.counters()?;
    drop(spinner);
    lab.check_alive(DUT)
        .with_context(|| format!("{} died during the window", name(dut)))?;
    generator.quit();

    let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    let daemon_downs = delta(c0.downs, c1.downs);
    let daemon_pps = match (delta(c0.rx, c1.rx), delta(c0.tx, c1.tx)) {
        (Some(rx), Some(tx)) => Some((rx as f64 / wall, tx as f64 / wall)),
        _ => None,
    };
    Ok(BfdRun {
        configured_secs,
        up_secs,
        bringup_flaps,
        window_secs: w.secs,
        loaded: pin,
        daemon_cpu: (d1.cpu_secs - d0.cpu_secs) / wall,
        daemon_rss_mib: d1.peak_rss_mib(),
        gen_cpu: (g1.cpu_secs - g0.cpu_secs) / wall,
        gen_downs: w.down_events.max(w.flaps),
        daemon_downs,
        pps_from_daemon: w.packets_in as f64 / w.secs,
        pps_to_daemon: w.packets_out as f64 / w.secs,
        daemon_pps,
        bgp_drops: w.bgp_drops,
        rcvbuf_drops: (r1.0.saturating_sub(r0.0), r1.1.saturating_sub(r0.1)),
        downs: w.downs,
        host_load,
    })
}

/// `reps` rounds; in each, every daemon of `duts` runs once, so that both
/// see the same host. A daemon that is not available is not tried again.
pub fn measure(duts: &[Dut], load: &BfdLoad, opts: &BfdOpts, reps: usize) -> Vec<BfdRow> {
    let mut rows: Vec<BfdRow> = duts
        .iter()
        .filter(|d| supports(**d))
        .map(|&dut| BfdRow {
            dut,
            runs: vec![],
            requested: reps,
            notes: vec![],
        })
        .collect();
    let mut given_up = vec![false; rows.len()];
    for rep in 1..=reps {
        for (row, gone) in rows.iter_mut().zip(given_up.iter_mut()) {
            if *gone {
                continue;
            }
            eprintln!("{} — {}: run {rep}/{reps}", load.title(), name(row.dut));
            match run_once(row.dut, load, opts) {
                Ok(r) => {
                    eprintln!(
                        "  daemon CPU {:.4} s/s, peak RSS {:.1} MiB, false Downs {} (generator) / {} (daemon), {:.0} / {:.0} packets/s to / from the daemon",
                        r.daemon_cpu,
                        r.daemon_rss_mib,
                        r.gen_downs,
                        r.daemon_downs.map_or("—".into(), |d| d.to_string()),
                        r.pps_to_daemon,
                        r.pps_from_daemon
                    );
                    row.runs.push(r);
                }
                Err(e) => {
                    let line = one_line(&format!("{e:#}"));
                    if let Some(u) = e.downcast_ref::<Unavailable>() {
                        eprintln!("  {} not available: {u}", name(row.dut));
                        row.notes.push(format!("not available: {}", one_line(&u.0)));
                        *gone = true;
                    } else {
                        eprintln!("  run failed: {e:#}");
                        row.notes.push(format!("run {rep} failed: {line}"));
                    }
                }
            }
        }
    }
    rows
}

// ----- the daemons

/// How to ask the daemon under test about its sessions.
enum Side {
    /// bfdd's vty socket directory.
    Bfdd { vty: String },
    /// tabbyd's `/metrics`, on the loopback of its namespace.
    Tabbyd { ns: String, metrics: String },
}

/// The daemon's own counters of all its sessions.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    downs: Option<u64>,
    rx: Option<u64>,
    tx: Option<u64>,
}

impl Side {
    /// (Up, configured) sessions as the daemon reports them; `None` when it
    /// cannot tell.
    fn up(&self) -> Result<Option<(usize, usize)>> {
        match self {
            Side::Bfdd { vty } => {
                let peers = vtysh_json(vty, "show bfd peers json")?;
                let up = peers
                    .iter()
                    .filter(|p| p["status"].as_str() == Some("up"))
                    .count();
                Ok(Some((up, peers.len())))
            }
            Side::Tabbyd { .. } => {
                let m = self.scrape()?;
                let (mut up, mut of) = (0.0, 0.0);
                for (series, v) in &m {
                    if let Some(labels) = series.strip_prefix("tabby_bfd_sessions{") {
                        of += v;
                        if labels.contains("state=\"up\"") {
                            up += v;
                        }
                    }
                }
                Ok(Some((up as usize, of as usize)))
            }
        }
    }

    /// tabbyd's metrics: (series with labels, value).
    fn scrape(&self) -> Result<Vec<(String, f64)>> {
        let Side::Tabbyd { ns, metrics } = self else {
            bail!("not tabbyd");
        };
        let url = format!("http://{metrics}/metrics");
        let out = cmd::run_ok(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "curl",
                "-sSf",
                "--max-time",
                "20",
                &url,
            ],
            Duration::from_secs(30),
        )
        .context("scraping tabbyd's /metrics (needs curl)")?;
        Ok(parse_metrics(&out))
    }

    fn up_text(&self) -> String {
        match self.up() {
            Ok(Some((up, of))) => format!("{up} of {of} Up"),
            Ok(None) => "nothing (no BFD status)".into(),
            Err(e) => format!("nothing: {}", one_line(&format!("{e:#}"))),
        }
    }

    fn counters(&self) -> Result<Counters> {
        match self {
            Side::Bfdd { vty } => {
                let peers = vtysh_json(vty, "show bfd peers counters json")?;
                let sum = |k: &str| -> Option<u64> {
                    peers.iter().map(|p| p[k].as_u64()).sum::<Option<u64>>()
                };
                Ok(Counters {
                    downs: sum("session-down"),
                    rx: sum("control-packet-input"),
                    tx: sum("control-packet-output"),
                })
            }
            Side::Tabbyd { .. } => {
                let m = self.scrape()?;
                let one = |name: &str| m.iter().find(|(s, _)| s == name).map(|(_, v)| *v as u64);
                // A Family has no series until its first transition.
                let downs = m
                    .iter()
                    .filter(|(s, _)| {
                        s.starts_with("tabby_bfd_transitions_total{")
                            && (s.contains("to=\"down\"") || s.contains("to=\"admin_down\""))
                    })
                    .map(|(_, v)| *v as u64)
                    .sum();
                Ok(Counters {
                    downs: Some(downs),
                    rx: one("tabby_bfd_packets_received_total"),
                    tx: one("tabby_bfd_packets_sent_total"),
                })
            }
        }
    }
}

/// Prometheus text: `(series, value)` per sample line.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.trim().rsplit_once(' ')?;
            Some((series.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `RcvbufErrors` of `/proc/net/snmp` (UDP) in `ns`.
fn udp_rcvbuf_errors(ns: &Ns) -> Result<u64> {
    let text = cmd::run_ok(
        "ip",
        &["netns", "exec", &ns.name, "cat", "/proc/net/snmp"],
        cmd::CMD_TIMEOUT,
    )?;
    snmp_udp(&text, "RcvbufErrors")
}

/// One counter of the `Udp:` lines of `/proc/net/snmp`.
fn snmp_udp(text: &str, key: &str) -> Result<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (
        lines.next().context("no Udp line")?,
        lines.next().context("no Udp values")?,
    );
    let i = names
        .split_whitespace()
        .position(|n| n == key)
        .with_context(|| format!("no {key} in /proc/net/snmp"))?;
    Ok(values
        .split_whitespace()
        .nth(i)
        .context("short Udp line")?
        .parse()?)
}

/// `vtysh -c CMD` on bfdd, parsed as a JSON array.
fn vtysh_json(vty: &str, command: &str) -> Result<Vec<Value>> {
    let out = cmd::run_ok(
        "vtysh",
        &["--vty_socket", vty, "-d", "bfdd", "-c", command],
        VTY_TIMEOUT,
    )?;
    match serde_json::from_str::<Value>(out.trim()).context("bfdd's JSON")? {
        Value::Array(a) => Ok(a),
        other => bail!("bfdd's JSON is not a list: {other}"),
    }
}

/// A daemon's command line, pinned to `cpu` by `taskset` when given.
fn pinned(program: &Path, args: Vec<String>, cpu: Option<usize>) -> Daemon {
    let mut d = Daemon::other(program, &[]);
    match cpu {
        Some(c) => {
            d.program = PathBuf::from("taskset");
            d.args = vec!["-c".into(), c.to_string(), program.display().to_string()];
            d.args.extend(args);
        }
        None => d.args = args,
    }
    d
}

/// bfdd's configuration: one single-hop peer per generator address.
pub fn bfdd_conf(me: Ipv4Addr, peers: &[Ipv4Addr], interval_ms: u64, mult: u8) -> String {
    let mut o = String::from("frr defaults traditional\nhostname dut\nlog stdout errors\n!\nbfd\n");
    for p in peers {
        let _ = write!(
            o,
            " peer {p} local-address {me}\n  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n  detect-multiplier {mult}\n !\n"
        );
    }
    o.push_str("!\n");
    o
}

fn start_bfdd(
    lab: &mut Lab,
    ns: &Ns,
    me: Ipv4Addr,
    peers: &[Ipv4Addr],
    load: &BfdLoad,
    pin: bool,
) -> Result<Side> {
    let conf = lab.write_file(
        "bfdd.conf",
        &bfdd_conf(me, peers, load.interval_ms, load.multiplier),
    )?;
    let vty = lab.path("bfdd.vty");
    std::fs::create_dir_all(&vty)?;
    let p = |x: &Path| x.display().to_string();
    // Every path in the lab directory: the file system is shared by all
    // namespaces. No zebra: a single-hop peer without an interface needs
    // none (bfdd keeps retrying it, harmlessly).
    let args: Vec<String> = [
        "-f",
        &p(&conf),
        "-i",
        &p(&lab.path("bfdd.pid")),
        "--vty_socket",
        &p(&vty),
        "--bfdctl",
        &p(&lab.path("bfdd.sock")),
        "-z",
        &p(&lab.path("zserv.api")),
        "-u",
        "root",
        "-g",
        "frrvty",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    lab.start(ns, DUT, pinned(Path::new(BFDD), args, pin.then_some(0)))?;
    let side = Side::Bfdd { vty: p(&vty) };
    let n = peers.len();
    lab.wait_ready(DUT, load.start_timeout, || {
        let (_, of) = side.up()?.context("no answer")?;
        ensure!(of >= n, "bfdd has {of} of {n} peers configured");
        Ok(())
    })?;
    Ok(side)
}

/// The annotation's value for `load`.
fn bfd_annotation(load: &BfdLoad) -> String {
    format!(
        "{{\"interval\":\"{}ms\",\"multiplier\":{}}}",
        load.interval_ms, load.multiplier
    )
}

/// tabbyd's cluster: the node, and one BGPPeer per generator address with
/// the BFD annotation.
pub fn tabby_yaml(me: Ipv4Addr, peers: &[Ipv4Addr], annotation: &str) -> String {
    let mut o = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: {ASN}\n  nodeToNodeMeshEnabled: false\n  logSeverityScreen: Error\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {DUT}\nspec:\n  bgp:\n    ipv4Address: {me}/24\n"
    );
    for (i, p) in peers.iter().enumerate() {
        let _ = write!(
            o,
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: gen-{i}\n  annotations:\n    tabby-routing.io/bfd: '{annotation}'\nspec:\n  node: {DUT}\n  peerIP: {p}\n  asNumber: {ASN}\n"
        );
    }
    o
}

fn start_tabbyd(
    lab: &mut Lab,
    ns: &Ns,
    bin: &Path,
    me: Ipv4Addr,
    peers: &[Ipv4Addr],
    load: &BfdLoad,
    pin: bool,
) -> Result<Side> {
    let yaml = lab.write_file(
        "cluster.yaml",
        &tabby_yaml(me, peers, &bfd_annotation(load)),
    )?;
    let mut opts = TabbydOpts::new(DUT, Datastore::File(yaml)).no_fib();
    opts.log_level = std::env::var("TABBY_BENCH_TABBYD_LOG").unwrap_or_else(|_| "error".into());
    if let Ok(extra) = std::env::var("TABBY_BENCH_TABBYD_ARGS") {
        opts.extra_args = extra.split_whitespace().map(str::to_string).collect();
    }
    opts.api = Some(format!("unix:{}", lab.path("dut.api.sock").display()));
    opts.run_dir = Some(lab.path("dut.run"));
    // The namespace's own loopback: no other namespace shares the port.
    opts.metrics = Some(METRICS.into());
    let mut d = pinned(bin, opts.args(), pin.then_some(0));
    d.kind = DaemonKind::Tabbyd;
    lab.start(ns, DUT, d)?;
    let name = ns.name.clone();
    lab.wait_ready(DUT, Duration::from_secs(60), || {
        let out = cmd::run_ok(
            "ip",
            &["netns", "exec", &name, "ss", "-Hltn", "sport = :179"],
            cmd::CMD_TIMEOUT,
        )?;
        ensure!(!out.trim().is_empty(), "nothing listens on port 179 yet");
        Ok(())
    })?;
    let side = Side::Tabbyd {
        ns: ns.name.clone(),
        metrics: METRICS.into(),
    };
    let n = peers.len();
    lab.wait_ready(DUT, load.start_timeout, || {
        let (_, of) = side.up()?.context("no answer")?;
        ensure!(of >= n, "tabbyd has {of} of {n} BFD sessions configured");
        Ok(())
    })?;
    Ok(side)
}

// ----- the helper processes

/// The generator, running in its namespace: its reports come line by line.
struct GenProc {
    child: Child,
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl GenProc {
    fn spawn(
        ns: &Ns,
        bench_bin: &Path,
        args: &GenArgs,
        cpu: Option<usize>,
        log: &Path,
    ) -> Result<GenProc> {
        let err = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name]);
        if let Some(cpu) = cpu {
            c.args(["taskset", "-c", &cpu.to_string()]);
        }
        c.arg(bench_bin)
            .arg(bfd_gen::GEN_SUBCOMMAND)
            .args(args.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err));
        // `ip netns exec` and `taskset` exec in place: the pid is the generator's.
        let mut child = c
            .spawn()
            .with_context(|| format!("cannot start {} bfd-gen", bench_bin.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout")?;
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(GenProc {
            child,
            pid,
            stdin,
            lines: rx,
            log: log.to_path_buf(),
        })
    }

    /// The next report, within `limit`.
    fn next(&mut self, limit: Duration) -> Result<Report> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("the generator said nothing within {limit:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let st = self.child.wait().ok();
                    bail!(
                        "the generator exited ({st:?}); its log ends:\n{}",
                        cmd::tail_file(&self.log, 20)
                    )
                }
            };
            match serde_json::from_str::<Report>(&line) {
                Ok(Report::Error { message }) => bail!("the generator failed: {message}"),
                Ok(r) => return Ok(r),
                Err(_) => eprintln!("  bfd-gen: {line}"),
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let s = self
            .stdin
            .as_mut()
            .context("the generator's input is closed")?;
        writeln!(s, "{line}")?;
        s.flush()?;
        Ok(())
    }

    /// Asks it to stop (its sessions tell the daemon AdminDown), waits a
    /// moment, then kills it.
    fn quit(mut self) {
        let _ = self.send("quit");
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GenProc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `bench bfd-spin` pinned to one CPU; stopped (by pid) when dropped.
struct Spinner {
    child: Child,
}

impl Spinner {
    fn spawn(bench_bin: &Path, cpu: usize) -> Result<Spinner> {
        let child = Command::new("taskset")
            .args(["-c", &cpu.to_string()])
            .arg(bench_bin)
            .arg(bfd_gen::SPIN_SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the busy loop (taskset from util-linux)")?;
        Ok(Spinner { child })
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- the report

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

fn one_line(s: &str) -> String {
    let l = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let l = l.replace('|', "/");
    if l.chars().count() > 300 {
        format!("{}…", l.chars().take(300).collect::<String>())
    } else {
        l
    }
}

/// Downs over all runs: the total, with each run's count when there are
/// several and any is not zero.
fn downs_text(v: &[Option<u64>]) -> String {
    if v.iter().any(Option::is_none) || v.is_empty() {
        return "—".into();
    }
    let each: Vec<u64> = v.iter().flatten().copied().collect();
    let total: u64 = each.iter().sum();
    if each.len() > 1 && total > 0 {
        let list: Vec<String> = each.iter().map(u64::to_string).collect();
        format!("**{total}** ({})", list.join(", "))
    } else if total > 0 {
        format!("**{total}**")
    } else {
        "0".into()
    }
}

fn ratio(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "—".into(),
    }
}

/// The table: medians (min–max) over the runs, ratios to FRR's medians.
pub fn table(load: &BfdLoad, rows: &[BfdRow]) -> String {
    let cpu = |r: &BfdRow| median(r.runs.iter().map(|x| x.daemon_cpu));
    let rss = |r: &BfdRow| median(r.runs.iter().map(|x| x.daemon_rss_mib));
    let frr = rows.iter().find(|r| r.dut == Dut::Frr);
    let (fcpu, frss) = (frr.and_then(cpu), frr.and_then(rss));
    let mut o = String::new();
    let _ = writeln!(o, "### {}\n", load.title());
    o.push_str("| daemon | runs | configured after (s) | all Up after (s) | daemon CPU (s/s) | × FRR | peak RSS (MiB) | × FRR | false Downs, generator | false Downs, daemon | BFD packets/s to / from daemon | generator CPU (s/s) | host load |\n");
    o.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        if r.runs.is_empty() {
            let _ = writeln!(
                o,
                "| {} | 0/{} | not measured: {} | | | | | | | | | | |",
                name(r.dut),
                r.requested,
                r.notes.last().map_or("no run", String::as_str)
            );
            continue;
        }
        let col = |f: &dyn Fn(&BfdRun) -> f64| r.runs.iter().map(f).collect::<Vec<f64>>();
        let (to, from) = (
            median(r.runs.iter().map(|x| x.pps_to_daemon)).unwrap_or(0.0),
            median(r.runs.iter().map(|x| x.pps_from_daemon)).unwrap_or(0.0),
        );
        let _ = writeln!(
            o,
            "| {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {to:.0} / {from:.0} | {} | {} |",
            name(r.dut),
            r.runs.len(),
            r.requested,
            spread_text(&col(&|x| x.configured_secs), 2),
            spread_text(&col(&|x| x.up_secs), 2),
            spread_text(&col(&|x| x.daemon_cpu), 4),
            ratio(cpu(r), fcpu),
            spread_text(&col(&|x| x.daemon_rss_mib), 1),
            ratio(rss(r), frss),
            downs_text(&r.runs.iter().map(|x| Some(x.gen_downs)).collect::<Vec<_>>()),
            downs_text(&r.runs.iter().map(|x| x.daemon_downs).collect::<Vec<_>>()),
            spread_text(&col(&|x| x.gen_cpu), 4),
            median(r.runs.iter().map(|x| x.host_load)).map_or(String::new(), |l| format!("{l:.1}")),
        );
    }
    let mut notes = Vec::new();
    for r in rows {
        if !r.runs.is_empty() {
            for n in &r.notes {
                notes.push(format!("- {}: {n}", name(r.dut)));
            }
        }
        for (i, run) in r.runs.iter().enumerate() {
            if !run.downs.is_empty() {
                let list: Vec<String> = run
                    .downs
                    .iter()
                    .take(5)
                    .map(|d| format!("{} {} at {} ms", d.source, d.event, d.at_ms))
                    .collect();
                notes.push(format!(
                    "- {} run {}: {}{}",
                    name(r.dut),
                    i + 1,
                    list.join("; "),
                    if run.downs.len() > 5 { "; …" } else { "" }
                ));
            }
            if run.rcvbuf_drops != (0, 0) {
                notes.push(format!(
                    "- {} run {}: the kernel dropped {} UDP datagrams for a full receive buffer in the daemon's namespace, {} in the generator's",
                    name(r.dut),
                    i + 1,
                    run.rcvbuf_drops.0,
                    run.rcvbuf_drops.1
                ));
            }
            if run.bringup_flaps > 0 || run.bgp_drops > 0 {
                notes.push(format!(
                    "- {} run {}: {} flaps during bring-up, {} BGP sessions closed in the window",
                    name(r.dut),
                    i + 1,
                    run.bringup_flaps,
                    run.bgp_drops
                ));
            }
            if !run.loaded {
                notes.push(format!(
                    "- {} run {}: the other core was not loaded (fewer than two CPUs)",
                    name(r.dut),
                    i + 1
                ));
            }
        }
        let own: Vec<(f64, f64)> = r.runs.iter().filter_map(|x| x.daemon_pps).collect();
        if !own.is_empty() && own.len() == r.runs.len() {
            let rx = spread(&own.iter().map(|p| p.0).collect::<Vec<_>>());
            let tx = spread(&own.iter().map(|p| p.1).collect::<Vec<_>>());
            if let (Some(rx), Some(tx)) = (rx, tx) {
                notes.push(format!(
                    "- {}: its own counters, {:.0} packets/s received, {:.0} sent (medians)",
                    name(r.dut),
                    rx.0,
                    tx.0
                ));
            }
        }
    }
    if !notes.is_empty() {
        o.push('\n');
        for n in notes {
            let _ = writeln!(o, "{n}");
        }
    }
    o
}

/// The setup, in a paragraph for the report.
pub fn describe(load: &BfdLoad) -> String {
    let bgp = if load.bgp {
        "the generator also opens the iBGP session from each address and holds it Established and idle (KEEPALIVEs only, hold time 240 s offered), so tabbyd runs N BFD and N BGP sessions"
    } else {
        "the generator leaves tabbyd's BGP connections refused (tabbyd retries each on its ConnectRetry timer, 5 s), so tabbyd runs N BFD sessions and N BGP sessions in Active/Connect"
    };
    format!(
        "Setup: each run is a fresh lab: the daemon in one namespace, our generator (`bench bfd-gen`: one process, one tabby-bfd-driver, {n} single-hop sessions from {n} source addresses of 198.18.128.0/17 on one veth, routed from the daemon via one neighbour) in another. Timers {i} ms × {m} both ways (Detection Time {d} ms). The window starts once every session is Up at those timers on both sides, then {s} s of idle settling; with two CPUs the daemon is pinned to CPU 0 and the generator and a busy loop (`bench bfd-spin`, from {s} s before the window until its end) to CPU 1. Daemon CPU is utime + stime from `/proc/PID/stat` over the window divided by its length; peak RSS is VmHWM at its end. A false Down is a session leaving Up (Down or AdminDown) during the window: *generator* counts its own sessions' events and flap counters, *daemon* the daemon's own count (tabbyd: its `/metrics`, `tabby_bfd_transitions_total` to `down` or `admin_down`; bfdd: `show bfd peers counters json`, the sum of `session-down`), both read before and after the window. Packets/s are the generator's counts (what the daemon was sent / what it sent); the notes give the daemons' own counts and any datagram the kernel dropped for a full socket buffer (UDP `RcvbufErrors` of each namespace).\n\n\
         - Tabby (tabbyd): a file datastore with the node and one BGPPeer per generator address (iBGP, AS {ASN}) carrying `tabby-routing.io/bfd: '{a}'`; `--no-fib`, `--log-level error`, `--metrics` on the namespace's loopback; {bgp}.\n\
         - FRR bfdd: bfdd {frr} alone (no zebra, no bgpd), `frr defaults traditional`, one `peer ADDR local-address DUT` block per generator address with `receive-interval`, `transmit-interval` and `detect-multiplier`, errors-only log.\n",
        n = load.sessions,
        i = load.interval_ms,
        m = load.multiplier,
        d = load.interval_ms * u64::from(load.multiplier),
        s = fmt_secs(SETTLE),
        a = bfd_annotation(load),
        frr = frr_version(),
    )
}

fn frr_version() -> String {
    cmd::run_ok(BFDD, &["--version"], cmd::CMD_TIMEOUT)
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().last().map(str::to_string))
        })
        .unwrap_or_default()
}

/// Whether every run of every row saw every session Up and none go down.
pub fn clean(rows: &[BfdRow]) -> Result<()> {
    for r in rows {
        ensure!(
            !r.runs.is_empty() && r.runs.len() == r.requested,
            "{}: {} of {} runs: {}",
            name(r.dut),
            r.runs.len(),
            r.requested,
            r.notes.join("; ")
        );
        for run in &r.runs {
            ensure!(
                run.gen_downs == 0 && run.daemon_downs.unwrap_or(0) == 0,
                "{}: false Downs {} (generator), {:?} (daemon): {:?}",
                name(r.dut),
                run.gen_downs,
                run.daemon_downs,
                run.downs
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cpu: f64, rss: f64, downs: u64) -> BfdRun {
        BfdRun {
            configured_secs: 1.0,
            up_secs: 3.0,
            bringup_flaps: 0,
            window_secs: 60.0,
            loaded: true,
            daemon_cpu: cpu,
            daemon_rss_mib: rss,
            gen_cpu: 0.1,
            gen_downs: downs,
            daemon_downs: Some(downs),
            pps_from_daemon: 7400.0,
            pps_to_daemon: 7400.0,
            daemon_pps: None,
            bgp_drops: 0,
            rcvbuf_drops: (0, 0),
            downs: vec![],
            host_load: 1.0,
        }
    }

    #[test]
    fn table_has_medians_ratios_and_downs() {
        let load = BfdLoad::new(2000, Duration::from_secs(60));
        let rows = vec![
            BfdRow {
                dut: Dut::Tabby,
                runs: vec![run(0.02, 10.0, 0), run(0.04, 12.0, 0), run(0.03, 11.0, 0)],
                requested: 3,
                notes: vec![],
            },
            BfdRow {
                dut: Dut::Frr,
                runs: vec![run(0.06, 22.0, 0), run(0.06, 22.0, 2), run(0.06, 22.0, 0)],
                requested: 3,
                notes: vec![],
            },
        ];
        let t = table(&load, &rows);
        assert!(
            t.contains("| Tabby (tabbyd) | 3/3 | 1.00 (1.00–1.00) | 3.00 (3.00–3.00) | 0.0300 (0.0200–0.0400) | 0.50× | 11.0 (10.0–12.0) | 0.50× | 0 | 0 | 7400 / 7400 |"),
            "{t}"
        );
        assert!(t.contains("| FRR bfdd | 3/3 |"), "{t}");
        assert!(t.contains("| **2** (0, 2, 0) |"), "{t}");
        assert!(clean(&rows).is_err());
        assert!(clean(&rows[..1]).is_ok());
    }

    #[test]
    fn snmp_counters_are_read_by_name() {
        let t = "Ip: a b\nIp: 1 2\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdp: 10 0 3 9 3\nUdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 7\n";
        assert_eq!(snmp_udp(t, "RcvbufErrors").unwrap(), 3);
        assert_eq!(snmp_udp(t, "InDatagrams").unwrap(), 10);
        assert!(snmp_udp(t, "Nope").is_err());
    }

    #[test]
    fn metrics_text_is_parsed() {
        let m = parse_metrics(
            "# HELP x y\ntabby_bfd_sessions{state=\"up\"} 3\ntabby_bfd_packets_sent_total 12\n# EOF\n",
        );
        assert_eq!(
            m,
            [
                ("tabby_bfd_sessions{state=\"up\"}".to_string(), 3.0),
                ("tabby_bfd_packets_sent_total".to_string(), 12.0)
            ]
        );
    }

    #[test]
    fn configs_name_every_peer() {
        let me = Ipv4Addr::new(198, 18, 1, 1);
        let peers = [
            Ipv4Addr::new(198, 18, 128, 1),
            Ipv4Addr::new(198, 18, 128, 2),
        ];
        let f = bfdd_conf(me, &peers, 300, 3);
        assert!(
            f.contains(" peer 198.18.128.2 local-address 198.18.1.1\n  receive-interval 300\n")
        );
        assert_eq!(f.matches("detect-multiplier 3").count(), 2);
        let load = BfdLoad::new(2, Duration::from_secs(5));
        let t = tabby_yaml(me, &peers, &bfd_annotation(&load));
        assert_eq!(t.matches("kind: BGPPeer").count(), 2);
        assert!(t.contains("tabby-routing.io/bfd: '{\"interval\":\"300ms\",\"multiplier\":3}'"));
        assert!(t.contains("peerIP: 198.18.128.2"));
    }
}
