//! Listeners and the tonic server: a unix socket by default, TCP (with TLS)
//! only when configured, and the GoBGP-compatible services (v3, v4) only on
//! their own addresses when asked.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tabby_proto::v1 as pb;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::Core;
use crate::daemon::DaemonService;
use crate::gobgp::{ExplainUnimplemented, GoBgpV4Service, GobgpService};
use crate::peers::PeersService;
use crate::routes::RoutesService;

/// The default API socket.
pub const DEFAULT_SOCKET_PATH: &str = "/run/tabby/tabbyd.sock";

/// Health service name reporting liveness (the event loop answers).
pub const HEALTH_SERVICE_LIVENESS: &str = "liveness";
/// Health service name reporting readiness (every configured peer
/// Established, no graceful restart pending). The empty service name ""
/// reports the same.
pub const HEALTH_SERVICE_READINESS: &str = "readiness";

/// Every service name the health service reports on: "" and readiness
/// (ready), liveness, then one per tabby.v1 service (live).
const HEALTH_NAMES: [&str; 6] = [
    "",
    HEALTH_SERVICE_READINESS,
    HEALTH_SERVICE_LIVENESS,
    "tabby.v1.Routes",
    "tabby.v1.Peers",
    "tabby.v1.Daemon",
];

/// Size limits that protect the daemon from oversize requests and slow
/// watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most routes (or prefixes) in one Announce/Withdraw/Replace call.
    pub max_routes_per_request: usize,
    /// Largest decoded gRPC message in bytes.
    pub max_message_bytes: usize,
    /// ListRoutes page size when the client gives none.
    pub default_page_size: usize,
    /// Largest ListRoutes page size.
    pub max_page_size: usize,
    /// Events queued per watch stream before the feeding task waits (and
    /// eventually lags into a resync).
    pub watch_stream_buffer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_routes_per_request: 1_000_000,
            max_message_bytes: 128 * 1024 * 1024,
            default_page_size: 1_000,
            max_page_size: 10_000,
            watch_stream_buffer: 1_024,
        }
    }
}

/// TLS for the TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert_pem: PathBuf,
    /// PEM private key of the server.
    pub key_pem: PathBuf,
    /// When set, clients must present a certificate signed by this PEM CA.
    pub client_ca_pem: Option<PathBuf>,
}

/// The TCP listener for tabby.v1, off unless configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpListen {
    /// Address to listen on, e.g. 127.0.0.1:50061.
    pub addr: SocketAddr,
    /// TLS; `None` means plaintext, which the daemon should allow only on
    /// loopback.
    pub tls: Option<TlsConfig>,
}

/// Where and how the API listens.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// The unix socket; `None` disables it. Its parent directory is created.
    pub unix_socket: Option<PathBuf>,
    /// Mode of the socket file (0o660: owner and the socket's group).
    pub unix_socket_mode: u32,
    /// Group (gid) to give the socket, so operators in that group can use
    /// tabbyctl without root; `None` keeps the daemon's group.
    pub unix_socket_group: Option<u32>,
    /// TCP listener for tabby.v1, off by default.
    pub tcp: Option<TcpListen>,
    /// Address for the GoBGP v3 compatible API (plaintext, like GoBGP), off
    /// by default; e.g. 127.0.0.1:50051.
    pub gobgp: Option<SocketAddr>,
    /// Address for the GoBGP v4 compatible API (plaintext), off by default;
    /// may be on beside the v3 one, on another port.
    pub gobgp_v4: Option<SocketAddr>,
    /// How often the health service asks the core.
    pub health_interval: Duration,
    /// Request and stream limits.
    pub limits: Limits,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            unix_socket: Some(PathBuf::from(DEFAULT_SOCKET_PATH)),
            unix_socket_mode: 0o660,
            unix_socket_group: None,
            tcp: None,
            gobgp: None,
            gobgp_v4: None,
            health_interval: Duration::from_secs(1),
            limits: Limits::default(),
        }
    }
}

/// Why the API could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be set up.
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// What was being set up.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process answers on the socket already.
    #[error(
        "{0} is in use by a running process (another tabbyd?); stop it or choose another socket path"
    )]
    SocketInUse(PathBuf),
    /// TLS material could not be read or used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Listeners bound and ready; [`BoundApi::run`] serves them.
pub struct BoundApi {
    core: Arc<dyn Core>,
    config: ApiConfig,
    unix: Option<(PathBuf, UnixListener)>,
    tcp: Option<TcpListener>,
    gobgp: Option<TcpListener>,
    gobgp_v4: Option<TcpListener>,
}

impl std::fmt::Debug for BoundApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundApi")
            .field("unix", &self.unix_socket())
            .field("tcp", &self.tcp_addr())
            .field("gobgp", &self.gobgp_addr())
            .field("gobgp_v4", &self.gobgp_v4_addr())
            .finish_non_exhaustive()
    }
}

fn listen_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Listen { what, source }
}

async fn bind_unix(path: &Path, mode: u32, group: Option<u32>) -> Result<UnixListener, ServeError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(listen_err(format!("directory {}", dir.display())))?;
    }
    if path.exists() {
        // A socket file left by a crashed daemon is removed; one that still
        // answers belongs to a running daemon and is left alone.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::SocketInUse(path.to_path_buf()));
        }
        std::fs::remove_file(path)
            .map_err(listen_err(format!("stale socket {}", path.display())))?;
    }
    let l =
        UnixListener::bind(path).map_err(listen_err(format!("unix socket {}", path.display())))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(listen_err(format!("group {gid} of {}", path.display())))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(listen_err(format!("mode of {}", path.display())))?;
    Ok(l)
}

/// Binds every configured listener. Errors here (socket in use, port taken,
/// permission denied) are the ones an operator must fix before start-up.
pub async fn bind(core: Arc<dyn Core>, config: ApiConfig) -> Result<BoundApi, ServeError> {
    let unix = match &config.unix_socket {
        Some(p) => Some((
            p.clone(),
            bind_unix(p, config.unix_socket_mode, config.unix_socket_group).await?,
        )),
        None => None,
    };
    if let Some(t) = config
        .tcp
        .as_ref()
        .filter(|t| t.tls.is_none() && !t.addr.ip().is_loopback())
    {
        // Anyone who can reach the port could steer BGP sessions.
        tracing::warn!(addr = %t.addr, "API on a non-loopback TCP address without TLS; configure TLS with client certificates");
    }
    let tcp = match &config.tcp {
        Some(t) => Some(
            TcpListener::bind(t.addr)
                .await
                .map_err(listen_err(format!("TCP {}", t.addr)))?,
        ),
        None => None,
    };
    let gobgp = bind_gobgp(config.gobgp, "GoBGP v3 API").await?;
    let gobgp_v4 = bind_gobgp(config.gobgp_v4, "GoBGP v4 API").await?;
    Ok(BoundApi {
        core,
        config,
        unix,
        tcp,
        gobgp,
        gobgp_v4,
    })
}

async fn bind_gobgp(
    addr: Option<SocketAddr>,
    what: &str,
) -> Result<Option<TcpListener>, ServeError> {
    match addr {
        Some(a) => Ok(Some(
            TcpListener::bind(a)
                .await
                .map_err(listen_err(format!("{what} {a}")))?,
        )),
        None => Ok(None),
    }
}

/// Binds and serves until `shutdown` completes. The daemon's entry point.
pub async fn serve(
    core: Arc<dyn Core>,
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    bind(core, config).await?.run(shutdown).await
}

fn tls_config(t: &TlsConfig) -> Result<ServerTlsConfig, ServeError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| ServeError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let mut c =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&t.cert_pem)?, read(&t.key_pem)?));
    if let Some(ca) = &t.client_ca_pem {
        c = c
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(false);
    }
    Ok(c)
}

impl BoundApi {
    /// The unix socket path, if any.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(p, _)| p.as_path())
    }

    /// The bound tabby.v1 TCP address (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound GoBGP v3 API address (useful with port 0).
    pub fn gobgp_addr(&self) -> Option<SocketAddr> {
        self.gobgp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound GoBGP v4 API address (useful with port 0).
    pub fn gobgp_v4_addr(&self) -> Option<SocketAddr> {
        self.gobgp_v4.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves every listener until `shutdown` completes, then removes the
    /// unix socket file.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let BoundApi {
            core,
            config,
            unix,
            tcp,
            gobgp,
            gobgp_v4,
        } = self;
        let limits = config.limits;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let (reporter, health_service) = tonic_health::server::health_reporter();
        // Known names answer NOT_SERVING until the first report, rather
        // than NOT_FOUND.
        for svc in HEALTH_NAMES {
            reporter
                .set_service_status(svc, ServingStatus::NotServing)
                .await;
        }
        let health_task = tokio::spawn(report_health(
            Arc::clone(&core),
            reporter,
            config.health_interval,
            stop_rx.clone(),
        ));

        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tabby_proto::TABBY_V1_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServeError::Tls(format!("reflection descriptors: {e}")))?;
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tabby_proto::TABBY_V1_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| ServeError::Tls(format!("reflection descriptors: {e}")))?;

        let routes = pb::routes_server::RoutesServer::new(RoutesService::new(
            Arc::clone(&core),
            limits,
            stop_rx.clone(),
        ))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
        let peers = pb::peers_server::PeersServer::new(PeersService::new(
            Arc::clone(&core),
            limits,
            stop_rx.clone(),
        ));
        let daemon = pb::daemon_server::DaemonServer::new(DaemonService::new(Arc::clone(&core)));

        let make_router = |tls: Option<ServerTlsConfig>| -> Result<_, ServeError> {
            let mut b = Server::builder().http2_keepalive_interval(Some(Duration::from_secs(30)));
            if let Some(t) = tls {
                b = b.tls_config(t)?;
            }
            Ok(b.add_service(routes.clone())
                .add_service(peers.clone())
                .add_service(daemon.clone())
                .add_service(health_service.clone())
                .add_service(reflection.clone())
                .add_service(reflection_alpha.clone()))
        };

        let mut tasks = tokio::task::JoinSet::new();
        let mut socket_file = None;
        if let Some((path, listener)) = unix {
            tracing::info!(socket = %path.display(), "API listening on unix socket");
            let router = make_router(None)?;
            let rx = stop_rx.clone();
            socket_file = Some(path);
            tasks.spawn(async move {
                router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stopped(rx))
                    .await
            });
        }
        if let Some(listener) = tcp {
            let tls = match config.tcp.as_ref().and_then(|t| t.tls.as_ref()) {
                Some(t) => Some(tls_config(t)?),
                None => None,
            };
            tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "API listening on TCP");
            let router = make_router(tls)?;
            let rx = stop_rx.clone();
            tasks.spawn(async move {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped(rx))
                    .await
            });
        }
        if let Some(listener) = gobgp {
            tracing::info!(addr = ?listener.local_addr().ok(), "GoBGP v3 compatible API listening");
            let svc = tabby_proto::gobgp::gobgp_api_server::GobgpApiServer::new(GobgpService::new(
                Arc::clone(&core),
                limits,
                stop_rx.clone(),
            ))
            .max_decoding_message_size(limits.max_message_bytes);
            let router = Server::builder().add_service(ExplainUnimplemented::new(svc));
            let rx = stop_rx.clone();
            tasks.spawn(async move {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped(rx))
                    .await
            });
        }
        if let Some(listener) = gobgp_v4 {
            tracing::info!(addr = ?listener.local_addr().ok(), "GoBGP v4 compatible API listening");
            let svc = tabby_proto::gobgp4::go_bgp_service_server::GoBgpServiceServer::new(
                GoBgpV4Service::new(Arc::clone(&core), limits, stop_rx.clone()),
            )
            .max_decoding_message_size(limits.max_message_bytes);
            let router = Server::builder().add_service(ExplainUnimplemented::new(svc));
            let rx = stop_rx.clone();
            tasks.spawn(async move {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped(rx))
                    .await
            });
        }

        let result = tokio::select! {
            _ = shutdown => Ok(()),
            Some(r) = tasks.join_next() => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(ServeError::from(e)),
                Err(e) => Err(ServeError::Listen { what: "server task".into(), source: std::io::Error::other(e.to_string()) }),
            },
        };
        let _ = stop_tx.send(true);
        // Streams end on the stop signal; a client that never reads its
        // GOAWAY does not hold the daemon up for long.
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!("API connections still open after {SHUTDOWN_GRACE:?}; closing them");
            tasks.abort_all();
        }
        health_task.abort();
        if let Some(p) = socket_file {
            let _ = std::fs::remove_file(&p);
        }
        result
    }
}

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs a stream-feeding task until it ends or the server stops; on stop the
/// client gets UNAVAILABLE so it knows to reconnect (and resume).
pub(crate) async fn until_stopped<T, F>(
    mut stop: watch::Receiver<bool>,
    tx: tokio::sync::mpsc::Sender<Result<T, tonic::Status>>,
    task: F,
) where
    F: Future<Output = ()>,
{
    tokio::select! {
        _ = task => {}
        _ = stop.wait_for(|s| *s) => {
            let _ = tx.try_send(Err(tonic::Status::unavailable(
                "tabbyd is shutting down: reconnect and resume from the last sequence",
            )));
        }
    }
}

/// Polls [`Core::health`] and publishes it through grpc.health.v1.
async fn report_health(
    core: Arc<dyn Core>,
    reporter: tonic_health::server::HealthReporter,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let status = |ok: bool| {
        if ok {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // A core that does not answer in time is not live.
        let h = tokio::time::timeout(interval.max(Duration::from_millis(500)), core.health())
            .await
            .unwrap_or_else(|_| crate::model::Health {
                live: false,
                ready: false,
                reasons: vec!["core did not answer the health check in time".into()],
            });
        reporter
            .set_service_status(HEALTH_SERVICE_LIVENESS, status(h.live))
            .await;
        let ready = status(h.live && h.ready);
        reporter
            .set_service_status(HEALTH_SERVICE_READINESS, ready)
            .await;
        reporter.set_service_status("", ready).await;
        for svc in &HEALTH_NAMES[3..] {
            reporter.set_service_status(svc, status(h.live)).await;
        }
    }
}
