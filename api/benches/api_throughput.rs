//! API throughput (a bench binary, not a timed test):
//! 1. 100k routes in one AnnounceRoutes call over the unix socket: decode,
//!    validation and conversion cost, into a core that only stores them.
//! 2. WatchRoutes with 10 watchers during 100k changes: delivery rate and how
//!    many resyncs the bounded buffers caused.
//!
//! Run: cargo bench -p tabby-api --bench api_throughput

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tabby_api::model::*;
use tabby_api::{ApiConfig, Core, CoreError, RouteJournal};
use tabby_proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::transport::{Endpoint, Uri};

struct StoreCore {
    routes: Mutex<(HashMap<IpNet, LocalRoute>, RouteJournal)>,
}

fn nope() -> CoreError {
    CoreError::Unimplemented("not in this bench".into())
}

#[tonic::async_trait]
impl Core for StoreCore {
    async fn announce_routes(
        &self,
        owner: Owner,
        routes: Vec<LocalRoute>,
    ) -> Result<RouteChange, CoreError> {
        let mut g = self.routes.lock().map_err(|_| nope())?;
        let mut c = RouteChange::default();
        for r in routes {
            let best = Path {
                next_hop: r.next_hop.unwrap_or(IpAddr::from([198, 18, 0, 1])),
                as_path: vec![],
                origin: Origin::Igp,
                local_pref: 100,
                med: None,
                communities: r.communities.clone(),
                large_communities: vec![],
                source: PathSource::Local(owner.clone()),
                best: true,
                age_seconds: 0,
                kind: r.kind,
                stale: false,
            };
            let prefix = r.prefix;
            if g.0.insert(prefix, r).is_none() {
                c.added += 1;
            } else {
                c.updated += 1;
            }
            g.1.publish(RouteUpdate::BestChanged { prefix, best });
        }
        c.sequence = g.1.sequence();
        Ok(c)
    }
    async fn withdraw_routes(&self, _: Owner, _: Vec<IpNet>) -> Result<RouteChange, CoreError> {
        Err(nope())
    }
    async fn replace_routes(&self, _: Owner, _: Vec<LocalRoute>) -> Result<RouteChange, CoreError> {
        Err(nope())
    }
    async fn list_routes(&self, _: RouteQuery) -> Result<RoutePage, CoreError> {
        Err(nope())
    }
    async fn watch_routes(&self, resume_from: Option<u64>) -> Result<RouteWatch, CoreError> {
        let g = self.routes.lock().map_err(|_| nope())?;
        Ok(g.1
            .watch(resume_from, Vec::new, |prefix| RouteUpdate::Withdrawn {
                prefix,
            }))
    }
    async fn explain_route(&self, _: IpNet) -> Result<RouteExplanation, CoreError> {
        Err(nope())
    }
    async fn list_adj_rib(
        &self,
        _: PeerRef,
        _: AdjRib,
        _: Family,
    ) -> Result<Vec<Route>, CoreError> {
        Err(nope())
    }
    async fn list_peers(&self) -> Result<Vec<PeerStatus>, CoreError> {
        Ok(vec![])
    }
    async fn get_peer(&self, _: PeerRef) -> Result<PeerStatus, CoreError> {
        Err(nope())
    }
    async fn add_peer(&self, _: PeerConfig) -> Result<PeerStatus, CoreError> {
        Err(nope())
    }
    async fn delete_peer(&self, _: PeerRef) -> Result<(), CoreError> {
        Err(nope())
    }
    async fn enable_peer(&self, _: PeerRef) -> Result<PeerStatus, CoreError> {
        Err(nope())
    }
    async fn disable_peer(&self, _: PeerRef, _: Option<String>) -> Result<PeerStatus, CoreError> {
        Err(nope())
    }
    async fn reset_peer(
        &self,
        _: PeerRef,
        _: ResetKind,
        _: Option<String>,
    ) -> Result<PeerStatus, CoreError> {
        Err(nope())
    }
    async fn watch_peers(&self) -> Result<PeerWatch, CoreError> {
        Err(nope())
    }
    async fn status(&self) -> Result<DaemonStatus, CoreError> {
        Err(nope())
    }
    async fn set_log_level(&self, _: String) -> Result<String, CoreError> {
        Err(nope())
    }
    async fn effective_config(&self) -> Result<String, CoreError> {
        Err(nope())
    }
    async fn health(&self) -> Health {
        Health {
            live: true,
            ready: true,
            reasons: vec![],
        }
    }
}

fn routes(n: u32, salt: u32) -> Vec<pb::LocalRoute> {
    (0..n)
        .map(|i| {
            // 100.64.0.0/10 holds 16,384 /24s; vary the length for more.
            let len = 24 + (i / 16_384) % 9;
            let host = (i % 16_384) << 8 | (salt & 0xff);
            let addr = u32::from_be_bytes([100, 64, 0, 0]) | host;
            let net = IpNet::new(IpAddr::from(addr.to_be_bytes()), len as u8).map(|n| n.trunc());
            pb::LocalRoute {
                prefix: net.map(|n| n.to_string()).unwrap_or_default(),
                kind: pb::RouteKind::PodBlock as i32,
                communities: vec![65000 << 16 | 1],
                ..Default::default()
            }
        })
        .collect()
}

fn dedup(mut v: Vec<pb::LocalRoute>) -> Vec<pb::LocalRoute> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|r| seen.insert(r.prefix.clone()));
    v
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("tabby-api-bench-{}", std::process::id()));
    let socket = dir.join("tabbyd.sock");
    let core = Arc::new(StoreCore {
        routes: Mutex::new((HashMap::new(), RouteJournal::new(4096, 4096))),
    });
    let bound = tabby_api::bind(
        core.clone(),
        ApiConfig {
            unix_socket: Some(socket.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("bind");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.run(async move {
        let _ = rx.await;
    }));
    let s2 = socket.clone();
    let ch = Endpoint::from_static("http://bench.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = s2.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await
        .expect("connect");
    let mut c =
        pb::routes_client::RoutesClient::new(ch.clone()).max_encoding_message_size(128 << 20);

    // 1. Bulk announce.
    let batch = dedup(routes(100_000, 0));
    let n = batch.len();
    let mut rates = Vec::new();
    for round in 0..5 {
        let req = pb::AnnounceRoutesRequest {
            owner: format!("bench{round}"),
            routes: batch.clone(),
        };
        let t = Instant::now();
        c.announce_routes(req).await.expect("announce");
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "bulk AnnounceRoutes, {n} routes/call over unix socket: median {:.0} routes/s (min {:.0}, max {:.0}) over 5 calls",
        rates[2], rates[0], rates[4]
    );

    // 2. 10 watchers during 100k changes.
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let mut wc = pb::routes_client::RoutesClient::new(ch.clone());
        let mut s = wc
            .watch_routes(pb::WatchRoutesRequest::default())
            .await
            .expect("watch")
            .into_inner();
        watchers.push(tokio::spawn(async move {
            let (mut events, mut resyncs, mut last) = (0u64, 0u64, 0u64);
            while let Ok(Some(Ok(ev))) =
                tokio::time::timeout(Duration::from_secs(3), s.next()).await
            {
                events += 1;
                if ev.kind == pb::RouteEventKind::Resync as i32 {
                    resyncs += 1;
                }
                last = last.max(ev.sequence);
            }
            (events, resyncs, last)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start_seq = core.routes.lock().map(|g| g.1.sequence()).unwrap_or(0);
    let t = Instant::now();
    for chunk in 0..100u32 {
        let req = pb::AnnounceRoutesRequest {
            owner: "churn".into(),
            routes: dedup(routes(1000, chunk + 1)),
        };
        c.announce_routes(req).await.expect("churn");
    }
    let publish = t.elapsed();
    let end_seq = core.routes.lock().map(|g| g.1.sequence()).unwrap_or(0);
    let changes = end_seq - start_seq;
    let mut total = 0;
    for w in watchers {
        let (events, resyncs, last) = w.await.expect("watcher");
        total += events;
        println!(
            "  watcher: {events} events, {resyncs} resyncs, caught up to sequence {last} of {end_seq}"
        );
    }
    let wall = t.elapsed().as_secs_f64() - 3.0;
    println!(
        "WatchRoutes, 10 watchers, {changes} changes published in {:.2}s: {:.0} events/s delivered in total (~{:.0}/s per watcher)",
        publish.as_secs_f64(),
        total as f64 / wall.max(0.001),
        total as f64 / 10.0 / wall.max(0.001)
    );
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
}
