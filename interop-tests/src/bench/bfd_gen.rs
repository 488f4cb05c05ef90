//! The BFD load generator: one process, one `tabby-bfd-driver` driver, N
//! single-hop BFD sessions (RFC 5881) towards one daemon, each from its own
//! source address (the lab's bulk addresses on the generator's interface).
//! Optionally it also holds one idle iBGP session per source address (OPEN,
//! then KEEPALIVEs only), so that a daemon which runs BFD for its BGP
//! peers sees every session Established instead of refused connects.
//!
//! It runs as its own process, `bench bfd-gen …` (a hidden subcommand of
//! the bench binary), started inside the generator's namespace, so its CPU
//! is never the daemon's. It talks JSON lines: it prints [`Report::Up`]
//! (or [`Report::NotUp`]) once every session is Up at the configured
//! timers, then obeys its standard input: `measure SECS` counts every
//! session that leaves Up over SECS seconds ([`Report::Window`]), `quit`
//! (or the end of its input, so it never outlives the bench) ends it.
//!
//! `bench bfd-spin` is the other helper: a busy loop that loads one CPU
//! (pinned by `taskset`) until its standard input closes.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use clap::Parser;
use serde::{Deserialize, Serialize};
use tabby_bfd_driver::{
    BfdDriver, BfdEvent, BfdHandle, DriverConfig, SessionId, SessionSpec, State, Timers,
};
use tabby_bgp::capability::Capability;
use tabby_bgp::codec::{CodecCtx, decode_message, encode_message, frame_len};
use tabby_bgp::message::{MAX_MESSAGE_LEN, Message, Open};
use tabby_bgp::{Asn, Family};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};

/// The subcommand of the bench binary that runs the generator.
pub const GEN_SUBCOMMAND: &str = "bfd-gen";
/// The subcommand of the bench binary that loads one CPU.
pub const SPIN_SUBCOMMAND: &str = "bfd-spin";

/// Downs listed one by one in a window report; the rest are only counted.
const LISTED_DOWNS: usize = 50;
/// How often bring-up looks at every session's snapshot.
const POLL: Duration = Duration::from_millis(250);
/// BGP handshakes in flight at once.
const CONNECT_BURST: usize = 32;
/// The hold time offered in our OPENs (the daemon's may be shorter).
const HOLD_TIME: u16 = 240;

/// The generator's command line (after `bench bfd-gen`).
#[derive(Debug, Clone, Parser)]
#[command(name = "bench bfd-gen")]
pub struct GenArgs {
    /// The daemon's address: every session's peer.
    #[arg(long)]
    pub peer: Ipv4Addr,
    /// The first source address; session i uses first + i.
    #[arg(long)]
    pub first: Ipv4Addr,
    /// Sessions to run.
    #[arg(long)]
    pub count: usize,
    /// The interface towards the daemon (single-hop sessions are bound to it).
    #[arg(long)]
    pub iface: Option<String>,
    /// Desired Min TX and Required Min RX, milliseconds.
    #[arg(long, default_value_t = 300)]
    pub interval_ms: u64,
    /// Detect Mult.
    #[arg(long, default_value_t = 3)]
    pub multiplier: u8,
    /// Also hold an idle iBGP session in this AS from every source address.
    #[arg(long)]
    pub bgp_asn: Option<u32>,
    /// Seconds bring-up may take before `not_up` is reported.
    #[arg(long, default_value_t = 120)]
    pub up_timeout: u64,
}

impl GenArgs {
    /// The argument vector (after the subcommand).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--peer".to_string(),
            self.peer.to_string(),
            "--first".into(),
            self.first.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--interval-ms".into(),
            self.interval_ms.to_string(),
            "--multiplier".into(),
            self.multiplier.to_string(),
            "--up-timeout".into(),
            self.up_timeout.to_string(),
        ];
        if let Some(i) = &self.iface {
            a.extend(["--iface".into(), i.clone()]);
        }
        if let Some(asn) = self.bgp_asn {
            a.extend(["--bgp-asn".into(), asn.to_string()]);
        }
        a
    }

    fn timers(&self) -> Timers {
        let t = Duration::from_millis(self.interval_ms);
        Timers {
            desired_min_tx: t,
            required_min_rx: t,
            detect_mult: self.multiplier,
        }
    }
}

/// One line of the generator's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Report {
    /// Every session is Up at the configured timers (and, with BGP, every
    /// BGP session Established), `secs` after the sessions were added.
    Up {
        secs: f64,
        /// Sessions that left Up during bring-up.
        flaps: u64,
    },
    /// Bring-up did not finish in time.
    NotUp {
        secs: f64,
        bfd_up: usize,
        bgp_established: usize,
        of: usize,
    },
    /// One measured window.
    Window(Window),
    /// The generator failed.
    Error { message: String },
}

/// What one `measure` window saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The window's real length.
    pub secs: f64,
    /// Sessions that left Up (Down or the peer's AdminDown), by event.
    pub down_events: u64,
    /// The same from the sessions' own flap counters (when the event
    /// stream lagged, this one still counts).
    pub flaps: u64,
    /// The first downs: the session's source address and the event.
    pub downs: Vec<Down>,
    /// Sessions not Up when the window ended.
    pub not_up_at_end: usize,
    /// BFD packets received from and sent to the daemon.
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets the driver dropped, and sends the kernel refused.
    pub dropped: u64,
    pub send_errors: u64,
    /// BGP sessions the daemon closed (with BGP on).
    pub bgp_drops: u64,
    /// The event stream fell behind (counts then come from `flaps`).
    pub lagged: bool,
}

/// One session leaving Up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Down {
    pub source: String,
    pub event: String,
    /// Milliseconds into the window.
    pub at_ms: u64,
}

/// `bench bfd-gen ARGS…`: parses `args` (the subcommand first) and runs
/// until told to quit. Errors are printed as [`Report::Error`] too.
pub fn main_from(args: impl IntoIterator<Item = String>) -> Result<()> {
    let args = GenArgs::try_parse_from(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the generator's runtime")?;
    let r = rt.block_on(generate(&args));
    if let Err(e) = &r {
        emit(&Report::Error {
            message: format!("{e:#}"),
        });
    }
    // Sessions tell the daemon AdminDown as the driver stops; no waiting.
    rt.shutdown_timeout(Duration::from_millis(500));
    r
}

/// `bench bfd-spin`: keeps one CPU busy until standard input closes.
pub fn spin_main() -> Result<()> {
    std::thread::spawn(|| {
        let mut x: u64 = 1;
        loop {
            // A long dependent chain: no syscalls, no memory traffic.
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
    });
    let mut sink = String::new();
    while std::io::stdin().lock().read_line(&mut sink).unwrap_or(0) > 0 {
        sink.clear();
    }
    Ok(())
}

fn emit(r: &Report) {
    if let Ok(line) = serde_json::to_string(r) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Commands read from standard input, on a thread of their own.
enum Command {
    Measure(Duration),
    Quit,
}

fn read_commands() -> mpsc::UnboundedReceiver<Command> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let mut w = line.split_whitespace();
            let cmd = match (w.next(), w.next().and_then(|s| s.parse::<f64>().ok())) {
                (Some("measure"), Some(s)) if s > 0.0 => {
                    Command::Measure(Duration::from_secs_f64(s))
                }
                (Some("quit"), _) => Command::Quit,
                _ => {
                    eprintln!("bfd-gen: unknown command {line:?}");
                    continue;
                }
            };
            if tx.send(cmd).is_err() {
                return;
            }
        }
        let _ = tx.send(Command::Quit);
    });
    rx
}

/// Every event the driver published, with the instant it was read.
#[derive(Debug, Default)]
struct EventBook {
    events: Vec<(Instant, SessionId, BfdEvent)>,
    lagged: bool,
}

fn record_events(mut rx: broadcast::Receiver<(SessionId, BfdEvent)>, book: Arc<Mutex<EventBook>>) {
    tokio::spawn(async move {
        loop {
            let r = rx.recv().await;
            let Ok(mut b) = book.lock() else { return };
            match r {
                Ok((id, ev)) => b.events.push((Instant::now(), id, ev)),
                Err(broadcast::error::RecvError::Lagged(_)) => b.lagged = true,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// BGP sessions Established now, and closed by the daemon so far.
#[derive(Debug, Default)]
struct BgpCount {
    established: AtomicUsize,
    drops: AtomicU64,
}

async fn generate(args: &GenArgs) -> Result<()> {
    let mut commands = read_commands();
    let (handle, driver) = BfdDriver::start(DriverConfig {
        listen_v4: Some(Ipv4Addr::UNSPECIFIED),
        listen_v6: None,
        source_port: None,
        event_capacity: (4 * args.count).max(1024),
    })
    .context("cannot start the BFD driver")?;
    tokio::spawn(driver.run());
    let book = Arc::new(Mutex::new(EventBook::default()));
    record_events(handle.subscribe(), book.clone());

    let timers = args.timers();
    let started = Instant::now();
    let mut sources: HashMap<SessionId, Ipv4Addr> = HashMap::with_capacity(args.count);
    for i in 0..args.count {
        let src = nth_addr(args.first, i)?;
        let spec = SessionSpec::single_hop(
            IpAddr::V4(args.peer),
            Some(IpAddr::V4(src)),
            args.iface.as_deref(),
        )
        .with_timers(timers);
        let id = handle
            .add(spec)
            .await
            .with_context(|| format!("adding the session from {src}"))?;
        sources.insert(id, src);
    }
    let bgp = Arc::new(BgpCount::default());
    if let Some(asn) = args.bgp_asn {
        let burst = Arc::new(Semaphore::new(CONNECT_BURST));
        for i in 0..args.count {
            let src = nth_addr(args.first, i)?;
            let target = SocketAddr::new(IpAddr::V4(args.peer), 179);
            tokio::spawn(hold_bgp(src, target, asn, burst.clone(), bgp.clone()));
        }
    }

    // ----- bring-up: every session Up at the configured timers.
    let limit = Duration::from_secs(args.up_timeout);
    loop {
        let infos = handle.sessions().await?;
        let up = infos
            .iter()
            .filter(|i| {
                i.state == State::Up
                    && !i.poll_in_progress
                    && i.tx_interval == timers.desired_min_tx
                    && i.detection_time.is_some()
            })
            .count();
        let est = bgp.established.load(Ordering::Relaxed);
        let bgp_done = args.bgp_asn.is_none() || est >= args.count;
        if up == args.count && bgp_done {
            emit(&Report::Up {
                secs: started.elapsed().as_secs_f64(),
                flaps: infos.iter().map(|i| i.flaps).sum(),
            });
            break;
        }
        if started.elapsed() > limit {
            emit(&Report::NotUp {
                secs: started.elapsed().as_secs_f64(),
                bfd_up: up,
                bgp_established: est,
                of: args.count,
            });
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            cmd = commands.recv() => {
                if matches!(cmd, None | Some(Command::Quit)) {
                    return Ok(());
                }
            }
        }
    }

    // ----- windows, until told to quit.
    while let Some(cmd) = commands.recv().await {
        match cmd {
            Command::Quit => break,
            Command::Measure(d) => {
                let w = window(&handle, &book, &sources, &bgp, d).await?;
                emit(&Report::Window(w));
            }
        }
    }
    Ok(())
}

async fn window(
    handle: &BfdHandle,
    book: &Mutex<EventBook>,
    sources: &HashMap<SessionId, Ipv4Addr>,
    bgp: &BgpCount,
    d: Duration,
) -> Result<Window> {
    let flaps0: HashMap<SessionId, u64> = handle
        .sessions()
        .await?
        .iter()
        .map(|i| (i.id, i.flaps))
        .collect();
    let s0 = handle.stats().await?;
    let drops0 = bgp.drops.load(Ordering::Relaxed);
    let t0 = {
        let mut b = book.lock().map_err(|_| anyhow!("event book poisoned"))?;
        b.events.clear();
        b.lagged = false;
        Instant::now()
    };
    tokio::time::sleep(d).await;
    let secs = t0.elapsed().as_secs_f64();
    let infos = handle.sessions().await?;
    let s1 = handle.stats().await?;
    let (events, lagged) = {
        let mut b = book.lock().map_err(|_| anyhow!("event book poisoned"))?;
        (std::mem::take(&mut b.events), b.lagged)
    };
    let mut downs = Vec::new();
    let mut down_events = 0;
    for (at, id, ev) in events {
        if matches!(ev, BfdEvent::Down { .. } | BfdEvent::AdminDown) {
            down_events += 1;
            if downs.len() < LISTED_DOWNS {
                downs.push(Down {
                    source: sources
                        .get(&id)
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| id.to_string()),
                    event: format!("{ev:?}"),
                    at_ms: at.saturating_duration_since(t0).as_millis() as u64,
                });
            }
        }
    }
    Ok(Window {
        secs,
        down_events,
        flaps: infos
            .iter()
            .map(|i| i.flaps - flaps0.get(&i.id).copied().unwrap_or(0))
            .sum(),
        downs,
        not_up_at_end: infos.iter().filter(|i| i.state != State::Up).count(),
        packets_in: s1.packets_in - s0.packets_in,
        packets_out: s1.packets_out - s0.packets_out,
        dropped: s1.dropped_total() - s0.dropped_total(),
        send_errors: s1.send_errors - s0.send_errors,
        bgp_drops: bgp.drops.load(Ordering::Relaxed) - drops0,
        lagged,
    })
}

/// `first + i`.
pub fn nth_addr(first: Ipv4Addr, i: usize) -> Result<Ipv4Addr> {
    let i = u32::try_from(i).context("too many sessions")?;
    u32::from(first)
        .checked_add(i)
        .map(Ipv4Addr::from)
        .context("source addresses run past 255.255.255.255")
}

// ----- the idle BGP sessions

fn open_message(src: Ipv4Addr, asn: u32) -> Result<BytesMut> {
    let open = Open {
        version: 4,
        // RFC 6793: AS_TRANS when the AS needs four octets.
        my_as: u16::try_from(asn).unwrap_or(23456),
        hold_time: HOLD_TIME,
        bgp_id: src,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(Asn(asn)),
        ],
        unknown_params: vec![],
    };
    let mut out = BytesMut::new();
    encode_message(&Message::Open(open), &CodecCtx::default(), &mut out)
        .map_err(|e| anyhow!("cannot encode OPEN: {e}"))?;
    Ok(out)
}

fn keepalive() -> BytesMut {
    let mut out = BytesMut::new();
    // A bare header: encoding cannot fail.
    let _ = encode_message(&Message::Keepalive, &CodecCtx::default(), &mut out);
    out
}

/// Reads one whole message (the handshake only; afterwards we drain).
async fn read_message(s: &mut TcpStream, buf: &mut BytesMut) -> Result<Message> {
    loop {
        if let Some(len) =
            frame_len(buf, MAX_MESSAGE_LEN).map_err(|e| anyhow!("bad framing: {}", e.reason))?
        {
            let msg = buf.split_to(len);
            return decode_message(&msg, &CodecCtx::default())
                .map_err(|e| anyhow!("bad message: {}", e.reason));
        }
        if s.read_buf(buf).await? == 0 {
            bail!("closed during the handshake");
        }
    }
}

/// OPEN both ways, then KEEPALIVE both ways; returns the hold time.
async fn handshake(src: Ipv4Addr, target: SocketAddr, asn: u32) -> Result<(TcpStream, u16)> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0))
        .with_context(|| format!("cannot bind {src}"))?;
    let mut s = sock.connect(target).await?;
    s.set_nodelay(true)?;
    s.write_all(&open_message(src, asn)?).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let hold = match read_message(&mut s, &mut buf).await? {
        Message::Open(o) => o.hold_time.min(HOLD_TIME),
        Message::Notification(n) => bail!("NOTIFICATION instead of OPEN: {n}"),
        m => bail!("message type {} before OPEN", m.kind()),
    };
    s.write_all(&keepalive()).await?;
    loop {
        match read_message(&mut s, &mut buf).await? {
            Message::Keepalive => return Ok((s, hold)),
            Message::Notification(n) => bail!("NOTIFICATION in OpenConfirm: {n}"),
            _ => {}
        }
    }
}

/// One idle iBGP session from `src`, re-opened whenever it closes.
async fn hold_bgp(
    src: Ipv4Addr,
    target: SocketAddr,
    asn: u32,
    burst: Arc<Semaphore>,
    count: Arc<BgpCount>,
) {
    loop {
        let attempt = {
            let Ok(_permit) = burst.acquire().await else {
                return;
            };
            tokio::time::timeout(Duration::from_secs(10), handshake(src, target, asn)).await
        };
        let (mut s, hold) = match attempt {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::debug!(%src, "BGP handshake failed: {e:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(_) => continue,
        };
        count.established.fetch_add(1, Ordering::Relaxed);
        let every = Duration::from_secs(u64::from((hold / 3).max(1)));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let ka = keepalive();
        let mut sink = [0u8; 4096];
        loop {
            tokio::select! {
                r = s.read(&mut sink) => {
                    if !matches!(r, Ok(n) if n > 0) {
                        break;
                    }
                }
                _ = ticks.tick(), if hold != 0 => {
                    if s.write_all(&ka).await.is_err() {
                        break;
                    }
                }
            }
        }
        count.established.fetch_sub(1, Ordering::Relaxed);
        count.drops.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = GenArgs {
            peer: Ipv4Addr::new(198, 18, 1, 1),
            first: Ipv4Addr::new(198, 18, 128, 1),
            count: 2000,
            iface: Some("eth0".into()),
            interval_ms: 300,
            multiplier: 3,
            bgp_asn: Some(64512),
            up_timeout: 90,
        };
        let mut v = vec![GEN_SUBCOMMAND.to_string()];
        v.extend(a.to_args());
        let b = GenArgs::try_parse_from(v).unwrap();
        assert_eq!(b.to_args(), a.to_args());
        assert_eq!(
            nth_addr(a.first, 1999).unwrap(),
            Ipv4Addr::new(198, 18, 135, 208)
        );
    }

    #[test]
    fn reports_are_json_lines() {
        let r = Report::Up {
            secs: 1.5,
            flaps: 0,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"event":"up","secs":1.5,"flaps":0}"#);
        let back: Report = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
        let w: Report = serde_json::from_str(
            r#"{"event":"window","secs":60.0,"down_events":0,"flaps":0,"downs":[],"not_up_at_end":0,"packets_in":1,"packets_out":2,"dropped":0,"send_errors":0,"bgp_drops":0,"lagged":false}"#,
        )
        .unwrap();
        assert!(matches!(w, Report::Window(Window { packets_out: 2, .. })));
    }
}
