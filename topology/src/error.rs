//! Errors: each names what an operator has to fix.

use std::path::PathBuf;

/// Why resources could not be loaded or a state could not be derived.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A field of a resource has a value Calico would reject.
    #[error("{kind} '{name}': field {field}: {reason}")]
    Invalid {
        kind: String,
        name: String,
        field: String,
        reason: String,
    },
    /// A document is not a resource at all (bad YAML/JSON, no kind, no name).
    #[error("{origin}: {reason}")]
    Parse { origin: String, reason: String },
    /// Two documents of one source define the same resource.
    #[error("{origin}: {kind} '{name}' is defined twice; keep one")]
    Duplicate {
        origin: String,
        kind: String,
        name: String,
    },
    /// The node this daemon runs for has no `Node` resource.
    #[error(
        "no Node resource named '{0}'; create one or pass the right --node-name (it defaults to the hostname)"
    )]
    NodeNotFound(String),
    /// This node's `Node` resource was read but skipped as invalid: the datastore's
    /// problem says why.
    #[error("Node '{name}' cannot be used: {problem}")]
    NodeUnusable { name: String, problem: String },
    /// The node has no IPv4 address to use as BGP identifier and `CALICO_ROUTER_ID` is not
    /// set (calico-node cannot run BGP there either).
    #[error(
        "Node '{0}' has no spec.bgp.ipv4Address to use as the BGP router id (a 32-bit id, RFC 6286 §2.1): set CALICO_ROUTER_ID to an IPv4 address or to hash (an id derived from the node name), as calico-node requires for such a node"
    )]
    NoRouterId(String),
    /// `CALICO_ROUTER_ID` has a value calico-node would not accept either.
    #[error(
        "CALICO_ROUTER_ID '{0}': expected an IPv4 address other than 0.0.0.0, or hash (an id derived from the node name)"
    )]
    BadRouterId(String),
    /// A datastore could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The etcd datastore failed.
    #[error("etcd {endpoints}: {reason}")]
    Etcd { endpoints: String, reason: String },
    /// The Kubernetes datastore failed.
    #[error("Kubernetes API ({target}): {reason}")]
    Kube { target: String, reason: String },
    /// `--datastore` has a form Tabby does not know.
    #[error(
        "datastore '{0}': expected file:PATH, etcd:URL[,URL...], kubernetes or kubernetes:/path/to/kubeconfig"
    )]
    BadDatastore(String),
}

impl TopologyError {
    pub(crate) fn invalid(
        kind: impl Into<String>,
        name: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        TopologyError::Invalid {
            kind: kind.into(),
            name: name.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}
