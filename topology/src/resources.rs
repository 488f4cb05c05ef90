//! The set of resources a datastore currently holds, by kind and name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_yaml_ng::Value;

use crate::error::TopologyError;
use crate::model::parse_object;
use crate::types::*;
use crate::yaml11;

/// A document or list item left out, and which resource it meant to be, when that can be
/// told (kind, Secret namespace, name).
struct Skipped {
    id: Option<(Kind, Option<String>, String)>,
    problem: String,
}

/// The kind, namespace and name a (possibly invalid) object claims, if it says.
fn identity(value: &Value, hint: Option<Kind>) -> Option<(Kind, Option<String>, String)> {
    let kind = match value.get("kind").and_then(Value::as_str) {
        Some(k) => Kind::from_kind_str(k)?,
        None => hint?,
    };
    let meta = value.get("metadata")?;
    let name = meta.get("name").and_then(yaml11::go_string)?;
    if name.trim().is_empty() {
        return None;
    }
    let namespace = meta.get("namespace").and_then(yaml11::go_string);
    Some((kind, namespace, name))
}

/// Every resource Tabby uses, keyed by name (`(namespace, name)` for Secrets). Cloning is
/// cheap: each resource sits behind an `Arc`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub nodes: BTreeMap<String, Arc<Node>>,
    pub bgp_configurations: BTreeMap<String, Arc<BgpConfiguration>>,
    pub bgp_peers: BTreeMap<String, Arc<BgpPeer>>,
    pub ip_pools: BTreeMap<String, Arc<IpPool>>,
    pub bgp_filters: BTreeMap<String, Arc<BgpFilter>>,
    pub block_affinities: BTreeMap<String, Arc<BlockAffinity>>,
    pub secrets: BTreeMap<(String, String), Arc<Secret>>,
    /// Kubernetes Services and EndpointSlices by `namespace/name`.
    pub services: BTreeMap<String, Arc<crate::services::Service>>,
    pub endpoint_slices: BTreeMap<String, Arc<crate::services::EndpointSlice>>,
    /// What the source skipped or cannot read (a bad object, a forbidden or unreachable
    /// collection), one line each for the operator. Empty for a clean read. The resources
    /// above are still the best view: the last good value of each skipped object.
    pub problems: Vec<String>,
    /// This node's workload endpoints that Felix gave a BGPPeer (its endpoint status
    /// files), for `localWorkloadSelector` peerings. Not from the datastore: the caller
    /// sets it from an [`crate::EndpointStatusWatcher`]; the sources leave it empty.
    pub local_endpoints: crate::endpoint_status::LocalEndpoints,
}

impl Resources {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces; returns whether anything changed.
    pub fn upsert(&mut self, r: Resource) -> bool {
        fn put<K: Ord, T: PartialEq>(m: &mut BTreeMap<K, Arc<T>>, k: K, v: T) -> bool {
            if m.get(&k).is_some_and(|old| **old == v) {
                return false;
            }
            m.insert(k, Arc::new(v));
            true
        }
        match r {
            Resource::Node(v) => put(&mut self.nodes, v.name.clone(), v),
            Resource::BgpConfiguration(v) => put(&mut self.bgp_configurations, v.name.clone(), v),
            Resource::BgpPeer(v) => put(&mut self.bgp_peers, v.name.clone(), v),
            Resource::IpPool(v) => put(&mut self.ip_pools, v.name.clone(), v),
            Resource::BgpFilter(v) => put(&mut self.bgp_filters, v.name.clone(), v),
            Resource::BlockAffinity(v) => put(&mut self.block_affinities, v.name.clone(), v),
            Resource::Secret(v) => put(&mut self.secrets, (v.namespace.clone(), v.name.clone()), v),
            Resource::Service(v) => put(&mut self.services, v.name.clone(), v),
            Resource::EndpointSlice(v) => put(&mut self.endpoint_slices, v.name.clone(), v),
        }
    }

    /// Removes one resource; `namespace` matters for Secrets only. Returns whether it existed.
    pub fn delete(&mut self, kind: Kind, namespace: Option<&str>, name: &str) -> bool {
        match kind {
            Kind::Node => self.nodes.remove(name).is_some(),
            Kind::BgpConfiguration => self.bgp_configurations.remove(name).is_some(),
            Kind::BgpPeer => self.bgp_peers.remove(name).is_some(),
            Kind::IpPool => self.ip_pools.remove(name).is_some(),
            Kind::BgpFilter => self.bgp_filters.remove(name).is_some(),
            Kind::BlockAffinity => self.block_affinities.remove(name).is_some(),
            Kind::Secret => {
                let ns = namespace.unwrap_or(crate::model::DEFAULT_SECRET_NAMESPACE);
                self.secrets
                    .remove(&(ns.to_string(), name.to_string()))
                    .is_some()
            }
            Kind::Service => self.services.remove(name).is_some(),
            Kind::EndpointSlice => self.endpoint_slices.remove(name).is_some(),
        }
    }

    fn contains(&self, r: &Resource) -> bool {
        match r {
            Resource::Node(v) => self.nodes.contains_key(&v.name),
            Resource::BgpConfiguration(v) => self.bgp_configurations.contains_key(&v.name),
            Resource::BgpPeer(v) => self.bgp_peers.contains_key(&v.name),
            Resource::IpPool(v) => self.ip_pools.contains_key(&v.name),
            Resource::BgpFilter(v) => self.bgp_filters.contains_key(&v.name),
            Resource::BlockAffinity(v) => self.block_affinities.contains_key(&v.name),
            Resource::Secret(v) => self
                .secrets
                .contains_key(&(v.namespace.clone(), v.name.clone())),
            Resource::Service(v) => self.services.contains_key(&v.name),
            Resource::EndpointSlice(v) => self.endpoint_slices.contains_key(&v.name),
        }
    }

    /// `(namespace, name)` of every resource of one kind (the namespace is empty but for
    /// Secrets).
    pub(crate) fn names(&self, kind: Kind) -> Vec<(String, String)> {
        fn keys<T>(m: &BTreeMap<String, Arc<T>>) -> Vec<(String, String)> {
            m.keys().map(|k| (String::new(), k.clone())).collect()
        }
        match kind {
            Kind::Node => keys(&self.nodes),
            Kind::BgpConfiguration => keys(&self.bgp_configurations),
            Kind::BgpPeer => keys(&self.bgp_peers),
            Kind::IpPool => keys(&self.ip_pools),
            Kind::BgpFilter => keys(&self.bgp_filters),
            Kind::BlockAffinity => keys(&self.block_affinities),
            Kind::Secret => self.secrets.keys().cloned().collect(),
            Kind::Service => keys(&self.services),
            Kind::EndpointSlice => keys(&self.endpoint_slices),
        }
    }

    /// These resources with this node's endpoint statuses in place of the ones held.
    pub fn with_local_endpoints(&self, eps: crate::endpoint_status::LocalEndpoints) -> Resources {
        Resources {
            local_endpoints: eps,
            ..self.clone()
        }
    }

    /// Total number of resources held (datastore resources; endpoint statuses are not
    /// counted).
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.bgp_configurations.len()
            + self.bgp_peers.len()
            + self.ip_pools.len()
            + self.bgp_filters.len()
            + self.block_affinities.len()
            + self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parses Kubernetes-style multi-document YAML (`---` separated, `kind: List` with `items`
    /// accepted), read as calicoctl reads it: YAML 1.1, so an unquoted `yes` is a boolean,
    /// and a label written `yes` is "true". A document (or list item) that is not a valid
    /// resource, or that defines a resource a second time, is skipped and said in
    /// [`Resources::problems`]; the others load. `Err` only when the text is not YAML at
    /// all (a syntax error): then nothing in it can be trusted. `origin` names the text in
    /// messages (a path, usually).
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Resources, TopologyError> {
        Resources::from_yaml_keeping(text, origin, None)
    }

    /// [`Resources::from_yaml_str`], except that a skipped resource `previous` holds
    /// keeps that version (the file source passes its last snapshot), as the etcd and
    /// Kubernetes sources keep the last good value of a bad object.
    pub(crate) fn from_yaml_keeping(
        text: &str,
        origin: &str,
        previous: Option<&Resources>,
    ) -> Result<Resources, TopologyError> {
        let docs = yaml11::documents(text).map_err(|e| TopologyError::Parse {
            origin: origin.to_string(),
            reason: format!("not valid YAML: {e}"),
        })?;
        let mut out = Resources::new();
        let mut skipped = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            let doc_origin = format!("{origin}: document {}", i + 1);
            if doc.problems.is_empty() {
                out.add_value(&doc.value, &doc_origin, None, &mut skipped);
            } else {
                skipped.push(Skipped {
                    id: identity(&doc.value, None),
                    problem: format!("{doc_origin}: {}", doc.problems.join("; ")),
                });
            }
        }
        for s in skipped {
            let kept = match (&s.id, previous) {
                (Some((kind, ns, name)), Some(prev))
                    if out.get(*kind, ns.as_deref(), name).is_none() =>
                {
                    prev.get(*kind, ns.as_deref(), name)
                        .map(|r| out.upsert(r))
                        .is_some()
                }
                _ => false,
            };
            let tail = if kept {
                "skipped, its last good version stays"
            } else {
                "skipped"
            };
            out.problems.push(format!("{}; {tail}", s.problem));
        }
        Ok(out)
    }

    fn add_value(
        &mut self,
        value: &Value,
        origin: &str,
        hint: Option<Kind>,
        skipped: &mut Vec<Skipped>,
    ) {
        if value.is_null() {
            return;
        }
        let kind = value.get("kind").and_then(Value::as_str);
        if let Some(list) = kind.filter(|k| k.ends_with("List")) {
            // `kind: BGPPeerList` (calicoctl's output) types items that omit their kind.
            let item_hint = list.strip_suffix("List").and_then(Kind::from_kind_str);
            let Some(Value::Sequence(items)) = value.get("items") else {
                skipped.push(Skipped {
                    id: None,
                    problem: format!("{origin}: a List needs an items: sequence"),
                });
                return;
            };
            for (j, item) in items.iter().enumerate() {
                self.add_value(
                    item,
                    &format!("{origin}, item {}", j + 1),
                    item_hint,
                    skipped,
                );
            }
            return;
        }
        let err = match parse_object(value, origin, hint) {
            Ok(None) => return,
            Ok(Some(r)) if !self.contains(&r) => {
                self.upsert(r);
                return;
            }
            Ok(Some(r)) => TopologyError::Duplicate {
                origin: origin.to_string(),
                kind: r.kind().to_string(),
                name: r.name().to_string(),
            },
            Err(e) => e,
        };
        let problem = match err {
            // Field errors name the resource but not where it is.
            TopologyError::Invalid { .. } => format!("{origin}: {err}"),
            _ => err.to_string(),
        };
        skipped.push(Skipped {
            id: identity(value, hint),
            problem,
        });
    }

    /// One resource by kind and name (`namespace` matters for Secrets only), as a value.
    pub(crate) fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Resource> {
        fn one<T: Clone>(m: &BTreeMap<String, Arc<T>>, name: &str) -> Option<T> {
            m.get(name).map(|r| (**r).clone())
        }
        Some(match kind {
            Kind::Node => Resource::Node(one(&self.nodes, name)?),
            Kind::BgpConfiguration => {
                Resource::BgpConfiguration(one(&self.bgp_configurations, name)?)
            }
            Kind::BgpPeer => Resource::BgpPeer(one(&self.bgp_peers, name)?),
            Kind::IpPool => Resource::IpPool(one(&self.ip_pools, name)?),
            Kind::BgpFilter => Resource::BgpFilter(one(&self.bgp_filters, name)?),
            Kind::BlockAffinity => Resource::BlockAffinity(one(&self.block_affinities, name)?),
            Kind::Secret => {
                let ns = namespace.unwrap_or(crate::model::DEFAULT_SECRET_NAMESPACE);
                Resource::Secret((**self.secrets.get(&(ns.to_string(), name.to_string()))?).clone())
            }
            Kind::Service => Resource::Service(one(&self.services, name)?),
            Kind::EndpointSlice => Resource::EndpointSlice(one(&self.endpoint_slices, name)?),
        })
    }

    /// The `BGPConfiguration` named `default`, if any.
    pub fn default_config(&self) -> Option<&BgpConfiguration> {
        self.bgp_configurations.get("default").map(|c| &**c)
    }

    /// The `BGPConfiguration` named `node.<node>`, if any.
    pub fn node_config(&self, node: &str) -> Option<&BgpConfiguration> {
        self.bgp_configurations
            .get(&format!("node.{node}"))
            .map(|c| &**c)
    }
}
