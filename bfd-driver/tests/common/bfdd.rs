//! FRR's bfdd as a BFD peer: started alone (no zebra, no bgpd) with its
//! config, vty socket, control socket and pid file in the lab directory,
//! and asked through vtysh. Needs FRR (Debian `frr`: /usr/lib/frr/bfdd,
//! vtysh).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use interop_tests::cmd::{self, CMD_TIMEOUT};
use interop_tests::{Daemon, Lab, Need, Ns, preflight};
use serde_json::Value;

use super::LIMIT;

pub const BFDD: &str = "/usr/lib/frr/bfdd";

/// A bfdd configuration with one peer block: `peer_line` (`peer X
/// local-address Y`, `... multihop ...`), `interval_ms` both ways,
/// multiplier 3, and `extra` options.
pub fn bfdd_conf(peer_line: &str, interval_ms: u64, extra: &[&str]) -> String {
    let mut opts = format!(
        "  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n  detect-multiplier 3\n"
    );
    for e in extra {
        opts.push_str(&format!("  {e}\n"));
    }
    format!(
        "frr defaults traditional\nhostname frr\nlog stdout informational\n!\n\
         bfd\n {peer_line}\n{opts} !\n!\n"
    )
}

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

    /// This bfdd's side of its session with peer `addr`.
    pub fn side<'a>(&'a self, lab: &'a Lab, addr: IpAddr) -> BfddSide<'a> {
        BfddSide {
            lab,
            bfdd: self,
            addr,
        }
    }

    /// Sets the receive and transmit intervals of the peer block
    /// `peer_line` to `n` ms.
    pub fn set_intervals(&self, peer_line: &str, n: u64) -> Result<()> {
        let rx = format!("receive-interval {n}");
        let tx = format!("transmit-interval {n}");
        self.configure_peer(peer_line, &[&rx, &tx])?;
        Ok(())
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

/// What bfdd advertises (`receive-interval`, `transmit-interval`) and what
/// it has heard from us (`remote-*`), in milliseconds, and its peer's
/// detect multiplier.
pub fn bfdd_timers(p: &Value) -> (u64, u64, u64, u64, u64) {
    (
        num(p, "receive-interval"),
        num(p, "transmit-interval"),
        num(p, "remote-receive-interval"),
        num(p, "remote-transmit-interval"),
        num(p, "remote-detect-multiplier"),
    )
}

/// bfdd's side of one session, for the checks of `common::interop`: its
/// peer `addr` (us).
pub struct BfddSide<'a> {
    pub lab: &'a Lab,
    pub bfdd: &'a Bfdd,
    pub addr: IpAddr,
}

impl BfddSide<'_> {
    /// Waits until bfdd's peer is Up with `timers` ([`bfdd_timers`]).
    pub fn at(&self, timers: (u64, u64, u64, u64, u64)) -> Result<Value> {
        self.bfdd.wait_peer(self.lab, self.addr, "up", LIMIT, |p| {
            bfdd_timers(p) == timers
        })
    }

    /// Checks that bfdd's peer is Up and has not left Up since we saw it Up
    /// at `up_at`: bfdd's uptime (whole seconds) counts from its last Up,
    /// so it must cover the time since, less a second of rounding. That
    /// time is taken before asking bfdd, so that a slow vtysh (a loaded
    /// machine) cannot make it exceed bfdd's answer.
    pub fn stayed_up(&self, up_at: Instant) -> Result<()> {
        let since = up_at.elapsed().as_secs();
        let p = self.bfdd.peer(self.addr)?;
        let uptime = num(&p, "uptime");
        ensure!(
            p["status"].as_str() == Some("up") && uptime + 1 >= since,
            "bfdd left Up: uptime {uptime} s, Up for {since} s here: {p}"
        );
        Ok(())
    }
}

/// A JSON field as an integer (0 when absent).
pub fn num(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or(0)
}
