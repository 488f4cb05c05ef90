//! The Tabby lab: real routing daemons (BIRD 1.6, BIRD 2, GoBGP, FRR, ExaBGP,
//! etcd and, once built, `tabbyd`) in network namespaces on a real kernel,
//! and a real Kubernetes API server for the Kubernetes datastore.
//!
//! This crate owns the lab library (namespaces, links, daemons with generated
//! configurations, state queries, waits that dump everything on timeout,
//! process accounting), the interop scenarios under `tests/` and the
//! benchmark. It does not implement BGP: everything it knows of a daemon
//! comes from that daemon's own CLI.
//!
//! Addresses come only from the lab plan (`/work/shared/LAB.md`): peering on
//! 198.18.0.0/16 and 2001:db8:0::/48, prefixes from 100.64.0.0/10,
//! 198.19.0.0/16 and 2001:db8:1000::/36.
//!
//! ```no_run
//! use interop_tests::*;
//! # fn main() -> anyhow::Result<()> {
//! preflight(&[Need::Bird2, Need::GoBgp])?;
//! let mut lab = Lab::new("demo")?;
//! let (a, b) = (lab.ns("a")?, lab.ns("b")?);
//! let seg = lab.link(&a, &b)?;
//! let conf = Bird2Conf::new(seg.v4(&a)?)
//!     .blackhole("100.64.0.0/26".parse()?)
//!     .peer(Bird2Peer::ebgp("b", 65001, seg.v4(&b)?.into(), 65002));
//! let bird = lab.start_bird2(&a, "bird-a", &conf.render())?;
//! lab.wait_for("session up", std::time::Duration::from_secs(20), || bird.established("b"))?;
//! # Ok(()) }
//! ```

pub mod bench;
pub mod bird;
pub mod bird_conf;
pub mod cmd;
pub mod daemon;
pub mod etcd;
pub mod exabgp;
pub mod frr;
pub mod gobgp;
pub mod kernel;
pub mod kube;
pub mod lab;
pub mod netns;
pub mod pmacct;
pub mod preflight;
pub mod procfs;
pub mod raw;
pub mod tabbyd;

pub use bird::{Bird, BirdProtocol, BirdRoute};
pub use bird_conf::{
    Bird2Conf, Bird2Peer, CalicoBird1Conf, CalicoPeer, CalicoPool, Filter, MeshPeer, PoolMode,
    StaticRoute,
};
pub use daemon::{Control, Daemon, DaemonKind, Datastore, TabbydOpts, tabbyd_bin};
pub use etcd::{Etcd, EtcdOpts};
pub use exabgp::{ExaBgp, ExaBgpConf, ExaBgpNeighbor};
pub use frr::{Frr, FrrConf, FrrNeighbor, FrrPath, FrrPeer};
pub use gobgp::{GoBgp, GoBgpConf, GoBgpNeighbor, GoBgpPath, GoBgpPeer};
pub use kernel::{KernelNextHop, KernelRoute};
pub use kube::KubeApi;
pub use lab::{Lab, Member, Ns, Segment};
pub use netns::in_netns;
pub use pmacct::Pmbmpd;
pub use preflight::{Need, gobgp4_cli, preflight};
pub use procfs::ProcStats;
pub use raw::{RawBgp, RawMsg};
pub use tabbyd::Tabbyd;
