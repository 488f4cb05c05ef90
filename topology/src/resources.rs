//! The set of resources a datastore currently holds, by kind and name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::error::TopologyError;
use crate::model::parse_object;
use crate::types::*;

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
    /// What the source skipped or cannot read (a bad object, a forbidden or unreachable
    /// collection), one line each for the operator. Empty for a clean read. The resources
    /// above are still the best view: the last good value of each skipped object.
    pub problems: Vec<String>,
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
        }
    }

    /// Total number of resources held.
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
    /// accepted). All-or-nothing: any invalid resource fails the whole text, so a bad edit
    /// never half-applies. `origin` names the text in errors (a path, usually).
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Resources, TopologyError> {
        let mut out = Resources::new();
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let doc_origin = format!("{origin}: document {}", i + 1);
            let value = Value::deserialize(doc).map_err(|e| TopologyError::Parse {
                origin: doc_origin.clone(),
                reason: e.to_string(),
            })?;
            out.add_value(&value, &doc_origin, None)?;
        }
        Ok(out)
    }

    fn add_value(
        &mut self,
        value: &Value,
        origin: &str,
        hint: Option<Kind>,
    ) -> Result<(), TopologyError> {
        if value.is_null() {
            return Ok(());
        }
        let kind = value.get("kind").and_then(Value::as_str);
        if let Some(list) = kind.filter(|k| k.ends_with("List")) {
            // `kind: BGPPeerList` (calicoctl's output) types items that omit their kind.
            let item_hint = list.strip_suffix("List").and_then(Kind::from_kind_str);
            let Some(Value::Sequence(items)) = value.get("items") else {
                return Err(TopologyError::Parse {
                    origin: origin.to_string(),
                    reason: "a List needs an items: sequence".to_string(),
                });
            };
            for (j, item) in items.iter().enumerate() {
                self.add_value(item, &format!("{origin}, item {}", j + 1), item_hint)?;
            }
            return Ok(());
        }
        if let Some(r) = parse_object(value, origin, hint)? {
            if self.contains(&r) {
                return Err(TopologyError::Duplicate {
                    origin: origin.to_string(),
                    kind: r.kind().to_string(),
                    name: r.name().to_string(),
                });
            }
            self.upsert(r);
        }
        Ok(())
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
