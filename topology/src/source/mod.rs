//! Where resources come from: a YAML file, Calico's etcd datastore or its Kubernetes
//! datastore (the API server). Each source yields a
//! full [`Resources`] snapshot whenever it changes; a bad update yields an error and the
//! source keeps watching, so the caller keeps running on the last good snapshot.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::TopologyError;
use crate::resources::Resources;

pub mod endpoint_status;
pub mod etcd;
pub mod file;
pub mod kube;

pub use endpoint_status::EndpointStatusWatcher;
pub use etcd::EtcdSource;
pub use file::FileSource;
pub use kube::{KubeSource, KubeTarget};

/// The `--datastore` flag: `file:PATH`, `etcd:URL[,URL…]`, `kubernetes` (in a pod) or
/// `kubernetes:/path/to/kubeconfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatastoreSpec {
    File(PathBuf),
    Etcd(Vec<String>),
    Kubernetes(KubeTarget),
}

impl FromStr for DatastoreSpec {
    type Err = TopologyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(TopologyError::BadDatastore(s.to_string()));
            }
            return Ok(DatastoreSpec::File(PathBuf::from(path)));
        }
        if let Some(urls) = s.strip_prefix("etcd:") {
            let urls: Vec<String> = urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect();
            if urls.is_empty() {
                return Err(TopologyError::BadDatastore(s.to_string()));
            }
            return Ok(DatastoreSpec::Etcd(urls));
        }
        if s == "kubernetes" {
            return Ok(DatastoreSpec::Kubernetes(KubeTarget::Infer));
        }
        if let Some(path) = s.strip_prefix("kubernetes:") {
            if path.is_empty() {
                return Err(TopologyError::BadDatastore(s.to_string()));
            }
            return Ok(DatastoreSpec::Kubernetes(KubeTarget::Kubeconfig(
                PathBuf::from(path),
            )));
        }
        Err(TopologyError::BadDatastore(s.to_string()))
    }
}

/// Any source behind one interface.
#[derive(Debug)]
pub enum Source {
    File(FileSource),
    Etcd(Box<EtcdSource>),
    Kube(Box<KubeSource>),
}

impl Source {
    /// Opens the source; nothing is read until the first [`Source::next`].
    /// `secret_namespace` is where the Kubernetes source reads BGP password Secrets (`None`:
    /// the pod's own namespace, else `kube-system`); the other sources ignore it.
    pub fn open(spec: &DatastoreSpec, secret_namespace: Option<String>) -> Source {
        match spec {
            DatastoreSpec::File(p) => Source::File(FileSource::new(p.clone())),
            DatastoreSpec::Etcd(urls) => Source::Etcd(Box::new(EtcdSource::new(urls.clone()))),
            DatastoreSpec::Kubernetes(t) => {
                Source::Kube(Box::new(KubeSource::new(t.clone(), secret_namespace)))
            }
        }
    }

    /// Waits for the next snapshot. The first call returns the initial contents. `Err` is a
    /// bad update (or an unreachable datastore): report it and call again; the source goes
    /// on watching.
    pub async fn next(&mut self) -> Result<Arc<Resources>, TopologyError> {
        match self {
            Source::File(s) => s.next().await,
            Source::Etcd(s) => s.next().await,
            Source::Kube(s) => s.next().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastore_flag() {
        assert_eq!(
            "file:/etc/tabby/cluster.yaml"
                .parse::<DatastoreSpec>()
                .unwrap(),
            DatastoreSpec::File("/etc/tabby/cluster.yaml".into())
        );
        assert_eq!(
            "etcd:http://127.0.0.1:2379, http://127.0.0.2:2379"
                .parse::<DatastoreSpec>()
                .unwrap(),
            DatastoreSpec::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.2:2379".into()
            ])
        );
        assert!("file:".parse::<DatastoreSpec>().is_err());
        assert!("etcd:".parse::<DatastoreSpec>().is_err());
        assert_eq!(
            "kubernetes".parse::<DatastoreSpec>().unwrap(),
            DatastoreSpec::Kubernetes(KubeTarget::Infer)
        );
        assert_eq!(
            "kubernetes:/etc/tabby/kubeconfig"
                .parse::<DatastoreSpec>()
                .unwrap(),
            DatastoreSpec::Kubernetes(KubeTarget::Kubeconfig("/etc/tabby/kubeconfig".into()))
        );
        assert!("kubernetes:".parse::<DatastoreSpec>().is_err());
        assert!("k8s".parse::<DatastoreSpec>().is_err());
    }
}
