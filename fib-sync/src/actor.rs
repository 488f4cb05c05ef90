//! The FIB synchroniser's driver: the netlink sockets, the input channels and
//! the timers. Every decision about routes is the planner's (`plan.rs`); this
//! loop applies route changes to it, encodes the requests it plans
//! (`wire.rs`), sends them, reads results and notifications, feeds them
//! back, and passes the time in.
//!
//! Input: one ordered stream of `FibOp`s (from `FibHandle`'s route methods
//! and from `FibHandle::ops` senders), applied in the order received; per
//! prefix the last one wins in the desired map, and `Converged` applies to
//! everything before it. Commands (`replace_all`, `stats`, `sync`) travel on
//! a second channel; each first applies every op queued before it.
//!
//! Pipelining: requests are packed up to `batch_bytes` per `sendmsg`, and
//! only the last one of a batch asks for an ack; the kernel reports every
//! failure anyway, matched to its request by sequence number, so success is
//! "no error before the batch's ack".
//!
//! Ordering: because the kernel queues a change's multicast notification
//! before the requester's acknowledgement, the driver reads the acks, then
//! drains the event socket, then applies the acks: by then every
//! acknowledged change is already in the planner's view.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::time::Duration;

use netlink_packet_core::NLM_F_REPLACE;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::FibError;
use crate::inflight::Inflight;
use crate::nexthops::NhRequest;
use crate::plan::{Planned, Planner, RouteChange};
use crate::request::Request;
use crate::socket::{
    NlSocket, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE,
    RTNLGRP_LINK, RTNLGRP_NEXTHOP,
};
use crate::types::{FibConfig, FibOp, FibRoute, FibStats, KernelEvent};
use crate::wire::{self, Parsed};

const RECV_BUF: usize = 256 << 10;
/// Give up repeating an interrupted dump after this many tries and use the
/// last one; the event stream corrects what it missed.
const MAX_DUMP_TRIES: u32 = 8;
/// Route changes taken from the op stream per wake-up, so that results and
/// notifications keep flowing under a flood.
const OPS_PER_WAKE: usize = 64 << 10;
/// Commands taken per wake-up besides the one that woke the loop.
const COMMANDS_PER_WAKE: usize = 4096;

#[derive(Debug)]
pub(crate) enum Command {
    /// The routes have been through `validate`; answered once applied.
    ReplaceAll(Vec<FibRoute>, oneshot::Sender<()>),
    Stats(oneshot::Sender<FibStats>),
    Sync(oneshot::Sender<()>),
}

/// What the driver counts itself (the planner counts the rest).
#[derive(Debug, Default)]
struct IoCounters {
    dump_retries: u64,
    /// Socket errors by errno (overruns, failed sends).
    errors: BTreeMap<i32, u64>,
}

/// The task that owns the sockets; see the module docs.
#[derive(Debug)]
pub struct FibTask {
    cfg: FibConfig,
    req: NlSocket,
    events: NlSocket,
    dump: NlSocket,
    commands: mpsc::Receiver<Command>,
    commands_closed: bool,
    ops: mpsc::UnboundedReceiver<FibOp>,
    ops_closed: bool,
    op_buf: Vec<FibOp>,
    events_tx: broadcast::Sender<KernelEvent>,

    plan: Planner,
    inflight: Inflight<Planned>,
    /// (first seq, last seq) of every sent batch, oldest first.
    batches: VecDeque<(u32, u32)>,
    /// Sequence numbers of dump requests (their own socket).
    dump_seq: u32,
    /// Set when a send failed for lack of kernel memory; retried shortly.
    send_backoff: Option<Instant>,
    /// `sync` callers were answered since the last yield.
    answered: bool,
    waiters: Vec<oneshot::Sender<()>>,
    io: IoCounters,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
}

impl FibTask {
    pub(crate) async fn open(
        mut cfg: FibConfig,
        commands: mpsc::Receiver<Command>,
        ops: mpsc::UnboundedReceiver<FibOp>,
        events_tx: broadcast::Sender<KernelEvent>,
    ) -> Result<Self, FibError> {
        // A batch must fit the socket's send buffer (netlink refuses a
        // message larger than sk_sndbuf); at least one request in flight.
        cfg.batch_bytes = cfg.batch_bytes.clamp(4096, 128 << 10);
        cfg.max_in_flight = cfg.max_in_flight.max(1);
        let open = |what: &'static str, size: usize, groups: &[u32]| {
            NlSocket::open(size, groups).map_err(|e| FibError::Socket { what, source: e })
        };
        let req = open("request", cfg.rcvbuf, &[])?;
        let events = open(
            "event",
            cfg.event_rcvbuf.unwrap_or(cfg.rcvbuf),
            &[
                RTNLGRP_LINK,
                RTNLGRP_IPV4_IFADDR,
                RTNLGRP_IPV6_IFADDR,
                RTNLGRP_IPV4_ROUTE,
                RTNLGRP_IPV6_ROUTE,
            ],
        )?;
        let dump = open("dump", 4 << 20, &[])?;
        // Our nexthop objects deleted or changed by others (kernels without
        // nexthop objects refuse the group; the dump below tells).
        if cfg.nexthop_objects
            && let Err(e) = events.set_groups(&[RTNLGRP_NEXTHOP], true)
        {
            debug!(error = %e, "no nexthop notifications");
        }
        info!(
            protocol = cfg.protocol,
            table = cfg.table,
            metric = cfg.metric,
            request_rcvbuf = req.rcvbuf,
            event_rcvbuf = events.rcvbuf,
            "fib-sync starting"
        );
        let plan = Planner::new(&cfg, Instant::now().into_std());
        let mut task = Self {
            cfg,
            req,
            events,
            dump,
            commands,
            commands_closed: false,
            ops,
            ops_closed: false,
            op_buf: Vec::new(),
            events_tx,
            plan,
            inflight: Inflight::new(1),
            batches: VecDeque::new(),
            dump_seq: 1,
            send_backoff: None,
            answered: false,
            waiters: Vec::new(),
            io: IoCounters::default(),
            recv_buf: Vec::with_capacity(RECV_BUF),
            send_buf: Vec::with_capacity(256 << 10),
        };
        if task.cfg.nexthop_objects {
            // Detected once: a kernel without nexthop objects refuses the dump.
            if let Err(e) = task.dump_once(DumpKind::Nexthops).await {
                task.plan
                    .disable_nexthops("the kernel refused a nexthop dump (Linux < 5.3?)");
                debug!(error = %e, "nexthop dump refused");
            }
        }
        task.resync().await?;
        info!(
            nexthop_objects = task.plan.uses_nexthops(),
            "next hops are {}",
            if task.plan.uses_nexthops() {
                "shared nexthop objects (RTA_NH_ID) for single-path routes"
            } else {
                "programmed per route"
            }
        );
        let inherited = task.plan.adopt_found_routes();
        info!(
            inherited,
            "kernel routes of our protocol left as they are until the RIB converges"
        );
        Ok(task)
    }

    /// Runs until every `FibHandle` and op sender is dropped. Routes stay
    /// in the kernel when it returns (a restart adopts them).
    pub async fn run(mut self) -> Result<(), FibError> {
        loop {
            if self.plan.needs_dump() {
                if self.answered {
                    // Let the callers just answered run before a long dump
                    // (on a current-thread runtime they would wait for it).
                    self.answered = false;
                    tokio::task::yield_now().await;
                }
                if let Err(e) = self.resync().await {
                    // Keep the routes and retry: stopping would leave the
                    // FIB unmanaged.
                    warn!(error = %e, "re-reading the kernel table failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            let now = Instant::now().into_std();
            if self.plan.enter_bulk_if_worth_it(now) {
                self.set_route_notifications(false)?;
            }
            self.pump()?;
            if let Some(end) = self.plan.leave_bulk_if_done(now, !self.ops.is_empty()) {
                // Listen first, then dump: a change after the dump's
                // snapshot is then always seen as an event.
                self.set_route_notifications(true)?;
                if end.settled && self.ops.is_empty() {
                    self.release_waiters();
                }
            }
            if self.plan.needs_dump() {
                continue;
            }
            self.answer_waiters();
            if self.commands_closed && self.ops_closed && self.inflight.is_empty() {
                debug!("all handles dropped; fib-sync stops, routes stay in the kernel");
                return Ok(());
            }
            let mut wake_at = Instant::from_std(self.plan.poll_timeout());
            if let Some(t) = self.send_backoff {
                wake_at = wake_at.min(t);
            }
            enum Wake {
                Io,
                Ops(usize),
                Cmd(Option<Command>),
                Timer,
            }
            let wake = tokio::select! {
                r = self.req.readable() => { r.map_err(FibError::Io)?; Wake::Io }
                r = self.events.readable() => { r.map_err(FibError::Io)?; Wake::Io }
                n = self.ops.recv_many(&mut self.op_buf, OPS_PER_WAKE), if !self.ops_closed => Wake::Ops(n),
                c = self.commands.recv(), if !self.commands_closed => Wake::Cmd(c),
                _ = tokio::time::sleep_until(wake_at) => Wake::Timer,
            };
            match wake {
                Wake::Io => {}
                Wake::Ops(0) => self.ops_closed = true,
                Wake::Ops(_) => self.apply_received_ops(),
                Wake::Cmd(None) => self.commands_closed = true,
                Wake::Cmd(Some(c)) => {
                    self.command(c);
                    // Take what else is queued without waiting, bounded so
                    // acks and events keep flowing under a command flood.
                    for _ in 0..COMMANDS_PER_WAKE {
                        match self.commands.try_recv() {
                            Ok(c) => self.command(c),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                self.commands_closed = true;
                                break;
                            }
                        }
                    }
                }
                Wake::Timer => {
                    let now = Instant::now();
                    if self.send_backoff.is_some_and(|t| t <= now) {
                        self.send_backoff = None;
                    }
                    self.plan.handle_timeout(now.into_std());
                }
            }
            self.drain()?;
        }
    }

    // ----- input -------------------------------------------------------------

    /// Applies the ops `recv_many` put in `op_buf`.
    fn apply_received_ops(&mut self) {
        let mut buf = std::mem::take(&mut self.op_buf);
        // Nothing but sets looks like a bulk load: size the desired map for
        // the whole queue at once.
        if buf.iter().all(|op| matches!(op, FibOp::Set(_))) {
            self.plan.reserve(buf.len() + self.ops.len());
        }
        for op in buf.drain(..) {
            self.plan.apply(op);
        }
        self.op_buf = buf;
    }

    /// Applies every op queued now, so that a command sees the route
    /// changes sent before it.
    fn apply_queued_ops(&mut self) {
        let mut left = self.ops.len();
        while left > 0 {
            let take = left.min(OPS_PER_WAKE);
            for _ in 0..take {
                match self.ops.try_recv() {
                    Ok(op) => self.op_buf.push(op),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.ops_closed = true;
                        break;
                    }
                }
            }
            if self.op_buf.is_empty() {
                break;
            }
            self.apply_received_ops();
            left -= take;
        }
    }

    fn command(&mut self, c: Command) {
        self.apply_queued_ops();
        match c {
            Command::ReplaceAll(routes, done) => {
                self.plan.replace_all(routes);
                let _ = done.send(());
            }
            Command::Stats(tx) => {
                let _ = tx.send(self.stats());
            }
            Command::Sync(tx) => self.waiters.push(tx),
        }
    }

    fn stats(&self) -> FibStats {
        let mut s = self.plan.stats();
        s.dump_retries = self.io.dump_retries;
        for (errno, n) in &self.io.errors {
            *s.errors.entry(*errno).or_default() += n;
        }
        s
    }

    fn count_error(&mut self, errno: i32) {
        *self.io.errors.entry(errno).or_default() += 1;
    }

    /// Answers `sync` callers once everything queued is done.
    fn answer_waiters(&mut self) {
        if !self.waiters.is_empty() && self.plan.is_idle() && self.ops.is_empty() {
            self.release_waiters();
        }
    }

    fn release_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        for w in self.waiters.drain(..) {
            let _ = w.send(());
        }
        self.answered = true;
    }

    fn publish_events(&mut self) {
        while let Some(ev) = self.plan.poll_event() {
            let _ = self.events_tx.send(ev);
        }
    }

    fn set_route_notifications(&self, on: bool) -> Result<(), FibError> {
        self.events
            .set_groups(&[RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE], on)
            .map_err(FibError::Io)
    }

    // ----- sending -----------------------------------------------------------

    fn pump(&mut self) -> Result<(), FibError> {
        if self.plan.needs_dump() || self.send_backoff.is_some() {
            return Ok(());
        }
        let target = *self.plan.target();
        let mut buf = std::mem::take(&mut self.send_buf);
        buf.clear();
        let mut first: Option<u32> = None;
        let mut last_at = 0usize;
        let mut result = Ok(());
        while self.inflight.len() < self.cfg.max_in_flight || self.plan.owes_route() {
            let Some(r) = self.plan.next() else {
                break;
            };
            last_at = buf.len();
            let seq = self.inflight.next_seq();
            match &r {
                Planned::Route(r) => {
                    wire::push_request(&mut buf, seq, r.kind(), &target, &r.prefix, r.body());
                }
                Planned::Nexthop(n) => wire::push_nexthop(&mut buf, seq, target.protocol, n.op),
            }
            self.inflight.push(r);
            if first.is_none() {
                first = Some(seq);
            }
            if buf.len() >= self.cfg.batch_bytes {
                if let Some(f) = first.take() {
                    result = self.flush(&mut buf, f, seq, last_at);
                }
                buf.clear();
                if result.is_err() || self.send_backoff.is_some() {
                    break;
                }
            }
        }
        if let Some(f) = first
            && result.is_ok()
            && !buf.is_empty()
        {
            let last = self.inflight.next_seq().wrapping_sub(1);
            result = self.flush(&mut buf, f, last, last_at);
        }
        buf.clear();
        self.send_buf = buf;
        result
    }

    fn next_dump_seq(&mut self) -> u32 {
        self.dump_seq = self.dump_seq.wrapping_add(1);
        self.dump_seq
    }

    /// Sends one batch; only its last request asks for an ack, earlier ones
    /// report only failures (the kernel acks errors regardless of
    /// `NLM_F_ACK`), so success is "no error before the batch's ack".
    fn flush(
        &mut self,
        buf: &mut [u8],
        first: u32,
        last: u32,
        last_at: usize,
    ) -> Result<(), FibError> {
        wire::set_ack(buf, last_at);
        let e = match self.req.send(buf) {
            Ok(()) => {
                self.batches.push_back((first, last));
                return Ok(());
            }
            Err(e) => e,
        };
        // Nothing of the batch was processed: plan it again.
        let mut s = first;
        loop {
            match self.inflight.remove(s) {
                Some(Planned::Route(r)) => self.plan.unsent(r),
                Some(Planned::Nexthop(n)) => self.plan.unsent_nexthop(n),
                None => {}
            }
            if s == last {
                break;
            }
            s = s.wrapping_add(1);
        }
        let errno = e.raw_os_error().unwrap_or(0);
        self.count_error(errno);
        if errno == libc::EBADF {
            return Err(FibError::Io(e));
        }
        // ENOBUFS/ENOMEM: the kernel is short of memory; anything else is
        // retried too, more slowly, rather than stopping route programming
        // altogether.
        let wait = if matches!(errno, libc::ENOBUFS | libc::ENOMEM | libc::EAGAIN) {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        };
        warn!(error = %e, ?wait, "netlink send failed; batch requeued");
        self.send_backoff = Some(Instant::now() + wait);
        Ok(())
    }

    // ----- receiving ---------------------------------------------------------

    /// Reads acks, then events, then applies the acks (see module docs).
    fn drain(&mut self) -> Result<(), FibError> {
        let mut acks: Vec<(u32, i32)> = Vec::new();
        let mut lost_acks = false;
        let mut buf = std::mem::take(&mut self.recv_buf);
        loop {
            match self.req.try_recv(&mut buf) {
                Ok(None) => break,
                Ok(Some(_)) => wire::for_each_message(&buf, |_, _, m| {
                    if let Ok(Parsed::Error { seq, errno }) = m {
                        acks.push((seq, errno));
                    }
                }),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Failures were dropped: we cannot tell which requests
                    // worked, so the view is rebuilt and everything replanned.
                    warn!("request socket overrun; some failures were lost; resyncing");
                    self.count_error(libc::ENOBUFS);
                    lost_acks = true;
                }
                Err(e) => {
                    self.recv_buf = buf;
                    return Err(FibError::Io(e));
                }
            }
        }
        self.recv_buf = buf;
        self.drain_events()?;
        for (seq, errno) in acks {
            self.on_ack(seq, errno);
        }
        if lost_acks {
            let mut routes: Vec<Request> = Vec::new();
            let mut nexthops = 0;
            for p in self.inflight.drain() {
                match p {
                    Planned::Route(r) => routes.push(r),
                    Planned::Nexthop(_) => nexthops += 1,
                }
            }
            self.plan.lost(routes);
            self.plan.lost_nexthops(nexthops);
            self.batches.clear();
        }
        self.publish_events();
        Ok(())
    }

    fn on_ack(&mut self, seq: u32, errno: i32) {
        if (errno != 0 || self.batches.front().is_none_or(|b| b.1 != seq))
            && let Some(r) = self.inflight.remove(seq)
        {
            self.complete(r, errno);
        }
        // The batch's ack (or the failure of its last request) closes it:
        // requests of the batch with no failure seen succeeded.
        if let Some(&(first, last)) = self.batches.front()
            && seq == last
        {
            self.batches.pop_front();
            let mut s = first;
            loop {
                if let Some(r) = self.inflight.remove(s) {
                    self.complete(r, 0);
                }
                if s == last {
                    break;
                }
                s = s.wrapping_add(1);
            }
        }
    }

    fn complete(&mut self, r: Planned, errno: i32) {
        match r {
            Planned::Route(r) => self.plan.complete(r, errno),
            Planned::Nexthop(n) => self.complete_nexthop(n, errno),
        }
    }

    fn complete_nexthop(&mut self, n: NhRequest, errno: i32) {
        self.plan.complete_nexthop(n, errno);
    }

    fn drain_events(&mut self) -> Result<(), FibError> {
        let mut buf = std::mem::take(&mut self.recv_buf);
        let mut parsed: Vec<(u16, Parsed)> = Vec::new();
        loop {
            match self.events.try_recv(&mut buf) {
                Ok(None) => break,
                Ok(Some(_)) => {
                    wire::for_each_message(&buf, |flags, _, m| match m {
                        Ok(m) => parsed.push((flags, m)),
                        Err(e) => debug!(error = %e, "undecodable kernel event ignored"),
                    });
                    for (flags, m) in parsed.drain(..) {
                        self.on_event(flags, m);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Events were lost: only a dump can tell what changed.
                    warn!("event socket overrun; resyncing from a full dump");
                    self.count_error(libc::ENOBUFS);
                    self.plan.request_dump();
                }
                Err(e) => {
                    self.recv_buf = buf;
                    return Err(FibError::Io(e));
                }
            }
        }
        self.recv_buf = buf;
        Ok(())
    }

    fn on_event(&mut self, flags: u16, m: Parsed) {
        match m {
            Parsed::NewRoute(r) => {
                let change = if flags & NLM_F_REPLACE != 0 {
                    RouteChange::Replaced
                } else {
                    RouteChange::Added
                };
                self.plan.on_route(r, change);
            }
            Parsed::DelRoute(r) => self.plan.on_route(r, RouteChange::Removed),
            Parsed::NewNexthop(n) => self.plan.on_nexthop(n, true),
            Parsed::DelNexthop(n) => self.plan.on_nexthop(n, false),
            Parsed::Link {
                index,
                name,
                up,
                removed,
            } => self.plan.on_link(index, name, up, removed),
            Parsed::Addr {
                index,
                address,
                removed,
            } => self.plan.on_address(index, address, removed),
            _ => {}
        }
    }

    // ----- dumps -------------------------------------------------------------

    /// Re-reads links and both families' routes and hands them to the
    /// planner, which rebuilds its view and replans what differs.
    async fn resync(&mut self) -> Result<(), FibError> {
        // Everything queued on the event socket predates the dump, which
        // supersedes it; what arrives during the dump is applied after it,
        // in order, and only moves the view forward.
        let mut buf = std::mem::take(&mut self.recv_buf);
        loop {
            match self.events.try_recv(&mut buf) {
                Ok(None) => break,
                Ok(Some(_)) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) => {
                    self.recv_buf = buf;
                    return Err(FibError::Io(e));
                }
            }
        }
        self.recv_buf = buf;

        let (mut links, _) = self.dump_until_stable(DumpKind::Links).await?;
        let (addrs, _) = self.dump_until_stable(DumpKind::Addresses).await?;
        links.extend(addrs);
        // Nexthop objects before routes: a route naming an object created
        // between the two dumps finds it.
        let mut nexthops = Vec::new();
        let mut clean_nh = true;
        if self.plan.uses_nexthops() {
            (nexthops, clean_nh) = self.dump_until_stable(DumpKind::Nexthops).await?;
        }
        let (mut routes, clean4) = self
            .dump_until_stable(DumpKind::Routes { v6: false })
            .await?;
        let (routes6, clean6) = self
            .dump_until_stable(DumpKind::Routes { v6: true })
            .await?;
        routes.extend(routes6);
        routes.extend(nexthops);
        self.plan
            .rebuild(links, routes, clean4 && clean6 && clean_nh);
        self.publish_events();
        Ok(())
    }

    /// The dump's messages, and whether the one returned was complete
    /// (false after `MAX_DUMP_TRIES` interrupted ones).
    async fn dump_until_stable(&mut self, kind: DumpKind) -> Result<(Vec<Parsed>, bool), FibError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let (out, interrupted) = self.dump_once(kind).await?;
            if !interrupted {
                return Ok((out, true));
            }
            // NLM_F_DUMP_INTR: the table changed mid-dump, so the dump may
            // miss or duplicate entries; deleting on its word could remove
            // a valid route.
            self.io.dump_retries += 1;
            if tries >= MAX_DUMP_TRIES {
                warn!(
                    tries,
                    "kernel dump kept being interrupted; using the last one"
                );
                return Ok((out, false));
            }
        }
    }

    async fn dump_once(&mut self, kind: DumpKind) -> Result<(Vec<Parsed>, bool), FibError> {
        let seq = self.next_dump_seq();
        let mut req = Vec::with_capacity(64);
        match kind {
            DumpKind::Links => wire::dump_links(&mut req, seq),
            DumpKind::Addresses => wire::dump_addresses(&mut req, seq),
            DumpKind::Nexthops => wire::dump_nexthops(&mut req, seq),
            DumpKind::Routes { v6 } => wire::dump_routes(&mut req, seq, v6, self.cfg.table),
        }
        self.dump.send(&req).map_err(FibError::Io)?;
        let mut dump = wire::Dump::new(seq);
        if let DumpKind::Routes { .. } = kind {
            // Mostly our routes: one allocation instead of a doubling series.
            dump.out.reserve(self.plan.installed() + 64);
        }
        let mut buf = Vec::with_capacity(RECV_BUF);
        while !dump.done {
            match self.dump.try_recv(&mut buf).map_err(FibError::Io)? {
                None => self.dump.readable().await.map_err(FibError::Io)?,
                Some(_) => dump.feed(&buf),
            }
        }
        if let Some(errno) = dump.failure {
            return Err(FibError::Io(io::Error::from_raw_os_error(errno)));
        }
        Ok((dump.out, dump.interrupted))
    }
}

#[derive(Debug, Clone, Copy)]
enum DumpKind {
    Links,
    Addresses,
    Nexthops,
    Routes { v6: bool },
}
