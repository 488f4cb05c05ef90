//! tabby-proto: the Protocol Buffers of Tabby's gRPC API.
//!
//! Owns the `.proto` files and the Rust code generated from them:
//! - [`v1`]: package `tabby.v1`, the Routes, Peers and Daemon services;
//! - [`gobgp`]: package `apipb`, the subset of GoBGP v3's `GobgpApi` that the
//!   stock `gobgp` CLI needs (same message names and field numbers);
//! - [`gobgp4`]: package `api`, the subset of GoBGP v4's `GoBgpService` that
//!   the 4.x `gobgp` CLI needs. Messages v4 left unchanged on the wire are
//!   v3's (its `.proto` names them `apipb.X`), so they are the [`gobgp`]
//!   Rust types (e.g. `gobgp4::Peer::timers` is a `gobgp::Timers`).
//!
//! It does not own any server logic: `tabby-api` implements the services and
//! `tabbyctl` is a client.

/// Package `tabby.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("tabby.v1");
}

/// Package `apipb`: the GoBGP v3 compatible subset.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod gobgp {
    tonic::include_proto!("apipb");

    /// The `type_url` prefix Go's `anypb` uses for messages packed in
    /// `google.protobuf.Any`.
    pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/apipb.";
}

/// Package `api`: the GoBGP v4 compatible subset.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod gobgp4 {
    include!(concat!(env!("OUT_DIR"), "/gobgp4/api.rs"));
}

/// Encoded `FileDescriptorSet` of `tabby.v1`, for server reflection.
pub const TABBY_V1_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("tabby_v1_descriptor");

/// Encoded `FileDescriptorSet` of the GoBGP subset, for server reflection.
pub const GOBGP_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gobgp_descriptor");

/// Encoded `FileDescriptorSet` of the GoBGP v4 subset.
pub const GOBGP4_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gobgp4_descriptor");
