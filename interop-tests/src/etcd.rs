//! etcd 3.4 as a real datastore: data in the lab directory, clients on a
//! lab address (so other namespaces reach it) and on the namespace loopback.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, CMD_TIMEOUT};
use crate::daemon::{Control, Daemon, DaemonKind};
use crate::lab::{Lab, Ns};

/// A running single-member etcd.
#[derive(Debug, Clone)]
pub struct Etcd {
    pub label: String,
    pub ns: Ns,
    /// `http://ADDR:2379`, reachable from any namespace routed to ADDR.
    pub endpoint: String,
    pub data_dir: PathBuf,
}

fn url(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("http://{a}:{port}"),
        IpAddr::V6(a) => format!("http://[{a}]:{port}"),
    }
}

impl Etcd {
    /// Runs `etcdctl` (API v3) inside the namespace against this member.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let mut full = vec![
            "netns",
            "exec",
            self.ns.name.as_str(),
            "etcdctl",
            "--endpoints",
            self.endpoint.as_str(),
            "--command-timeout=5s",
        ];
        full.extend_from_slice(args);
        let out = cmd::run_env("ip", &full, &[("ETCDCTL_API", "3")], CMD_TIMEOUT)
            .with_context(|| format!("etcdctl of {}", self.label))?;
        if !out.status.success() {
            bail!(
                "`etcdctl {}` failed: {}",
                args.join(" "),
                cmd::first_lines(&out.stderr, 4)
            );
        }
        Ok(out.stdout)
    }

    /// Stores `value` at `key`.
    pub fn put(&self, key: &str, value: &str) -> Result<()> {
        self.ctl(&["put", "--", key, value])?;
        Ok(())
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        let out = self.ctl(&["get", "--print-value-only", "--", key])?;
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some(out.strip_suffix('\n').unwrap_or(&out).to_string()))
    }

    /// Deletes `key`; returns how many keys went.
    pub fn del(&self, key: &str) -> Result<u64> {
        let out = self.ctl(&["del", "--", key])?;
        out.trim()
            .parse()
            .with_context(|| format!("unexpected etcdctl del output {out:?}"))
    }

    /// Keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let out = self.ctl(&["get", "--prefix", "--keys-only", "--", prefix])?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
}

impl Lab {
    /// Starts etcd in `ns`, serving clients on `addr:2379` (and loopback).
    pub fn start_etcd(&mut self, ns: &Ns, label: &str, addr: IpAddr) -> Result<Etcd> {
        let data_dir = self.path(&format!("{label}.etcd"));
        let endpoint = url(addr, 2379);
        let loopback = "http://127.0.0.1:2379".to_string();
        let clients = if addr.is_loopback() {
            loopback.clone()
        } else {
            format!("{endpoint},{loopback}")
        };
        let peer = "http://127.0.0.1:2380";
        let args = [
            "--name".to_string(),
            label.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen-client-urls".into(),
            clients,
            "--advertise-client-urls".into(),
            endpoint.clone(),
            "--listen-peer-urls".into(),
            peer.into(),
            "--initial-advertise-peer-urls".into(),
            peer.into(),
            "--initial-cluster".into(),
            format!("{label}={peer}"),
            "--logger".into(),
            "zap".into(),
            "--log-level".into(),
            "warn".into(),
        ];
        let daemon = Daemon {
            kind: DaemonKind::Etcd,
            program: "etcd".into(),
            args: args.to_vec(),
            env: vec![],
            control: Control::Etcd {
                endpoint: endpoint.clone(),
            },
        };
        self.start(ns, label, daemon)?;
        let e = Etcd {
            label: label.into(),
            ns: ns.clone(),
            endpoint,
            data_dir,
        };
        self.wait_ready(label, Duration::from_secs(20), || {
            e.ctl(&["endpoint", "health"])
        })?;
        Ok(e)
    }
}
