//! Shared test scaffolding: a namespace with a veth pair whose far end
//! answers as the gateways, and helpers to read the kernel's table.

#![allow(dead_code)]

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tabby_fib_sync::netns::NetNs;
use tabby_fib_sync::{FibConfig, FibHandle, FibRoute, KernelEvent};
use tokio::sync::broadcast;

pub const PROTO: u8 = tabby_fib_sync::TABBY_RT_PROTO;

/// Fails with one clear line when the test cannot run here.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!("these tests need root (network namespaces); run them as root");
    }
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        panic!("these tests need iproute2: apt-get install iproute2");
    }
}

/// A namespace holding veth `t0` (198.18.0.1/24, 2001:db8::1/64) whose peer
/// `t1` is up, so gateways in those subnets are reachable. Also sets up
/// test logging, which every test wants.
pub fn lab() -> NetNs {
    init_tracing();
    require_root();
    let ns = NetNs::new("tabby-fib").expect("create namespace");
    for args in [
        &["link", "add", "t0", "type", "veth", "peer", "name", "t1"][..],
        &["link", "set", "t0", "up"],
        &["link", "set", "t1", "up"],
        &["addr", "add", "198.18.0.1/24", "dev", "t0"],
        &["-6", "addr", "add", "2001:db8::1/64", "dev", "t0", "nodad"],
    ] {
        ns.exec(args).expect("configure namespace");
    }
    ns
}

pub fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Host route `i` (below 65 536) in a test's own block 100.`block`.0.0/16,
/// so tests with many routes do not meet each other's prefixes.
pub fn host(block: u8, i: u32) -> IpNet {
    net(&format!("100.{block}.{}.{}/32", i / 256, i % 256))
}

/// Routes to hosts `range` of [`host`]'s `block` through `gateway`.
pub fn hosts_via(block: u8, range: std::ops::Range<u32>, gateway: &str) -> Vec<FibRoute> {
    let gw = ip(gateway);
    range.map(|i| FibRoute::via(host(block, i), gw)).collect()
}

/// A route to `prefix` through one gateway, both given as text.
pub fn via(prefix: &str, gateway: &str) -> FibRoute {
    FibRoute::via(net(prefix), ip(gateway))
}

/// Runs `ip -n NS ARGS` and returns stdout; panics with stderr on failure.
pub fn ipn(ns: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`ipn`] with the arguments written as one line of words
/// (`"route add 198.19.5.7/32 dev t0 proto boot"`).
pub fn ip_words(ns: &str, words: &str) -> String {
    ipn(ns, &words.split_whitespace().collect::<Vec<_>>())
}

/// `ip -o [-6] route show proto P` lines.
pub fn routes(ns: &str, v6: bool, proto: &str) -> Vec<String> {
    let fam = if v6 { "-6" } else { "-4" };
    ipn(
        ns,
        &[fam, "-o", "route", "show", "table", "main", "proto", proto],
    )
    .lines()
    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    .collect()
}

/// The line for `prefix` among our routes, if any.
pub fn ours(ns: &str, prefix: &str) -> Option<String> {
    let v6 = prefix.contains(':');
    routes(ns, v6, &PROTO.to_string()).into_iter().find(|l| {
        let mut words = l.split_whitespace();
        match words.next() {
            Some("blackhole" | "unreachable" | "prohibit") => words.next() == Some(prefix),
            p => p == Some(prefix),
        }
    })
}

/// Prefixes of our protocol in the kernel (both families), by dump.
pub fn our_prefixes(ns: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for v6 in [false, true] {
        for l in routes(ns, v6, &PROTO.to_string()) {
            let mut words = l.split_whitespace();
            let p = match words.next() {
                Some("blackhole" | "unreachable" | "prohibit") => words.next(),
                p => p,
            };
            if let Some(p) = p {
                out.insert(p.to_string());
            }
        }
    }
    out
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_for`] from inside the namespace's runtime: polls `f(ns)` on a
/// blocking thread so the synchroniser task keeps running meanwhile.
pub async fn wait_for_kernel(
    ns: &str,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut(&str) -> bool + Send + 'static,
) {
    let (ns, what) = (ns.to_string(), what.to_string());
    tokio::task::spawn_blocking(move || wait_for(&what, timeout, || f(&ns)))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}

/// Waits up to `timeout` for the first kernel event that `pick` maps to
/// `Some`; events it maps to `None` are skipped (`pick` may panic on an
/// event that must not come).
pub async fn next_event<T>(
    events: &mut broadcast::Receiver<KernelEvent>,
    what: &str,
    timeout: Duration,
    mut pick: impl FnMut(KernelEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(e)) => {
                if let Some(t) = pick(e) {
                    return t;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                panic!("kernel events closed while waiting for {what}")
            }
            Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
        }
    }
}

/// Records `RTM_DELROUTE` notifications of one protocol in a namespace.
pub struct DelMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<Vec<IpNet>, String>>>,
}

impl DelMonitor {
    /// Must be called on a thread inside the namespace (the socket binds
    /// to the caller's namespace); reading happens on a helper thread.
    pub fn start(proto: u8) -> Self {
        let mut sock = Socket::new(NETLINK_ROUTE).expect("netlink socket");
        sock.bind(&SocketAddr::new(0, 0)).expect("bind");
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &(64 << 20))
            .expect("SO_RCVBUFFORCE");
        sock.add_membership(7).expect("RTNLGRP_IPV4_ROUTE");
        sock.add_membership(11).expect("RTNLGRP_IPV6_ROUTE");
        sock.set_non_blocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut deleted = Vec::new();
            let mut buf = Vec::with_capacity(1 << 16);
            loop {
                buf.clear();
                match sock.recv(&mut buf, 0) {
                    Ok(_) => {
                        let mut off = 0;
                        while off + 16 <= buf.len() {
                            let len = u32::from_ne_bytes([
                                buf[off],
                                buf[off + 1],
                                buf[off + 2],
                                buf[off + 3],
                            ]) as usize;
                            if len < 16 || off + len > buf.len() {
                                break;
                            }
                            if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(
                                &buf[off..off + len],
                            ) && let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(
                                r,
                            )) = m.payload
                                && u8::from(r.header.protocol) == proto
                            {
                                let dst = r.attributes.iter().find_map(|a| match a {
                                    RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                                        Some(IpAddr::V4(*a))
                                    }
                                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                                        Some(IpAddr::V6(*a))
                                    }
                                    _ => None,
                                });
                                if let Some(d) = dst
                                    && let Ok(n) = IpNet::new(d, r.header.destination_prefix_length)
                                {
                                    deleted.push(n);
                                }
                            }
                            off += (len + 3) & !3;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if stop2.load(Ordering::Relaxed) {
                            return Ok(deleted);
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(format!("monitor socket: {e}")),
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns the deleted prefixes seen (an overrun fails).
    pub fn finish(mut self) -> Vec<IpNet> {
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(v))) => v,
            Some(Ok(Err(e))) => panic!("{e}"),
            _ => panic!("monitor thread died"),
        }
    }
}

impl Drop for DelMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How `ip route show` prints a prefix (host routes without the length).
pub fn shown(p: &IpNet) -> String {
    if p.prefix_len() == p.max_prefix_len() {
        p.addr().to_string()
    } else {
        p.to_string()
    }
}

/// Starts a synchroniser on the current (namespace) thread's runtime.
pub async fn start(cfg: FibConfig) -> (FibHandle, tokio::task::JoinHandle<()>) {
    let (fib, task) = tabby_fib_sync::FibSync::start(cfg)
        .await
        .expect("start fib-sync");
    let join = tokio::spawn(async move {
        if let Err(e) = task.run().await {
            panic!("fib-sync task failed: {e}");
        }
    });
    (fib, join)
}

/// Sets each route, then waits until the kernel has them all.
pub async fn set_and_sync(fib: &FibHandle, routes: impl IntoIterator<Item = FibRoute>) {
    for r in routes {
        fib.set(r).await.expect("set route");
    }
    fib.sync().await.expect("sync");
}

/// Installs one IPv4 and one IPv6 route, each via the lab's first
/// gateway (198.18.0.2, 2001:db8::2), and waits for the kernel.
pub async fn set_v4_and_v6(fib: &FibHandle, v4: &str, v6: &str) {
    set_and_sync(fib, [via(v4, "198.18.0.2"), via(v6, "2001:db8::2")]).await;
}

/// Runs `body(namespace)` on a runtime inside `ns` (usually a fresh
/// [`lab`]); for tests that start and restart synchronisers themselves.
pub fn run_in<T, F>(ns: &NetNs, body: impl FnOnce(String) -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    let n = ns.name().to_string();
    ns.block_on(move || body(n)).expect("run in the namespace")
}

/// The common test body: in `ns`, a synchroniser with `cfg` that has
/// finished start-up convergence, and `body(namespace, fib)`.
pub fn with_converged_fib<T, F>(
    ns: &NetNs,
    cfg: FibConfig,
    body: impl FnOnce(String, FibHandle) -> F + Send + 'static,
) -> T
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    run_in(ns, move |n| async move {
        let (fib, _task) = start(cfg).await;
        fib.converged().await.expect("start-up convergence");
        body(n, fib).await
    })
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tabby_fib_sync=info".into()),
        )
        .with_test_writer()
        .try_init();
}
