//! The benchmark's gRPC client of tabbyd's `tabby.v1` API over its unix
//! socket (the file system is not namespaced, so any namespace can use it).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use hyper_util::rt::TokioIo;
use ipnet::Ipv4Net;
use tabby_proto::v1 as pb;
use tonic::transport::{Channel, Endpoint, Uri};

/// The owner every benchmark route is announced for.
pub const OWNER: &str = "bench";

/// A connection to one tabbyd.
#[derive(Debug, Clone)]
pub struct Api {
    pub routes: pb::routes_client::RoutesClient<Channel>,
    pub daemon: pb::daemon_client::DaemonClient<Channel>,
    pub peers: pb::peers_client::PeersClient<Channel>,
}

impl Api {
    /// Connects to the unix socket at `path`.
    pub async fn connect(path: &Path) -> Result<Api> {
        let p: PathBuf = path.to_path_buf();
        let channel = Endpoint::from_static("http://tabbyd.invalid")
            .connect_timeout(Duration::from_secs(3))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let p = p.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
                }
            }))
            .await
            .with_context(|| format!("cannot reach tabbyd's API at {}", path.display()))?;
        Ok(Api {
            routes: pb::routes_client::RoutesClient::new(channel.clone())
                // 100k routes make a request of a few MB; tonic's 4 MB default
                // limit applies to decoding, so lift it for both directions.
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
            daemon: pb::daemon_client::DaemonClient::new(channel.clone()),
            peers: pb::peers_client::PeersClient::new(channel),
        })
    }

    /// Announces `prefixes` as host routes of [`OWNER`] in one call.
    pub async fn announce(&mut self, prefixes: &[Ipv4Net]) -> Result<pb::RouteChangeResponse> {
        let req = pb::AnnounceRoutesRequest {
            owner: OWNER.into(),
            routes: prefixes.iter().map(|p| host_route(*p)).collect(),
        };
        Ok(self
            .routes
            .announce_routes(req)
            .await
            .map_err(|s| anyhow!("AnnounceRoutes: {}", s.message()))?
            .into_inner())
    }

    /// Replaces the whole set of [`OWNER`]'s routes with `prefixes` (/32s as
    /// host routes, shorter prefixes as pod blocks) in one call.
    pub async fn replace(&mut self, prefixes: &[Ipv4Net]) -> Result<pb::RouteChangeResponse> {
        let req = pb::ReplaceRoutesRequest {
            owner: OWNER.into(),
            routes: prefixes.iter().map(|p| host_route(*p)).collect(),
        };
        Ok(self
            .routes
            .replace_routes(req)
            .await
            .map_err(|s| anyhow!("ReplaceRoutes: {}", s.message()))?
            .into_inner())
    }

    /// Withdraws `prefixes` of [`OWNER`] in one call.
    pub async fn withdraw(&mut self, prefixes: &[Ipv4Net]) -> Result<pb::RouteChangeResponse> {
        let req = pb::WithdrawRoutesRequest {
            owner: OWNER.into(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        };
        Ok(self
            .routes
            .withdraw_routes(req)
            .await
            .map_err(|s| anyhow!("WithdrawRoutes: {}", s.message()))?
            .into_inner())
    }

    /// Opens a `WatchRoutes` stream over every family from the start (the
    /// snapshot, END_OF_SNAPSHOT, then live changes).
    pub async fn watch(&mut self) -> Result<tonic::Streaming<pb::RouteEvent>> {
        Ok(self
            .routes
            .watch_routes(pb::WatchRoutesRequest {
                family: 0,
                resume_from_sequence: 0,
            })
            .await
            .map_err(|s| anyhow!("WatchRoutes: {}", s.message()))?
            .into_inner())
    }

    /// The daemon's status.
    pub async fn status(&mut self) -> Result<pb::StatusResponse> {
        Ok(self
            .daemon
            .status(pb::StatusRequest {})
            .await
            .map_err(|s| anyhow!("Status: {}", s.message()))?
            .into_inner())
    }
}

fn host_route(p: Ipv4Net) -> pb::LocalRoute {
    pb::LocalRoute {
        prefix: p.to_string(),
        kind: if p.prefix_len() == 32 {
            pb::RouteKind::Host as i32
        } else {
            pb::RouteKind::PodBlock as i32
        },
        communities: vec![],
        large_communities: vec![],
        next_hop: String::new(),
        priority: None,
    }
}

/// `n` distinct /32s starting at `base` (lab prefix space, 100.64.0.0/10).
pub fn host_prefixes(base: Ipv4Addr, n: usize) -> Vec<Ipv4Net> {
    let b = u32::from(base);
    (0..n as u32)
        .filter_map(|i| Ipv4Net::new(Ipv4Addr::from(b.wrapping_add(i)), 32).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_prefixes_are_consecutive_32s() {
        let v = host_prefixes(Ipv4Addr::new(100, 65, 0, 254), 3);
        let s: Vec<String> = v.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["100.65.0.254/32", "100.65.0.255/32", "100.65.1.0/32"]);
        assert_eq!(host_route(v[0]).kind, pb::RouteKind::Host as i32);
    }
}
