//! A flood of packets that must not touch a session, sent from the peer's
//! namespace while a single-hop IPv4 and an IPv6 session run at 100 ms:
//! wrong TTL / hop limit carrying the session's real discriminators
//! (RFC 5881 §5), unknown discriminators, a spoofed source address with the
//! real discriminators or none (RFC 5880 §6.3), bad lengths and versions
//! (RFC 5880 §6.8.6), the multihop port (RFC 5883), an unexpected
//! authentication section (RFC 5880 §6.7). Each is counted under its own
//! reason, and the sessions stay Up without a flap.
//!
//! Needs root.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{EventLog, NsDriver, init_tracing, timers};
use interop_tests::{Lab, Need, Ns, in_netns, preflight};
use socket2::{Domain, Protocol, Socket, Type};
use tabby_bfd::{Diag, Packet};
use tabby_bfd_driver::{BfdEvent, DriverConfig, DropReason, MalformedKind, SessionSpec, State};

/// Packets of each kind, per family.
const PER_KIND: usize = 2000;
/// Sent back to back, then a millisecond's pause.
const BURST: usize = 200;

fn socket(ns: &Ns, bind: IpAddr, ttl: u32) -> Result<Socket> {
    in_netns(&ns.name, move || -> Result<Socket> {
        let s = Socket::new(
            Domain::for_address(SocketAddr::new(bind, 0)),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if bind.is_ipv6() {
            s.set_only_v6(true)?;
            s.set_unicast_hops_v6(ttl)?;
        } else {
            s.set_ttl_v4(ttl)?;
        }
        s.bind(&SocketAddr::new(bind, 0).into())?;
        Ok(s)
    })?
}

/// A Control packet from B to A: `my`, `your` discriminators and `state`.
fn packet(my: u32, your: u32, state: State) -> Vec<u8> {
    Packet {
        diag: Diag::NoDiagnostic,
        state,
        poll: false,
        fin: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: my,
        your_discriminator: your,
        desired_min_tx_us: 100_000,
        required_min_rx_us: 100_000,
        required_min_echo_rx_us: 0,
        auth: None,
    }
    .encode()
}

/// Reads a counter of `/proc/net/snmp` or `/proc/net/snmp6` in `ns`.
fn snmp(lab: &Lab, ns: &Ns, file: &str, key: &str) -> Result<u64> {
    let text = lab.exec(ns, &["cat", file])?;
    if file.ends_with('6') {
        return text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .with_context(|| format!("{key} not in {file}"));
    }
    // "Udp: names…" then "Udp: values…".
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (
        lines.next().context("no Udp")?,
        lines.next().context("no Udp")?,
    );
    let i = names
        .split_whitespace()
        .position(|n| n == key)
        .with_context(|| format!("{key} not in {file}"))?;
    Ok(values
        .split_whitespace()
        .nth(i)
        .context("short line")?
        .parse()?)
}

#[tokio::test(flavor = "current_thread")]
async fn flood_is_counted_and_dropped() -> Result<()> {
    init_tracing();
    preflight(&[Need::Root])?;
    let mut lab = Lab::new("bfd-flood")?;
    let a = lab.ns("a")?;
    let b = lab.ns("b")?;
    let seg = lab.link(&a, &b)?;
    let ib = seg.ifname(&b)?.to_string();
    let spoof4: IpAddr = "198.18.1.99".parse()?;
    let spoof6: IpAddr = "2001:db8:0:1::99".parse()?;
    lab.add_addr(&b, &ib, "198.18.1.99/24")?;
    lab.add_addr(&b, &ib, "2001:db8:0:1::99/64")?;

    let da = NsDriver::start(&a, DriverConfig::default())?;
    let db = NsDriver::start(&b, DriverConfig::default())?;
    let mut ea = EventLog::new(&da);
    let mut eb = EventLog::new(&db);
    let t = timers(100);
    let spec = |peer: IpAddr, local: IpAddr, ifname: &str| {
        SessionSpec::single_hop(peer, Some(local), Some(ifname)).with_timers(t)
    };
    let ia = seg.ifname(&a)?;
    let (a4_addr, a6_addr): (IpAddr, IpAddr) = (seg.v4(&a)?.into(), seg.v6(&a)?.into());
    let (b4_addr, b6_addr): (IpAddr, IpAddr) = (seg.v4(&b)?.into(), seg.v6(&b)?.into());
    let a4 = da.handle().add(spec(b4_addr, a4_addr, ia)).await?;
    let a6 = da.handle().add(spec(b6_addr, a6_addr, ia)).await?;
    let b4 = db.handle().add(spec(a4_addr, b4_addr, &ib)).await?;
    let b6 = db.handle().add(spec(a6_addr, b6_addr, &ib)).await?;
    let limit = Duration::from_secs(10);
    let up = |e: &BfdEvent| *e == BfdEvent::Up;
    for id in [a4, a6] {
        ea.wait(id, limit, up).await?;
    }
    for id in [b4, b6] {
        eb.wait(id, limit, up).await?;
    }
    for id in [a4, a6] {
        da.wait_info(id, "at 100 ms", limit, |i| {
            i.detection_time == Some(Duration::from_millis(300))
        })
        .await?;
    }

    // ----- the flood, one family at a time, kinds interleaved.
    let before = da.handle().stats().await?;
    let rcvbuf_before = snmp(&lab, &a, "/proc/net/snmp", "RcvbufErrors")?
        + snmp(&lab, &a, "/proc/net/snmp6", "Udp6RcvbufErrors")?;
    let mut expected: BTreeMap<DropReason, u64> = BTreeMap::new();
    let started = Instant::now();
    let all_ours = [
        da.info(a4).await?.local_discriminator,
        da.info(a6).await?.local_discriminator,
    ];
    for (us, them, to, from, spoof, low_ttl) in [
        (a4, b4, a4_addr, b4_addr, spoof4, 254),
        (a6, b6, a6_addr, b6_addr, spoof6, 64),
    ] {
        let ours = da.info(us).await?.local_discriminator;
        let theirs = db.info(them).await?.local_discriminator;
        let good = socket(&b, from, 255)?;
        let low = socket(&b, from, low_ttl)?;
        let spoofed = socket(&b, spoof, 255)?;
        let single = SocketAddr::new(to, 3784);
        let multi = SocketAddr::new(to, 4784);
        let unknown = (1..)
            .map(|k: u32| ours.wrapping_add(k.wrapping_mul(0x9e37_79b9)))
            .find(|d| *d != 0 && !all_ours.contains(d))
            .context("a discriminator nobody has")?;
        let with_auth = {
            let mut p = packet(theirs, ours, State::Down);
            // A bit, Keyed SHA1 section with a garbage hash, Length 52.
            p[1] |= 0x04;
            p[3] = 52;
            p.extend_from_slice(&[4, 28, 1, 0, 0, 0, 0, 1]);
            p.extend_from_slice(&[0xab; 20]);
            p
        };
        let mut short_length = packet(theirs, ours, State::Up);
        short_length[3] = 23;
        let mut long_length = packet(theirs, ours, State::Up);
        long_length[3] = 48;
        let mut version0 = packet(theirs, ours, State::Up);
        version0[0] &= 0x1f;
        let kinds: Vec<(&Socket, SocketAddr, Vec<u8>, DropReason)> = vec![
            // Would bring the session down if it got through.
            (
                &low,
                single,
                packet(theirs, ours, State::AdminDown),
                DropReason::BadTtl,
            ),
            (
                &good,
                single,
                packet(theirs, unknown, State::Up),
                DropReason::UnknownDiscriminator,
            ),
            (
                &spoofed,
                single,
                packet(theirs, ours, State::Down),
                DropReason::PeerAddressMismatch,
            ),
            (
                &spoofed,
                single,
                packet(theirs, 0, State::Down),
                DropReason::NoSessionForAddress,
            ),
            (
                &good,
                multi,
                packet(theirs, ours, State::Down),
                DropReason::HopModeMismatch,
            ),
            (&good, single, with_auth, DropReason::Authentication),
            (
                &good,
                single,
                short_length,
                DropReason::Malformed(MalformedKind::LengthTooSmall),
            ),
            (
                &good,
                single,
                long_length,
                DropReason::Malformed(MalformedKind::LengthExceedsPayload),
            ),
            (
                &good,
                single,
                vec![0x20, 0xc0, 3],
                DropReason::Malformed(MalformedKind::Truncated),
            ),
            (
                &good,
                single,
                version0,
                DropReason::Malformed(MalformedKind::BadVersion),
            ),
            (
                &good,
                single,
                packet(theirs, 0, State::Up),
                DropReason::Malformed(MalformedKind::ZeroYourDiscriminator),
            ),
        ];
        let mut sent = 0usize;
        for _ in 0..PER_KIND {
            for (sock, to, bytes, reason) in &kinds {
                sock.send_to(bytes, &(*to).into())?;
                *expected.entry(*reason).or_insert(0) += 1;
                sent += 1;
                if sent.is_multiple_of(BURST) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    let flood_time = started.elapsed();
    let total: u64 = expected.values().sum();
    // Let the sessions run on for a few Detection Times.
    ea.settle(Duration::from_secs(1)).await;
    eb.settle(Duration::from_millis(10)).await;

    let after = da.handle().stats().await?;
    let rcvbuf = snmp(&lab, &a, "/proc/net/snmp", "RcvbufErrors")?
        + snmp(&lab, &a, "/proc/net/snmp6", "Udp6RcvbufErrors")?
        - rcvbuf_before;
    eprintln!(
        "measured: {total} packets in {flood_time:?} ({:.0}/s); kernel receive-buffer drops {rcvbuf}",
        total as f64 / flood_time.as_secs_f64()
    );
    let mut counted = 0;
    let mut wrong = Vec::new();
    for (reason, n) in &expected {
        let got = after.dropped(*reason) - before.dropped(*reason);
        eprintln!("  {reason}: sent {n}, counted {got}");
        counted += got;
        let ok = if rcvbuf == 0 {
            got == *n
        } else {
            got > 0 && got <= *n
        };
        if !ok {
            wrong.push(format!("{reason}: sent {n}, counted {got}"));
        }
    }
    ensure!(wrong.is_empty(), "miscounted: {wrong:?}; stats {after:?}");
    ensure!(
        counted + rcvbuf >= total,
        "{counted} counted + {rcvbuf} lost < {total}"
    );
    ensure!(
        after.dropped_total() - before.dropped_total() == counted,
        "drops under reasons not sent: {after:?}"
    );

    // The sessions never noticed.
    for id in [a4, a6] {
        ensure!(ea.unmatched(id).is_empty(), "events on A: {:?}", ea.seen);
        let i = da.info(id).await?;
        ensure!(i.state == State::Up && i.flaps == 0, "{i:#?}");
        eprintln!(
            "  {id}: Up, {} packets accepted, {} discarded as its own",
            i.counters.packets_in, i.counters.discarded
        );
    }
    for id in [b4, b6] {
        ensure!(eb.unmatched(id).is_empty(), "events on B: {:?}", eb.seen);
        ensure!(db.info(id).await?.flaps == 0);
    }
    drop((da, db));
    drop(lab);
    Ok(())
}
