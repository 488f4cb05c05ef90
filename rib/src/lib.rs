//! Tabby's routing information base, free of I/O.
//!
//! Owns: Adj-RIB-In (post-policy, plus pre-policy with soft reconfiguration),
//! the Loc-RIB with the RFC 4271 / RFC 4456 decision process as one total
//! order ([`decision`]), ECMP, route reflection and export rules, import and
//! export policy ([`policy`]), Adj-RIB-Out through update groups (each
//! group carries its members' wire format and encodes every batch once),
//! and graceful-restart state (RFC 4724, RFC 8538, RFC 9494). Input is
//! events (`apply_update`, `peer_up`, `originate`, `on_timer(now)`, ...);
//! output is drained: [`Rib::drain_best_changes`] for fib-sync and API
//! watchers, [`Rib::drain_outgoing`] (encoded batches, one `Arc` for all
//! recipients) for the session layer.
//!
//! Does not own: sockets, timers or clocks (time is passed in), the wire
//! codec (`tabby-bgp`), the kernel (`tabby-fib-sync`) or configuration
//! parsing (`tabby-topology`).

pub mod as_path_prefix;
pub mod attrs;
pub mod decision;
mod dest_map;
mod explain;
pub mod export;
mod hash;
mod loc_rib;
mod monitor;
mod ordered;
pub mod policy;
mod rib;
pub mod types;
mod update_group;

pub use attrs::RouteAttrs;
pub use decision::Step;
pub use explain::{CandidateExplain, Explanation, ImportRejected, PeerExport};
pub use export::ExportDenied;
pub use monitor::AdjRibInRoute;
pub use policy::{Action, CidrOp, Match, Policy, Rule, SourceMatch, Verdict};
pub use rib::{ApplyOutcome, NextHopResolver, RejectReason, Rib, RibStats};
pub use types::*;
