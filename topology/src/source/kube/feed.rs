//! One watched collection of the Kubernetes API, run as a task: list, then watch from the
//! listed `resourceVersion` with bookmarks, re-list on 410 Gone (kube-runtime's watcher does
//! the protocol). Errors back off exponentially (0.8 s doubling to 16 s, with jitter) while
//! the API server is away, but a 410 re-lists at once: after an outage every resumed watch
//! may get one, and waiting out the grown back-off there would delay recovery for nothing.
//! Each object is converted where it arrives, so only Tabby's small resources cross to the
//! source.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node as K8sNode;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::watcher as watch;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use std::time::Duration;
use tokio::sync::mpsc;

use super::convert::{self, Converted};
use crate::types::Kind;

/// What a feed watches: a collection of one kind, or one Secret by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeedId {
    Kind(Kind),
    Secret(String),
}

impl std::fmt::Display for FeedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedId::Kind(Kind::Node) => f.write_str("nodes"),
            FeedId::Kind(k) => write!(f, "{}", k.plural()),
            FeedId::Secret(name) => write!(f, "secret {name}"),
        }
    }
}

/// What a feed reports.
#[derive(Debug)]
pub enum Msg {
    /// A (re-)list begins: the objects up to [`Msg::InitDone`] replace the feed's set.
    Init,
    Apply {
        name: String,
        converted: Box<Converted>,
    },
    Delete {
        name: String,
    },
    InitDone,
    /// The watcher failed; it retries by itself (with back-off).
    Failed(Failure),
    /// After a failure the watch resumed and has run quietly for a while with the API
    /// server answering: the failure is over (a resumed watch says nothing by itself).
    Recovered,
}

/// Why a feed failed, sorted for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 403: the ServiceAccount lacks a verb (fix the ClusterRole).
    pub forbidden: bool,
    /// 410 Gone: our resourceVersion was compacted away; the watcher re-lists (routine).
    pub gone: bool,
    /// 404: the resource type is not served (CRD missing).
    pub not_found: bool,
    pub reason: String,
}

fn failure(e: &watcher::Error) -> Failure {
    let status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => Some(s.as_ref()),
        _ => None,
    };
    let code = status.map_or(0, |s| s.code);
    let reason = match status {
        Some(s) if !s.message.is_empty() => format!("{} ({})", s.message, s.code),
        _ => e.to_string(),
    };
    Failure {
        forbidden: code == 403,
        gone: code == 410,
        not_found: code == 404,
        reason,
    }
}

/// How to reach one collection.
#[derive(Debug, Clone)]
pub enum Target {
    /// Core v1 Nodes, metadata only (labels and annotations are all Calico reads).
    Nodes,
    /// A Calico custom resource.
    Custom(Kind, ApiResource),
    /// One Secret in a namespace, watched by name (`metadata.name=` field selector, so
    /// RBAC can name exactly the Secrets Tabby may read).
    Secret { namespace: String, name: String },
    /// Core v1 Services in every namespace.
    Services,
    /// `discovery.k8s.io/v1` EndpointSlices in every namespace.
    EndpointSlices,
}

/// Runs one feed until its receiver is gone.
pub async fn run(
    client: kube::Client,
    id: FeedId,
    target: Target,
    tx: mpsc::Sender<(FeedId, Msg)>,
) {
    let cfg = watcher::Config::default();
    let client2 = client.clone();
    match target {
        Target::Nodes => {
            let api: Api<PartialObjectMeta<K8sNode>> = Api::all(client);
            let s = watch(api, cfg);
            pump(s, &client2, &id, &tx, convert::node).await;
        }
        Target::Custom(kind, ar) => {
            let api: Api<DynamicObject> = Api::all_with(client, &ar);
            let s = watch(api, cfg);
            pump(s, &client2, &id, &tx, |j| convert::custom(kind, j)).await;
        }
        Target::Secret { namespace, name } => {
            let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, &namespace);
            let cfg = cfg.fields(&format!("metadata.name={name}"));
            let s = watch(api, cfg);
            pump(s, &client2, &id, &tx, convert::secret).await;
        }
        Target::Services => {
            let api: Api<k8s_openapi::api::core::v1::Service> = Api::all(client);
            let s = watch(api, cfg);
            pump(s, &client2, &id, &tx, |j| {
                convert::service_object(Kind::Service, j)
            })
            .await;
        }
        Target::EndpointSlices => {
            let api: Api<k8s_openapi::api::discovery::v1::EndpointSlice> = Api::all(client);
            let s = watch(api, cfg);
            pump(s, &client2, &id, &tx, |j| {
                convert::service_object(Kind::EndpointSlice, j)
            })
            .await;
        }
    }
}

/// How long a resumed watch must run without an error before its failure is over: long
/// enough that a slow refusal (a loaded API server answering 403) is not taken for success.
const QUIET: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

async fn pump<K, S>(
    stream: S,
    client: &kube::Client,
    id: &FeedId,
    tx: &mpsc::Sender<(FeedId, Msg)>,
    conv: impl Fn(&serde_json::Value) -> Converted,
) where
    K: Serialize + kube::Resource,
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut backoff = Backoff::default();
    let mut failing = false;
    loop {
        let ev = if failing {
            // `next` is cancel-safe: the watcher's step in progress stays in the stream.
            match tokio::time::timeout(QUIET, stream.next()).await {
                Ok(ev) => ev,
                Err(_) => {
                    let answers =
                        tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await;
                    if matches!(answers, Ok(Ok(_))) {
                        failing = false;
                        if tx.send((id.clone(), Msg::Recovered)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
            }
        } else {
            stream.next().await
        };
        let Some(ev) = ev else { return };
        failing = ev.is_err();
        let pause = match &ev {
            Err(e) if failure(e).gone => None,
            Err(_) => Some(backoff.next()),
            Ok(_) => {
                backoff = Backoff::default();
                None
            }
        };
        let msg = match ev {
            Ok(Event::Init) => Msg::Init,
            Ok(Event::InitDone) => Msg::InitDone,
            Ok(Event::Apply(o) | Event::InitApply(o)) => {
                let name = key_of(id, o.meta());
                let converted = match serde_json::to_value(&o) {
                    Ok(j) => conv(&j),
                    Err(e) => Converted {
                        resource: Err(crate::TopologyError::Parse {
                            origin: format!("Kubernetes {id} {name}"),
                            reason: e.to_string(),
                        }),
                        warnings: vec![],
                    },
                };
                Msg::Apply {
                    name,
                    converted: Box::new(converted),
                }
            }
            Ok(Event::Delete(o)) => Msg::Delete {
                name: key_of(id, o.meta()),
            },
            Err(e) => Msg::Failed(failure(&e)),
        };
        if tx.send((id.clone(), msg)).await.is_err() {
            return;
        }
        if let Some(d) = pause {
            tokio::time::sleep(d).await;
        }
    }
}

/// The name an object is held under: Services and EndpointSlices of every namespace by
/// `namespace/name`, the rest by name.
fn key_of(id: &FeedId, meta: &kube::api::ObjectMeta) -> String {
    let name = meta.name.clone().unwrap_or_default();
    match id {
        FeedId::Kind(Kind::Service | Kind::EndpointSlice) => {
            crate::services::service_key(meta.namespace.as_deref(), &name)
        }
        _ => name,
    }
}

/// Exponential back-off: 0.8 s doubling to 16 s, each ±25 % so that a cluster's nodes do
/// not come back in lockstep.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(800);
const BACKOFF_MAX: Duration = Duration::from_secs(16);

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = BACKOFF_FIRST
            .saturating_mul(1 << self.failures.min(8))
            .min(BACKOFF_MAX);
        self.failures += 1;
        // Jitter from the clock's low bits: no shared state, different per node and call.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let permille = 750 + u64::from(nanos % 501); // 0.75 ..= 1.25
        Duration::from_millis(u64::try_from(base.as_millis()).unwrap_or(u64::MAX) * permille / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter() {
        let mut b = Backoff::default();
        let d: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        assert!(d[0] >= Duration::from_millis(600) && d[0] <= Duration::from_millis(1000));
        assert!(d[1] >= Duration::from_millis(1200) && d[1] <= Duration::from_millis(2000));
        for x in &d[5..] {
            assert!(
                *x >= Duration::from_secs(12) && *x <= Duration::from_secs(20),
                "{x:?}"
            );
        }
    }
}
