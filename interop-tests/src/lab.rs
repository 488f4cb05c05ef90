//! The lab: network namespaces, links, addresses and the daemons started in
//! them, all torn down by pid and by name on every exit path (`Drop`).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd::{self, CMD_TIMEOUT, CmdOutput};
use crate::daemon::Daemon;
use crate::kernel::{self, KernelRoute};
use crate::procfs::{self, ProcStats};

/// Namespaces made by this process so far; keeps names unique across labs
/// that run in parallel test threads.
static NS_SEQ: AtomicU32 = AtomicU32::new(0);

/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A network namespace the lab created: `label` is the test's name for it,
/// `name` the real one (`tl<pid>x<n>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ns {
    pub label: String,
    pub name: String,
}

impl std::fmt::Display for Ns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.label, self.name)
    }
}

/// One namespace's end of a segment.
#[derive(Debug, Clone)]
pub struct Member {
    pub ns: Ns,
    /// Interface name inside `ns`.
    pub ifname: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// An L2 segment: a veth pair (two members) or a bridge in the fabric namespace.
/// Addresses are `198.18.<index>.<n>/24` and `2001:db8:0:<index>::<n>/64`,
/// index 1–127; 198.18.128.0/17 is kept for bulk addresses.
#[derive(Debug, Clone)]
pub struct Segment {
    pub index: u8,
    pub members: Vec<Member>,
}

impl Segment {
    pub fn member(&self, ns: &Ns) -> Result<&Member> {
        self.members
            .iter()
            .find(|m| m.ns.name == ns.name)
            .ok_or_else(|| anyhow!("namespace {ns} is not on segment {}", self.index))
    }
    /// The IPv4 address of `ns` on this segment.
    pub fn v4(&self, ns: &Ns) -> Result<Ipv4Addr> {
        Ok(self.member(ns)?.v4)
    }
    /// The IPv6 address of `ns` on this segment.
    pub fn v6(&self, ns: &Ns) -> Result<Ipv6Addr> {
        Ok(self.member(ns)?.v6)
    }
    /// The interface of `ns` on this segment.
    pub fn ifname(&self, ns: &Ns) -> Result<&str> {
        Ok(&self.member(ns)?.ifname)
    }
}

/// A daemon the lab started (and may restart).
#[derive(Debug)]
struct Running {
    label: String,
    ns: Ns,
    spec: Daemon,
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
}

/// A lab of namespaces and daemons. Dropping it kills every process it
/// started (by pid, with their descendants), deletes its namespaces and its
/// temporary directory — also when a test panics.
#[derive(Debug)]
pub struct Lab {
    label: String,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    namespaces: Vec<Ns>,
    fabric: Option<Ns>,
    segments: u8,
    ifaces: HashMap<String, u32>,
    daemons: Vec<Running>,
}

impl Lab {
    /// Creates an empty lab with its own temporary directory. Needs root.
    /// `TABBY_LAB_KEEP=1` keeps the directory (configs, logs) for debugging.
    pub fn new(label: &str) -> Result<Lab> {
        if procfs::euid() != Some(0) {
            bail!("the lab needs root (network namespaces); run the tests as root");
        }
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(reap_stale_namespaces);
        let dir = tempfile::Builder::new()
            .prefix(&format!("tabby-lab-{label}-"))
            .tempdir()
            .context("cannot create the lab's temporary directory")?;
        let dir_path = dir.path().to_path_buf();
        let keep = std::env::var("TABBY_LAB_KEEP").is_ok_and(|v| v == "1");
        let dir = if keep {
            eprintln!("lab {label}: keeping {}", dir_path.display());
            let _ = dir.keep();
            None
        } else {
            Some(dir)
        };
        tracing::info!(lab = label, dir = %dir_path.display(), "lab created");
        Ok(Lab {
            label: label.to_string(),
            dir,
            dir_path,
            namespaces: Vec::new(),
            fabric: None,
            segments: 0,
            ifaces: HashMap::new(),
            daemons: Vec::new(),
        })
    }

    /// The lab's temporary directory (configs, sockets, logs).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// A path inside the lab directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir_path.join(name)
    }

    /// Writes `contents` to `name` in the lab directory and returns the path.
    pub fn write_file(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, contents).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(p)
    }

    /// The namespaces created so far.
    pub fn namespaces(&self) -> &[Ns] {
        &self.namespaces
    }

    /// Creates a namespace: `lo` up, IPv4/IPv6 forwarding on, IPv6 DAD off (so
    /// addresses are usable at once).
    pub fn ns(&mut self, label: &str) -> Result<Ns> {
        let n = NS_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("tl{}x{}", std::process::id(), n);
        cmd::run_ok("ip", &["netns", "add", &name], CMD_TIMEOUT)
            .with_context(|| format!("creating namespace for {label}"))?;
        let ns = Ns {
            label: label.to_string(),
            name,
        };
        // Recorded before configuring, so Drop removes it even if setup fails.
        self.namespaces.push(ns.clone());
        self.ip(&ns, &["link", "set", "dev", "lo", "up"])?;
        self.exec(
            &ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ],
        )?;
        tracing::debug!(lab = %self.label, ns = %ns, "namespace created");
        Ok(ns)
    }

    fn next_ifname(&mut self, ns: &Ns) -> String {
        let c = self.ifaces.entry(ns.name.clone()).or_insert(0);
        let name = format!("eth{c}");
        *c += 1;
        name
    }

    fn next_segment(&mut self) -> Result<u8> {
        // 198.18.128.0/17 is left for bulk addresses (see `attach_bulk`).
        if self.segments >= 127 {
            bail!("a lab has at most 127 segments");
        }
        self.segments += 1;
        Ok(self.segments)
    }

    fn seg_addrs(index: u8, host: u8) -> (Ipv4Addr, Ipv6Addr) {
        (
            Ipv4Addr::new(198, 18, index, host),
            Ipv6Addr::new(0x2001, 0xdb8, 0, u16::from(index), 0, 0, 0, u16::from(host)),
        )
    }

    fn address_member(&self, ns: &Ns, ifname: &str, index: u8, host: u8) -> Result<Member> {
        let (v4, v6) = Self::seg_addrs(index, host);
        self.ip(ns, &["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
        self.ip(
            ns,
            &[
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                ifname,
                "nodad",
            ],
        )?;
        self.ip(ns, &["link", "set", "dev", ifname, "up"])?;
        Ok(Member {
            ns: ns.clone(),
            ifname: ifname.to_string(),
            v4,
            v6,
        })
    }

    /// Connects two namespaces with a veth pair (created directly inside them,
    /// so names never clash in the root namespace). `a` gets `.1`, `b` `.2`.
    pub fn link(&mut self, a: &Ns, b: &Ns) -> Result<Segment> {
        let index = self.next_segment()?;
        let ia = self.next_ifname(a);
        let ib = self.next_ifname(b);
        self.ip(
            a,
            &[
                "link", "add", "name", &ia, "type", "veth", "peer", "name", &ib, "netns", &b.name,
            ],
        )?;
        let ma = self.address_member(a, &ia, index, 1)?;
        let mb = self.address_member(b, &ib, index, 2)?;
        Ok(Segment {
            index,
            members: vec![ma, mb],
        })
    }

    /// The namespace that holds bridges (created on first use).
    pub fn fabric(&mut self) -> Result<Ns> {
        if let Some(f) = &self.fabric {
            return Ok(f.clone());
        }
        let f = self.ns("fabric")?;
        self.fabric = Some(f.clone());
        Ok(f)
    }

    /// Puts `members` on one bridge in the fabric namespace; member `i` gets
    /// host address `i + 1`.
    pub fn lan(&mut self, members: &[&Ns]) -> Result<Segment> {
        if members.len() > 250 {
            bail!("a lan holds at most 250 members");
        }
        let fabric = self.fabric()?;
        let index = self.next_segment()?;
        let br = format!("br{index}");
        self.ip(&fabric, &["link", "add", "name", &br, "type", "bridge"])?;
        self.ip(&fabric, &["link", "set", "dev", &br, "up"])?;
        let mut out = Vec::new();
        for (i, ns) in members.iter().enumerate() {
            let port = format!("p{index}m{i}");
            let inner = self.next_ifname(ns);
            self.ip(
                &fabric,
                &[
                    "link", "add", "name", &port, "type", "veth", "peer", "name", &inner, "netns",
                    &ns.name,
                ],
            )?;
            self.ip(&fabric, &["link", "set", "dev", &port, "master", &br])?;
            self.ip(&fabric, &["link", "set", "dev", &port, "up"])?;
            let host = u8::try_from(i + 1).context("too many lan members")?;
            out.push(self.address_member(ns, &inner, index, host)?);
        }
        Ok(Segment {
            index,
            members: out,
        })
    }

    /// A veth pair with both ends inside `ns`, standing in for a dummy or
    /// tunnel device (the lab kernel has neither module). The peer end is
    /// `<name>p`; both are up.
    pub fn stub_iface(&self, ns: &Ns, name: &str) -> Result<()> {
        if name.len() > 14 {
            bail!("interface name {name:?} too long (at most 14 characters, the peer adds one)");
        }
        let peer = format!("{name}p");
        self.ip(
            ns,
            &[
                "link", "add", "name", name, "type", "veth", "peer", "name", &peer,
            ],
        )?;
        self.ip(ns, &["link", "set", "dev", name, "up"])?;
        self.ip(ns, &["link", "set", "dev", &peer, "up"])?;
        Ok(())
    }

    /// Adds an address (`CIDR`) to an interface of `ns`.
    pub fn add_addr(&self, ns: &Ns, ifname: &str, cidr: &str) -> Result<()> {
        let is_v6 = cidr.contains(':');
        let mut args = vec![];
        if is_v6 {
            args.push("-6");
        }
        args.extend_from_slice(&["addr", "add", cidr, "dev", ifname]);
        if is_v6 {
            args.push("nodad");
        }
        self.ip(ns, &args)?;
        Ok(())
    }

    /// Runs many `ip` commands in `ns` at once (`ip -batch`): one command per
    /// line, without the leading `ip`. Much faster than one process each.
    pub fn ip_batch(&self, ns: &Ns, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let n = NS_SEQ.fetch_add(1, Ordering::Relaxed);
        let file = self.write_file(&format!("batch-{n}.ip"), &(lines.join("\n") + "\n"))?;
        let f = file.display().to_string();
        cmd::run_ok(
            "ip",
            &["-n", &ns.name, "-batch", &f],
            Duration::from_secs(120),
        )
        .with_context(|| format!("ip -batch in namespace {ns}"))?;
        let _ = std::fs::remove_file(&file);
        Ok(())
    }

    /// Adds many addresses (`CIDR`s) to one interface of `ns` in one batch,
    /// e.g. one source address per benchmark session.
    pub fn add_addrs(&self, ns: &Ns, ifname: &str, cidrs: &[String]) -> Result<()> {
        let lines: Vec<String> = cidrs
            .iter()
            .map(|c| {
                if c.contains(':') {
                    format!("-6 addr add {c} dev {ifname} nodad")
                } else {
                    format!("addr add {c} dev {ifname}")
                }
            })
            .collect();
        self.ip_batch(ns, &lines)
    }

    /// Gives `count` (at most 32766) extra IPv4 addresses from 198.18.128.0/17
    /// to `from`'s interface on `seg`, and makes them reachable on-link from
    /// every other member of `seg`: one namespace can then open one session
    /// per source address (benchmarks), instead of one namespace per peer.
    pub fn attach_bulk(&self, seg: &Segment, from: &Ns, count: usize) -> Result<Vec<Ipv4Addr>> {
        if count > 32766 {
            bail!("at most 32766 bulk addresses (198.18.128.0/17)");
        }
        let base = u32::from(Ipv4Addr::new(198, 18, 128, 0));
        let addrs: Vec<Ipv4Addr> = (1..=count as u32)
            .map(|i| Ipv4Addr::from(base + i))
            .collect();
        let me = seg.member(from)?;
        let cidrs: Vec<String> = addrs.iter().map(|a| format!("{a}/32")).collect();
        self.add_addrs(from, &me.ifname, &cidrs)?;
        // Routed via the owner's segment address, not on-link: one
        // neighbour entry instead of one per address. The kernel's neighbour
        // table holds 1,024 entries by default (gc_thresh3) and silently
        // drops packets to addresses beyond that, which at 2,000 sessions
        // shows up as handshakes that never complete.
        for m in seg.members.iter().filter(|m| m.ns != *from) {
            self.ip(
                &m.ns,
                &[
                    "route",
                    "add",
                    "198.18.128.0/17",
                    "via",
                    &me.v4.to_string(),
                    "dev",
                    &m.ifname,
                    "src",
                    &m.v4.to_string(),
                ],
            )?;
        }
        Ok(addrs)
    }

    /// Runs `ip -n NS args…` and returns its stdout.
    pub fn ip(&self, ns: &Ns, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", ns.name.as_str()];
        full.extend_from_slice(args);
        cmd::run_ok("ip", &full, CMD_TIMEOUT).with_context(|| format!("in namespace {ns}"))
    }

    /// Runs a command inside `ns` (`ip netns exec`) and returns its stdout; a
    /// non-zero exit is an error quoting stderr.
    pub fn exec(&self, ns: &Ns, args: &[&str]) -> Result<String> {
        self.exec_timeout(ns, args, CMD_TIMEOUT)
    }

    /// [`Lab::exec`] with an explicit time limit.
    pub fn exec_timeout(&self, ns: &Ns, args: &[&str], timeout: Duration) -> Result<String> {
        let mut full = vec!["netns", "exec", ns.name.as_str()];
        full.extend_from_slice(args);
        cmd::run_ok("ip", &full, timeout).with_context(|| format!("in namespace {ns}"))
    }

    /// Runs a command inside `ns` and returns its status and output whatever
    /// the exit code.
    pub fn exec_output(&self, ns: &Ns, args: &[&str], timeout: Duration) -> Result<CmdOutput> {
        let mut full = vec!["netns", "exec", ns.name.as_str()];
        full.extend_from_slice(args);
        cmd::run("ip", &full, timeout)
    }

    /// Sets one sysctl inside `ns` (`key=value`).
    pub fn sysctl(&self, ns: &Ns, key: &str, value: &str) -> Result<()> {
        self.exec(ns, &["sysctl", "-qw", &format!("{key}={value}")])?;
        Ok(())
    }

    /// Adds a kernel route: `spec` is what follows `ip route add`, e.g.
    /// `"100.64.0.0/26 via 198.18.1.2"`.
    pub fn add_route(&self, ns: &Ns, spec: &str) -> Result<()> {
        let mut args: Vec<&str> = vec![];
        if spec.contains(':') {
            args.push("-6");
        }
        args.extend_from_slice(&["route", "add"]);
        args.extend(spec.split_whitespace());
        self.ip(ns, &args)?;
        Ok(())
    }

    /// Every IPv4 and IPv6 route in the main table of `ns`.
    pub fn kernel_routes(&self, ns: &Ns) -> Result<Vec<KernelRoute>> {
        kernel::routes(&ns.name, None)
    }

    /// Routes of `ns` installed with routing protocol `proto` (a name from
    /// `/etc/iproute2/rt_protos` such as `bird`, or a number).
    pub fn kernel_routes_proto(&self, ns: &Ns, proto: &str) -> Result<Vec<KernelRoute>> {
        kernel::routes(&ns.name, Some(proto))
    }

    /// Waits until `ns`'s kernel has a route for exactly `prefix` (of protocol
    /// `proto` when given) and returns it.
    pub fn wait_kernel_route(
        &self,
        ns: &Ns,
        proto: Option<&str>,
        prefix: ipnet::IpNet,
        timeout: Duration,
    ) -> Result<KernelRoute> {
        self.wait_for(
            &format!("route {prefix} in the kernel of {ns}"),
            timeout,
            || {
                kernel::routes(&ns.name, proto)?
                    .into_iter()
                    .find(|r| r.dst == prefix)
                    .ok_or_else(|| anyhow!("{prefix} not in the kernel of {ns} yet"))
            },
        )
    }

    /// Waits until `ns`'s kernel has no route for exactly `prefix` (of
    /// protocol `proto` when given).
    pub fn wait_no_kernel_route(
        &self,
        ns: &Ns,
        proto: Option<&str>,
        prefix: ipnet::IpNet,
        timeout: Duration,
    ) -> Result<()> {
        self.wait_for(
            &format!("no route {prefix} in the kernel of {ns}"),
            timeout,
            || {
                if let Some(r) = kernel::routes(&ns.name, proto)?
                    .into_iter()
                    .find(|r| r.dst == prefix)
                {
                    bail!("still there: {r:?}");
                }
                Ok(())
            },
        )
    }

    /// Pings `addr` from `ns` once (1 s limit); true on a reply.
    pub fn ping(&self, ns: &Ns, addr: IpAddr) -> bool {
        let a = addr.to_string();
        self.exec_output(
            ns,
            &["ping", "-c", "1", "-W", "1", "-q", &a],
            Duration::from_secs(3),
        )
        .map(|o| o.status.success())
        .unwrap_or(false)
    }

    // ----- daemons -----

    /// Starts `daemon` inside `ns` under a unique `label`; stdout and stderr go
    /// to `<label>.log` in the lab directory. Returns its pid.
    pub fn start(&mut self, ns: &Ns, label: &str, daemon: Daemon) -> Result<u32> {
        if self.daemons.iter().any(|d| d.label == label) {
            bail!("a daemon labelled {label:?} already runs in this lab");
        }
        let log = self.path(&format!("{label}.log"));
        let (child, pid) = spawn(ns, &daemon, &log)?;
        tracing::info!(lab = %self.label, label, ns = %ns, pid, program = %daemon.program.display(), "daemon started");
        self.daemons.push(Running {
            label: label.to_string(),
            ns: ns.clone(),
            spec: daemon,
            child: Some(child),
            pid,
            log,
        });
        Ok(pid)
    }

    fn running(&self, label: &str) -> Result<&Running> {
        self.daemons
            .iter()
            .find(|d| d.label == label)
            .ok_or_else(|| anyhow!("no daemon labelled {label:?} in this lab"))
    }

    fn running_mut(&mut self, label: &str) -> Result<&mut Running> {
        self.daemons
            .iter_mut()
            .find(|d| d.label == label)
            .ok_or_else(|| anyhow!("no daemon labelled {label:?} in this lab"))
    }

    /// The current pid of daemon `label`.
    pub fn pid(&self, label: &str) -> Result<u32> {
        Ok(self.running(label)?.pid)
    }

    /// The log file of daemon `label`.
    pub fn log_path(&self, label: &str) -> Result<PathBuf> {
        Ok(self.running(label)?.log.clone())
    }

    /// True while daemon `label` runs.
    pub fn is_running(&mut self, label: &str) -> Result<bool> {
        let d = self.running_mut(label)?;
        Ok(match d.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        })
    }

    /// CPU seconds and peak RSS of daemon `label`, now.
    pub fn stats(&self, label: &str) -> Result<ProcStats> {
        let d = self.running(label)?;
        procfs::stats(d.pid).with_context(|| format!("daemon {label} (pid {})", d.pid))
    }

    /// [`Lab::stats`] of daemon `label` and its descendants.
    pub fn stats_tree(&self, label: &str) -> Result<ProcStats> {
        let d = self.running(label)?;
        procfs::stats_tree(d.pid).with_context(|| format!("daemon {label} (pid {})", d.pid))
    }

    /// Starts `tcpdump` on `ifname` in `ns`, writing `<label>.pcap` in the lab
    /// directory (kept with `TABBY_LAB_KEEP=1`); BGP only unless `filter`
    /// says otherwise. Stop it with [`Lab::stop`] to flush the file.
    pub fn capture(
        &mut self,
        ns: &Ns,
        label: &str,
        ifname: &str,
        filter: Option<&str>,
    ) -> Result<PathBuf> {
        let file = self.path(&format!("{label}.pcap"));
        let mut args = vec![
            "-i".to_string(),
            ifname.to_string(),
            "-U".into(),
            // Without it packets wait in the ring until a timeout and are lost on stop.
            "--immediate-mode".into(),
            "-n".into(),
            "-w".into(),
            file.display().to_string(),
        ];
        args.extend(
            filter
                .unwrap_or("tcp port 179")
                .split_whitespace()
                .map(str::to_string),
        );
        let daemon = Daemon {
            kind: crate::daemon::DaemonKind::Other,
            program: "tcpdump".into(),
            args,
            env: vec![],
            control: crate::daemon::Control::None,
        };
        self.start(ns, label, daemon)?;
        let f = file.clone();
        // tcpdump writes the pcap header once it listens.
        self.wait_ready(label, Duration::from_secs(5), || {
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            anyhow::ensure!(len >= 24, "tcpdump has not opened {} yet", f.display());
            Ok(())
        })?;
        Ok(file)
    }

    /// Sends SIGTERM to daemon `label` (and its descendants), waits up to 3 s,
    /// then SIGKILLs what is left. The daemon can be [`Lab::restart`]ed.
    pub fn stop(&mut self, label: &str) -> Result<()> {
        let d = self.running_mut(label)?;
        terminate(d, Some(Signal::SIGTERM));
        Ok(())
    }

    /// Kills daemon `label` and its descendants with SIGKILL at once (a crash).
    pub fn kill9(&mut self, label: &str) -> Result<()> {
        let d = self.running_mut(label)?;
        terminate(d, None);
        Ok(())
    }

    /// Starts daemon `label` again with the same command line (stopping it
    /// first if it still runs). Returns the new pid.
    pub fn restart(&mut self, label: &str) -> Result<u32> {
        let lab = self.label.clone();
        let d = self.running_mut(label)?;
        terminate(d, Some(Signal::SIGTERM));
        let (child, pid) = spawn(&d.ns, &d.spec, &d.log)?;
        d.child = Some(child);
        d.pid = pid;
        tracing::info!(lab = %lab, label, pid, "daemon restarted");
        Ok(pid)
    }

    /// Fails with the tail of its log if daemon `label` has exited.
    pub fn check_alive(&mut self, label: &str) -> Result<()> {
        let d = self.running_mut(label)?;
        if let Some(c) = d.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                let log = cmd::tail_file(&d.log, 20);
                bail!("daemon {} exited ({st}); its log ends:\n{log}", d.label);
            }
            return Ok(());
        }
        bail!("daemon {label} is stopped")
    }

    /// Waits (up to `timeout`) until `ready` succeeds, failing early if the
    /// daemon exits; used right after [`Lab::start`].
    pub fn wait_ready<T>(
        &mut self,
        label: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive(label)?;
            let err = match ready() {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let log = cmd::tail_file(&self.log_path(label)?, 20);
                bail!("daemon {label} not ready within {timeout:?}: {err:#}\nits log ends:\n{log}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `probe` every 100 ms until it returns `Ok`, or fails after
    /// `timeout` with `desc`, the last probe error, and a dump of every daemon
    /// (state and log tail) and namespace (addresses, routes).
    pub fn wait_for<T>(
        &self,
        desc: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        loop {
            let err = match probe() {
                Ok(v) => {
                    tracing::debug!(lab = %self.label, desc, elapsed = ?start.elapsed(), "condition met");
                    return Ok(v);
                }
                Err(e) => e,
            };
            if start.elapsed() >= timeout {
                bail!(
                    "timed out after {timeout:?} waiting for {desc}; last check said: {err:#}\n{}",
                    self.dump()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// A report of every daemon (process state, protocol state, log tail) and
    /// every namespace (addresses, routes), for failure messages.
    pub fn dump(&self) -> String {
        let mut s = format!(
            "===== lab {} dump (dir {}) =====\n",
            self.label,
            self.dir_path.display()
        );
        for d in &self.daemons {
            let alive = procfs::alive(d.pid);
            s.push_str(&format!(
                "--- daemon {} [{}] in {} pid {} {}\n",
                d.label,
                d.spec.kind,
                d.ns,
                d.pid,
                if alive { "running" } else { "NOT RUNNING" }
            ));
            if alive {
                s.push_str(&d.spec.control.status(&d.ns));
                s.push('\n');
            }
            s.push_str(&format!("--- log tail {}:\n", d.log.display()));
            s.push_str(&cmd::tail_file(&d.log, 30));
            s.push('\n');
        }
        for ns in &self.namespaces {
            s.push_str(&format!("--- namespace {ns}\n"));
            for args in [&["-br", "addr"][..], &["route"][..], &["-6", "route"][..]] {
                let mut full = vec!["-n", ns.name.as_str()];
                full.extend_from_slice(args);
                match cmd::run("ip", &full, Duration::from_secs(3)) {
                    Ok(o) => s.push_str(&o.stdout),
                    Err(e) => s.push_str(&format!("({e})\n")),
                }
            }
        }
        s.push_str("===== end of dump =====");
        s
    }
}

/// Removes namespaces left by lab processes that died without running Drop
/// (e.g. SIGKILLed test binaries): names are `tl<pid>x<n>`, so a namespace
/// whose creator pid is gone is ours and stale. Processes still inside are
/// killed by pid first.
pub fn reap_stale_namespaces() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in rd.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(owner) = stale_owner(&name) else {
            continue;
        };
        if owner == std::process::id() || procfs::alive(owner) {
            continue;
        }
        if let Ok(out) = cmd::run_ok("ip", &["netns", "pids", &name], CMD_TIMEOUT) {
            for p in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                send(p, Signal::SIGKILL);
            }
        }
        match cmd::run_ok("ip", &["netns", "del", &name], CMD_TIMEOUT) {
            Ok(_) => tracing::info!(ns = %name, owner, "removed a stale lab namespace"),
            Err(e) => tracing::warn!(ns = %name, "cannot remove a stale lab namespace: {e:#}"),
        }
    }
}

/// The creator pid encoded in a lab namespace name `tl<pid>x<n>`.
fn stale_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("tl")?;
    let (pid, n) = rest.split_once('x')?;
    if pid.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn spawn(ns: &Ns, daemon: &Daemon, log: &Path) -> Result<(Child, u32)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let file2 = file.try_clone()?;
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name])
        .arg(&daemon.program)
        .args(&daemon.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(file2));
    for (k, v) in &daemon.env {
        c.env(k, v);
    }
    // `ip netns exec` execs the program in place, so the child's pid is the daemon's.
    let child = c.spawn().with_context(|| {
        format!(
            "cannot start {} in {ns} (is it installed? run scripts/install-deps.sh)",
            daemon.program.display()
        )
    })?;
    let pid = child.id();
    Ok((child, pid))
}

fn send(pid: u32, sig: Signal) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(p), sig);
    }
}

/// Stops one daemon: `sig` first (then SIGKILL after the grace time), or
/// SIGKILL at once when `sig` is `None`. Descendants are collected before the
/// parent dies (afterwards they are re-parented and lost).
fn terminate(d: &mut Running, sig: Option<Signal>) {
    let Some(mut child) = d.child.take() else {
        return;
    };
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let mut tree = procfs::descendants(d.pid);
    tree.push(d.pid);
    if let Some(sig) = sig {
        for &p in &tree {
            send(p, sig);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) && tree.iter().all(|&p| !procfs::alive(p)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(label = %d.label, pid = d.pid, "daemon ignored SIGTERM; killing");
    }
    for &p in &tree {
        send(p, Signal::SIGKILL);
    }
    let _ = child.wait();
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A panicking test gets the whole picture before it is torn down.
        if thread::panicking() && !self.daemons.is_empty() {
            eprintln!("lab {} torn down by a panic:\n{}", self.label, self.dump());
        }
        // TERM everything at once so teardown takes one grace period, not one per daemon.
        let mut pending: Vec<(Child, Vec<u32>)> = Vec::new();
        for d in &mut self.daemons {
            if let Some(mut child) = d.child.take()
                && matches!(child.try_wait(), Ok(None))
            {
                let mut tree = procfs::descendants(d.pid);
                tree.push(d.pid);
                for &p in &tree {
                    send(p, Signal::SIGTERM);
                }
                pending.push((child, tree));
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline
            && pending.iter_mut().any(|(c, t)| {
                matches!(c.try_wait(), Ok(None)) || t.iter().any(|&p| procfs::alive(p))
            })
        {
            thread::sleep(Duration::from_millis(20));
        }
        for (mut c, tree) in pending {
            for &p in &tree {
                if procfs::alive(p) {
                    send(p, Signal::SIGKILL);
                }
            }
            let _ = c.wait();
        }
        // Anything still inside our namespaces was started by us or our
        // daemons: kill it by pid before deleting the namespace.
        for ns in &self.namespaces {
            if let Ok(out) = cmd::run_ok("ip", &["netns", "pids", &ns.name], CMD_TIMEOUT) {
                for p in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                    send(p, Signal::SIGKILL);
                }
            }
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = cmd::run_ok("ip", &["netns", "del", &ns.name], CMD_TIMEOUT) {
                eprintln!("lab {}: cannot delete namespace {ns}: {e:#}", self.label);
            }
        }
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
        tracing::info!(lab = %self.label, "lab torn down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lab_names_have_owners() {
        assert_eq!(stale_owner("tl1234x0"), Some(1234));
        assert_eq!(stale_owner("tl1234x17"), Some(1234));
        assert_eq!(stale_owner("tlx0"), None);
        assert_eq!(stale_owner("tl12x"), None);
        assert_eq!(stale_owner("tl12xa"), None);
        assert_eq!(stale_owner("other"), None);
        assert_eq!(stale_owner("tlab12x3"), None);
    }

    #[test]
    fn segment_addresses_follow_the_plan() {
        let (v4, v6) = Lab::seg_addrs(3, 7);
        assert_eq!(v4, Ipv4Addr::new(198, 18, 3, 7));
        assert_eq!(v6, "2001:db8:0:3::7".parse::<Ipv6Addr>().unwrap());
    }
}
