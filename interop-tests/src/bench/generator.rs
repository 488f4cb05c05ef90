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
//! daemon remains the bottleneck. A drain may also *count* the prefixes it
//! is sent, walking the UPDATEs' framing without decoding attributes, so
//! that convergence can mean every session, not only the observers.
//!
//! A load may have a second stage: once every session converged, sessions
//! that announced withdraw everything at once, and the stage ends when every
//! observer holds nothing and every counting drain has counted as many
//! withdrawals as it had announcements.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net};
use tabby_bgp::attr::{Community, LocalPref, Med, Origin, PathAttributes};
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
    /// Distinct attribute sets over `announce` (0 or 1: one set, the
    /// minimal ORIGIN, AS_PATH, NEXT_HOP and LOCAL_PREF); see [`attr_set`].
    pub attr_sets: usize,
    /// In the second stage, withdraw everything announced.
    pub withdraw_after: bool,
    /// For drains: converged once this many prefixes were announced to it
    /// (and, in the second stage, withdrawn from it), counted without decoding.
    pub count: Option<usize>,
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
    /// The daemon's pid, to read the CPU each stage cost.
    pub daemon_pid: Option<u32>,
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
    /// The second stage, from the withdrawals' release until every observer
    /// and counting drain saw everything withdrawn (a load with withdrawals
    /// whose first stage converged).
    pub withdraw: Option<Phase>,
    /// The daemon's CPU seconds (by [`Load::daemon_pid`]) spent converging,
    /// and withdrawing, when measured.
    pub converge_cpu: Option<f64>,
    pub withdraw_cpu: Option<f64>,
}

/// The attributes of set `k` of a session: for one set, the minimal ones
/// (ORIGIN IGP, NEXT_HOP, LOCAL_PREF on iBGP); for several, what a
/// transit table carries: AS_PATHs of one to five private ASNs, some
/// INCOMPLETE origins, MEDs on half, one to three communities.
pub fn attr_set(spec: &SessionSpec, ibgp: bool, k: usize) -> PathAttributes {
    let mut attrs = PathAttributes {
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
    if spec.attr_sets <= 1 {
        return attrs;
    }
    // Distinct for every k below 65,000 sets: the AS_PATH's first hop and
    // the first community together name k.
    let kk = k as u32;
    let mut path: Vec<Asn> = if ibgp { vec![] } else { vec![Asn(spec.asn)] };
    path.push(Asn(4_200_000_000 + kk));
    path.extend((0..kk % 5).map(|j| Asn(64_600 + (kk * 7 + j * 13) % 300)));
    attrs.as_path = tabby_bgp::attr::AsPath::from_sequence(path);
    if k % 5 == 4 {
        attrs.origin = Some(Origin::Incomplete);
    }
    if k.is_multiple_of(2) {
        attrs.med = Some(Med::new(kk % 1000 * 10));
    }
    attrs.communities = (0..=(kk % 3) as u16)
        .map(|j| Community::new(64_512, (kk as u16).wrapping_mul(3).wrapping_add(j)))
        .collect();
    attrs
}

/// The messages one session sends after release: its announcements packed
/// into full UPDATEs (one run per attribute set, prefix `i` in set
/// `i % attr_sets`), then End-of-RIB (RFC 4724 §2).
pub fn encode_announcements(spec: &SessionSpec, ibgp: bool) -> Result<BytesMut> {
    let ctx = session_ctx();
    let mut out = BytesMut::new();
    let sets = spec.attr_sets.max(1);
    for k in 0..sets {
        let nlri: Vec<Nlri> = spec
            .announce
            .iter()
            .skip(k)
            .step_by(sets)
            .map(|p| Nlri::new(IpNet::V4(*p)))
            .collect();
        if nlri.is_empty() {
            continue;
        }
        let attrs = attr_set(spec, ibgp, k);
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

/// The second stage's messages: every announced prefix withdrawn, packed.
pub fn encode_withdrawals(spec: &SessionSpec) -> Result<BytesMut> {
    let mut out = BytesMut::new();
    if spec.withdraw_after && !spec.announce.is_empty() {
        let nlri: Vec<Nlri> = spec
            .announce
            .iter()
            .map(|p| Nlri::new(IpNet::V4(*p)))
            .collect();
        tabby_bgp::codec::encode_withdrawals(Family::IPV4_UNICAST, &nlri, &session_ctx(), &mut out)
            .map_err(|e| anyhow!("cannot encode withdrawals: {e}"))?;
    }
    Ok(out)
}

/// Prefixes announced and withdrawn by one IPv4 unicast UPDATE (`msg` a
/// whole message, header included), read from its framing alone: the
/// withdrawn routes, MP_REACH/MP_UNREACH of IPv4 unicast, and the NLRI.
/// Anything malformed counts as nothing (the observers decode for real).
pub fn count_prefixes(msg: &[u8]) -> (usize, usize) {
    const HEADER: usize = 19;
    if msg.len() < HEADER + 4 || msg[18] != 2 {
        return (0, 0);
    }
    let body = &msg[HEADER..];
    let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let Some(withdrawn) = body.get(2..2 + wlen) else {
        return (0, 0);
    };
    let Some(alen) = body
        .get(2 + wlen..4 + wlen)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return (0, 0);
    };
    let Some(attrs) = body.get(4 + wlen..4 + wlen + alen) else {
        return (0, 0);
    };
    let nlri = &body[4 + wlen + alen..];
    let mut ann = walk_prefixes(nlri);
    let mut wd = walk_prefixes(withdrawn);
    let mut rest = attrs;
    while rest.len() >= 3 {
        let (flags, code) = (rest[0], rest[1]);
        let (len, at) = if flags & 0x10 != 0 {
            match rest.get(2..4) {
                Some(b) => (usize::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => break,
            }
        } else {
            (usize::from(rest[2]), 3)
        };
        let Some(value) = rest.get(at..at + len) else {
            break;
        };
        match code {
            // MP_REACH_NLRI: AFI, SAFI, next hop, reserved octet, NLRI.
            14 if value.len() >= 4 && value[..3] == [0, 1, 1] => {
                let nh = usize::from(value[3]);
                if let Some(n) = value.get(5 + nh..) {
                    ann += walk_prefixes(n);
                }
            }
            // MP_UNREACH_NLRI: AFI, SAFI, withdrawn routes.
            15 if value.len() >= 3 && value[..3] == [0, 1, 1] => {
                wd += walk_prefixes(&value[3..]);
            }
            _ => {}
        }
        rest = &rest[at + len..];
    }
    (ann, wd)
}

/// IPv4 prefixes in an NLRI field (length octet, then its address octets).
fn walk_prefixes(mut b: &[u8]) -> usize {
    let mut n = 0;
    while let Some(&bits) = b.first() {
        let take = 1 + usize::from(bits).div_ceil(8);
        if bits > 32 || b.len() < take {
            break;
        }
        n += 1;
        b = &b[take..];
    }
    n
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
    /// Observers and counting drains done with the first stage…
    converged: AtomicUsize,
    /// …and with the second (everything withdrawn).
    withdrawn: AtomicUsize,
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
}

impl Book {
    fn new(expect: &[Ipv4Net]) -> Book {
        let want = expect
            .iter()
            .filter_map(|p| key(&IpNet::V4(*p)))
            .map(|k| (k, false))
            .collect();
        Book { want, held: 0 }
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

/// Marks a session done with a stage once, waking the waiters.
fn reached(progress: &Progress, stage: &AtomicUsize, flag: &mut bool) {
    if !*flag {
        *flag = true;
        stage.fetch_add(1, Ordering::Relaxed);
        progress.changed.notify_waiters();
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
    // Sessions whose convergence is waited for: observers and counters.
    let tracked = load
        .sessions
        .iter()
        .filter(|s| s.expect.is_some() || s.count.is_some())
        .count();
    let withdrawing = load
        .sessions
        .iter()
        .any(|s| s.withdraw_after && !s.announce.is_empty());
    let progress = Arc::new(Progress {
        established: AtomicUsize::new(0),
        converged: AtomicUsize::new(0),
        withdrawn: AtomicUsize::new(0),
        changed: Notify::new(),
        failure: std::sync::Mutex::new(None),
        held: observers.iter().map(|_| AtomicUsize::new(0)).collect(),
    });
    // 0: hold, 1: announce, 2: withdraw.
    let (stage_tx, stage_rx) = watch::channel(0u8);
    // Encoded before the clock starts.
    let mut payloads = Vec::with_capacity(n);
    for s in &load.sessions {
        payloads.push((
            encode_announcements(s, s.asn == load.daemon_asn)?,
            encode_withdrawals(s)?,
        ));
    }
    let connecting = Arc::new(Semaphore::new(load.connect_burst.max(1)));
    let start = Instant::now();
    let mut obs_slot = 0;
    for (spec, (payload, withdrawals)) in load.sessions.iter().zip(payloads) {
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
            withdrawals,
            progress: progress.clone(),
            stage: stage_rx.clone(),
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
        withdraw: None,
        converge_cpu: None,
        withdraw_cpu: None,
    };
    let cpu = || {
        load.daemon_pid
            .and_then(|p| crate::procfs::stats(p).ok())
            .map(|s| s.cpu_secs)
    };
    let spent = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    if matches!(establish, Phase::Done(_)) {
        let c0 = cpu();
        let released = Instant::now();
        let _ = stage_tx.send(1);
        let converge = wait_until(
            &progress,
            load.converge_timeout,
            released,
            || progress.converged.load(Ordering::Relaxed),
            tracked,
        )
        .await?;
        outcome.converge = Some(converge);
        let c1 = cpu();
        outcome.converge_cpu = spent(c0, c1);
        if withdrawing && matches!(converge, Phase::Done(_)) {
            let released = Instant::now();
            let _ = stage_tx.send(2);
            outcome.withdraw = Some(
                wait_until(
                    &progress,
                    load.converge_timeout,
                    released,
                    || progress.withdrawn.load(Ordering::Relaxed),
                    tracked,
                )
                .await?,
            );
            outcome.withdraw_cpu = spent(c1, cpu());
        }
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
    withdrawals: BytesMut,
    progress: Arc<Progress>,
    stage: watch::Receiver<u8>,
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
        let mut stage = self.stage.clone();
        let payload = self.payload;
        let withdrawals = self.withdrawals;
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
                // The last stage whose messages were written.
                let mut sent = 0u8;
                let mut stage_open = true;
                loop {
                    let now = *stage.borrow_and_update();
                    if sent < 1 && now >= 1 {
                        wr.write_all(&payload).await?;
                        sent = 1;
                    }
                    if sent < 2 && now >= 2 {
                        wr.write_all(&withdrawals).await?;
                        sent = 2;
                    }
                    tokio::select! {
                        r = stage.changed(), if sent < 2 && stage_open => {
                            // The generator is gone: stay quiet until cancelled.
                            stage_open = r.is_ok();
                        }
                        _ = ticks.tick(), if hold != 0 => {
                            wr.write_all(&ka).await?;
                        }
                        _ = std::future::pending::<()>(), if hold == 0 && (sent >= 2 || !stage_open) => {}
                    }
                }
            }
            .await;
            if let Err(e) = r {
                progress.fail(format!("session from {who} (writer): {e:#}"));
            }
        });

        let p = &*self.progress;
        let (mut converged, mut withdrawn) = (false, false);
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
                    if let Some(h) = p.held.get(slot) {
                        h.store(book.held, Ordering::Relaxed);
                    }
                    if book.complete() {
                        reached(p, &p.converged, &mut converged);
                    }
                    // Withdrawals come after the second stage's release only.
                    if converged && book.held == 0 && *self.stage.borrow() >= 2 {
                        reached(p, &p.withdrawn, &mut withdrawn);
                    }
                    read_more(&mut rd, &mut buf).await?;
                }
            }
            _ => match self.spec.count {
                Some(target) => {
                    // Count, framing only.
                    let (mut announced, mut gone) = (0usize, 0usize);
                    loop {
                        while let Some(len) = frame_len(&buf, MAX_MESSAGE_LEN)
                            .map_err(|e| anyhow!("bad framing from the daemon: {}", e.reason))?
                        {
                            let msg = buf.split_to(len);
                            if msg.get(18) == Some(&3) {
                                bail!("NOTIFICATION from the daemon");
                            }
                            let (a, w) = count_prefixes(&msg);
                            announced += a;
                            gone += w;
                        }
                        if announced >= target {
                            reached(p, &p.converged, &mut converged);
                        }
                        if converged && gone >= target {
                            reached(p, &p.withdrawn, &mut withdrawn);
                        }
                        read_more(&mut rd, &mut buf).await?;
                    }
                }
                None => {
                    // Drain only: no parsing, but a closed session is a failure.
                    let mut sink = vec![0u8; 64 * 1024];
                    loop {
                        let n = rd.read(&mut sink).await?;
                        if n == 0 {
                            bail!("the daemon closed the session");
                        }
                    }
                }
            },
        }
    }
}

/// Reads what the daemon sent next onto `buf`; a closed session is a failure.
async fn read_more(rd: &mut tokio::net::tcp::OwnedReadHalf, buf: &mut BytesMut) -> Result<()> {
    if buf.capacity() - buf.len() < 8192 {
        buf.reserve(64 * 1024);
    }
    if rd.read_buf(buf).await? == 0 {
        bail!("the daemon closed the session");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: u32, sets: usize) -> SessionSpec {
        SessionSpec {
            source: Ipv4Addr::new(198, 18, 128, 1),
            asn: 64512,
            announce: (0..n)
                .map(|i| {
                    Ipv4Net::new(
                        Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i * 16),
                        28,
                    )
                    .unwrap()
                })
                .collect(),
            expect: None,
            attr_sets: sets,
            withdraw_after: true,
            count: None,
        }
    }

    /// Every whole message of `b`, decoded and counted both ways.
    fn walk(b: &[u8]) -> (usize, usize, Vec<Update>) {
        let (mut ann, mut wd, mut updates) = (0, 0, vec![]);
        let mut buf = BytesMut::from(b);
        while let Some(len) = frame_len(&buf, MAX_MESSAGE_LEN).unwrap() {
            let msg = buf.split_to(len);
            let (a, w) = count_prefixes(&msg);
            ann += a;
            wd += w;
            if let Message::Update(u) = decode_message(&msg, &session_ctx()).unwrap() {
                updates.push(u);
            }
        }
        assert!(buf.is_empty());
        (ann, wd, updates)
    }

    #[test]
    fn counting_by_framing_agrees_with_decoding() {
        let s = spec(5000, 7);
        let (ann, wd, updates) = walk(&encode_announcements(&s, true).unwrap());
        assert_eq!((ann, wd), (5000, 0));
        let decoded: usize = updates.iter().map(|u| u.nlri.len()).sum();
        assert_eq!(decoded, 5000);
        let (ann, wd, updates) = walk(&encode_withdrawals(&s).unwrap());
        assert_eq!((ann, wd), (0, 5000));
        let decoded: usize = updates.iter().map(|u| u.withdrawn.len()).sum();
        assert_eq!(decoded, 5000);
    }

    #[test]
    fn attribute_sets_are_distinct_and_cover_every_prefix_once() {
        let s = spec(1000, 7);
        let (_, _, updates) = walk(&encode_announcements(&s, true).unwrap());
        let mut sets: Vec<&PathAttributes> = vec![];
        let mut seen = std::collections::HashSet::new();
        for u in updates.iter().filter(|u| !u.nlri.is_empty()) {
            if !sets.contains(&&u.attributes) {
                sets.push(&u.attributes);
            }
            for n in &u.nlri {
                assert!(seen.insert(n.prefix), "{} sent twice", n.prefix);
            }
        }
        assert_eq!(sets.len(), 7);
        assert_eq!(seen.len(), 1000);
        assert!(
            sets.iter()
                .all(|a| !a.as_path.is_empty() && a.local_pref.is_some())
        );
        // One set: the minimal attributes, as the fan-out has always sent.
        let one = spec(10, 1);
        let (_, _, updates) = walk(&encode_announcements(&one, true).unwrap());
        assert!(updates[0].attributes.as_path.is_empty() && updates[0].attributes.med.is_none());
    }

    #[test]
    fn malformed_updates_count_as_nothing() {
        let s = spec(10, 1);
        let b = encode_announcements(&s, true).unwrap();
        let len = frame_len(&b, MAX_MESSAGE_LEN).unwrap().unwrap();
        let whole = &b[..len];
        assert_eq!(count_prefixes(whole), (10, 0));
        for cut in [0, 5, 19, 22, len - 1] {
            let (a, w) = count_prefixes(&whole[..cut]);
            assert!(a <= 10 && w == 0, "cut {cut}: {a} {w}");
        }
        let mut bad = whole.to_vec();
        bad[19] = 0xff; // withdrawn length past the end
        assert_eq!(count_prefixes(&bad), (0, 0));
    }
}
