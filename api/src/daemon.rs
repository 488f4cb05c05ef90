//! The tabby.v1 Daemon service.

use std::sync::Arc;

use tabby_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::Core;
use crate::convert::{check_log_filter, status_to_pb};

/// Serves tabby.v1.Daemon over a [`Core`].
#[derive(Clone)]
pub struct DaemonService {
    core: Arc<dyn Core>,
}

impl std::fmt::Debug for DaemonService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonService").finish_non_exhaustive()
    }
}

impl DaemonService {
    /// A service over `core`.
    pub fn new(core: Arc<dyn Core>) -> DaemonService {
        DaemonService { core }
    }
}

#[tonic::async_trait]
impl pb::daemon_server::Daemon for DaemonService {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(status_to_pb(&self.core.status().await?)))
    }

    async fn set_log_level(
        &self,
        req: Request<pb::SetLogLevelRequest>,
    ) -> Result<Response<pb::SetLogLevelResponse>, Status> {
        let filter = check_log_filter(&req.into_inner().level)?;
        let previous = self.core.set_log_level(filter).await?;
        Ok(Response::new(pb::SetLogLevelResponse { previous }))
    }

    async fn get_config(
        &self,
        _req: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        Ok(Response::new(pb::GetConfigResponse {
            config_json: self.core.effective_config().await?,
        }))
    }
}
