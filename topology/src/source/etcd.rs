//! `--datastore etcd:URL[,URL…]`: Calico's etcdv3 layout.
//!
//! Keys: `/calico/resources/v3/projectcalico.org/<plural>/<name>` holding the resource as
//! JSON (what `calicoctl` writes with the etcd datastore), e.g. `…/bgppeers/tor`.
//! Namespaced kinds take `…/<plural>/<namespace>/<name>`. Calico keeps Secrets in
//! Kubernetes, which an etcd-only cluster lacks, so Tabby reads v1 Secrets from
//! `…/secrets/<namespace>/<name>` (the key's namespace wins over the object's).
//!
//! Protocol: list the prefix, then watch it from the listed revision + 1. On a broken
//! stream, reconnect and resume the watch where it stopped; when etcd answers that the
//! revision was compacted meanwhile, list again from scratch.
//!
//! A bad value is reported once and not applied: that key keeps its previous good value
//! (or stays absent), every other key still applies.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, WatchOptions, WatchStream};
use serde_yaml_ng::Value;

use crate::error::TopologyError;
use crate::model::parse_object;
use crate::resources::Resources;
use crate::types::{Kind, Resource};

/// Where Calico's v3 resources live in etcd.
pub const CALICO_PREFIX: &str = "/calico/resources/v3/projectcalico.org/";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The resource a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    kind: Kind,
    namespace: Option<String>,
    name: String,
}

/// `…/<plural>/<name>` or `…/<plural>/<namespace>/<name>`; `None` for kinds we do not use.
fn identity_of(key: &str) -> Option<Identity> {
    let rest = key.strip_prefix(CALICO_PREFIX)?;
    let mut parts = rest.split('/');
    let kind = Kind::from_plural(parts.next()?)?;
    let (namespace, name) = if kind.is_namespaced() {
        (Some(parts.next()?.to_string()), parts.next()?.to_string())
    } else {
        (None, parts.next()?.to_string())
    };
    if parts.next().is_some() || name.is_empty() {
        return None;
    }
    Some(Identity {
        kind,
        namespace,
        name,
    })
}

/// Calico's etcd datastore, listed then watched.
pub struct EtcdSource {
    endpoints: Vec<String>,
    client: Option<Client>,
    watch: Option<WatchStream>,
    /// The store revision our view reflects; 0 before the first list.
    revision: i64,
    resources: Resources,
    /// Key → the resource it last held, so a delete knows what to remove.
    keys: BTreeMap<String, Identity>,
    pending_errors: VecDeque<TopologyError>,
    pending_snapshot: bool,
    failures: u32,
    listed: bool,
    lists: u64,
    page_size: i64,
    pages_last_list: usize,
}

impl std::fmt::Debug for EtcdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSource")
            .field("endpoints", &self.endpoints)
            .field("connected", &self.client.is_some())
            .field("watching", &self.watch.is_some())
            .field("revision", &self.revision)
            .field("resources", &self.resources.len())
            .finish()
    }
}

impl EtcdSource {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdSource {
            endpoints,
            client: None,
            watch: None,
            revision: 0,
            resources: Resources::new(),
            keys: BTreeMap::new(),
            pending_errors: VecDeque::new(),
            pending_snapshot: false,
            failures: 0,
            listed: false,
            lists: 0,
            page_size: 500,
            pages_last_list: 0,
        }
    }

    /// Lists in pages of this many keys (default 500), keeping each response small.
    pub fn with_page_size(mut self, keys: u32) -> Self {
        self.page_size = i64::from(keys.max(1));
        self
    }

    /// How many pages (requests) the last list took.
    pub fn pages_last_list(&self) -> usize {
        self.pages_last_list
    }

    /// How many full lists were done: 1 after start, +1 per re-list after compaction (a
    /// resumed watch does not list). For metrics.
    pub fn list_count(&self) -> u64 {
        self.lists
    }

    /// The etcd revision the last snapshot reflects.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    fn etcd_err(&self, reason: impl std::fmt::Display) -> TopologyError {
        TopologyError::Etcd {
            endpoints: self.endpoints.join(","),
            reason: reason.to_string(),
        }
    }

    /// The first call returns the listed contents; later calls wait for a change. `Err`:
    /// a bad value (reported once, not applied) or a lost connection (the next call
    /// reconnects, with backoff).
    pub async fn next(&mut self) -> Result<Arc<Resources>, TopologyError> {
        loop {
            if let Some(e) = self.pending_errors.pop_front() {
                return Err(e);
            }
            if std::mem::take(&mut self.pending_snapshot) {
                return Ok(Arc::new(self.resources.clone()));
            }
            if let Err(e) = self.step().await {
                self.client = None;
                self.watch = None;
                self.failures += 1;
                tracing::warn!(error = %e, "etcd datastore unavailable; keeping the last good state");
                return Err(e);
            }
        }
    }

    async fn backoff(&self) {
        if self.failures > 0 {
            let secs = 1u64 << self.failures.min(4);
            tokio::time::sleep(Duration::from_secs(secs).min(MAX_BACKOFF)).await;
        }
    }

    /// Does one unit of work: connect, list, (re)start the watch, or read one response.
    async fn step(&mut self) -> Result<(), TopologyError> {
        let Some(client) = self.client.as_mut() else {
            self.backoff().await;
            let opts = ConnectOptions::new()
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
            let c = Client::connect(&self.endpoints, Some(opts))
                .await
                .map_err(|e| self.etcd_err(format!("connect: {e}")))?;
            tracing::info!(endpoints = %self.endpoints.join(","), "connected to etcd");
            self.client = Some(c);
            return Ok(());
        };
        if self.revision == 0 {
            return self.list().await;
        }
        let Some(watch) = self.watch.as_mut() else {
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(self.revision + 1)
                .with_progress_notify();
            let w =
                client
                    .watch(CALICO_PREFIX, Some(opts))
                    .await
                    .map_err(|e| TopologyError::Etcd {
                        endpoints: self.endpoints.join(","),
                        reason: format!("watch: {e}"),
                    })?;
            self.watch = Some(w);
            return Ok(());
        };
        let msg = watch.message().await;
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => return Err(self.etcd_err("watch stream closed by the server")),
            Err(e) => return Err(self.etcd_err(format!("watch: {e}"))),
        };
        self.failures = 0;
        if resp.compact_revision() > 0 || resp.canceled() {
            // Our revision is gone from etcd's history: the only safe way on is a new list.
            tracing::info!(
                revision = self.revision,
                compact_revision = resp.compact_revision(),
                reason = resp.cancel_reason(),
                "etcd watch cancelled (compaction); listing again"
            );
            self.watch = None;
            self.revision = 0;
            return Ok(());
        }
        let mut changed = false;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            changed |= match ev.event_type() {
                EventType::Put => self.apply_put(&key, kv.value()),
                EventType::Delete => self.apply_delete(&key),
            };
            self.revision = self.revision.max(kv.mod_revision());
        }
        if let Some(h) = resp.header() {
            self.revision = self.revision.max(h.revision());
        }
        self.pending_snapshot |= changed;
        Ok(())
    }

    /// Lists the prefix in pages, every page read at the revision of the first so the view
    /// is one consistent snapshot (a compaction meanwhile fails the list; it is retried).
    async fn list(&mut self) -> Result<(), TopologyError> {
        let endpoints = self.endpoints.join(",");
        let page_size = self.page_size;
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        let err = |reason: String| TopologyError::Etcd {
            endpoints: endpoints.clone(),
            reason,
        };
        // The end of the prefix range: the prefix with its last byte incremented ('/' → '0').
        let mut range_end = CALICO_PREFIX.as_bytes().to_vec();
        if let Some(last) = range_end.last_mut() {
            *last += 1;
        }
        let mut start = CALICO_PREFIX.as_bytes().to_vec();
        let mut revision = 0i64;
        let mut kvs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut pages = 0usize;
        loop {
            pages += 1;
            let mut opts = GetOptions::new()
                .with_range(range_end.clone())
                .with_limit(page_size);
            if revision > 0 {
                opts = opts.with_revision(revision);
            }
            let resp = tokio::time::timeout(LIST_TIMEOUT, client.get(start.clone(), Some(opts)))
                .await
                .map_err(|_| {
                    err(format!(
                        "listing {CALICO_PREFIX} took more than {LIST_TIMEOUT:?}"
                    ))
                })?
                .map_err(|e| err(format!("list: {e}")))?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or(0).max(1);
            }
            for kv in resp.kvs() {
                kvs.push((
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                ));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        self.pages_last_list = pages;
        let old = std::mem::take(&mut self.resources);
        let old_keys = std::mem::take(&mut self.keys);
        for (key, value) in &kvs {
            if !self.apply_put(key, value) && !self.keys.contains_key(key) {
                // Bad value: keep what this key held before the re-list, if anything.
                if let Some(id) = old_keys.get(key)
                    && let Some(r) = lookup(&old, id)
                {
                    self.resources.upsert(r);
                    self.keys.insert(key.clone(), id.clone());
                }
            }
        }
        tracing::info!(
            revision,
            resources = self.resources.len(),
            "listed the etcd datastore"
        );
        self.revision = revision;
        self.watch = None;
        self.failures = 0;
        // The first list is always a snapshot; later ones only when something differs.
        self.pending_snapshot |= !self.listed || self.resources != old;
        self.listed = true;
        self.lists += 1;
        Ok(())
    }

    /// Parses and applies one value; returns whether the view changed. Bad values are queued
    /// as errors and leave the view as it was.
    fn apply_put(&mut self, key: &str, value: &[u8]) -> bool {
        let Some(id) = identity_of(key) else {
            tracing::debug!(key, "ignoring an etcd key Tabby does not use");
            return false;
        };
        let parsed = serde_yaml_ng::from_slice::<Value>(value)
            .map_err(|e| TopologyError::Parse {
                origin: format!("etcd {key}"),
                reason: format!("not JSON: {e}"),
            })
            .and_then(|v| parse_object(&v, &format!("etcd {key}"), Some(id.kind)));
        let mut resource = match parsed {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(key, error = %e, "rejected a bad etcd value; the key keeps its previous value");
                self.pending_errors.push_back(e);
                return false;
            }
        };
        if let (Resource::Secret(s), Some(ns)) = (&mut resource, &id.namespace) {
            s.namespace = ns.clone();
        }
        let real = Identity {
            kind: resource.kind(),
            namespace: id.namespace.clone(),
            name: resource.name().to_string(),
        };
        let mut changed = false;
        // A renamed object under the same key replaces the old one.
        if let Some(prev) = self.keys.get(key)
            && *prev != real
        {
            changed |= self
                .resources
                .delete(prev.kind, prev.namespace.as_deref(), &prev.name);
        }
        self.keys.insert(key.to_string(), real);
        changed | self.resources.upsert(resource)
    }

    fn apply_delete(&mut self, key: &str) -> bool {
        match self.keys.remove(key) {
            Some(id) => self
                .resources
                .delete(id.kind, id.namespace.as_deref(), &id.name),
            None => false,
        }
    }
}

fn lookup(res: &Resources, id: &Identity) -> Option<Resource> {
    let n = &id.name;
    Some(match id.kind {
        Kind::Node => Resource::Node((**res.nodes.get(n)?).clone()),
        Kind::BgpConfiguration => {
            Resource::BgpConfiguration((**res.bgp_configurations.get(n)?).clone())
        }
        Kind::BgpPeer => Resource::BgpPeer((**res.bgp_peers.get(n)?).clone()),
        Kind::IpPool => Resource::IpPool((**res.ip_pools.get(n)?).clone()),
        Kind::BgpFilter => Resource::BgpFilter((**res.bgp_filters.get(n)?).clone()),
        Kind::BlockAffinity => Resource::BlockAffinity((**res.block_affinities.get(n)?).clone()),
        Kind::Secret => {
            let ns = id.namespace.clone().unwrap_or_default();
            Resource::Secret((**res.secrets.get(&(ns, n.clone()))?).clone())
        }
        // Calico keeps no Services in etcd: these come from Kubernetes alone.
        Kind::Service | Kind::EndpointSlice => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_resources() {
        let id = identity_of("/calico/resources/v3/projectcalico.org/bgppeers/tor").unwrap();
        assert_eq!(
            (id.kind, id.namespace, id.name.as_str()),
            (Kind::BgpPeer, None, "tor")
        );
        let id = identity_of("/calico/resources/v3/projectcalico.org/secrets/calico-system/bgp")
            .unwrap();
        assert_eq!(id.kind, Kind::Secret);
        assert_eq!(id.namespace.as_deref(), Some("calico-system"));
        assert!(
            identity_of("/calico/resources/v3/projectcalico.org/felixconfigurations/default")
                .is_none()
        );
        assert!(identity_of("/calico/resources/v3/projectcalico.org/bgppeers/").is_none());
        assert!(identity_of("/calico/resources/v3/projectcalico.org/bgppeers/a/b").is_none());
        assert!(identity_of("/calico/ipam/v2/host/node-a").is_none());
    }

    #[test]
    fn bfd_annotation_in_stored_metadata_reaches_the_resource() {
        use crate::bfd::BfdAnnotation;
        let mut src = EtcdSource::new(vec![]);
        let peer = br#"{"apiVersion":"projectcalico.org/v3","kind":"BGPPeer","metadata":{"name":"tor-a","annotations":{"tabby-routing.io/bfd":"{\"interval\":\"50ms\",\"multiplier\":4}"}},"spec":{"peerIP":"192.0.2.1","asNumber":65001}}"#;
        assert!(src.apply_put(&format!("{CALICO_PREFIX}bgppeers/tor-a"), peer));
        let s = src.resources.bgp_peers["tor-a"]
            .bfd
            .as_ref()
            .and_then(BfdAnnotation::settings)
            .unwrap();
        assert_eq!((s.min_rx, s.multiplier), (Duration::from_millis(50), 4));

        let cfg = br#"{"kind":"BGPConfiguration","metadata":{"name":"default","annotations":{"tabby-routing.io/bfd":"true"}},"spec":{}}"#;
        assert!(src.apply_put(&format!("{CALICO_PREFIX}bgpconfigurations/default"), cfg));
        assert!(src.resources.bgp_configurations["default"].bfd.is_some());

        // A bad value is applied (BFD off, with a derivation warning), not a rejected key.
        let bad = br#"{"kind":"BGPPeer","metadata":{"name":"tor-b","annotations":{"tabby-routing.io/bfd":"sometimes"}},"spec":{"peerIP":"192.0.2.2","asNumber":65001}}"#;
        assert!(src.apply_put(&format!("{CALICO_PREFIX}bgppeers/tor-b"), bad));
        assert!(src.pending_errors.is_empty());
        assert!(matches!(
            src.resources.bgp_peers["tor-b"].bfd,
            Some(BfdAnnotation::Invalid(_))
        ));
    }
}
