//! The fixture of the lab tests: a BFD driver running inside a network
//! namespace of an `interop_tests::Lab`, and a log of the events it
//! publishes. Included by each test file with `mod common;`.
#![allow(dead_code)]

pub mod bfdd;
pub mod interop;

use std::fs::File;
use std::net::{IpAddr, Ipv6Addr};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use interop_tests::{Lab, Ns, Segment};
use nix::sched::{CloneFlags, setns};
use tabby_bfd_driver::{
    BfdDriver, BfdEvent, BfdHandle, DriverConfig, SessionId, SessionInfo, SessionSpec, State,
    Timers,
};
use tokio::sync::broadcast;

/// Logs to the test's output (`RUST_LOG=tabby_bfd_driver=debug` for more).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tabby_bfd_driver=info,interop_tests=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// How long the lab tests against other implementations wait for anything.
pub const LIMIT: Duration = Duration::from_secs(15);

/// Slack on a measured detection, on top of the Detection Time: scheduling
/// of two daemons on a loaded two-core machine.
pub const MARGIN: Duration = Duration::from_millis(700);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Timers for the lab: `ms` milliseconds both ways, multiplier 3.
pub fn timers(ms: u64) -> Timers {
    Timers {
        desired_min_tx: Duration::from_millis(ms),
        required_min_rx: Duration::from_millis(ms),
        detect_mult: 3,
    }
}

/// A single-hop session to `them` from `us` on `ifname` at 100 ms both
/// ways, multiplier 3.
pub fn single_hop_100ms(them: IpAddr, us: IpAddr, ifname: &str) -> SessionSpec {
    SessionSpec::single_hop(them, Some(us), Some(ifname)).with_timers(timers(100))
}

/// A driver whose task runs on its own thread inside a namespace, so its
/// sockets and interface look-ups are that namespace's. Dropping it drops
/// the handle (the driver tells its peers AdminDown and stops) and joins
/// the thread.
#[derive(Debug)]
pub struct NsDriver {
    pub label: String,
    handle: Option<BfdHandle>,
    thread: Option<JoinHandle<()>>,
}

impl NsDriver {
    pub fn start(ns: &Ns, config: DriverConfig) -> Result<NsDriver> {
        let file = File::open(format!("/run/netns/{}", ns.name))
            .with_context(|| format!("namespace {ns} does not exist"))?;
        let (tx, rx) = std::sync::mpsc::channel::<Result<BfdHandle>>();
        let label = ns.label.clone();
        let thread = std::thread::Builder::new()
            .name(format!("bfd-{label}"))
            .spawn(move || {
                if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
                    let _ = tx.send(Err(anyhow!("cannot enter the namespace: {e}")));
                    return;
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    match BfdDriver::start(config) {
                        Ok((handle, driver)) => {
                            let _ = tx.send(Ok(handle));
                            driver.run().await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.into()));
                        }
                    }
                });
            })?;
        let handle = rx
            .recv()
            .map_err(|_| anyhow!("the driver thread of {label} died"))??;
        Ok(NsDriver {
            label: ns.label.clone(),
            handle: Some(handle),
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> &BfdHandle {
        self.handle.as_ref().expect("handle present until drop")
    }

    pub async fn info(&self, id: SessionId) -> Result<SessionInfo> {
        Ok(self.handle().session(id).await?)
    }

    /// Polls a session's snapshot every 20 ms until `ok` holds.
    pub async fn wait_info(
        &self,
        id: SessionId,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&SessionInfo) -> bool,
    ) -> Result<SessionInfo> {
        let start = Instant::now();
        loop {
            let i = self.info(id).await?;
            if ok(&i) {
                return Ok(i);
            }
            if start.elapsed() > timeout {
                bail!("{}: {id} not {what} within {timeout:?}: {i:#?}", self.label);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl NsDriver {
    /// Waits until the session is Up with no Poll Sequence of ours pending,
    /// transmitting every `tx` and detecting in `detect` (RFC 5880 §6.8.7,
    /// §6.8.4): a renegotiation that has settled on our side.
    pub async fn wait_negotiated(
        &self,
        id: SessionId,
        tx: Duration,
        detect: Duration,
        timeout: Duration,
    ) -> Result<SessionInfo> {
        self.wait_info(
            id,
            &format!("Up at tx {tx:?}, detection {detect:?}"),
            timeout,
            |i| {
                i.state == State::Up
                    && !i.poll_in_progress
                    && i.tx_interval == tx
                    && i.detection_time == Some(detect)
            },
        )
        .await
    }
}

impl Drop for NsDriver {
    fn drop(&mut self) {
        drop(self.handle.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every event of one driver, with the instant the test saw it.
#[derive(Debug)]
pub struct EventLog {
    pub label: String,
    rx: broadcast::Receiver<(SessionId, BfdEvent)>,
    /// Each event, and whether `wait` has consumed it.
    pub seen: Vec<(Instant, SessionId, BfdEvent, bool)>,
}

impl EventLog {
    pub fn new(d: &NsDriver) -> EventLog {
        EventLog {
            label: d.label.clone(),
            rx: d.handle().subscribe(),
            seen: Vec::new(),
        }
    }

    fn record(&mut self, sid: SessionId, ev: BfdEvent) {
        self.seen.push((Instant::now(), sid, ev, false));
    }

    /// Waits for the next unconsumed event of `id`, which must satisfy
    /// `ok`; returns it with the instant it arrived.
    pub async fn wait(
        &mut self,
        id: SessionId,
        timeout: Duration,
        ok: impl Fn(&BfdEvent) -> bool,
    ) -> Result<(Instant, BfdEvent)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.seen.iter_mut().find(|e| e.1 == id && !e.3) {
                e.3 = true;
                if ok(&e.2) {
                    return Ok((e.0, e.2));
                }
                bail!("{}: {id} reported {:?} unexpectedly", self.label, e.2);
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Ok((sid, ev))) => self.record(sid, ev),
                Ok(Err(e)) => bail!("{}: event stream: {e}", self.label),
                Err(_) => bail!(
                    "{}: no event for {id} within {timeout:?}; seen {:?}",
                    self.label,
                    self.seen
                ),
            }
        }
    }

    /// Collects whatever arrives within `d`.
    pub async fn settle(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Ok((sid, ev))) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.record(sid, ev);
        }
    }

    /// Fails if `id` has reported anything not yet consumed by `wait`
    /// (after collecting what is already queued).
    pub async fn ensure_quiet(&mut self, id: SessionId, what: &str) -> Result<()> {
        self.settle(Duration::from_millis(20)).await;
        let extra = self.unmatched(id);
        if !extra.is_empty() {
            bail!("{}: {id} reported {extra:?} {what}", self.label);
        }
        Ok(())
    }

    /// Events of `id` not yet consumed by `wait`.
    pub fn unmatched(&self, id: SessionId) -> Vec<BfdEvent> {
        self.seen
            .iter()
            .filter(|e| e.1 == id && !e.3)
            .map(|e| e.2)
            .collect()
    }
}

/// The IPv6 link-local address of `ifname` in `ns`.
pub fn link_local(lab: &Lab, ns: &Ns, ifname: &str) -> Result<Ipv6Addr> {
    let out = lab.ip(
        ns,
        &["-6", "-o", "addr", "show", "dev", ifname, "scope", "link"],
    )?;
    out.split_whitespace()
        .skip_while(|t| *t != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("{ns}: no link-local address on {ifname}: {out:?}"))
}

/// Two namespaces joined by a veth, a driver in each and their event logs:
/// the start of most lab tests, taken apart with [`Pair::parts`].
pub struct Pair {
    pub lab: Lab,
    pub a: Ns,
    pub b: Ns,
    pub seg: Segment,
    pub da: NsDriver,
    pub db: NsDriver,
    pub ea: EventLog,
    pub eb: EventLog,
}

/// A [`Pair`]'s parts, in the order that drops them safely when bound
/// left to right (the logs and drivers before the namespaces).
pub type PairParts = (Lab, Ns, Ns, Segment, NsDriver, NsDriver, EventLog, EventLog);

impl Pair {
    pub fn parts(self) -> PairParts {
        (
            self.lab, self.a, self.b, self.seg, self.da, self.db, self.ea, self.eb,
        )
    }

    pub fn start(name: &str) -> Result<Pair> {
        let mut lab = Lab::new(name)?;
        let a = lab.ns("a")?;
        let b = lab.ns("b")?;
        let seg = lab.link(&a, &b)?;
        let da = NsDriver::start(&a, DriverConfig::default())?;
        let db = NsDriver::start(&b, DriverConfig::default())?;
        let ea = EventLog::new(&da);
        let eb = EventLog::new(&db);
        Ok(Pair {
            lab,
            a,
            b,
            seg,
            da,
            db,
            ea,
            eb,
        })
    }
}

/// A driver with the default configuration in `ns`, and its event log.
pub fn start_driver(ns: &Ns) -> Result<(NsDriver, EventLog)> {
    let d = NsDriver::start(ns, DriverConfig::default())?;
    let log = EventLog::new(&d);
    Ok((d, log))
}

/// The addresses of a link a session runs between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// The address of `ns` on `seg` in `family`.
pub fn addr(seg: &Segment, ns: &Ns, family: Family) -> Result<IpAddr> {
    Ok(match family {
        Family::V4 => seg.v4(ns)?.into(),
        Family::V6 => seg.v6(ns)?.into(),
    })
}

/// Tabby's namespace and a peer's (labelled `peer`) joined by one link:
/// `(lab, tabby, peer, link, us, them)` with Tabby's and the peer's
/// addresses on the link in `family`, the start of a test against another
/// implementation (its preflight done before). Bound left to right, the lab
/// outlives whatever is started in it afterwards.
pub fn one_link(
    name: &str,
    peer: &str,
    family: Family,
) -> Result<(Lab, Ns, Ns, Segment, IpAddr, IpAddr)> {
    let mut lab = Lab::new(name)?;
    let tabby = lab.ns("tabby")?;
    let peer = lab.ns(peer)?;
    let seg = lab.link(&tabby, &peer)?;
    let (us, them) = (addr(&seg, &tabby, family)?, addr(&seg, &peer, family)?);
    Ok((lab, tabby, peer, seg, us, them))
}

/// Two namespaces labelled `a` and `b` with a router namespace between
/// them, `a` - router on the left link and router - `b` on the right one,
/// each routing the other's subnet (IPv4 and IPv6) through the router, so
/// that their packets cross one hop: `(lab, a, b, left, right)`, checked
/// with a ping from `a` to `b`.
pub fn routed_pair(name: &str, a: &str, b: &str) -> Result<(Lab, Ns, Ns, Segment, Segment)> {
    let mut lab = Lab::new(name)?;
    let na = lab.ns(a)?;
    let r = lab.ns("router")?;
    let nb = lab.ns(b)?;
    let left = lab.link(&na, &r)?;
    let right = lab.link(&r, &nb)?;
    for (ns, far, near) in [(&na, &right, &left), (&nb, &left, &right)] {
        let i = far.index;
        lab.add_route(ns, &format!("198.18.{i}.0/24 via {}", near.v4(&r)?))?;
        lab.add_route(ns, &format!("2001:db8:0:{i}::/64 via {}", near.v6(&r)?))?;
    }
    let to = right.v4(&nb)?.into();
    ensure!(lab.ping(&na, to), "no route from {a} to {b} ({to})");
    Ok((lab, na, nb, left, right))
}
