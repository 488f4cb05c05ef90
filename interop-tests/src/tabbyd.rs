//! Starting `tabbyd` in a namespace (see [`crate::TabbydOpts`] for its flags).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::daemon::{Daemon, TabbydOpts};
use crate::lab::{Lab, Ns};

/// How long tabbyd gets to open its API socket.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running tabbyd.
#[derive(Debug, Clone)]
pub struct Tabbyd {
    pub label: String,
    pub ns: Ns,
    pub opts: TabbydOpts,
    /// The API's unix socket, when it serves one.
    pub api_socket: Option<PathBuf>,
}

impl Lab {
    /// Starts tabbyd in `ns`. With a `unix:` API address it waits until the
    /// socket exists; otherwise only until the process runs.
    pub fn start_tabbyd(&mut self, ns: &Ns, label: &str, opts: &TabbydOpts) -> Result<Tabbyd> {
        let daemon = Daemon::tabbyd(opts)?;
        self.start(ns, label, daemon)?;
        let api_socket = opts
            .api
            .as_deref()
            .and_then(|a| a.strip_prefix("unix:"))
            .map(PathBuf::from);
        let sock = api_socket.clone();
        self.wait_ready(label, READY_TIMEOUT, || {
            if let Some(s) = &sock {
                ensure!(s.exists(), "API socket {} not there yet", s.display());
            }
            Ok(())
        })?;
        Ok(Tabbyd {
            label: label.into(),
            ns: ns.clone(),
            opts: opts.clone(),
            api_socket,
        })
    }
}
