//! One watched collection of the Kubernetes API, run as a task: list, then watch from the
//! listed `resourceVersion` with bookmarks, re-list on 410 Gone, back off exponentially
//! while the API server is away (kube-runtime's watcher does the protocol). Each object is
//! converted where it arrives, so only Tabby's small resources cross to the source.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node as K8sNode;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use serde::Serialize;
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
}

/// Runs one feed until its receiver is gone.
pub async fn run(
    client: kube::Client,
    id: FeedId,
    target: Target,
    tx: mpsc::Sender<(FeedId, Msg)>,
) {
    let cfg = watcher::Config::default();
    match target {
        Target::Nodes => {
            let api: Api<PartialObjectMeta<K8sNode>> = Api::all(client);
            let s = watch(api, cfg).default_backoff();
            pump(s, &id, &tx, convert::node).await;
        }
        Target::Custom(kind, ar) => {
            let api: Api<DynamicObject> = Api::all_with(client, &ar);
            let s = watch(api, cfg).default_backoff();
            pump(s, &id, &tx, |j| convert::custom(kind, j)).await;
        }
        Target::Secret { namespace, name } => {
            let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, &namespace);
            let cfg = cfg.fields(&format!("metadata.name={name}"));
            let s = watch(api, cfg).default_backoff();
            pump(s, &id, &tx, convert::secret).await;
        }
    }
}

async fn pump<K, S>(
    stream: S,
    id: &FeedId,
    tx: &mpsc::Sender<(FeedId, Msg)>,
    conv: impl Fn(&serde_json::Value) -> Converted,
) where
    K: Serialize + kube::Resource,
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        let msg = match ev {
            Ok(Event::Init) => Msg::Init,
            Ok(Event::InitDone) => Msg::InitDone,
            Ok(Event::Apply(o) | Event::InitApply(o)) => {
                let name = o.meta().name.clone().unwrap_or_default();
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
                name: o.meta().name.clone().unwrap_or_default(),
            },
            Err(e) => Msg::Failed(failure(&e)),
        };
        if tx.send((id.clone(), msg)).await.is_err() {
            return;
        }
    }
}
