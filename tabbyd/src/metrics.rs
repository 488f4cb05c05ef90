//! Prometheus metrics at `/metrics`, and health at `/livez` and `/readyz` (200 or 503,
//! one reason per line: what a Kubernetes probe or an operator's `curl` reads), served
//! when `--metrics ADDR` is given.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerFamilyLabel {
    pub peer: String,
    pub family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BfdTransitionLabel {
    pub peer: String,
    /// `up`, `down` (a failure) or `admin_down` (the peer's, not a failure).
    pub to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Every metric tabbyd exports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sessions: Family<StateLabel, Gauge>,
    pub prefixes_received: Family<PeerFamilyLabel, Gauge>,
    pub prefixes_advertised: Family<PeerFamilyLabel, Gauge>,
    pub updates_in: Family<PeerLabel, Counter>,
    pub updates_out: Family<PeerLabel, Counter>,
    pub fib_operations: Family<KindLabel, Counter>,
    pub fib_errors: Family<KindLabel, Counter>,
    pub datastore_events: Family<KindLabel, Counter>,
    pub api_calls: Family<KindLabel, Counter>,
    pub bfd_sessions: Family<StateLabel, Gauge>,
    pub bfd_transitions: Family<BfdTransitionLabel, Counter>,
    pub bfd_packets_in: Counter,
    pub bfd_packets_out: Counter,
    pub bfd_dropped: Family<ReasonLabel, Counter>,
}

impl Metrics {
    pub fn register(self: &Arc<Self>) -> Registry {
        let mut r = Registry::with_prefix("tabby");
        r.register(
            "bgp_sessions",
            "BGP sessions by FSM state",
            self.sessions.clone(),
        );
        r.register(
            "bgp_prefixes_received",
            "Prefixes accepted from each peer, per address family",
            self.prefixes_received.clone(),
        );
        r.register(
            "bgp_prefixes_advertised",
            "Prefixes advertised to each peer, per address family",
            self.prefixes_advertised.clone(),
        );
        r.register(
            "bgp_updates_received",
            "UPDATE messages received per peer",
            self.updates_in.clone(),
        );
        r.register(
            "bgp_updates_sent",
            "UPDATE messages sent per peer",
            self.updates_out.clone(),
        );
        r.register(
            "fib_operations",
            "Kernel route operations by kind",
            self.fib_operations.clone(),
        );
        r.register(
            "fib_errors",
            "Kernel route operation errors by kind",
            self.fib_errors.clone(),
        );
        r.register(
            "datastore_events",
            "Datastore events by outcome",
            self.datastore_events.clone(),
        );
        r.register(
            "api_calls",
            "gRPC API calls by method",
            self.api_calls.clone(),
        );
        r.register(
            "bfd_sessions",
            "BFD sessions by state (starting, up, down, admin-down, unavailable)",
            self.bfd_sessions.clone(),
        );
        r.register(
            "bfd_transitions",
            "BFD session transitions per peer: to up, down (a failure) or admin_down",
            self.bfd_transitions.clone(),
        );
        r.register(
            "bfd_packets_received",
            "BFD datagrams received on the BFD ports, dropped or not",
            self.bfd_packets_in.clone(),
        );
        r.register(
            "bfd_packets_sent",
            "BFD packets sent",
            self.bfd_packets_out.clone(),
        );
        r.register(
            "bfd_packets_dropped",
            "BFD datagrams dropped without changing any session, by reason",
            self.bfd_dropped.clone(),
        );
        r
    }
}

/// Brings computed gauges up to date just before a scrape.
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

/// The daemon's health now: (live, ready, reasons).
pub type HealthCheck = Arc<dyn Fn() -> (bool, bool, Vec<String>) + Send + Sync>;

/// Serves `/metrics`, `/livez` and `/readyz` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    refresh: Refresh,
    health: HealthCheck,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {addr}: {e}; choose another --metrics address"),
        )
    })?;
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    loop {
        let (stream, _) = listener.accept().await?;
        let registry = registry.clone();
        let refresh = refresh.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let registry = registry.clone();
                let refresh = refresh.clone();
                let health = health.clone();
                async move {
                    let path = req.uri().path();
                    if path == "/livez" || path == "/readyz" {
                        let (live, ready, reasons) = health();
                        let ok = if path == "/livez" { live } else { ready };
                        return Ok::<_, std::convert::Infallible>(health_response(ok, &reasons));
                    }
                    if path == "/metrics" {
                        refresh();
                    }
                    Ok::<_, std::convert::Infallible>(respond(&req, &registry))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

/// `ok` and nothing else, or 503 with one reason per line.
fn health_response(ok: bool, reasons: &[String]) -> Response<Full<Bytes>> {
    let mut body = if ok { "ok\n" } else { "not ready\n" }.to_string();
    for r in reasons {
        body.push_str(r);
        body.push('\n');
    }
    Response::builder()
        .status(if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        })
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn respond(req: &Request<hyper::body::Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(
                b"try /metrics, /livez or /readyz\n",
            )))
            .unwrap_or_default();
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Full::new(Bytes::from_static(b"encoding failed\n")))
            .unwrap_or_default();
    }
    Response::builder()
        .header(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_default()
}
