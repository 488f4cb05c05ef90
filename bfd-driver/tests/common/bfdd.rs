//! FRR's bfdd as a BFD peer: started alone (no zebra, no bgpd) with its
//! config, vty socket, control socket and pid file in the lab directory,
//! and asked through vtysh. Needs FRR (Debian `frr`: /usr/lib/frr/bfdd,
//! vtysh).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use interop_tests::cmd::{self, CMD_TIMEOUT};
use interop_tests::{Daemon, Lab, Need, Ns, preflight};
use serde_json::Value;

pub const BFDD: &str = "/usr/lib/frr/bfdd";

/// Fails with one line unless root, FRR and its bfdd are there.
pub fn bfdd_preflight() -> Result<()> {
    preflight(&[Need::Root, Need::Frr])?;
    if !Path::new(BFDD).is_file() {
        bail!("lab test cannot run: missing FRR's bfdd at {BFDD} (apt-get install frr)");
    }
    Ok(())
}

/// bfdd's vty, through vtysh.
pub struct Bfdd {
    pub label: String,
    vty: String,
}

impl Bfdd {
    /// Starts bfdd in `ns` as daemon `label` with configuration `conf` and
    /// waits until its vty answers.
    pub fn start(lab: &mut Lab, ns: &Ns, label: &str, conf: &str) -> Result<Bfdd> {
        let conf = lab.write_file(&format!("{label}.conf"), conf)?;
        let vty = lab.path(&format!("{label}.vty"));
        std::fs::create_dir_all(&vty)?;
        let p = |x: &Path| x.display().to_string();
        let (pid_file, ctl, zapi) = (
            lab.path(&format!("{label}.pid")),
            lab.path(&format!("{label}.sock")),
            lab.path(&format!("{label}.zserv.api")),
        );
        // Every path in the lab directory: the file system is shared by all
        // namespaces. zebra is not started; bfdd keeps retrying it,
        // harmlessly.
        let args = [
            "-f",
            &p(&conf),
            "-i",
            &p(&pid_file),
            "--vty_socket",
            &p(&vty),
            "--bfdctl",
            &p(&ctl),
            "-z",
            &p(&zapi),
            "-u",
            "root",
            "-g",
            "frrvty",
        ];
        lab.start(ns, label, Daemon::other(BFDD, &args))?;
        let bfdd = Bfdd {
            label: label.to_string(),
            vty: p(&vty),
        };
        lab.wait_ready(label, Duration::from_secs(10), || bfdd.peers())?;
        Ok(bfdd)
    }

    pub fn vtysh(&self, commands: &[&str]) -> Result<String> {
        let mut args = vec!["--vty_socket", &self.vty, "-d", "bfdd"];
        for c in commands {
            args.extend_from_slice(&["-c", c]);
        }
        cmd::run_ok("vtysh", &args, CMD_TIMEOUT)
    }

    /// Runs configuration commands under `bfd` / `peer_line`.
    pub fn configure_peer(&self, peer_line: &str, commands: &[&str]) -> Result<String> {
        let mut all = vec!["configure terminal", "bfd", peer_line];
        all.extend_from_slice(commands);
        self.vtysh(&all)
    }

    /// `show bfd peers json`.
    pub fn peers(&self) -> Result<Vec<Value>> {
        let out = self.vtysh(&["show bfd peers json"])?;
        let v: Value = serde_json::from_str(out.trim()).context("bfdd's json")?;
        v.as_array().cloned().context("bfdd's peers are not a list")
    }

    /// bfdd's first peer.
    pub fn first_peer(&self) -> Result<Value> {
        self.peers()?.into_iter().next().context("bfdd has no peer")
    }

    /// bfdd's peer `addr`.
    pub fn peer(&self, addr: IpAddr) -> Result<Value> {
        let a = addr.to_string();
        self.peers()?
            .into_iter()
            .find(|p| p["peer"].as_str() == Some(a.as_str()))
            .with_context(|| format!("bfdd has no peer {addr}"))
    }

    /// Waits until bfdd's peer `addr` has `status` (`up`, `down`, `init`,
    /// `shutdown`) and `ok` holds of it.
    pub fn wait_peer(
        &self,
        lab: &Lab,
        addr: IpAddr,
        status: &str,
        timeout: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        lab.wait_for(&format!("bfdd's peer {addr} {status}"), timeout, || {
            let p = self.peer(addr)?;
            ensure!(
                p["status"].as_str() == Some(status) && ok(&p),
                "bfdd says {p}"
            );
            Ok(p)
        })
    }
}

/// A JSON field as an integer (0 when absent).
pub fn num(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or(0)
}
