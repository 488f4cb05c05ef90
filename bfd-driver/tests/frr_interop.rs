//! Interop with FRR's bfdd, single-hop IPv4, both ends active: Tabby and
//! bfdd both report Up with each other's discriminators; bfdd's `shutdown`
//! of the peer reaches Tabby as AdminDown (not a failure), `no shutdown`
//! brings it back; bfdd frozen with SIGSTOP is detected by Tabby with
//! diagnostic 1 within the Detection Time, and after SIGCONT both come Up.
//!
//! bfdd runs alone (no zebra: a single-hop peer without `interface` needs
//! none) with its config, vty socket, control socket and pid file in the
//! lab directory. Needs root and FRR (Debian `frr`: /usr/lib/frr/bfdd,
//! vtysh).

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::bfdd::{Bfdd, bfdd_conf, bfdd_preflight};
use common::interop::{end_without_drops, wait_detected_down};
use common::{Family, MARGIN, init_tracing, one_link, single_hop_100ms, start_driver};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tabby_bfd_driver::{BfdEvent, State};

#[tokio::test(flavor = "current_thread")]
async fn interop_with_frr_bfdd() -> Result<()> {
    init_tracing();
    bfdd_preflight()?;
    let (mut lab, tabby, frr, seg, us, them) = one_link("bfd-frr", "frr", Family::V4)?;
    let peer_cmd = format!("peer {us} local-address {them}");
    let bfdd = Bfdd::start(&mut lab, &frr, "bfdd", &bfdd_conf(&peer_cmd, 100, &[]))?;

    let (dt, mut ev) = start_driver(&tabby)?;
    let t0 = Instant::now();
    let spec = single_hop_100ms(them, us, seg.ifname(&tabby)?);
    let id = dt.handle().add(spec).await?;
    let limit = Duration::from_secs(15);
    let up = |e: &BfdEvent| *e == BfdEvent::Up;
    let (t_up, _) = ev.wait(id, limit, up).await?;
    // bfdd reports up
    bfdd.wait_peer(&lab, us, "up", limit, |_| true)?;
    let info = dt
        .wait_info(id, "at 100 ms", limit, |i| {
            i.detection_time == Some(Duration::from_millis(300))
        })
        .await?;
    let peer = bfdd.first_peer()?;
    eprintln!(
        "measured: Tabby Up {:?} after adding the session",
        t_up - t0
    );
    eprintln!("bfdd: {peer}");
    ensure!(peer["id"].as_u64() == Some(u64::from(info.remote_discriminator)));
    ensure!(peer["remote-id"].as_u64() == Some(u64::from(info.local_discriminator)));
    ensure!(info.tx_interval == Duration::from_millis(100));

    // ----- bfdd shuts the peer down: AdminDown, not a failure.
    let t = Instant::now();
    bfdd.vtysh(&["configure terminal", "bfd", &peer_cmd, "shutdown"])?;
    let (t_ad, _) = ev.wait(id, limit, |e| *e == BfdEvent::AdminDown).await?;
    eprintln!(
        "measured: Tabby saw bfdd's AdminDown {:?} after `shutdown`",
        t_ad - t
    );
    let i = dt.info(id).await?;
    ensure!(
        i.state == State::Down && i.remote_state == State::AdminDown,
        "{i:#?}"
    );
    // FRR 8.4 sends its AdminDown packets with diagnostic 0, not 7 (RFC
    // 5880 §6.8.16 says SHOULD 7): the state alone must decide.
    eprintln!("bfdd's AdminDown diagnostic: {:?}", i.remote_diag);
    bfdd.vtysh(&["configure terminal", "bfd", &peer_cmd, "no shutdown"])?;
    ev.wait(id, limit, up).await?;
    // bfdd up again
    bfdd.wait_peer(&lab, us, "up", limit, |_| true)?;
    dt.wait_info(id, "at 100 ms", limit, |i| {
        i.detection_time == Some(Duration::from_millis(300))
    })
    .await?;

    // ----- bfdd frozen: Tabby detects it in the Detection Time.
    let pid = Pid::from_raw(i32::try_from(lab.pid("bfdd")?)?);
    let t = Instant::now();
    kill(pid, Signal::SIGSTOP)?;
    let res = wait_detected_down(&mut ev, id, t).await;
    // Thawed whatever happened, so the lab can stop it.
    let _ = kill(pid, Signal::SIGCONT);
    let took = res?;
    eprintln!("measured: Tabby Down (diag 1) {took:?} after SIGSTOP (Detection Time 300 ms)");
    ensure!(
        took <= Duration::from_millis(300) + MARGIN,
        "too late: {took:?}"
    );
    // Thawed, bfdd comes back.
    ev.wait(id, limit, up).await?;
    // bfdd up after SIGCONT
    bfdd.wait_peer(&lab, us, "up", limit, |_| true)?;
    end_without_drops(dt, lab).await
}
