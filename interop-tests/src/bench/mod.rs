//! The benchmark (issue 7): a lean BGP load generator of our own and the
//! runs that put BIRD 2, GoBGP, FRR and tabbyd under the same load as a
//! route reflector. `cargo run --release -p interop-tests --bin bench`.
//!
//! - [`generator`]: many sessions from one namespace, pre-encoded UPDATEs,
//!   observers that decode, drains that do not.
//! - [`anchors`]: each daemon's configuration as the reflector.
//! - [`scenario`]: one run in a fresh lab, with CPU and peak RSS.
//! - [`report`]: markdown tables with medians and ratios to the best anchor.
//! - [`e2e`]: (d) AnnounceRoutes on one tabbyd until the route is in its
//!   peer's kernel; [`api`]: bulk AnnounceRoutes and WatchRoutes under load.
//!   Both run on [`pair`] (two tabbyds), through [`client`] (the gRPC API)
//!   and [`monitor`] (an rtnetlink route monitor in a namespace).
//! - [`fib`]: (c) routes into a namespace's kernel by tabby-fib-sync,
//!   `ip -batch` and BIRD 2.
//! - [`kdd`]: the Kubernetes datastore against a real kube-apiserver
//!   (BGPPeer apply → Established, a 5,000-node cluster listed and derived,
//!   one Node's change).
//! - [`churn`]: a cluster of tabbyds (and of BIRD 2 nodes, the baseline)
//!   under route churn, latency to every other node's kernel.

pub mod anchors;
pub mod api;
pub mod bfd;
pub mod bfd_gen;
pub mod churn;
pub mod client;
pub mod e2e;
pub mod fib;
pub mod generator;
pub mod kdd;
pub mod monitor;
pub mod pair;
pub mod report;
pub mod scenario;

pub use anchors::Dut;
pub use generator::{GenOutcome, Load, Phase, SessionSpec};
pub use report::{Row, table, table_staged};
pub use scenario::{RunOpts, RunResult, Shape, Unavailable, run_once};
