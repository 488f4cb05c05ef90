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
    /// The node has no IPv4 address to use as BGP identifier.
    #[error(
        "Node '{0}' has no spec.bgp.ipv4Address; Tabby uses it as the BGP router id (RFC 6286 §2.1 needs a unique 32-bit id)"
    )]
    NoRouterId(String),
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
