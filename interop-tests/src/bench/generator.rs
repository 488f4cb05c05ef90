//! The load generator: many BGP sessions from one process, one tokio task
//! pair per session (reader, writer), UPDATEs encoded before the clock
//! starts.
//!
//! Each session binds its own source address (the lab's bulk addresses) and
//! connects to the daemon under test. Once every session is Established the
//! generator *releases* them all at once: each writes its pre-encoded
//! UPDATEs and End-of-RIB. A few "observer" sessions decode what they
//! receive and report when they hold every prefix they expect; every other
//! session only drains its socket, so the generator stays cheap and the
//! daemon remains the bottleneck.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net};
use tabby_bgp::attr::{LocalPref, Origin, PathAttributes};
use tabby_bgp::capability::Capability;
use tabby_bgp::codec::{CodecCtx, UpdatePacker, decode_message, encode_message, frame_len};
use tabby_bgp::message::{MAX_MESSAGE_LEN, Message, Open, Update};
use tabby_bgp::{Asn, Family, Nlri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::{Notify, Semaphore, watch};

/// What one generated session does.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// Source address (also the BGP identifier and the NEXT_HOP of its routes).
    pub source: Ipv4Addr,
    /// The session's AS (iBGP when equal to the daemon's).
    pub asn: u32,
    /// Prefixes this session announces after release.
    pub announce: Vec<Ipv4Net>,
    /// For observers: every prefix it must hold before it counts as converged.
    pub expect: Option<Vec<Ipv4Net>>,
}

/// A whole load: sessions towards one daemon.
#[derive(Debug, Clone)]
pub struct Load {
    /// The daemon's address and port.
    pub target: SocketAddr,
    /// The daemon's AS: sessions in it are iBGP (LOCAL_PREF, empty AS_PATH).
    pub daemon_asn: u32,
    pub sessions: Vec<SessionSpec>,
    /// Hold time we offer; the negotiated one decides our keepalive rate.
    pub hold_time: u16,
    /// Worker threads of the generator's runtime (1 = current-thread).
    pub threads: usize,
    /// Handshakes in flight at once (a daemon's accept queue may be short).
    pub connect_burst: usize,
    pub establish_timeout: Duration,
    pub converge_timeout: Duration,
}

/// How long a phase took, or that it did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    Done(Duration),
    /// Not finished within the limit; how many of how many made it.
    TimedOut {
        limit: Duration,
        done: usize,
        of: usize,
    },
}

impl Phase {
    pub fn secs(&self) -> Option<f64> {
        match self {
            Phase::Done(d) => Some(d.as_secs_f64()),
            Phase::TimedOut { .. } => None,
        }
    }
}

/// The generator's measurements of one run.
#[derive(Debug, Clone)]
pub struct GenOutcome {
    /// From the first connect until every session is Established.
    pub establish: Phase,
    /// From release until every observer holds what it expects (not run if
    /// establishment timed out).
    pub converge: Option<Phase>,
    /// Prefixes held by each observer at the end (for checks and reports).
    pub observer_held: Vec<usize>,
    /// Prefixes each observer expected.
    pub observer_expected: Vec<usize>,
}

/// The messages one session sends after release: its announcements packed
/// into full UPDATEs, then End-of-RIB (RFC 4724 §2).
pub fn encode_announcements(spec: &SessionSpec, ibgp: bool) -> Result<BytesMut> {
    let ctx = session_ctx();
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        next_hop: Some(spec.source),
        local_pref: if ibgp {
            Some(LocalPref::new(100))
        } else {
            None
        },
        as_path: if ibgp {
            Default::default()
        } else {
            tabby_bgp::attr::AsPath::from_sequence([Asn(spec.asn)])
        },
        ..PathAttributes::default()
    };
    let mut out = BytesMut::new();
    if !spec.announce.is_empty() {
        let nlri: Vec<Nlri> = spec
            .announce
            .iter()
            .map(|p| Nlri::new(IpNet::V4(*p)))
            .collect();
        UpdatePacker::new(Family::IPV4_UNICAST, &attrs, None, &ctx)
            .map_err(|e| anyhow!("cannot encode announcements: {e}"))?
            .pack(&nlri, &mut out)
            .map_err(|e| anyhow!("cannot encode announcements: {e}"))?;
    }
    encode_message(
        &Message::Update(Update::end_of_rib(Family::IPV4_UNICAST)),
        &ctx,
        &mut out,
    )
    .map_err(|e| anyhow!("cannot encode End-of-RIB: {e}"))?;
    Ok(out)
}

/// Every session negotiates 4-octet ASNs and standard-size messages.
fn session_ctx() -> CodecCtx {
    CodecCtx {
        four_octet_as: true,
        ..CodecCtx::default()
    }
}

fn open_message(spec: &SessionSpec, hold_time: u16) -> Result<BytesMut> {
    let my_as = u16::try_from(spec.asn).unwrap_or(23456); // RFC 6793 AS_TRANS
    let open = Open {
        version: 4,
        my_as,
        hold_time,
        bgp_id: spec.source,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(Asn(spec.asn)),
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
    // A KEEPALIVE is a bare header: encoding cannot fail.
    let _ = encode_message(&Message::Keepalive, &CodecCtx::default(), &mut out);
    out
}

/// Prefix key: address and length in one integer (cheap to hash).
fn key(p: &IpNet) -> Option<u64> {
    match p {
        IpNet::V4(n) => Some((u64::from(u32::from(n.addr())) << 8) | u64::from(n.prefix_len())),
        IpNet::V6(_) => None,
    }
}

/// Shared progress of all sessions.
#[derive(Debug)]
struct Progress {
    established: AtomicUsize,
    observers_done: AtomicUsize,
    changed: Notify,
    /// First fatal session error.
    failure: std::sync::Mutex<Option<String>>,
    held: Vec<AtomicUsize>,
}

impl Progress {
    fn fail(&self, e: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
        self.changed.notify_waiters();
    }
    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

/// An observer's book: expected prefix → held now.
struct Book {
    want: HashMap<u64, bool>,
    held: usize,
    done: bool,
}

impl Book {
    fn new(expect: &[Ipv4Net]) -> Book {
        let want = expect
            .iter()
            .filter_map(|p| key(&IpNet::V4(*p)))
            .map(|k| (k, false))
            .collect();
        Book {
            want,
            held: 0,
            done: false,
        }
    }
    fn announce(&mut self, p: &IpNet) {
        if let Some(h) = key(p).and_then(|k| self.want.get_mut(&k))
            && !*h
        {
            *h = true;
            self.held += 1;
        }
    }
    fn withdraw(&mut self, p: &IpNet) {
        if let Some(h) = key(p).and_then(|k| self.want.get_mut(&k))
            && *h
        {
            *h = false;
            self.held -= 1;
        }
    }
    fn apply(&mut self, u: &Update) {
        let withdraw_all = u.treat_as_withdraw();
        for n in &u.withdrawn {
            self.withdraw(&n.prefix);
        }
        if let Some(m) = &u.mp_unreach {
            for n in &m.withdrawn {
                self.withdraw(&n.prefix);
            }
        }
        let announced = u
            .nlri
            .iter()
            .chain(u.mp_reach.iter().flat_map(|m| m.nlri.iter()));
        for n in announced {
            if withdraw_all {
                self.withdraw(&n.prefix);
            } else {
                self.announce(&n.prefix);
            }
        }
    }
    fn complete(&self) -> bool {
        self.held == self.want.len()
    }
}

/// Runs `load` to completion or timeout; sessions are closed when it
/// returns. Call it inside the generator's namespace (`Lab::in_ns`): the
/// runtime's threads are created from the calling thread and so share its
/// namespace, and every socket is created on them.
pub fn run(load: &Load) -> Result<GenOutcome> {
    let rt = if load.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(load.threads)
            .enable_all()
            .build()?
    };
    let out = rt.block_on(drive(load));
    // Dropping the runtime cancels every session task and closes its socket.
    rt.shutdown_timeout(Duration::from_secs(2));
    out
}

async fn drive(load: &Load) -> Result<GenOutcome> {
    let n = load.sessions.len();
    let observers: Vec<usize> = (0..n)
        .filter(|&i| load.sessions.get(i).is_some_and(|s| s.expect.is_some()))
        .collect();
    let progress = Arc::new(Progress {
        established: AtomicUsize::new(0),
        observers_done: AtomicUsize::new(0),
        changed: Notify::new(),
        failure: std::sync::Mutex::new(None),
        held: observers.iter().map(|_| AtomicUsize::new(0)).collect(),
    });
    let (release_tx, release_rx) = watch::channel(false);
    // Encoded before the clock starts.
    let mut payloads = Vec::with_capacity(n);
    for s in &load.sessions {
        payloads.push(encode_announcements(s, s.asn == load.daemon_asn)?);
    }
    let connecting = Arc::new(Semaphore::new(load.connect_burst.max(1)));
    let start = Instant::now();
    let mut obs_slot = 0;
    for (spec, payload) in load.sessions.iter().zip(payloads) {
        let slot = if spec.expect.is_some() {
            obs_slot += 1;
            Some(obs_slot - 1)
        } else {
            None
        };
        let task = Session {
            spec: spec.clone(),
            target: load.target,
            hold_time: load.hold_time,
            payload,
            progress: progress.clone(),
            release: release_rx.clone(),
            observer_slot: slot,
            connecting: connecting.clone(),
        };
        tokio::spawn(async move {
            let who = task.spec.source;
            let p = task.progress.clone();
            if let Err(e) = task.run().await {
                p.fail(format!("session from {who}: {e:#}"));
            }
        });
    }

    let establish = wait_until(
        &progress,
        load.establish_timeout,
        start,
        || progress.established.load(Ordering::Relaxed),
        n,
    )
    .await?;
    let mut outcome = GenOutcome {
        establish,
        converge: None,
        observer_held: vec![],
        observer_expected: load
            .sessions
            .iter()
            .filter_map(|s| s.expect.as_ref().map(Vec::len))
            .collect(),
    };
    if matches!(establish, Phase::Done(_)) {
        let released = Instant::now();
        let _ = release_tx.send(true);
        let k = observers.len();
        outcome.converge = Some(
            wait_until(
                &progress,
                load.converge_timeout,
                released,
                || progress.observers_done.load(Ordering::Relaxed),
                k,
            )
            .await?,
        );
    }
    outcome.observer_held = progress
        .held
        .iter()
        .map(|h| h.load(Ordering::Relaxed))
        .collect();
    Ok(outcome)
}

/// Waits until `count()` reaches `target`, a session fails (error) or the
/// limit passes (a `TimedOut` phase, not an error).
async fn wait_until(
    progress: &Progress,
    limit: Duration,
    since: Instant,
    count: impl Fn() -> usize,
    target: usize,
) -> Result<Phase> {
    let deadline = since + limit;
    loop {
        let notified = progress.changed.notified();
        if let Some(f) = progress.failure() {
            bail!("{f}");
        }
        let c = count();
        if c >= target {
            return Ok(Phase::Done(since.elapsed()));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Phase::TimedOut {
                limit,
                done: c,
                of: target,
            });
        }
        // Wake on progress, and at least every 100 ms (notify_waiters only
        // reaches waiters registered before it fired).
        let tick = (deadline - now).min(Duration::from_millis(100));
        let _ = tokio::time::timeout(tick, notified).await;
    }
}

struct Session {
    spec: SessionSpec,
    target: SocketAddr,
    hold_time: u16,
    payload: BytesMut,
    progress: Arc<Progress>,
    release: watch::Receiver<bool>,
    observer_slot: Option<usize>,
    connecting: Arc<Semaphore>,
}

/// First time limit of one handshake attempt; doubled on each timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before a new attempt after a failed one.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Errors no retry can fix (our own socket setup).
fn is_local_setup_error(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("cannot bind") || format!("{e:#}").contains("cannot create")
}

impl Session {
    /// Connects from the session's own source address, retrying refused
    /// connects (a daemon may still be opening its listener, or reject a
    /// peer it does not know yet).
    async fn connect(&self) -> Result<tokio::net::TcpStream> {
        let local = SocketAddr::new(IpAddr::V4(self.spec.source), 0);
        loop {
            let s = TcpSocket::new_v4().context("cannot create a TCP socket")?;
            s.bind(local).with_context(|| {
                format!(
                    "cannot bind {} (is it on the generator's interface?)",
                    self.spec.source
                )
            })?;
            match s.connect(self.target).await {
                Ok(st) => return Ok(st),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("connect to {}", self.target)),
            }
        }
    }

    /// One attempt: TCP, OPEN both ways, KEEPALIVE confirming ours
    /// (OpenSent → OpenConfirm → Established, RFC 4271 §8.2.2). Returns the
    /// stream, bytes already read past the handshake, and the peer's hold time.
    async fn handshake(&self) -> Result<(tokio::net::TcpStream, BytesMut, u16)> {
        let mut stream = self.connect().await?;
        stream.set_nodelay(true)?;
        stream
            .write_all(&open_message(&self.spec, self.hold_time)?)
            .await?;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let peer_hold = match read_message(&mut stream, &mut buf).await? {
            Message::Open(o) => o.hold_time,
            Message::Notification(n) => bail!("NOTIFICATION instead of OPEN: {n}"),
            other => bail!("message type {} before OPEN", other.kind()),
        };
        stream.write_all(&keepalive()).await?;
        match read_message(&mut stream, &mut buf).await? {
            Message::Keepalive => {}
            Message::Notification(n) => bail!("NOTIFICATION in OpenConfirm: {n}"),
            other => bail!("message type {} in OpenConfirm", other.kind()),
        }
        Ok((stream, buf, peer_hold))
    }

    /// Handshakes until one succeeds, as a BGP speaker's ConnectRetry would:
    /// a daemon whose accept queue overflowed may leave a connection that
    /// never answers, or reset it. At most `connecting` handshakes run at once.
    async fn establish(&self) -> Result<(tokio::net::TcpStream, BytesMut, u16)> {
        let mut limit = HANDSHAKE_TIMEOUT;
        loop {
            let attempt = {
                let _permit = self
                    .connecting
                    .acquire()
                    .await
                    .map_err(|_| anyhow!("generator stopped"))?;
                tokio::time::timeout(limit, self.handshake()).await
            };
            match attempt {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(e)) if is_local_setup_error(&e) => return Err(e),
                Ok(Err(e)) => {
                    tracing::debug!(source = %self.spec.source, "handshake failed, retrying: {e:#}");
                }
                Err(_) => {
                    tracing::debug!(source = %self.spec.source, ?limit, "handshake timed out, retrying");
                    limit = (limit * 2).min(Duration::from_secs(60));
                }
            }
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }

    async fn run(self) -> Result<()> {
        let (stream, mut buf, peer_hold) = self.establish().await?;
        self.progress.established.fetch_add(1, Ordering::Relaxed);
        self.progress.changed.notify_waiters();

        let hold = self.hold_time.min(peer_hold);
        let (mut rd, mut wr) = stream.into_split();
        let mut release = self.release.clone();
        let payload = self.payload;
        let progress = self.progress.clone();
        let who = self.spec.source;
        tokio::spawn(async move {
            let r: Result<()> = async {
                // KEEPALIVEs run from Established on, not from release: a
                // daemon with a short hold time (FRR's datacenter profile:
                // 9 s) would drop sessions while the others still establish.
                // RFC 4271 §4.4: hold time 0 means none at all.
                let every = Duration::from_secs(u64::from((hold / 3).max(1)));
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let ka = keepalive();
                let mut sent = false;
                let mut release_open = true;
                loop {
                    if !sent && *release.borrow_and_update() {
                        wr.write_all(&payload).await?;
                        sent = true;
                    }
                    tokio::select! {
                        r = release.changed(), if !sent && release_open => {
                            // The generator is gone: stay quiet until cancelled.
                            release_open = r.is_ok();
                        }
                        _ = ticks.tick(), if hold != 0 => {
                            wr.write_all(&ka).await?;
                        }
                        _ = std::future::pending::<()>(), if hold == 0 && (sent || !release_open) => {}
                    }
                }
            }
            .await;
            if let Err(e) = r {
                progress.fail(format!("session from {who} (writer): {e:#}"));
            }
        });

        match (self.observer_slot, &self.spec.expect) {
            (Some(slot), Some(expect)) => {
                let mut book = Book::new(expect);
                let ctx = session_ctx();
                // Bytes read with the handshake may already hold UPDATEs.
                loop {
                    while let Some(len) = frame_len(&buf, MAX_MESSAGE_LEN)
                        .map_err(|e| anyhow!("bad framing from the daemon: {}", e.reason))?
                    {
                        let msg = buf.split_to(len);
                        match decode_message(&msg, &ctx)
                            .map_err(|e| anyhow!("bad message from the daemon: {}", e.reason))?
                        {
                            Message::Update(u) => book.apply(&u),
                            Message::Notification(n) => bail!("NOTIFICATION: {n}"),
                            _ => {}
                        }
                    }
                    if let Some(h) = self.progress.held.get(slot) {
                        h.store(book.held, Ordering::Relaxed);
                    }
                    if !book.done && book.complete() {
                        book.done = true;
                        self.progress.observers_done.fetch_add(1, Ordering::Relaxed);
                        self.progress.changed.notify_waiters();
                    }
                    if buf.capacity() - buf.len() < 8192 {
                        buf.reserve(64 * 1024);
                    }
                    let n = rd.read_buf(&mut buf).await?;
                    if n == 0 {
                        bail!("the daemon closed the session");
                    }
                }
            }
            _ => {
                // Drain only: no parsing, but a closed session is a failure.
                let mut sink = vec![0u8; 64 * 1024];
                loop {
                    let n = rd.read(&mut sink).await?;
                    if n == 0 {
                        bail!("the daemon closed the session");
                    }
                }
            }
        }
    }
}

async fn read_message(stream: &mut tokio::net::TcpStream, buf: &mut BytesMut) -> Result<Message> {
    loop {
        if let Some(len) = frame_len(buf, MAX_MESSAGE_LEN)
            .map_err(|e| anyhow!("bad framing from the daemon: {}", e.reason))?
        {
            let msg = buf.split_to(len);
            return decode_message(&msg, &CodecCtx::default())
                .map_err(|e| anyhow!("bad message from the daemon: {}", e.reason));
        }
        let n = stream.read_buf(buf).await?;
        if n == 0 {
            bail!("the daemon closed the connection during session setup");
        }
    }
}
