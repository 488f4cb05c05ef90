//! ExaBGP as a scripted route injector: its API process follows a command
//! file, so a test announces, withdraws or crafts attributes by appending
//! ExaBGP API lines (`announce route … attribute [0x.. 0x.. 0x..]`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::daemon::{Control, Daemon, DaemonKind};
use crate::lab::{Lab, Ns};

/// An ExaBGP neighbor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExaBgpNeighbor {
    pub address: IpAddr,
    pub peer_as: u32,
    pub local_address: IpAddr,
    pub local_as: u32,
    pub hold_time: u16,
    /// `ipv4 unicast`, `ipv6 unicast`.
    pub families: Vec<String>,
    pub md5_password: Option<String>,
}

impl ExaBgpNeighbor {
    pub fn new(address: IpAddr, peer_as: u32, local_address: IpAddr, local_as: u32) -> Self {
        ExaBgpNeighbor {
            address,
            peer_as,
            local_address,
            local_as,
            hold_time: 90,
            families: vec![if address.is_ipv6() {
                "ipv6 unicast".into()
            } else {
                "ipv4 unicast".into()
            }],
            md5_password: None,
        }
    }
}

/// An ExaBGP configuration; the API process is added by the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExaBgpConf {
    pub router_id: Ipv4Addr,
    pub neighbors: Vec<ExaBgpNeighbor>,
}

impl ExaBgpConf {
    pub fn new(router_id: Ipv4Addr) -> ExaBgpConf {
        ExaBgpConf {
            router_id,
            neighbors: vec![],
        }
    }

    pub fn neighbor(mut self, n: ExaBgpNeighbor) -> ExaBgpConf {
        self.neighbors.push(n);
        self
    }

    /// The configuration text, with an API process `ctl` that runs `api_cmd`.
    pub fn render(&self, api_cmd: &str) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "process ctl {{\n  run {api_cmd};\n  encoder text;\n}}\n");
        for n in &self.neighbors {
            let _ = writeln!(o, "neighbor {} {{", n.address);
            let _ = writeln!(o, "  router-id {};", self.router_id);
            let _ = writeln!(o, "  local-address {};", n.local_address);
            let _ = writeln!(o, "  local-as {};", n.local_as);
            let _ = writeln!(o, "  peer-as {};", n.peer_as);
            let _ = writeln!(o, "  hold-time {};", n.hold_time);
            if let Some(p) = &n.md5_password {
                let _ = writeln!(o, "  md5-password \"{p}\";");
            }
            o.push_str("  family {\n");
            for f in &n.families {
                let _ = writeln!(o, "    {f};");
            }
            o.push_str("  }\n  api {\n    processes [ ctl ];\n  }\n}\n");
        }
        o
    }
}

/// A running ExaBGP and its command file.
#[derive(Debug, Clone)]
pub struct ExaBgp {
    pub label: String,
    pub ns: Ns,
    pub conf: PathBuf,
    pub commands: PathBuf,
}

impl ExaBgp {
    /// Sends one ExaBGP API command, e.g.
    /// `announce route 100.64.7.0/24 next-hop 198.18.1.2`,
    /// `neighbor 198.18.1.1 announce route … attribute [0x63 0xc0 0x0102]`.
    pub fn send(&self, command: &str) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.commands)
            .with_context(|| format!("cannot open {}", self.commands.display()))?;
        writeln!(f, "{}", command.trim())?;
        Ok(())
    }
}

impl Lab {
    /// Starts ExaBGP in `ns` (as root, no CLI pipe, logging to the lab log).
    pub fn start_exabgp(&mut self, ns: &Ns, label: &str, conf: &ExaBgpConf) -> Result<ExaBgp> {
        let commands = self.write_file(&format!("{label}.cmds"), "")?;
        // `tail -F` turns the file into ExaBGP's API stream.
        let api = format!("/usr/bin/tail -n +1 -F {}", commands.display());
        let path = self.write_file(&format!("{label}.exabgp.conf"), &conf.render(&api))?;
        let env = [
            ("exabgp_daemon_user", "root"),
            ("exabgp_daemon_drop", "false"),
            ("exabgp_daemon_daemonize", "false"),
            ("exabgp_api_cli", "false"),
            ("exabgp_log_destination", "stdout"),
            ("exabgp_log_level", "INFO"),
            ("exabgp_tcp_port", "179"),
        ];
        let daemon = Daemon {
            kind: DaemonKind::ExaBgp,
            program: "exabgp".into(),
            args: vec![path.display().to_string()],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            control: Control::None,
        };
        self.start(ns, label, daemon)?;
        let log = self.log_path(label)?;
        let pid = self.pid(label)?;
        // Ready once ExaBGP has forked its API process.
        self.wait_ready(label, Duration::from_secs(15), || {
            let kids = crate::procfs::descendants(pid);
            anyhow::ensure!(
                !kids.is_empty(),
                "exabgp has not started its API process yet (log {})",
                log.display()
            );
            Ok(())
        })?;
        Ok(ExaBgp {
            label: label.into(),
            ns: ns.clone(),
            conf: path,
            commands,
        })
    }
}
