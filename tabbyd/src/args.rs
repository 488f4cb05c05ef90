//! Command-line flags; every flag can also be set from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// tabbyd: BGP routing for Kubernetes-style hosts.
///
/// Reads the cluster's Calico v3 resources (Node, BGPConfiguration, BGPPeer,
/// IPPool, BGPFilter, BlockAffinity) from a YAML file or from etcd, peers with
/// the other nodes, top-of-rack switches or route reflectors, advertises this
/// node's pod blocks and programs the best routes into the kernel.
#[derive(Debug, Clone, Parser)]
#[command(name = "tabbyd", version, about, long_about = None)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// This node's name, as in its Calico `Node` resource. Defaults to the
    /// host name.
    #[arg(long, env = "TABBY_NODE_NAME")]
    pub node_name: Option<String>,

    /// Where the cluster's resources live: `file:PATH` (multi-document YAML,
    /// watched for changes), `etcd:URL[,URL...]` (Calico's etcdv3 layout),
    /// `kubernetes` (Calico's Kubernetes datastore, from inside a pod) or
    /// `kubernetes:/path/to/kubeconfig`.
    #[arg(
        long,
        global = true,
        env = "TABBY_DATASTORE",
        default_value = "file:/etc/tabby/cluster.yaml"
    )]
    pub datastore: String,

    /// Namespace of the Secrets that BGP passwords reference (Kubernetes
    /// datastore). Default: this pod's namespace, else kube-system.
    #[arg(long, global = true, env = "TABBY_SECRET_NAMESPACE")]
    pub secret_namespace: Option<String>,

    /// The management API listener: `unix:PATH` (mode 0660) or `tcp:ADDR`
    /// (then set --api-tls-cert and --api-tls-key).
    #[arg(long, env = "TABBY_API", default_value = "unix:/run/tabby/tabbyd.sock")]
    pub api: String,

    /// Serve the GoBGP v3 compatible API on this TCP address (for the `gobgp`
    /// CLI), e.g. 127.0.0.1:50051. Off unless given.
    #[arg(long, env = "TABBY_GOBGP_API")]
    pub gobgp_api: Option<SocketAddr>,

    /// Serve the GoBGP v4 compatible API on this TCP address (for the 4.x
    /// `gobgp` CLI and other v4 clients), e.g. 127.0.0.1:50052; off by
    /// default. May be on beside `--gobgp-api` (another port).
    #[arg(long, env = "TABBY_GOBGP_V4_API")]
    pub gobgp_v4_api: Option<SocketAddr>,

    /// Serve Prometheus metrics at http://ADDR/metrics. Off unless given.
    #[arg(long, env = "TABBY_METRICS")]
    pub metrics: Option<SocketAddr>,

    /// Export to a BMP monitoring station (RFC 7854, with the Loc-RIB of
    /// RFC 9069) at ADDR:PORT; repeat for more (the variable takes a
    /// comma-separated list). Added to the stations of the datastore's
    /// `tabby-routing.io/bmp-stations` annotation. Off unless given.
    #[arg(
        long = "bmp-station",
        value_name = "ADDR:PORT",
        env = "TABBY_BMP_STATIONS",
        value_delimiter = ','
    )]
    pub bmp_stations: Vec<SocketAddr>,

    /// Seconds between the BMP Statistics Reports of each session (0: none).
    #[arg(long, env = "TABBY_BMP_STATS_INTERVAL", default_value_t = 60)]
    pub bmp_stats_interval: u64,

    /// Do not program the kernel: standalone route-reflector mode.
    #[arg(long, env = "TABBY_NO_FIB")]
    pub no_fib: bool,

    /// Log level: error, warn, info, debug or trace (or a tracing filter
    /// such as `info,tabby_bgp=debug`).
    #[arg(long, env = "TABBY_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log line format.
    #[arg(long, env = "TABBY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Kernel route protocol number for Tabby's routes.
    #[arg(long, env = "TABBY_KERNEL_PROTOCOL")]
    pub kernel_protocol: Option<u8>,

    /// Kernel routing table for Tabby's routes (254 = main).
    #[arg(long, env = "TABBY_KERNEL_TABLE", default_value_t = 254)]
    pub kernel_table: u32,

    /// Name of the IP-in-IP tunnel device that routes of `ipipMode` pools go
    /// through (onlink).
    #[arg(long, env = "TABBY_TUNNEL_DEVICE", default_value = "tunl0")]
    pub tunnel_device: String,

    /// Seconds to defer FIB changes after a restart while waiting for
    /// End-of-RIB from every peer.
    #[arg(long, env = "TABBY_DEFERRAL_TIME", default_value_t = 120)]
    pub deferral_time: u64,

    /// Most prefixes accepted from one peer in one address family; past it
    /// the session is closed with Cease / Maximum Number of Prefixes Reached
    /// (RFC 4486). 0 turns the limit off.
    #[arg(long, env = "TABBY_MAX_PREFIXES", default_value_t = 1_000_000)]
    pub max_prefixes: u32,

    /// Where Felix writes its endpoint status files (`EndpointStatusPathPrefix`): tabbyd
    /// reads PREFIX/endpoint-status for the workloads of `localWorkloadSelector` BGPPeers,
    /// as confd does, polled once a second. The variable is confd's.
    #[arg(
        long,
        global = true,
        env = "CALICO_ENDPOINT_STATUS_PATH_PREFIX",
        default_value = tabby_topology::DEFAULT_ENDPOINT_STATUS_PREFIX
    )]
    pub endpoint_status_path_prefix: PathBuf,

    /// Directory for the API socket and state (created if missing).
    #[arg(long, env = "TABBY_RUN_DIR", default_value = "/run/tabby")]
    pub run_dir: PathBuf,
}

/// What tabbyd does instead of running.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Derive a node's configuration from a datastore and print it, without
    /// opening a socket or touching the kernel: its peers with every session
    /// setting, originated routes, pools and policies (the effective-config
    /// document, docs/effective-config.md), and every resource that is
    /// invalid or cannot be honoured. Exit status: 0 when nothing was
    /// reported, 1 when something was, 2 when the datastore cannot be read
    /// or the node cannot be derived.
    Plan(PlanArgs),
    /// Print every series `/metrics` can export, one a line (name, type,
    /// help), whether or not it has samples yet, and exit: what dashboards
    /// and alerts can use. A scrape leaves out a family until its first
    /// sample (a counter of BFD drops before any drop).
    Metrics,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// The node to derive, as in its Calico `Node` resource.
    #[arg(long)]
    pub node: String,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = PlanFormat::Yaml)]
    pub output: PlanFormat,

    /// How long to wait for the datastore's first complete read.
    #[arg(long, default_value_t = 30)]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_env_names_are_documented() {
        let a = Args::try_parse_from(["tabbyd", "--node-name", "n1", "--no-fib"]).unwrap();
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        assert!(a.no_fib);
        assert_eq!(a.kernel_table, 254);
        use clap::CommandFactory;
        Args::command().debug_assert();
        assert!(a.command.is_none());
        let p = Args::try_parse_from([
            "tabbyd",
            "plan",
            "--node",
            "node-a",
            "--datastore",
            "file:/tmp/c.yaml",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(p.datastore, "file:/tmp/c.yaml");
        assert_eq!(
            p.endpoint_status_path_prefix,
            PathBuf::from("/var/run/calico"),
            "Felix's default"
        );
        match p.command {
            Some(Command::Plan(pa)) => {
                assert_eq!(pa.node, "node-a");
                assert_eq!(pa.output, PlanFormat::Json);
            }
            other => panic!("{other:?}"),
        }
        let e = Args::try_parse_from([
            "tabbyd",
            "plan",
            "--node",
            "node-a",
            "--endpoint-status-path-prefix",
            "/tmp/felix",
        ])
        .unwrap();
        assert_eq!(e.endpoint_status_path_prefix, PathBuf::from("/tmp/felix"));
        let m = Args::try_parse_from(["tabbyd", "metrics"]).unwrap();
        assert!(matches!(m.command, Some(Command::Metrics)));
    }
}
