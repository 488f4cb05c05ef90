//! `--datastore file:PATH`: multi-document YAML, polled once a second and re-applied when
//! its contents change. The file is read as calicoctl reads it (YAML 1.1). A document that
//! is not a valid resource is skipped and reported in [`Resources::problems`]; if the last
//! snapshot had that resource, its last good version stays, as with the etcd and
//! Kubernetes sources. Only a file that is not YAML at all is an error as a whole (the
//! caller keeps its last snapshot).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::TopologyError;
use crate::resources::Resources;

/// Watches one YAML file.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    interval: Duration,
    /// (mtime, length) at the last read, to skip re-reading an untouched file.
    stamp: Option<(Option<SystemTime>, u64)>,
    /// The text last parsed (good or bad), so a touched-but-unchanged file is not re-applied.
    last_text: Option<String>,
    /// The last snapshot returned: where a skipped resource's last good version comes from.
    last_good: Option<Arc<Resources>>,
    started: bool,
    reported_missing: bool,
}

impl FileSource {
    pub fn new(path: PathBuf) -> Self {
        FileSource {
            path,
            interval: Duration::from_secs(1),
            stamp: None,
            last_text: None,
            last_good: None,
            started: false,
            reported_missing: false,
        }
    }

    /// Polls at another interval (tests use a short one).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads and parses the file now, whatever its stamp (without last good versions).
    pub async fn load(&self) -> Result<Resources, TopologyError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|source| TopologyError::Io {
                path: self.path.clone(),
                source,
            })?;
        Resources::from_yaml_str(&text, &self.path.display().to_string())
    }

    /// The first call returns the file's contents (or why they are bad). Later calls wait
    /// until the contents change, then return the new snapshot or the error.
    pub async fn next(&mut self) -> Result<Arc<Resources>, TopologyError> {
        loop {
            if self.started {
                tokio::time::sleep(self.interval).await;
            }
            self.started = true;
            let meta = match tokio::fs::metadata(&self.path).await {
                Ok(m) => {
                    self.reported_missing = false;
                    m
                }
                Err(source) => {
                    // Report a missing file once, then wait quietly for it to come back.
                    self.stamp = None;
                    if std::mem::replace(&mut self.reported_missing, true) {
                        continue;
                    }
                    return Err(TopologyError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            let stamp = (meta.modified().ok(), meta.len());
            if self.stamp == Some(stamp) {
                continue;
            }
            let text = match tokio::fs::read_to_string(&self.path).await {
                Ok(t) => t,
                Err(source) => {
                    return Err(TopologyError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            self.stamp = Some(stamp);
            if self.last_text.as_deref() == Some(text.as_str()) {
                continue;
            }
            let parsed = Resources::from_yaml_keeping(
                &text,
                &self.path.display().to_string(),
                self.last_good.as_deref(),
            );
            self.last_text = Some(text);
            match parsed {
                Ok(r) => {
                    tracing::info!(path = %self.path.display(), resources = r.len(), problems = r.problems.len(), "datastore file loaded");
                    for p in &r.problems {
                        tracing::warn!(path = %self.path.display(), problem = %p, "datastore file");
                    }
                    let r = Arc::new(r);
                    self.last_good = Some(r.clone());
                    return Ok(r);
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "datastore file rejected; keeping the last good state");
                    return Err(e);
                }
            }
        }
    }
}
