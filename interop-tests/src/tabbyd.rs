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
    /// Starts tabbyd in `ns`. Unless `opts` says otherwise, its API socket is
    /// `<label>.api.sock` and its run directory `<label>.run` in the lab
    /// directory. With a `unix:` API it waits until the socket exists;
    /// otherwise only until the process runs.
    pub fn start_tabbyd(&mut self, ns: &Ns, label: &str, opts: &TabbydOpts) -> Result<Tabbyd> {
        let mut opts = opts.clone();
        if opts.api.is_none() {
            opts.api = Some(format!(
                "unix:{}",
                self.path(&format!("{label}.api.sock")).display()
            ));
        }
        if opts.run_dir.is_none() {
            opts.run_dir = Some(self.path(&format!("{label}.run")));
        }
        let daemon = Daemon::tabbyd(&opts)?;
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
            opts,
            api_socket,
        })
    }
}
