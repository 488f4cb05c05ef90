//! pmacct's BMP station, `pmbmpd` (Debian `pmacct`), logging every message
//! it receives as one JSON object a line (its `bmp_daemon_msglog_file`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::daemon::{Control, Daemon, DaemonKind};
use crate::lab::{Lab, Ns};

/// A running `pmbmpd`.
#[derive(Debug, Clone)]
pub struct Pmbmpd {
    pub label: String,
    pub listen: SocketAddr,
    /// The JSON message log.
    pub msglog: PathBuf,
}

impl Lab {
    /// Starts `pmbmpd` in `ns`, listening on `listen`, logging JSON.
    pub fn start_pmbmpd(&mut self, ns: &Ns, label: &str, listen: SocketAddr) -> Result<Pmbmpd> {
        let msglog = self.path(&format!("{label}.json"));
        let conf = format!(
            "daemonize: false\n\
             bmp_daemon_ip: {}\n\
             bmp_daemon_port: {}\n\
             bmp_daemon_msglog_file: {}\n\
             bmp_daemon_msglog_output: json\n",
            listen.ip(),
            listen.port(),
            msglog.display()
        );
        let conf_path = self.write_file(&format!("{label}.conf"), &conf)?;
        let daemon = Daemon {
            kind: DaemonKind::Other,
            program: PathBuf::from("pmbmpd"),
            args: vec!["-f".into(), conf_path.display().to_string()],
            env: vec![],
            control: Control::None,
        };
        self.start(ns, label, daemon)?;
        let station = Pmbmpd {
            label: label.into(),
            listen,
            msglog,
        };
        let log = self.log_path(label)?;
        self.wait_ready(label, Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::ensure!(
                text.contains("waiting for BMP data"),
                "pmbmpd not listening yet"
            );
            Ok(())
        })?;
        Ok(station)
    }
}

impl Pmbmpd {
    /// Every record logged so far (a line still being written is left out).
    pub fn records(&self) -> Result<Vec<Value>> {
        let text = match std::fs::read_to_string(&self.msglog) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.msglog.display())),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Records of `bmp_msg_type` `kind` (`peer_up`, `route_monitor`, ...).
    pub fn of_type(&self, kind: &str) -> Result<Vec<Value>> {
        Ok(self
            .records()?
            .into_iter()
            .filter(|r| r["bmp_msg_type"] == kind)
            .collect())
    }
}
