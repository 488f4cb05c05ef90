//! `--datastore etcd:URL[,URL…]` (in progress).

use std::sync::Arc;

use crate::error::TopologyError;
use crate::resources::Resources;

/// Calico's etcdv3 datastore.
#[derive(Debug)]
pub struct EtcdSource {
    endpoints: Vec<String>,
}

impl EtcdSource {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdSource { endpoints }
    }

    pub async fn next(&mut self) -> Result<Arc<Resources>, TopologyError> {
        Err(TopologyError::Etcd {
            endpoints: self.endpoints.join(","),
            reason: "the etcd datastore is not available in this build yet".to_string(),
        })
    }
}
