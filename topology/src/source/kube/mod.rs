//! `--datastore kubernetes` (in a pod: the ServiceAccount's token and CA) and
//! `--datastore kubernetes:/path/to/kubeconfig`: Calico's Kubernetes datastore (KDD).
//!
//! Read: core `v1` Nodes (metadata only: Calico keeps a node's BGP settings in
//! `projectcalico.org/*` annotations), Calico's BGPConfiguration, BGPPeer, BGPFilter,
//! IPPool and BlockAffinity custom resources (group `crd.projectcalico.org/v1`, or
//! `projectcalico.org/v3` where Calico 3.32+ installs its CRDs there: `CALICO_API_GROUP`
//! chooses, else whichever the API server serves, as calico-node decides), and only the
//! `v1` Secrets that BGP passwords reference, each watched by name in one namespace.
//!
//! Each collection is listed then watched (`feed.rs`); a re-list after 410 Gone replaces
//! that collection's set atomically when it completes, so nothing is dropped meanwhile.
//! While the API server is away the watchers back off and the last snapshot stays: no
//! session or route depends on the connection. A bad object is reported and skipped (it
//! keeps its last good value); a forbidden or missing collection is reported and the rest
//! runs. Reports reach the daemon as [`Resources::problems`].

pub mod convert;
mod feed;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::api::ApiResource;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::TopologyError;
use crate::resources::Resources;
use crate::types::{Kind, Resource};
pub use feed::FeedId;
use feed::{Failure, Msg, Target};

/// The CRD group of Calico's resources before 3.32 (and by default since).
pub const CRD_GROUP_V1: &str = "crd.projectcalico.org";
/// The group Calico 3.32+ may install its CRDs in instead.
pub const CRD_GROUP_V3: &str = "projectcalico.org";

/// A change waits this long for more changes before the snapshot goes out…
const SETTLE: Duration = Duration::from_millis(50);
/// …but never longer than this after the first.
const SETTLE_MAX: Duration = Duration::from_millis(250);
/// How long the first snapshot waits for the referenced Secrets.
const SECRET_WAIT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeTarget {
    /// In a pod (ServiceAccount token, CA, `KUBERNETES_SERVICE_HOST/PORT`); outside one,
    /// `$KUBECONFIG` or `~/.kube/config`.
    Infer,
    /// This kubeconfig file (its current context).
    Kubeconfig(PathBuf),
}

/// Where Calico's custom resources are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalicoGroup {
    /// `crd.projectcalico.org/v1`.
    CrdV1,
    /// `projectcalico.org/v3` as CRDs (Calico 3.32+).
    V3,
}

impl CalicoGroup {
    fn api_resource(self, kind: Kind) -> ApiResource {
        self.api_resource_named(kind.as_str(), kind.plural())
    }

    fn api_resource_named(self, kind: &str, plural: &str) -> ApiResource {
        let (group, version) = match self {
            CalicoGroup::CrdV1 => (CRD_GROUP_V1, "v1"),
            CalicoGroup::V3 => (CRD_GROUP_V3, "v3"),
        };
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

/// The Calico kinds read from custom resources.
const CUSTOM_KINDS: [Kind; 5] = [
    Kind::BgpConfiguration,
    Kind::BgpPeer,
    Kind::BgpFilter,
    Kind::IpPool,
    Kind::BlockAffinity,
];

struct FeedState {
    task: JoinHandle<()>,
    /// A list has completed at least once.
    synced: bool,
    /// A (re-)list in progress: what it has read, and every name it saw (good or bad).
    pending: Option<(Vec<Resource>, BTreeSet<String>)>,
    failure: Option<Failure>,
    started: Instant,
}

impl FeedState {
    /// Settled for the first snapshot: listed, or failed in a way waiting will not fix.
    fn settled(&self) -> bool {
        self.synced
            || self
                .failure
                .as_ref()
                .is_some_and(|f| f.forbidden || f.not_found)
    }
}

/// Calico's Kubernetes datastore, listed then watched.
pub struct KubeSource {
    target: KubeTarget,
    /// Where BGP password Secrets are read (resolved once, at construction).
    secret_namespace: String,
    client: Option<kube::Client>,
    group: Option<CalicoGroup>,
    tx: mpsc::Sender<(FeedId, Msg)>,
    rx: mpsc::Receiver<(FeedId, Msg)>,
    feeds: BTreeMap<FeedId, FeedState>,
    resources: Resources,
    /// Key (`feed <id>` or `<Kind>/<name>`) → the report.
    problems: BTreeMap<String, String>,
    emitted: bool,
    dirty_since: Option<Instant>,
    connect_failures: u32,
    last_error: Option<String>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("target", &self.target)
            .field("connected", &self.client.is_some())
            .field("group", &self.group)
            .field("feeds", &self.feeds.keys().collect::<Vec<_>>())
            .field("resources", &self.resources.len())
            .field("problems", &self.problems.len())
            .finish()
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for f in self.feeds.values() {
            f.task.abort();
        }
    }
}

impl KubeSource {
    /// `secret_namespace`: where BGP password Secrets live; `None` is this pod's own
    /// namespace, else `kube-system` (calico-node's default).
    pub fn new(target: KubeTarget, secret_namespace: Option<String>) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        KubeSource {
            target,
            secret_namespace: secret_namespace.unwrap_or_else(own_namespace),
            client: None,
            group: None,
            tx,
            rx,
            feeds: BTreeMap::new(),
            resources: Resources::new(),
            problems: BTreeMap::new(),
            emitted: false,
            dirty_since: None,
            connect_failures: 0,
            last_error: None,
        }
    }

    /// Where Calico's resources were found (after the first connect).
    pub fn group(&self) -> Option<CalicoGroup> {
        self.group
    }

    fn kube_err(&self, reason: impl std::fmt::Display) -> TopologyError {
        TopologyError::Kube {
            target: match &self.target {
                KubeTarget::Infer => "in-cluster".into(),
                KubeTarget::Kubeconfig(p) => p.display().to_string(),
            },
            reason: reason.to_string(),
        }
    }

    async fn connect(&mut self) -> Result<(), TopologyError> {
        if self.connect_failures > 0 {
            let secs = 1u64 << self.connect_failures.min(5);
            tokio::time::sleep(Duration::from_secs(secs).min(MAX_BACKOFF)).await;
        }
        let client = client_for(&self.target)
            .await
            .map_err(|e| self.kube_err(e))?;
        let group = detect_group(&client).await.map_err(|e| {
            self.kube_err(format!(
                "cannot reach the API server: {e}; retrying with back-off"
            ))
        })?;
        tracing::info!(group = ?group, "connected to the Kubernetes API");
        for kind in CUSTOM_KINDS {
            self.start_feed(
                &client,
                FeedId::Kind(kind),
                Target::Custom(kind, group.api_resource(kind)),
            );
        }
        self.start_feed(&client, FeedId::Kind(Kind::Node), Target::Nodes);
        // Services and their EndpointSlices, for per-Service routes (as confd's route
        // generator watches them). A cluster that forbids them still runs: reported.
        self.start_feed(&client, FeedId::Kind(Kind::Service), Target::Services);
        self.start_feed(
            &client,
            FeedId::Kind(Kind::EndpointSlice),
            Target::EndpointSlices,
        );
        self.client = Some(client);
        self.group = Some(group);
        Ok(())
    }

    fn start_feed(&mut self, client: &kube::Client, id: FeedId, target: Target) {
        let task = tokio::spawn(feed::run(
            client.clone(),
            id.clone(),
            target,
            self.tx.clone(),
        ));
        self.feeds.insert(
            id,
            FeedState {
                task,
                synced: false,
                pending: None,
                failure: None,
                started: Instant::now(),
            },
        );
    }

    fn secret_namespace(&self) -> String {
        self.secret_namespace.clone()
    }

    /// Starts a feed for each Secret a password references and stops the rest: Tabby reads
    /// no Secret it does not need (as calico-node).
    fn follow_secrets(&mut self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let mut wanted = BTreeSet::new();
        for p in self.resources.bgp_peers.values() {
            if let Some(r) = &p.password {
                wanted.insert(r.name.clone());
            }
        }
        if let Some(r) = self
            .resources
            .default_config()
            .and_then(|c| c.node_mesh_password.as_ref())
        {
            wanted.insert(r.name.clone());
        }
        let ns = self.secret_namespace();
        let stale: Vec<FeedId> = self
            .feeds
            .keys()
            .filter(|id| matches!(id, FeedId::Secret(n) if !wanted.contains(n)))
            .cloned()
            .collect();
        for id in stale {
            if let (Some(f), FeedId::Secret(name)) = (self.feeds.remove(&id), &id) {
                f.task.abort();
                self.resources.delete(Kind::Secret, Some(&ns), name);
                self.problems.remove(&format!("feed {id}"));
                self.problems.remove(&format!("Secret/{name}"));
                self.touch();
            }
        }
        for name in wanted {
            let id = FeedId::Secret(name.clone());
            if !self.feeds.contains_key(&id) {
                tracing::debug!(secret = %name, namespace = %ns, "watching a referenced Secret");
                self.start_feed(
                    &client,
                    id,
                    Target::Secret {
                        namespace: ns.clone(),
                        name,
                    },
                );
            }
        }
    }

    fn touch(&mut self) {
        self.dirty_since.get_or_insert_with(Instant::now);
    }

    fn kinds_settled(&self) -> bool {
        self.feeds
            .iter()
            .filter(|(id, _)| matches!(id, FeedId::Kind(_)))
            .all(|(_, f)| f.settled())
    }

    fn ready_to_emit(&self, now: Instant) -> bool {
        if self.emitted {
            return true;
        }
        self.kinds_settled()
            && self
                .feeds
                .iter()
                .filter(|(id, _)| matches!(id, FeedId::Secret(_)))
                .all(|(_, f)| f.settled() || now.duration_since(f.started) >= SECRET_WAIT)
    }

    fn snapshot(&mut self) -> Arc<Resources> {
        self.dirty_since = None;
        self.emitted = true;
        self.resources.problems = self.problems.values().cloned().collect();
        Arc::new(self.resources.clone())
    }

    /// The first call returns the listed contents (every collection listed, or reported);
    /// later calls wait for a change. `Err`: the API server could not be reached before
    /// the first list; the next call retries with back-off.
    pub async fn next(&mut self) -> Result<Arc<Resources>, TopologyError> {
        loop {
            if self.client.is_none() {
                if let Err(e) = self.connect().await {
                    self.connect_failures += 1;
                    tracing::warn!(error = %e, "Kubernetes datastore unavailable");
                    return Err(e);
                }
                self.connect_failures = 0;
            }
            let now = Instant::now();
            let ready = self.ready_to_emit(now);
            let wait = match self.dirty_since {
                Some(first) if ready => Some((now + SETTLE).min(first + SETTLE_MAX)),
                // Waiting on Secrets for the first snapshot: look again when they are due.
                _ if !self.emitted && self.kinds_settled() => {
                    Some(now + Duration::from_millis(200))
                }
                _ => None,
            };
            let msg = match wait {
                Some(deadline) => match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        if self.dirty_since.is_some() && self.ready_to_emit(Instant::now()) {
                            return Ok(self.snapshot());
                        }
                        if !self.emitted && self.ready_to_emit(Instant::now()) {
                            return Ok(self.snapshot());
                        }
                        continue;
                    }
                },
                None => self.rx.recv().await,
            };
            // The sender half lives in `self`: the channel never closes.
            let Some((id, msg)) = msg else { continue };
            if let Some(e) = self.handle(id, msg) {
                return Err(e);
            }
            if self.kinds_settled() {
                self.follow_secrets();
            }
        }
    }

    /// Applies one feed message. Returns an error to report now (before the first
    /// snapshot, when there is no snapshot to carry it).
    fn handle(&mut self, id: FeedId, msg: Msg) -> Option<TopologyError> {
        let ns = self.secret_namespace();
        let feed_key = format!("feed {id}");
        let Some(feed) = self.feeds.get_mut(&id) else {
            return None; // a Secret feed stopped meanwhile
        };
        if !matches!(msg, Msg::Failed(_)) && feed.failure.take().is_some() {
            tracing::info!(feed = %id, "Kubernetes watch recovered");
            self.problems.remove(&feed_key);
            self.dirty_since.get_or_insert_with(Instant::now);
        }
        let kind = match &id {
            FeedId::Kind(k) => *k,
            FeedId::Secret(_) => Kind::Secret,
        };
        match msg {
            Msg::Init => {
                feed.pending = Some((Vec::new(), BTreeSet::new()));
            }
            Msg::Recovered => {}
            Msg::Apply { name, converted } => {
                let obj_key = format!("{kind}/{name}");
                let converted = *converted;
                let good = match converted.resource {
                    Ok(Some(mut r)) => {
                        if let Resource::Secret(s) = &mut r {
                            s.namespace = ns.clone();
                        }
                        let mut report = converted.warnings;
                        report.retain(|w| !w.is_empty());
                        self.set_problem(&obj_key, report.join("; "));
                        Some(r)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        let text = format!("{e}; skipped, its last good version (if any) stays");
                        tracing::warn!(object = %obj_key, error = %e, "skipping an invalid Kubernetes object");
                        self.set_problem(&obj_key, text);
                        None
                    }
                };
                let feed = self.feeds.get_mut(&id)?;
                match feed.pending.as_mut() {
                    Some((items, seen)) => {
                        seen.insert(name);
                        items.extend(good);
                    }
                    None => {
                        if let Some(r) = good
                            && self.resources.upsert(r)
                        {
                            self.touch();
                        }
                    }
                }
            }
            Msg::Delete { name } => {
                self.set_problem(&format!("{kind}/{name}"), String::new());
                if self.resources.delete(kind, Some(&ns), &name) {
                    self.touch();
                }
            }
            Msg::InitDone => {
                feed.synced = true;
                let (items, seen) = feed.pending.take().unwrap_or_default();
                let mut changed = false;
                for r in items {
                    changed |= self.resources.upsert(r);
                }
                for (rns, name) in self.resources.names(kind) {
                    let mine = match &id {
                        FeedId::Secret(n) => *n == name && rns == ns,
                        FeedId::Kind(_) => true,
                    };
                    if mine && !seen.contains(&name) {
                        changed |= self.resources.delete(kind, Some(&rns), &name);
                        self.problems.remove(&format!("{kind}/{name}"));
                    }
                }
                tracing::debug!(feed = %id, changed, "Kubernetes list complete");
                if changed || !self.emitted {
                    self.touch();
                }
            }
            Msg::Failed(f) => {
                if f.gone {
                    tracing::info!(feed = %id, "watch expired (410 Gone: compacted); listing again");
                    return None;
                }
                let text = explain(&id, &f, self.group);
                let new = feed.failure.as_ref() != Some(&f);
                // Before the first snapshot a passing failure (the API server away) is
                // returned, for the daemon to report; a lasting one (forbidden, not
                // served) settles the feed and travels in the snapshot. Either way it is
                // said once.
                let report_now = !(self.emitted || f.forbidden || f.not_found);
                feed.failure = Some(f);
                if new {
                    self.problems.insert(feed_key, text.clone());
                    self.touch();
                    if report_now && self.last_error.as_deref() != Some(&text) {
                        self.last_error = Some(text.clone());
                        return Some(self.kube_err(text));
                    }
                    tracing::warn!(feed = %id, problem = %text, "Kubernetes datastore");
                }
            }
        }
        None
    }

    fn set_problem(&mut self, key: &str, text: String) {
        let changed = if text.is_empty() {
            self.problems.remove(key).is_some()
        } else {
            self.problems.insert(key.to_string(), text.clone()).as_ref() != Some(&text)
        };
        if changed {
            self.touch();
        }
    }
}

/// This pod's namespace (from its ServiceAccount), else `kube-system`, calico-node's
/// default.
fn own_namespace() -> String {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "kube-system".into())
}

/// A client for `target`; the error says what to do.
async fn client_for(target: &KubeTarget) -> Result<kube::Client, String> {
    let config = match target {
        KubeTarget::Infer => kube::Config::infer().await.map_err(|e| {
            format!(
                "no in-cluster ServiceAccount and no kubeconfig: {e}; run in a pod or pass --datastore kubernetes:/path/to/kubeconfig"
            )
        })?,
        KubeTarget::Kubeconfig(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read the kubeconfig: {e}"))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| format!("bad kubeconfig: {e}"))?
        }
    };
    kube::Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))
}

/// One line saying what failed and what to do.
fn explain(id: &FeedId, f: &Failure, group: Option<CalicoGroup>) -> String {
    let (resource, api_group) = match id {
        FeedId::Kind(Kind::Node) => ("nodes".to_string(), "\"\" (core)"),
        FeedId::Kind(k) => (
            k.plural().to_string(),
            match group {
                Some(CalicoGroup::V3) => CRD_GROUP_V3,
                _ => CRD_GROUP_V1,
            },
        ),
        FeedId::Secret(_) => ("secrets".to_string(), "\"\" (core)"),
    };
    if f.forbidden {
        format!(
            "cannot read {id}: forbidden ({}); grant the ServiceAccount list and watch on {resource} in API group {api_group} (see deploy/tabby-node.yaml)",
            f.reason
        )
    } else if f.not_found {
        format!(
            "cannot read {id}: not served ({}); install Calico's CRDs (deploy/crds/)",
            f.reason
        )
    } else {
        format!(
            "cannot read {id}: {}; retrying with back-off, the last good configuration keeps running",
            f.reason
        )
    }
}

/// Which group serves Calico's resources: `CALICO_API_GROUP` if set, else
/// `crd.projectcalico.org` when served, else `projectcalico.org/v3`, else the former (its
/// feeds then report the missing CRDs).
async fn detect_group(client: &kube::Client) -> Result<CalicoGroup, kube::Error> {
    if let Ok(g) = std::env::var("CALICO_API_GROUP") {
        let g = g.trim().trim_end_matches("/v1").trim_end_matches("/v3");
        return Ok(if g == CRD_GROUP_V3 {
            CalicoGroup::V3
        } else {
            CalicoGroup::CrdV1
        });
    }
    let groups = client.list_api_groups().await?;
    let has = |name: &str| groups.groups.iter().any(|g| g.name == name);
    Ok(if !has(CRD_GROUP_V1) && has(CRD_GROUP_V3) {
        CalicoGroup::V3
    } else {
        CalicoGroup::CrdV1
    })
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
