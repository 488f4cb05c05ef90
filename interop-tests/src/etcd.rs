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

/// Which etcd [`Lab::start_etcd_with`] runs, and on which ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOpts {
    /// `etcd` (Debian's 3.4, on the PATH) unless set.
    pub program: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
}

impl Default for EtcdOpts {
    fn default() -> EtcdOpts {
        EtcdOpts {
            program: "etcd".into(),
            client_port: 2379,
            peer_port: 2380,
        }
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
        self.start_etcd_with(ns, label, addr, &EtcdOpts::default())
    }

    /// [`Lab::start_etcd`] with another binary or other ports: clients on
    /// `addr:client_port` (and loopback), the member's peer port on
    /// `127.0.0.1:peer_port`.
    pub fn start_etcd_with(
        &mut self,
        ns: &Ns,
        label: &str,
        addr: IpAddr,
        opts: &EtcdOpts,
    ) -> Result<Etcd> {
        let (program, client_port, peer_port) = (&opts.program, opts.client_port, opts.peer_port);
        let data_dir = self.path(&format!("{label}.etcd"));
        let endpoint = url(addr, client_port);
        let loopback = format!("http://127.0.0.1:{client_port}");
        let clients = if addr.is_loopback() {
            loopback.clone()
        } else {
            format!("{endpoint},{loopback}")
        };
        let peer = format!("http://127.0.0.1:{peer_port}");
        let peer = peer.as_str();
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
            program: program.clone(),
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
