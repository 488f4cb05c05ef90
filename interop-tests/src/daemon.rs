//! Command lines of the daemons a lab runs, and how to ask each for its state.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::cmd;
use crate::lab::Ns;

/// Which daemon a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonKind {
    Tabbyd,
    Bird2,
    /// BIRD 1.6; `v6` for `bird6`.
    Bird1 {
        v6: bool,
    },
    GoBgp,
    Frr,
    ExaBgp,
    Etcd,
    KubeApiServer,
    Other,
}

impl fmt::Display for DaemonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DaemonKind::Tabbyd => "tabbyd",
            DaemonKind::Bird2 => "bird2",
            DaemonKind::Bird1 { v6: false } => "bird1.6",
            DaemonKind::Bird1 { v6: true } => "bird1.6 (bird6)",
            DaemonKind::GoBgp => "gobgpd",
            DaemonKind::Frr => "frr bgpd",
            DaemonKind::ExaBgp => "exabgp",
            DaemonKind::Etcd => "etcd",
            DaemonKind::KubeApiServer => "kube-apiserver",
            DaemonKind::Other => "process",
        };
        f.write_str(s)
    }
}

/// How to reach a running daemon's control interface (for queries and dumps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `birdc -s SOCK` (BIRD 1.6 and 2).
    Bird {
        birdc: PathBuf,
        sock: PathBuf,
    },
    /// GoBGP's gRPC API on 127.0.0.1:`port` inside the namespace.
    GoBgp {
        port: u16,
    },
    /// FRR's vty socket directory (`vtysh --vty_socket DIR`).
    Frr {
        vty_dir: PathBuf,
    },
    /// etcd client endpoint, reachable from inside the namespace.
    Etcd {
        endpoint: String,
    },
    /// A Kubernetes API server, asked through `kubectl` with an admin
    /// kubeconfig from inside the namespace.
    Kube {
        kubectl: PathBuf,
        kubeconfig: PathBuf,
        cache_dir: PathBuf,
    },
    /// tabbyd's API address (`unix:PATH` or `tcp:ADDR`), if it serves one.
    Tabbyd {
        api: Option<String>,
    },
    None,
}

const DUMP_TIMEOUT: Duration = Duration::from_secs(3);

impl Control {
    /// Human-readable state for failure dumps; never fails, bounded in time.
    pub fn status(&self, ns: &Ns) -> String {
        let run = |prog: &str, args: &[&str]| -> String {
            match cmd::run(prog, args, DUMP_TIMEOUT) {
                Ok(o) => format!("$ {}\n{}{}", cmd::display(prog, args), o.stdout, o.stderr),
                Err(e) => format!("$ {}\n({e:#})", cmd::display(prog, args)),
            }
        };
        match self {
            Control::Bird { birdc, sock } => {
                let b = birdc.display().to_string();
                let s = sock.display().to_string();
                run(&b, &["-s", &s, "show", "protocols", "all"])
            }
            Control::GoBgp { port } => {
                let p = port.to_string();
                let gobgp = |args: &[&str]| {
                    let mut full = vec!["netns", "exec", &ns.name, "gobgp"];
                    full.extend_from_slice(&["-u", "127.0.0.1", "-p", &p]);
                    full.extend_from_slice(args);
                    run("ip", &full)
                };
                gobgp(&["neighbor"]) + &gobgp(&["global", "rib"])
            }
            Control::Frr { vty_dir } => {
                let d = vty_dir.display().to_string();
                let mut out = run("vtysh", &["--vty_socket", &d, "-c", "show bgp summary"]);
                out.push_str(&run(
                    "vtysh",
                    &["--vty_socket", &d, "-c", "show bgp ipv4 unicast"],
                ));
                out
            }
            Control::Etcd { endpoint } => run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns.name,
                    "etcdctl",
                    "--endpoints",
                    endpoint,
                    "endpoint",
                    "status",
                ],
            ),
            Control::Kube {
                kubectl,
                kubeconfig,
                cache_dir,
            } => {
                let k = kubectl.display().to_string();
                let c = format!("--kubeconfig={}", kubeconfig.display());
                let d = format!("--cache-dir={}", cache_dir.display());
                let args = [
                    "netns",
                    "exec",
                    &ns.name,
                    &k,
                    &c,
                    &d,
                    "--request-timeout=2s",
                    "get",
                    "--raw",
                    "/readyz",
                ];
                run("ip", &args)
            }
            Control::Tabbyd { api } => format!("tabbyd api: {}", api.as_deref().unwrap_or("none")),
            Control::None => String::new(),
        }
    }
}

/// A daemon's command line, environment and control interface. Built by the
/// per-daemon modules (or [`Daemon::tabbyd`]) and started with `Lab::start`.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub kind: DaemonKind,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub control: Control,
}

impl Daemon {
    /// Any program, run inside a namespace without a control interface.
    pub fn other(program: impl Into<PathBuf>, args: &[&str]) -> Daemon {
        Daemon {
            kind: DaemonKind::Other,
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            control: Control::None,
        }
    }

    /// tabbyd with the flags of issue 6.
    pub fn tabbyd(opts: &TabbydOpts) -> Result<Daemon> {
        Ok(Daemon {
            kind: DaemonKind::Tabbyd,
            program: tabbyd_bin()?,
            args: opts.args(),
            env: vec![],
            control: Control::Tabbyd {
                api: opts.api.clone(),
            },
        })
    }
}

/// Where tabbyd's routes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datastore {
    /// A multi-document YAML file of Calico resources.
    File(PathBuf),
    /// etcd endpoints (`http://HOST:PORT`).
    Etcd(Vec<String>),
    /// Calico's Kubernetes datastore, reached with this kubeconfig.
    Kubernetes(PathBuf),
}

/// tabbyd's command line (flags of `tabbyd --help`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabbydOpts {
    pub node_name: String,
    pub datastore: Datastore,
    /// `unix:PATH` or `tcp:ADDR`. `Lab::start_tabbyd` picks a socket in the
    /// lab directory when unset: tabbyd's default path is shared by every
    /// namespace (the file system is not namespaced).
    pub api: Option<String>,
    /// `--run-dir`; `Lab::start_tabbyd` picks one in the lab directory when unset.
    pub run_dir: Option<PathBuf>,
    /// `--gobgp-api ADDR` (the GoBGP-compatible API, e.g. `127.0.0.1:50051`).
    pub gobgp_api: Option<String>,
    /// `--gobgp-v4-api ADDR` (the GoBGP v4 compatible API).
    pub gobgp_v4_api: Option<String>,
    /// `--metrics ADDR`.
    pub metrics: Option<String>,
    pub no_fib: bool,
    /// `--kernel-protocol N`.
    pub kernel_protocol: Option<u8>,
    /// `--tunnel-device NAME` (the IP-in-IP stand-in in the lab).
    pub tunnel_device: Option<String>,
    /// `--deferral-time SECS`.
    pub deferral_time: Option<u64>,
    pub log_level: String,
    /// Flags appended as given.
    pub extra_args: Vec<String>,
}

impl TabbydOpts {
    /// A node reading `datastore`, FIB on, log level `info`.
    pub fn new(node_name: &str, datastore: Datastore) -> TabbydOpts {
        TabbydOpts {
            node_name: node_name.to_string(),
            datastore,
            api: None,
            run_dir: None,
            gobgp_api: None,
            gobgp_v4_api: None,
            metrics: None,
            no_fib: false,
            kernel_protocol: None,
            tunnel_device: None,
            deferral_time: None,
            log_level: "info".into(),
            extra_args: vec![],
        }
    }

    /// Serves the API on a unix socket at `path`.
    pub fn api_unix(mut self, path: &Path) -> TabbydOpts {
        self.api = Some(format!("unix:{}", path.display()));
        self
    }

    /// Standalone route-reflector mode: no kernel programming.
    pub fn no_fib(mut self) -> TabbydOpts {
        self.no_fib = true;
        self
    }

    /// The argument vector (without the program).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["--node-name".to_string(), self.node_name.clone()];
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_string());
                a.push(v);
            }
        };
        opt(
            "--datastore",
            Some(match &self.datastore {
                Datastore::File(p) => format!("file:{}", p.display()),
                Datastore::Etcd(urls) => format!("etcd:{}", urls.join(",")),
                Datastore::Kubernetes(kc) => format!("kubernetes:{}", kc.display()),
            }),
        );
        opt("--api", self.api.clone());
        opt(
            "--run-dir",
            self.run_dir.as_ref().map(|p| p.display().to_string()),
        );
        opt("--gobgp-api", self.gobgp_api.clone());
        opt("--gobgp-v4-api", self.gobgp_v4_api.clone());
        opt("--metrics", self.metrics.clone());
        opt(
            "--kernel-protocol",
            self.kernel_protocol.map(|p| p.to_string()),
        );
        opt("--tunnel-device", self.tunnel_device.clone());
        opt("--deferral-time", self.deferral_time.map(|d| d.to_string()));
        opt("--log-level", Some(self.log_level.clone()));
        if self.no_fib {
            a.push("--no-fib".into());
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// The tabbyd binary: `$TABBYD_BIN`, else the newest of
/// `{$CARGO_TARGET_DIR,<workspace>/target}/{debug,release}/tabbyd`.
pub fn tabbyd_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TABBYD_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("TABBYD_BIN={} does not exist", p.display());
        }
        return Ok(p);
    }
    let mut dirs = vec![];
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(t));
    }
    dirs.push(crate::preflight::workspace_root().join("target"));
    let newest = dirs
        .iter()
        .flat_map(|d| [d.join("debug/tabbyd"), d.join("release/tabbyd")])
        .filter_map(|p| {
            let m = std::fs::metadata(&p).ok()?.modified().ok()?;
            Some((m, p))
        })
        .max();
    match newest {
        Some((_, p)) => Ok(p),
        None => bail!(
            "tabbyd binary not found: build it with `cargo build -p tabbyd` or set TABBYD_BIN"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabbyd_command_line() {
        let o = TabbydOpts::new("node-a", Datastore::File("/tmp/c.yaml".into()))
            .api_unix(Path::new("/tmp/a.sock"))
            .no_fib();
        assert_eq!(
            o.args(),
            [
                "--node-name",
                "node-a",
                "--datastore",
                "file:/tmp/c.yaml",
                "--api",
                "unix:/tmp/a.sock",
                "--log-level",
                "info",
                "--no-fib",
            ]
        );
        let e = TabbydOpts::new(
            "b",
            Datastore::Etcd(vec![
                "http://198.18.1.1:2379".into(),
                "http://198.18.1.2:2379".into(),
            ]),
        );
        assert!(
            e.args()
                .contains(&"etcd:http://198.18.1.1:2379,http://198.18.1.2:2379".to_string())
        );
    }
}
