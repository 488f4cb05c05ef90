//! Prometheus metrics at `/metrics`, and health at `/livez` and `/readyz` (200 or 503,
//! one reason per line: what a Kubernetes probe or an operator's `curl` reads), served
//! when `--metrics ADDR` is given.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};
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
pub struct SessionTransitionLabel {
    pub peer: String,
    /// `established`, or `down` (left Established).
    pub to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StationLabel {
    /// A BMP station's ADDRESS:PORT.
    pub station: String,
}

/// Every metric tabbyd exports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sessions: Family<StateLabel, Gauge>,
    pub session_transitions: Family<SessionTransitionLabel, Counter>,
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
    pub bmp_sent: Family<StationLabel, Counter>,
    pub bmp_dropped: Family<StationLabel, Counter>,
    pub bmp_resyncs: Family<StationLabel, Counter>,
}

impl Metrics {
    /// The registry `/metrics` encodes.
    pub fn register(self: &Arc<Self>) -> Registry {
        self.catalogue().registry
    }

    /// Every series `/metrics` can export, with or without samples yet (an
    /// empty family is left out of a scrape): `tabbyd metrics`.
    pub fn describe(&self) -> Vec<Series> {
        self.catalogue().series
    }

    /// Registers every metric, noting each as it goes: one list for both.
    fn catalogue(&self) -> Catalogue {
        let mut r = Catalogue {
            registry: Registry::with_prefix(PREFIX),
            series: Vec::new(),
        };
        r.add(
            "bgp_sessions",
            "BGP sessions by FSM state",
            self.sessions.clone(),
        );
        r.add(
            "bgp_session_transitions",
            "BGP sessions reaching Established (to=established) or leaving it (to=down), per peer",
            self.session_transitions.clone(),
        );
        r.add(
            "bgp_prefixes_received",
            "Prefixes accepted from each peer, per address family",
            self.prefixes_received.clone(),
        );
        r.add(
            "bgp_prefixes_advertised",
            "Prefixes advertised to each peer, per address family",
            self.prefixes_advertised.clone(),
        );
        r.add(
            "bgp_updates_received",
            "UPDATE messages received per peer",
            self.updates_in.clone(),
        );
        r.add(
            "bgp_updates_sent",
            "UPDATE messages sent per peer",
            self.updates_out.clone(),
        );
        r.add(
            "fib_operations",
            "Kernel route operations by kind",
            self.fib_operations.clone(),
        );
        r.add(
            "fib_errors",
            "Kernel route operation errors by kind",
            self.fib_errors.clone(),
        );
        r.add(
            "datastore_events",
            "Datastore events by outcome",
            self.datastore_events.clone(),
        );
        r.add(
            "api_calls",
            "gRPC API calls by method",
            self.api_calls.clone(),
        );
        r.add(
            "bfd_sessions",
            "BFD sessions by state (starting, up, down, admin-down, unavailable)",
            self.bfd_sessions.clone(),
        );
        r.add(
            "bfd_transitions",
            "BFD session transitions per peer: to up, down (a failure) or admin_down",
            self.bfd_transitions.clone(),
        );
        r.add(
            "bfd_packets_received",
            "BFD datagrams received on the BFD ports, dropped or not",
            self.bfd_packets_in.clone(),
        );
        r.add(
            "bfd_packets_sent",
            "BFD packets sent",
            self.bfd_packets_out.clone(),
        );
        r.add(
            "bfd_packets_dropped",
            "BFD datagrams dropped without changing any session, by reason",
            self.bfd_dropped.clone(),
        );
        r.add(
            "bmp_messages_sent",
            "BMP messages written to each monitoring station",
            self.bmp_sent.clone(),
        );
        r.add(
            "bmp_dropped",
            "Events not delivered to a BMP station whose queue was full; each overflow makes it resynchronise",
            self.bmp_dropped.clone(),
        );
        r.add(
            "bmp_resyncs",
            "Full-state dumps sent to a BMP station (every connection starts with one)",
            self.bmp_resyncs.clone(),
        );
        r
    }
}

/// What every exported name starts with.
const PREFIX: &str = "tabby";

/// One series as a scrape names its samples (a counter's with `_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    /// `counter`, `gauge`, … (OpenMetrics).
    pub kind: String,
    pub help: String,
}

/// A registry being filled, and the series it will export.
struct Catalogue {
    registry: Registry,
    series: Vec<Series>,
}

impl Catalogue {
    fn add(&mut self, name: &str, help: &str, metric: impl Metric) {
        let kind = metric.metric_type();
        let family = format!("{PREFIX}_{name}");
        // The sample names of the OpenMetrics text encoding.
        let suffixes: &[&str] = match kind {
            MetricType::Counter => &["_total"],
            MetricType::Histogram => &["_bucket", "_sum", "_count"],
            MetricType::Info => &["_info"],
            MetricType::Gauge | MetricType::Unknown => &[""],
        };
        for suffix in suffixes {
            self.series.push(Series {
                name: format!("{family}{suffix}"),
                kind: kind.as_str().to_owned(),
                help: help.to_owned(),
            });
        }
        self.registry.register(name, help, metric);
    }
}

/// `tabbyd metrics`: every series, aligned as `NAME  TYPE  HELP`.
pub fn print_series() -> ExitCode {
    let series = Metrics::default().describe();
    let width = series.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &series {
        println!("{:<width$}  {:<7}  {}", s.name, s.kind, s.help);
    }
    ExitCode::SUCCESS
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The series listed are the sample names a scrape shows once every
    /// family has a sample.
    #[test]
    fn described_series_are_what_a_scrape_names() {
        let m = Arc::new(Metrics::default());
        let state = StateLabel {
            state: "Established".into(),
        };
        let pf = PeerFamilyLabel {
            peer: "198.18.0.1".into(),
            family: "ipv4".into(),
        };
        let peer = PeerLabel {
            peer: "198.18.0.1".into(),
        };
        let kind = KindLabel { kind: "set".into() };
        m.sessions.get_or_create(&state).inc();
        m.session_transitions
            .get_or_create(&SessionTransitionLabel {
                peer: "198.18.0.1".into(),
                to: "established".into(),
            })
            .inc();
        m.prefixes_received.get_or_create(&pf).set(1);
        m.prefixes_advertised.get_or_create(&pf).set(1);
        m.updates_in.get_or_create(&peer).inc();
        m.updates_out.get_or_create(&peer).inc();
        m.fib_operations.get_or_create(&kind).inc();
        m.fib_errors.get_or_create(&kind).inc();
        m.datastore_events.get_or_create(&kind).inc();
        m.api_calls.get_or_create(&kind).inc();
        m.bfd_sessions.get_or_create(&state).inc();
        m.bfd_transitions
            .get_or_create(&BfdTransitionLabel {
                peer: "198.18.0.1".into(),
                to: "up".into(),
            })
            .inc();
        m.bfd_packets_in.inc();
        m.bfd_packets_out.inc();
        m.bfd_dropped
            .get_or_create(&ReasonLabel {
                reason: "malformed".into(),
            })
            .inc();
        let station = StationLabel {
            station: "192.0.2.10:1790".into(),
        };
        m.bmp_sent.get_or_create(&station).inc();
        m.bmp_dropped.get_or_create(&station).inc();
        m.bmp_resyncs.get_or_create(&station).inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.register()).unwrap();
        let scraped: BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let described = m.describe();
        let names: BTreeSet<&str> = described.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names, scraped,
            "a metric added to Metrics needs a sample here"
        );
        assert_eq!(names.len(), described.len(), "a series is listed twice");
        assert!(described.iter().all(|s| !s.help.is_empty()));
    }
}
