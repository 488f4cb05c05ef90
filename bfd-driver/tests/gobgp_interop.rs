//! Interop with GoBGP 4's BFD (GoBGP v4.8.0, pinned in scripts/lab-gobgp.sh; BFD arrived in v4.5.0): a
//! single-hop IPv4 session per BGP neighbor, enabled in the neighbor's
//! `[neighbors.bfd.config]`. GoBGP's BFD is deliberately partial (its
//! docs/sources/bfd.md): no passive mode, no multihop, no authentication,
//! it never adjusts its own timers to the peer's, never sends AdminDown,
//! and applies a changed BFD config by replacing the session. Each test
//! asserts both sides: Tabby's events and `SessionInfo`, and GoBGP's
//! `gobgp -j neighbor ADDR` (`state.bfd_state`).
//!
//! - Tabby active: Up; Tabby's `update_timers` 100 ms -> 500 ms -> 100 ms
//!   while Up: GoBGP answers our Polls, neither side leaves Up, and GoBGP
//!   keeps sending at its own 100 ms although our Required Min RX asks for
//!   500 ms (RFC 5880 §6.8.7 says it must not; we accept the extra
//!   packets); Tabby's AdminDown takes GoBGP Down; GoBGP's
//!   intervals changed in its config (SIGHUP reload) reach Tabby as a new
//!   session after a silence longer than the Detection Time (its
//!   replacement opens its socket on a 1 s ticker): Down with diagnostic
//!   1, then Up at the new intervals; the neighbor deleted in GoBGP is
//!   silence too, a Down with diagnostic 1 after the Detection Time.
//! - Tabby passive: GoBGP transmits from the start and the session comes Up.
//!
//! Needs root and GoBGP 4 (`gobgpd` and `gobgp` from the Go module
//! github.com/osrg/gobgp/v4, in `$TABBY_GOBGP4_BIN_DIR` or
//! `<workspace>/target/lab/gobgp4/bin`).

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::interop::{
    admin_down_and_back, end_without_drops, ensure_stayed_up, hold, wait_both_up,
    wait_detected_down,
};
use common::{
    EventLog, Family, LIMIT, MARGIN, NsDriver, init_tracing, ms, one_link, single_hop_100ms,
    start_driver, timers,
};
use interop_tests::cmd::{self, CMD_TIMEOUT};
use interop_tests::preflight::workspace_root;
use interop_tests::{Daemon, Lab, Need, Ns, preflight};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tabby_bfd_driver::{SessionSpec, State};
/// GoBGP's API port inside its namespace.
const API_PORT: &str = "50051";
/// apipb `BfdSessionState`.
const GOBGP_UP: u64 = 1;
const GOBGP_DOWN: u64 = 2;

/// Where GoBGP 4's binaries are expected.
fn gobgp4_dir() -> PathBuf {
    std::env::var_os("TABBY_GOBGP4_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/lab/gobgp4/bin"))
}

/// Fails with one line unless root and GoBGP 4 are there.
fn gobgp4_preflight() -> Result<PathBuf> {
    preflight(&[Need::Root])?;
    let dir = gobgp4_dir();
    let gobgpd = dir.join("gobgpd");
    let v4 = cmd::run(&gobgpd.display().to_string(), &["--version"], CMD_TIMEOUT)
        .map(|o| o.stdout.contains("version 4."))
        .unwrap_or(false);
    if !v4 || !dir.join("gobgp").is_file() {
        bail!(
            "lab test cannot run: missing GoBGP 4 (gobgpd and gobgp in {}, built from the Go \
             module github.com/osrg/gobgp/v4, v4.5.0 or later)",
            dir.display()
        );
    }
    Ok(dir)
}

/// gobgpd's configuration: one neighbor with BFD at `interval_ms` both ways
/// and multiplier 3; the BGP session itself stays passive and never comes
/// up (no BGP speaker on our side), which BFD does not need.
fn gobgp_conf(neighbor: IpAddr, interval_ms: u64) -> String {
    let us = interval_ms * 1000;
    format!(
        "[global.config]\n  as = 65001\n  router-id = \"198.18.255.3\"\n  port = -1\n\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{neighbor}\"\n    \
         peer-as = 65002\n  [neighbors.transport.config]\n    passive-mode = true\n  \
         [neighbors.bfd.config]\n    enabled = true\n    desired-minimum-tx-interval = {us}\n    \
         required-minimum-receive = {us}\n    detection-multiplier = 3\n"
    )
}

struct GoBgp4 {
    gobgp: String,
    ns: Ns,
    conf: PathBuf,
}

impl GoBgp4 {
    fn start(lab: &mut Lab, dir: &std::path::Path, ns: &Ns, conf: &str) -> Result<GoBgp4> {
        let path = lab.write_file("gobgpd.toml", conf)?;
        let p = path.display().to_string();
        let api = format!("127.0.0.1:{API_PORT}");
        let args = [
            "-f",
            &p,
            "-t",
            "toml",
            "--api-hosts",
            &api,
            "--pprof-disable",
            "--log-plain",
            "--log-level=debug",
        ];
        lab.start(ns, "gobgpd", Daemon::other(dir.join("gobgpd"), &args))?;
        let g = GoBgp4 {
            gobgp: dir.join("gobgp").display().to_string(),
            ns: ns.clone(),
            conf: path,
        };
        lab.wait_ready("gobgpd", Duration::from_secs(10), || g.cli(&["global"]))?;
        Ok(g)
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let mut full = vec![
            "netns",
            "exec",
            self.ns.name.as_str(),
            self.gobgp.as_str(),
            "-u",
            "127.0.0.1",
            "-p",
            API_PORT,
        ];
        full.extend_from_slice(args);
        cmd::run_ok("ip", &full, CMD_TIMEOUT)
    }

    /// `state.bfd_state` of neighbor `addr`.
    fn bfd_state(&self, addr: IpAddr) -> Result<Value> {
        let out = self.cli(&["-j", "neighbor", &addr.to_string()])?;
        let v: Value = serde_json::from_str(out.trim()).context("gobgp's json")?;
        Ok(v["state"]["bfd_state"].clone())
    }

    fn session_state(&self, addr: IpAddr) -> Result<u64> {
        let b = self.bfd_state(addr)?;
        Ok(match &b["session_state"] {
            Value::Number(n) => n.as_u64().unwrap_or(0),
            Value::String(s) if s.ends_with("_UP") => GOBGP_UP,
            Value::String(s) if s.ends_with("_DOWN") && !s.contains("ADMIN") => GOBGP_DOWN,
            _ => 0,
        })
    }

    fn wait_state(&self, lab: &Lab, addr: IpAddr, state: u64) -> Result<Value> {
        lab.wait_for(&format!("GoBGP's BFD state {state}"), LIMIT, || {
            let b = self.bfd_state(addr)?;
            ensure!(self.session_state(addr)? == state, "GoBGP says {b}");
            Ok(b)
        })
    }
}

/// One link, gobgpd on one end with BFD at 100 ms for its neighbor (us),
/// Tabby's driver on the other: `(lab, gobgp, driver, events, spec, us)`,
/// `spec` a single-hop session to gobgpd at 100 ms, not added yet.
fn fixture(name: &str) -> Result<(Lab, GoBgp4, NsDriver, EventLog, SessionSpec, IpAddr)> {
    init_tracing();
    let dir = gobgp4_preflight()?;
    let (mut lab, tabby, peer, seg, us, them) = one_link(name, "gobgp", Family::V4)?;
    let gobgp = GoBgp4::start(&mut lab, &dir, &peer, &gobgp_conf(us, 100))?;
    let (dt, ev) = start_driver(&tabby)?;
    let spec = single_hop_100ms(them, us, seg.ifname(&tabby)?);
    Ok((lab, gobgp, dt, ev, spec, us))
}

#[tokio::test(flavor = "current_thread")]
async fn gobgp4_tabby_active() -> Result<()> {
    let (lab, gobgp, dt, mut ev, spec, us) = fixture("bfd-gobgp4")?;
    let gobgp_up = |_| gobgp.wait_state(&lab, us, GOBGP_UP);
    let t0 = Instant::now();
    let id = dt.handle().add(spec).await?;
    let (up, _, i) = wait_both_up(&dt, &mut ev, id, 100, gobgp_up).await?;
    eprintln!("measured: Tabby Up {:?} after adding the session", up - t0);
    ensure!(i.remote_detect_mult == Some(3), "{i:#?}");

    // ----- Tabby slows down while Up, then speeds up again. GoBGP answers
    // each Poll with a Final but keeps its own transmit interval.
    let gobgp_stayed_up = || {
        ensure!(gobgp.session_state(us)? == GOBGP_UP, "GoBGP left Up");
        Ok(())
    };
    for n in [500, 100] {
        let t = Instant::now();
        dt.handle().update_timers(id, timers(n)).await?;
        let i = dt.wait_negotiated(id, ms(n), ms(3 * n), LIMIT).await?;
        eprintln!(
            "measured: Tabby's change to {n} ms settled in {:?}",
            t.elapsed()
        );
        ensure!(i.counters.finals_in > 0, "{i:#?}");
        let before = i.counters.packets_in;
        let t = Instant::now();
        let i = ensure_stayed_up(&dt, &mut ev, id, hold(ms(3 * n)), gobgp_stayed_up).await?;
        let got = i.counters.packets_in - before;
        let held = t.elapsed();
        eprintln!("GoBGP sent {got} packets in {held:?} with our Required Min RX at {n} ms");
        // At GoBGP's own 100 ms, not at our (larger) Required Min RX: GoBGP
        // never reads the peer's intervals.
        ensure!(
            got as u128 >= held.as_millis() / 100 / 2,
            "GoBGP slowed down to {got} packets in {held:?}"
        );
    }

    // ----- our AdminDown: GoBGP goes Down (and, per its code, resets the
    // BGP neighbor: it treats AdminDown like a failure).
    let gobgp_down = || gobgp.wait_state(&lab, us, GOBGP_DOWN);
    let old_remote = admin_down_and_back(&dt, &mut ev, id, gobgp_down, gobgp_up)
        .await?
        .remote_discriminator;

    // ----- GoBGP's intervals changed (config reload): GoBGP stops its BFD
    // session and starts a new one, with a new discriminator, whose socket
    // is opened by a 1 s ticker. The old session's last packet was Up, and
    // nothing comes for longer than our Detection Time: a failure
    // (diagnostic 1), then Up again at GoBGP's new intervals.
    std::fs::write(&gobgp.conf, gobgp_conf(us, 300))?;
    let t = Instant::now();
    kill(
        Pid::from_raw(i32::try_from(lab.pid("gobgpd")?)?),
        Signal::SIGHUP,
    )?;
    let took = wait_detected_down(&mut ev, id, t).await?;
    eprintln!("GoBGP's reconfiguration reached Tabby as Down (diag 1) after {took:?}");
    let (_, _, i) = wait_both_up(&dt, &mut ev, id, 300, gobgp_up).await?;
    ensure!(i.remote_discriminator != old_remote, "{i:#?}");

    // ----- the neighbor deleted in GoBGP: no AdminDown, just silence.
    let t = Instant::now();
    gobgp.cli(&["neighbor", "del", &us.to_string()])?;
    let took = wait_detected_down(&mut ev, id, t).await?;
    eprintln!(
        "measured: Tabby Down (diag 1) {took:?} after GoBGP deleted the neighbor (Detection Time 900 ms)"
    );
    ensure!(took <= ms(900) + MARGIN, "too late: {took:?}");
    ensure!(dt.info(id).await?.remote_state == State::Up);
    end_without_drops(dt, lab).await
}

#[tokio::test(flavor = "current_thread")]
async fn gobgp4_tabby_passive() -> Result<()> {
    let (lab, gobgp, dt, mut ev, mut spec, us) = fixture("bfd-gobgp4-pas")?;
    spec.passive = true;
    let id = dt.handle().add(spec).await?;
    wait_both_up(&dt, &mut ev, id, 100, |_| {
        gobgp.wait_state(&lab, us, GOBGP_UP)
    })
    .await?;
    ev.settle(Duration::from_secs(1)).await;
    ev.ensure_quiet(id, "while Up").await?;
    ensure!(gobgp.session_state(us)? == GOBGP_UP);
    end_without_drops(dt, lab).await
}
