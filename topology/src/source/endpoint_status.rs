//! Watching Felix's endpoint status directory ([`crate::endpoint_status`]): polled once a
//! second (no inotify: polling needs no extra crate, survives the directory being created
//! or replaced, and retries a half-written file by itself). A new [`LocalEndpoints`] is
//! yielded only when what was read differs from the last one, so the caller re-derives
//! only on a real change. It runs beside the datastore source and knows nothing of it;
//! the caller puts its snapshot into [`crate::Resources::local_endpoints`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::endpoint_status::LocalEndpoints;

/// confd re-reads a file that failed on an update after this long before giving up on
/// it, as a file is often caught half written.
const REREAD_AFTER: Duration = Duration::from_millis(50);

/// Polls one endpoint status directory.
#[derive(Debug)]
pub struct EndpointStatusWatcher {
    dir: PathBuf,
    interval: Duration,
    last: Option<LocalEndpoints>,
    /// The last listing error said, so a lasting one is logged once.
    last_error: Option<String>,
}

impl EndpointStatusWatcher {
    /// Watches `dir` (`<prefix>/endpoint-status`, see
    /// [`crate::endpoint_status::endpoint_status_dir`]).
    pub fn new(dir: PathBuf) -> Self {
        EndpointStatusWatcher {
            dir,
            interval: Duration::from_secs(1),
            last: None,
            last_error: None,
        }
    }

    /// Polls at another interval (tests use a short one).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for the next snapshot. The first call returns the directory's contents at
    /// once (empty if it does not exist); later calls return when they change. A directory
    /// that cannot be listed keeps the last snapshot and is logged.
    pub async fn next(&mut self) -> LocalEndpoints {
        loop {
            if self.last.is_some() {
                tokio::time::sleep(self.interval).await;
            }
            let Some(now) = self.read().await else {
                if self.last.is_none() {
                    // Nothing read yet: start empty rather than hold the daemon back.
                    self.last = Some(LocalEndpoints::default());
                    return LocalEndpoints::default();
                }
                continue;
            };
            if self.last.as_ref() != Some(&now) {
                tracing::debug!(
                    dir = %self.dir.display(),
                    endpoints = now.endpoints.len(),
                    problems = now.problems.len(),
                    "endpoint status changed"
                );
                self.last = Some(now.clone());
                return now;
            }
        }
    }

    /// One read, with one quick re-read when a file failed (it may be mid-write).
    async fn read(&mut self) -> Option<LocalEndpoints> {
        let mut now = self.read_once().await?;
        if !now.problems.is_empty() {
            tokio::time::sleep(REREAD_AFTER).await;
            now = self.read_once().await?;
        }
        Some(now)
    }

    async fn read_once(&mut self) -> Option<LocalEndpoints> {
        let dir = self.dir.clone();
        let previous = self.last.clone();
        let r =
            tokio::task::spawn_blocking(move || LocalEndpoints::read_dir(&dir, previous.as_ref()))
                .await;
        match r {
            Ok(Ok(eps)) => {
                self.last_error = None;
                Some(eps)
            }
            Ok(Err(e)) => {
                let e = e.to_string();
                if self.last_error.as_ref() != Some(&e) {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        error = %e,
                        "cannot list the endpoint status directory; workload BGP peers stay as they were; check its permissions or --endpoint-status-path-prefix"
                    );
                    self.last_error = Some(e);
                }
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "endpoint status read task failed");
                None
            }
        }
    }
}
