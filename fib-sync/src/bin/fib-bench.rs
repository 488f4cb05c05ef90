//! fib-bench: how fast routes get into (and out of) the kernel FIB, with
//! tabby-fib-sync, `ip -batch` and BIRD 2, each in a fresh network namespace.
//!
//! Usage (root): `fib-bench [--v4 100000,1000000] [--v6 100000] [--no-bird]`
//!
//! Methods run one after another with a 3 s pause between them (see
//! `settle`). Wall time runs from process/actor start to the last route
//! being in the kernel (tabby: every request acknowledged; ip: the process
//! exits; BIRD: a route-monitor socket has seen N `RTM_NEWROUTE` of protocol
//! bird). CPU
//! is user+system of the thread (tabby), the child (ip) or the daemon (BIRD),
//! kernel work done in their system calls included. Tabby's install ends
//! when every request is acknowledged (as `ip -batch`'s does); the dump
//! that then verifies the table is timed separately (printed on stderr).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::sys::resource::{UsageWho, getrusage};
use tabby_fib_sync::netns::NetNs;
use tabby_fib_sync::{FibConfig, FibRoute, FibSync, TABBY_RT_PROTO};

const RTPROT_BIRD: u8 = 12;

/// Install and withdraw measurements of one method, or why it failed.
type Outcome = Result<(Run, Run), String>;

#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    cpu: Duration,
}

fn prefixes(v6: bool, n: u32) -> Vec<IpNet> {
    (0..n)
        .map(|i| {
            if v6 {
                let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x1000, 0, 0, 0, 0, 0));
                let a = Ipv6Addr::from(base + (u128::from(i) << 64));
                IpNet::new(IpAddr::V6(a), 64).unwrap_or_else(|_| unreachable!())
            } else {
                let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i);
                IpNet::new(IpAddr::V4(a), 32).unwrap_or_else(|_| unreachable!())
            }
        })
        .collect()
}

fn gateway(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2))
    }
}

fn lab() -> std::io::Result<NetNs> {
    let ns = NetNs::new("tabby-fibbench")?;
    ns.exec(&["link", "add", "t0", "type", "veth", "peer", "name", "t1"])?;
    ns.exec(&["link", "set", "t0", "up"])?;
    ns.exec(&["link", "set", "t1", "up"])?;
    ns.exec(&["addr", "add", "198.18.0.1/24", "dev", "t0"])?;
    ns.exec(&["-6", "addr", "add", "2001:db8::1/64", "dev", "t0", "nodad"])?;
    Ok(ns)
}

fn tv(t: nix::sys::time::TimeVal) -> Duration {
    Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
}

fn usage(who: UsageWho) -> Duration {
    getrusage(who)
        .map(|u| tv(u.user_time()) + tv(u.system_time()))
        .unwrap_or_default()
}

/// The default configuration; `FIB_BENCH_IN_FLIGHT` and
/// `FIB_BENCH_BATCH_BYTES` override the window and batch size when tuning.
fn bench_config() -> FibConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    let mut c = FibConfig::default();
    if let Some(n) = env("FIB_BENCH_IN_FLIGHT") {
        c.max_in_flight = n;
    }
    if let Some(n) = env("FIB_BENCH_BATCH_BYTES") {
        c.batch_bytes = n;
    }
    c
}

/// tabby-fib-sync: install all, then withdraw all.
fn tabby(v6: bool, n: u32) -> Outcome {
    let ns = lab().map_err(|e| e.to_string())?;
    let routes: Vec<FibRoute> = prefixes(v6, n)
        .into_iter()
        .map(|p| FibRoute::via(p, gateway(v6)))
        .collect();
    ns.block_on(move || async move {
        let cpu0 = usage(UsageWho::RUSAGE_THREAD);
        let t0 = Instant::now();
        let (fib, task) = FibSync::start(bench_config())
            .await
            .map_err(|e| e.to_string())?;
        let join = tokio::spawn(task.run());
        fib.converged().await.map_err(|e| e.to_string())?;
        let resyncs0 = fib.stats().await.map_err(|e| e.to_string())?.resyncs;
        fib.set_many(routes).await.map_err(|e| e.to_string())?;
        fib.sync().await.map_err(|e| e.to_string())?;
        let install = Run {
            wall: t0.elapsed(),
            cpu: usage(UsageWho::RUSAGE_THREAD) - cpu0,
        };
        // A bulk run ends with a dump that verifies the table; `sync` does
        // not wait for it when every request succeeded. Time it on its own
        // so that it is reported, and so that the withdraw is not charged.
        let cpu0 = usage(UsageWho::RUSAGE_THREAD);
        let t0 = Instant::now();
        let s = loop {
            let s = fib.stats().await.map_err(|e| e.to_string())?;
            if s.resyncs >= resyncs0 + s.bulk_runs {
                break s;
            }
            if t0.elapsed() > Duration::from_secs(60 + u64::from(n) / 10_000) {
                return Err(format!("the verifying dump did not finish: {s:?}"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        eprintln!(
            "tabby-fib-sync {} {n}: verifying dump after the install {:.3} s, {:.2} CPU s",
            if v6 { "IPv6" } else { "IPv4" },
            t0.elapsed().as_secs_f64(),
            (usage(UsageWho::RUSAGE_THREAD) - cpu0).as_secs_f64()
        );
        if std::env::var_os("FIB_BENCH_VERBOSE").is_some() {
            let u = getrusage(UsageWho::RUSAGE_THREAD).ok();
            eprintln!(
                "tabby after install: {s:?}; voluntary/involuntary context switches {:?}",
                u.map(|u| (
                    u.voluntary_context_switches(),
                    u.involuntary_context_switches()
                ))
            );
        }
        if s.installs != u64::from(n) || s.installed != n as usize {
            return Err(format!("tabby installed {} of {n}: {s:?}", s.installs));
        }
        let cpu0 = usage(UsageWho::RUSAGE_THREAD);
        let t0 = Instant::now();
        fib.replace_all(Vec::new())
            .await
            .map_err(|e| e.to_string())?;
        fib.sync().await.map_err(|e| e.to_string())?;
        let withdraw = Run {
            wall: t0.elapsed(),
            cpu: usage(UsageWho::RUSAGE_THREAD) - cpu0,
        };
        let s = fib.stats().await.map_err(|e| e.to_string())?;
        if s.installed != 0 {
            return Err(format!("tabby left {} routes", s.installed));
        }
        drop(fib);
        let _ = join.await;
        Ok((install, withdraw))
    })
    .map_err(|e| e.to_string())?
}

fn ip_batch_file(v6: bool, n: u32, add: bool) -> Result<tempfile_path::Path, String> {
    let mut text = String::with_capacity(n as usize * 64);
    let gw = gateway(v6);
    for p in prefixes(v6, n) {
        if add {
            let _ = writeln!(
                text,
                "route add {p} via {gw} proto {TABBY_RT_PROTO} metric 32"
            );
        } else {
            let _ = writeln!(text, "route del {p} proto {TABBY_RT_PROTO} metric 32");
        }
    }
    tempfile_path::Path::write(&text).map_err(|e| e.to_string())
}

fn run_ip(ns: &NetNs, file: &tempfile_path::Path, v6: bool) -> Result<Run, String> {
    let cpu0 = usage(UsageWho::RUSAGE_CHILDREN);
    let t0 = Instant::now();
    let fam = if v6 { "-6" } else { "-4" };
    let st = Command::new("ip")
        .args(["-n", ns.name(), fam, "-batch"])
        .arg(file.as_path())
        .status()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    let wall = t0.elapsed();
    if !st.success() {
        return Err(format!("ip -batch failed: {st}"));
    }
    Ok(Run {
        wall,
        cpu: usage(UsageWho::RUSAGE_CHILDREN) - cpu0,
    })
}

fn ip_batch(v6: bool, n: u32) -> Outcome {
    let ns = lab().map_err(|e| e.to_string())?;
    let add = ip_batch_file(v6, n, true)?;
    let del = ip_batch_file(v6, n, false)?;
    let install = run_ip(&ns, &add, v6)?;
    let withdraw = run_ip(&ns, &del, v6)?;
    Ok((install, withdraw))
}

/// Counts route notifications of one protocol in the namespace.
struct Counter {
    added: Arc<AtomicU64>,
    deleted: Arc<AtomicU64>,
    overrun: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Counter {
    fn start(ns: &NetNs, proto: u8) -> Result<Self, String> {
        let added = Arc::new(AtomicU64::new(0));
        let deleted = Arc::new(AtomicU64::new(0));
        let overrun = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, d, o, s) = (
            added.clone(),
            deleted.clone(),
            overrun.clone(),
            stop.clone(),
        );
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        ns.run(move || {
            let sock = (|| -> std::io::Result<Socket> {
                let mut sock = Socket::new(NETLINK_ROUTE)?;
                sock.bind(&SocketAddr::new(0, 0))?;
                nix::sys::socket::setsockopt(
                    &sock,
                    nix::sys::socket::sockopt::RcvBufForce,
                    &(256 << 20),
                )?;
                sock.add_membership(7)?; // RTNLGRP_IPV4_ROUTE
                sock.add_membership(11)?; // RTNLGRP_IPV6_ROUTE
                sock.set_non_blocking(true)?;
                Ok(sock)
            })();
            let sock = match sock {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let mut buf = Vec::with_capacity(1 << 16);
            while !s.load(Ordering::Relaxed) {
                buf.clear();
                match sock.recv(&mut buf, 0) {
                    Ok(_) => {
                        let mut off = 0;
                        while let Some(h) = buf.get(off..off + 28) {
                            let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
                            let ty = u16::from_ne_bytes([h[4], h[5]]);
                            // rtmsg follows the 16-byte header; rtm_protocol is byte 5.
                            if h[16 + 5] == proto {
                                match ty {
                                    24 => a.fetch_add(1, Ordering::Relaxed),
                                    25 => d.fetch_add(1, Ordering::Relaxed),
                                    _ => 0,
                                };
                            }
                            if len < 16 {
                                break;
                            }
                            off += (len + 3) & !3;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(_) => o.store(true, Ordering::Relaxed),
                }
            }
        })
        .map_err(|e| e.to_string())?;
        ready_rx.recv().map_err(|e| e.to_string())?.map(|()| Self {
            added,
            deleted,
            overrun,
            stop,
        })
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn proc_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of those, in clock ticks.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz.max(1))
}

fn wait_count(c: &AtomicU64, n: u64, overrun: &AtomicBool, limit: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    while c.load(Ordering::Relaxed) < n {
        if overrun.load(Ordering::Relaxed) {
            return Err("route monitor overran; result invalid".into());
        }
        if t0.elapsed() > limit {
            return Err(format!(
                "only {} of {n} routes after {limit:?}",
                c.load(Ordering::Relaxed)
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// BIRD 2: a static protocol with the routes, exported to the kernel
/// protocol; withdraw = BIRD shuts down and removes what it exported.
fn bird(v6: bool, n: u32) -> Outcome {
    if Command::new("bird")
        .arg("--version")
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err("bird not installed (apt-get install bird2)".into());
    }
    let ns = lab().map_err(|e| e.to_string())?;
    let dir = tempfile_path::Dir::new().map_err(|e| e.to_string())?;
    let conf = dir.join("bird.conf");
    let fam = if v6 { "ipv6" } else { "ipv4" };
    let gw = gateway(v6);
    let mut text = String::with_capacity(n as usize * 48);
    let _ = writeln!(
        text,
        "router id 198.18.0.1;\nprotocol device {{ scan time 60; }}\n\
         protocol kernel {{ {fam} {{ import none; export all; }}; metric 32; }}\n\
         protocol static {{ {fam};"
    );
    for p in prefixes(v6, n) {
        let _ = writeln!(text, "  route {p} via {gw};");
    }
    text.push_str("}\n");
    std::fs::write(&conf, text).map_err(|e| e.to_string())?;
    let counter = Counter::start(&ns, RTPROT_BIRD)?;
    let t0 = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "bird", "-f", "-c"])
        .arg(&conf)
        .arg("-s")
        .arg(dir.join("bird.ctl"))
        .arg("-P")
        .arg(dir.join("bird.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start bird: {e}"))?;
    // `ip netns exec` execs bird in place, so the child pid is bird's.
    let pid = child.id();
    let limit = Duration::from_secs(120 + u64::from(n) / 5_000);
    let res = wait_count(&counter.added, u64::from(n), &counter.overrun, limit);
    let install = Run {
        wall: t0.elapsed(),
        cpu: proc_cpu(pid),
    };
    // The monitor counts notifications; check that they are N distinct
    // routes in the table (not one route announced twice).
    let fam_flag = if v6 { "-6" } else { "-4" };
    let in_table = ns
        .exec(&[fam_flag, "route", "show", "proto", "bird"])
        .map(|o| o.lines().count())
        .unwrap_or(0);
    if res.is_ok() && in_table < n as usize {
        eprintln!(
            "BIRD: {n} notifications seen but only {in_table} routes in the table at that moment"
        );
    }
    let cpu_before = proc_cpu(pid);
    let t1 = Instant::now();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let res2 = if res.is_ok() {
        wait_count(&counter.deleted, u64::from(n), &counter.overrun, limit)
    } else {
        Ok(())
    };
    let withdraw_wall = t1.elapsed();
    let withdraw_cpu = proc_cpu(pid).saturating_sub(cpu_before);
    let _ = child.kill();
    let _ = child.wait();
    res?;
    res2?;
    Ok((
        install,
        Run {
            wall: withdraw_wall,
            cpu: withdraw_cpu,
        },
    ))
}

/// Minimal temporary files (no extra dependency): removed on drop.
mod tempfile_path {
    use std::path::PathBuf;

    #[derive(Debug)]
    pub struct Path(PathBuf);
    impl Path {
        pub fn write(text: &str) -> std::io::Result<Self> {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("fib-bench-{}-{n}", std::process::id()));
            std::fs::write(&p, text)?;
            Ok(Self(p))
        }
        pub fn as_path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[derive(Debug)]
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new() -> std::io::Result<Self> {
            let p = std::env::temp_dir().join(format!("fib-bench-bird-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p)?;
            Ok(Self(p))
        }
        pub fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Lets the previous method's aftermath finish before the next one is
/// timed: its namespace is torn down asynchronously, and a million
/// withdrawn routes leave the kernel a backlog of RCU frees that would
/// otherwise be charged to whichever method runs next.
fn settle() {
    std::thread::sleep(Duration::from_secs(3));
}

fn parse_list(s: &str) -> Vec<u32> {
    s.split(',')
        .filter_map(|x| x.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut v4 = vec![100_000, 1_000_000];
    let mut v6 = vec![100_000];
    let mut with_bird = true;
    let mut only_tabby = false;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--v4" => {
                v4 = args.get(i + 1).map(|s| parse_list(s)).unwrap_or_default();
                i += 1;
            }
            "--v6" => {
                v6 = args.get(i + 1).map(|s| parse_list(s)).unwrap_or_default();
                i += 1;
            }
            "--no-bird" => with_bird = false,
            "--only-tabby" => only_tabby = true,
            other => {
                eprintln!(
                    "fib-bench: unknown argument {other}\nusage: fib-bench [--v4 N,N] [--v6 N,N] [--no-bird] [--only-tabby]"
                );
                std::process::exit(2);
            }
        }
        i += 1;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("fib-bench: needs root (network namespaces)");
        std::process::exit(2);
    }
    println!(
        "| family | routes | method | install s | routes/s | CPU s | vs ip -batch | withdraw s | routes/s | CPU s | vs ip -batch |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cases = v4
        .iter()
        .map(|n| (false, *n))
        .chain(v6.iter().map(|n| (true, *n)));
    for (is6, n) in cases {
        let fam = if is6 { "IPv6" } else { "IPv4" };
        if only_tabby {
            match tabby(is6, n) {
                Ok((a, w)) => println!(
                    "| {fam} | {n} | tabby-fib-sync | {:.3} | {:.0} | {:.2} | - | {:.3} | {:.0} | {:.2} | - |",
                    a.wall.as_secs_f64(),
                    f64::from(n) / a.wall.as_secs_f64(),
                    a.cpu.as_secs_f64(),
                    w.wall.as_secs_f64(),
                    f64::from(n) / w.wall.as_secs_f64(),
                    w.cpu.as_secs_f64()
                ),
                Err(e) => println!("| {fam} | {n} | tabby-fib-sync | failed: {e} |"),
            }
            continue;
        }
        let base = ip_batch(is6, n);
        settle();
        let mut rows: Vec<(&str, Outcome)> = vec![("tabby-fib-sync", tabby(is6, n))];
        settle();
        if with_bird {
            rows.push(("BIRD 2", bird(is6, n)));
            settle();
        }
        let base_rates = base.as_ref().ok().map(|(a, b)| {
            (
                n as f64 / a.wall.as_secs_f64(),
                n as f64 / b.wall.as_secs_f64(),
            )
        });
        rows.insert(0, ("ip -batch", base));
        for (method, r) in rows {
            match r {
                Ok((a, w)) => {
                    let ra = f64::from(n) / a.wall.as_secs_f64();
                    let rw = f64::from(n) / w.wall.as_secs_f64();
                    let (xa, xw) = base_rates
                        .map(|(ba, bw)| (format!("{:.2}×", ra / ba), format!("{:.2}×", rw / bw)))
                        .unwrap_or_else(|| ("-".into(), "-".into()));
                    println!(
                        "| {fam} | {n} | {method} | {:.3} | {:.0} | {:.2} | {xa} | {:.3} | {:.0} | {:.2} | {xw} |",
                        a.wall.as_secs_f64(),
                        ra,
                        a.cpu.as_secs_f64(),
                        w.wall.as_secs_f64(),
                        rw,
                        w.cpu.as_secs_f64()
                    );
                }
                Err(e) => println!("| {fam} | {n} | {method} | failed: {e} | | | | | | | |"),
            }
            let _ = std::io::stdout().flush();
        }
    }
}
