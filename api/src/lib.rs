//! tabby-api: Tabby's gRPC server.
//!
//! Owns the tonic services for `tabby.v1` (Routes, Peers, Daemon), the
//! grpc.health.v1 health and reflection services, the GoBGP v3 and v4
//! compatible subsets, the listeners (unix socket by default, TCP with TLS when
//! configured) and the validation of everything clients send.
//!
//! It does not own any routing state: it reaches the daemon core through the
//! [`Core`] trait, in the plain types of [`model`]. It knows nothing of
//! netlink, BGP sockets or the RIB's internals; `tabbyd` implements [`Core`]
//! and calls [`serve`].

pub mod convert;
pub mod core;
pub mod daemon;
pub mod gobgp;
pub mod journal;
pub mod model;
pub mod peers;
pub mod routes;
pub mod server;

pub use crate::core::{Core, CoreError};
pub use crate::journal::{Feed, RouteJournal};
pub use crate::server::{
    ApiConfig, BoundApi, DEFAULT_SOCKET_PATH, HEALTH_SERVICE_LIVENESS, HEALTH_SERVICE_READINESS,
    Limits, ServeError, TcpListen, TlsConfig, bind, serve,
};
