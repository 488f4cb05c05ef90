//! GoBGP-compatible gRPC services, so GoBGP's `gobgp` CLI and other GoBGP
//! clients work against tabbyd, each version on its own listener:
//! [`GobgpService`] serves v3 (package apipb, `GobgpApi`) and
//! [`GoBgpV4Service`] serves v4 (package api, `GoBgpService`).
//!
//! Both serve one subset over the same [`Core`]: `gobgp global`,
//! `neighbor [ADDR]`, `neighbor ADDR adj-in|adj-out|reset|softreset|enable|
//! disable`, `global rib [-a ipv4|ipv6] [add|del]`, `global rib summary`,
//! `monitor global rib` and `monitor neighbor` (v3 also `neighbor add|del`).
//! Every other method answers UNIMPLEMENTED with a message saying so.
//!
//! The versions differ in how they carry NLRI, path attributes and
//! capabilities (v3 packs them in `Any`, v4 in typed oneofs) and in how
//! their enums are numbered. Everything else is shared: the modules below
//! work in version-neutral terms and in v3's Rust types, which v4 reuses for
//! messages whose wire form did not change (tabby-proto's build.rs).

mod backend;
mod events;
mod mirror;
mod paths;
mod peers;
mod unimplemented;
pub mod v3;
pub mod v4;

pub use unimplemented::ExplainUnimplemented;
pub use v3::GobgpService;
pub use v4::GoBgpV4Service;

/// The owner recorded for routes added with `gobgp global rib add` (either
/// version: a route added through v3 can be deleted through v4).
pub const GOBGP_OWNER: &str = "gobgp-api";
