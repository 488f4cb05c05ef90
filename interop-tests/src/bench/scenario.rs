//! One benchmark run: a fresh lab (reflector namespace, generator namespace
//! with one source address per session), the daemon under test, the
//! generator, and the daemon's and generator's resource use.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ipnet::Ipv4Net;

use super::anchors::{self, ASN, Dut, Peer, Setup};
use super::generator::{self, Load, Phase, SessionSpec};
use crate::lab::Lab;
use crate::procfs;

/// Pod blocks and generated prefixes come from here (lab address plan).
const PREFIX_BASE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
/// 100.64.0.0/10 holds 2^22 addresses.
const PREFIX_SPACE: u64 = 1 << 22;

/// What load a run applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// (a) The Calico shape: `clients` reflector clients, 4 /26 blocks each;
    /// `observers` spread clients check they hold every other client's blocks.
    Fanout { clients: usize, observers: usize },
    /// (b) `peers` non-client iBGP peers of the reflector's cluster announce
    /// `prefixes` distinct /30s each; one client observes all of them.
    Ingest { peers: usize, prefixes: usize },
    /// A full table through the reflector: one client announces `prefixes`
    /// distinct /28s under `attr_sets` attribute sets, reflected to
    /// `clients` other clients, then withdraws them all. `observers` of
    /// them decode; every other one counts what it is sent.
    FullTable {
        clients: usize,
        prefixes: usize,
        attr_sets: usize,
        observers: usize,
    },
}

impl Shape {
    /// Number of BGP sessions.
    pub fn sessions(&self) -> usize {
        match *self {
            Shape::Fanout { clients, .. } => clients,
            Shape::Ingest { peers, .. } => peers + 1,
            Shape::FullTable { clients, .. } => clients + 1,
        }
    }

    /// A short title for tables and file names.
    pub fn title(&self) -> String {
        match *self {
            Shape::Fanout { clients, .. } => format!("(a) RR fan-out, {clients} clients × 4 /26"),
            Shape::Ingest { peers, prefixes } => {
                format!("(b) ingest and reflect, {peers} peers × {prefixes} prefixes → 1 client")
            }
            Shape::FullTable {
                clients, prefixes, ..
            } => format!(
                "(e) full table through the reflector, {prefixes} prefixes → {clients} clients"
            ),
        }
    }

    /// What the load is, in a sentence for the report.
    pub fn describe(&self) -> String {
        match *self {
            Shape::Fanout { clients, observers } => format!(
                "{clients} iBGP reflector clients each announce four /26 blocks from 100.64.0.0/10 in one UPDATE; {} spread observers must each hold the other {} clients' {} blocks.",
                observers.clamp(1, clients),
                clients - 1,
                4 * (clients - 1)
            ),
            Shape::Ingest { peers, prefixes } => format!(
                "{peers} iBGP peers inside the reflector's cluster (non-clients) each announce {prefixes} distinct /30s from 100.64.0.0/10, packed into full 4096-octet UPDATEs; one reflector client must receive all {}.",
                peers * prefixes
            ),
            Shape::FullTable {
                clients,
                prefixes,
                attr_sets,
                observers,
            } => format!(
                "One iBGP reflector client announces {prefixes} distinct /28s from 100.64.0.0/10 under {attr_sets} attribute sets (AS_PATHs of one to five private ASNs, ORIGIN IGP or INCOMPLETE, MED on half, one to three communities, LOCAL_PREF 100), packed into full 4096-octet UPDATEs, one run per set; the reflector must send all of them to {clients} other clients: {} route deliveries. *Converged*: every one of the {clients} clients was sent every prefix ({} spread observers decode each UPDATE and hold every prefix; the others count the prefixes by walking the UPDATEs' framing). Then the source withdraws everything; *withdrawn*: every observer holds nothing and every other client counted as many withdrawals. Each phase's CPU is the daemon's over that phase alone.",
                clients * prefixes,
                observers.clamp(1, clients)
            ),
        }
    }

    /// Sessions and reflector peers for the generator's `addrs`.
    pub fn build(&self, addrs: &[Ipv4Addr]) -> Result<(Vec<SessionSpec>, Vec<Peer>)> {
        ensure!(addrs.len() >= self.sessions(), "too few source addresses");
        match *self {
            Shape::Fanout { clients, observers } => {
                ensure!(clients >= 2, "the fan-out needs at least 2 clients");
                ensure!(
                    clients as u64 * 4 * 64 <= PREFIX_SPACE,
                    "{clients} clients do not fit 100.64.0.0/10"
                );
                let blocks = |c: usize| -> Result<Vec<Ipv4Net>> {
                    (0..4)
                        .map(|k| prefix((c * 4 + k) as u64 * 64, 26))
                        .collect()
                };
                let obs = spread(observers, clients);
                let mut sessions = Vec::with_capacity(clients);
                for (c, &addr) in addrs.iter().take(clients).enumerate() {
                    let expect = if obs.contains(&c) {
                        let mut v = Vec::with_capacity(4 * (clients - 1));
                        for other in (0..clients).filter(|&o| o != c) {
                            v.extend(blocks(other)?);
                        }
                        Some(v)
                    } else {
                        None
                    };
                    sessions.push(SessionSpec {
                        source: addr,
                        asn: ASN,
                        announce: blocks(c)?,
                        expect,
                        attr_sets: 1,
                        withdraw_after: false,
                        count: None,
                    });
                }
                let peers = all_clients(&sessions);
                Ok((sessions, peers))
            }
            Shape::Ingest { peers, prefixes } => {
                ensure!(
                    peers >= 1 && prefixes >= 1,
                    "ingest needs peers and prefixes"
                );
                ensure!(
                    (peers * prefixes) as u64 * 4 <= PREFIX_SPACE,
                    "{peers} × {prefixes} /30s do not fit 100.64.0.0/10"
                );
                let mut sessions = Vec::with_capacity(peers + 1);
                let mut all = Vec::with_capacity(peers * prefixes);
                for (p, &addr) in addrs.iter().take(peers).enumerate() {
                    let mine: Vec<Ipv4Net> = (0..prefixes)
                        .map(|i| prefix((p * prefixes + i) as u64 * 4, 30))
                        .collect::<Result<_>>()?;
                    all.extend_from_slice(&mine);
                    sessions.push(SessionSpec {
                        source: addr,
                        asn: ASN,
                        announce: mine,
                        expect: None,
                        attr_sets: 1,
                        withdraw_after: false,
                        count: None,
                    });
                }
                let obs = *addrs.get(peers).context("no address for the observer")?;
                sessions.push(SessionSpec {
                    source: obs,
                    asn: ASN,
                    announce: vec![],
                    expect: Some(all),
                    attr_sets: 1,
                    withdraw_after: false,
                    count: None,
                });
                let roles = sessions
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Peer {
                        addr: s.source,
                        client: i == peers,
                    })
                    .collect();
                Ok((sessions, roles))
            }
            Shape::FullTable {
                clients,
                prefixes,
                attr_sets,
                observers,
            } => {
                ensure!(
                    clients >= 1 && prefixes >= 1,
                    "the full table needs clients and prefixes"
                );
                ensure!(
                    prefixes as u64 * 16 <= PREFIX_SPACE,
                    "{prefixes} /28s do not fit 100.64.0.0/10"
                );
                let table: Vec<Ipv4Net> = (0..prefixes)
                    .map(|i| prefix(i as u64 * 16, 28))
                    .collect::<Result<_>>()?;
                let obs = spread(observers, clients);
                let mut sessions = Vec::with_capacity(clients + 1);
                sessions.push(SessionSpec {
                    source: addrs[0],
                    asn: ASN,
                    announce: table.clone(),
                    expect: None,
                    attr_sets,
                    withdraw_after: true,
                    count: None,
                });
                for (c, &addr) in addrs[1..=clients].iter().enumerate() {
                    let observer = obs.contains(&c);
                    sessions.push(SessionSpec {
                        source: addr,
                        asn: ASN,
                        announce: vec![],
                        expect: observer.then(|| table.clone()),
                        attr_sets: 1,
                        withdraw_after: false,
                        count: (!observer).then_some(prefixes),
                    });
                }
                let peers = all_clients(&sessions);
                Ok((sessions, peers))
            }
        }
    }
}

/// Every session a reflector client.
fn all_clients(sessions: &[SessionSpec]) -> Vec<Peer> {
    sessions
        .iter()
        .map(|s| Peer {
            addr: s.source,
            client: true,
        })
        .collect()
}

/// `k` of `n` indices (at least one, at most all) spread over the range:
/// first, last and evenly between.
fn spread(k: usize, n: usize) -> Vec<usize> {
    let k = k.clamp(1, n);
    (0..k)
        .map(|j| if k == 1 { 0 } else { j * (n - 1) / (k - 1) })
        .collect()
}

fn prefix(offset: u64, len: u8) -> Result<Ipv4Net> {
    ensure!(
        offset < PREFIX_SPACE,
        "prefix offset {offset} outside 100.64.0.0/10"
    );
    let a = u32::from(PREFIX_BASE) + offset as u32;
    Ok(Ipv4Net::new(Ipv4Addr::from(a), len)?)
}

/// Limits and generator settings of a run.
#[derive(Debug, Clone)]
pub struct RunOpts {
    pub establish_timeout: Duration,
    pub converge_timeout: Duration,
    /// Generator runtime threads (1 = one thread for every session).
    pub gen_threads: usize,
    /// Handshakes the generator runs at once.
    pub connect_burst: usize,
    /// The tabbyd binary (a release build); `None` when there is none.
    pub tabbyd: Option<PathBuf>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub establish: Phase,
    pub converge: Option<Phase>,
    /// Daemon CPU seconds from the first connect to the end of the run.
    pub daemon_cpu: f64,
    /// Daemon peak RSS (VmHWM) at the end of the run, MiB.
    pub daemon_rss_mib: f64,
    /// The generator's CPU seconds over the same interval.
    pub gen_cpu: f64,
    /// Per observer: prefixes held at the end, prefixes expected.
    pub observers: Vec<(usize, usize)>,
    /// The host's 1-minute load average when the run started: the machine
    /// may be shared, and a busy one slows every daemon alike.
    pub host_load: f64,
    /// A load with withdrawals: until everything was withdrawn everywhere.
    pub withdraw: Option<Phase>,
    /// Daemon CPU seconds over the converge phase alone, and the withdraw phase.
    pub converge_cpu: Option<f64>,
    pub withdraw_cpu: Option<f64>,
}

/// The 1-minute load average (`/proc/loadavg`), 0 if unreadable.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Why a daemon could not be measured at all (not a failed run).
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Unavailable {}

/// Runs `shape` once against `dut` in a fresh lab.
pub fn run_once(dut: Dut, shape: Shape, opts: &RunOpts) -> Result<RunResult> {
    if dut == Dut::Tabby && opts.tabbyd.is_none() {
        return Err(Unavailable(
            "no release build of tabbyd: run `cargo build --release -p tabbyd` or set TABBYD_BIN"
                .into(),
        )
        .into());
    }
    let mut lab = Lab::new("bench")?;
    let dut_ns = lab.ns("dut")?;
    let gen_ns = lab.ns("gen")?;
    let seg = lab.link(&dut_ns, &gen_ns)?;
    let addrs = lab.attach_bulk(&seg, &gen_ns, shape.sessions())?;
    let (sessions, peers) = shape.build(&addrs)?;
    let me = seg.member(&dut_ns)?;
    let setup = Setup {
        ns: dut_ns.clone(),
        addr: me.v4,
        ifname: me.ifname.clone(),
        peer_net: "198.18.128.0/17",
        peers,
    };
    let started = anchors::start(&mut lab, dut, "dut", &setup, opts.tabbyd.as_deref());
    if let Err(e) = started {
        if dut == Dut::Tabby {
            return Err(Unavailable(format!("tabbyd did not start: {e:#}")).into());
        }
        return Err(e.context(format!("starting {}", dut.name())));
    }
    let dut_pid = lab.pid("dut")?;
    let load = Load {
        target: SocketAddr::new(IpAddr::V4(me.v4), 179),
        daemon_asn: ASN,
        sessions,
        hold_time: 240,
        threads: opts.gen_threads,
        connect_burst: opts.connect_burst,
        establish_timeout: opts.establish_timeout,
        converge_timeout: opts.converge_timeout,
        daemon_pid: Some(dut_pid),
    };
    let host_load = load_average();
    let d0 = lab.stats("dut")?;
    let g0 = procfs::stats(std::process::id())?;
    let out = lab
        .in_ns(&gen_ns, || generator::run(&load))?
        .with_context(|| format!("generator against {}", dut.name()));
    let g1 = procfs::stats(std::process::id())?;
    lab.check_alive("dut")
        .with_context(|| format!("{} died during the run", dut.name()))?;
    let d1 = lab.stats("dut")?;
    let out = out?;
    // The generator's own checks, stated again for the report's sake.
    match (out.converge, out.withdraw) {
        (_, Some(Phase::Done(_))) => {
            if let Some(h) = out.observer_held.iter().find(|&&h| h != 0) {
                bail!("an observer still holds {h} prefixes after the withdrawal");
            }
        }
        (Some(Phase::Done(_)), None) => {
            for (h, e) in out.observer_held.iter().zip(&out.observer_expected) {
                if h != e {
                    bail!("an observer holds {h} of {e} prefixes after convergence");
                }
            }
        }
        _ => {}
    }
    Ok(RunResult {
        establish: out.establish,
        converge: out.converge,
        daemon_cpu: d1.cpu_secs - d0.cpu_secs,
        daemon_rss_mib: d1.peak_rss_mib(),
        gen_cpu: g1.cpu_secs - g0.cpu_secs,
        observers: out
            .observer_held
            .iter()
            .copied()
            .zip(out.observer_expected.iter().copied())
            .collect(),
        host_load,
        withdraw: out.withdraw,
        converge_cpu: out.converge_cpu,
        withdraw_cpu: out.withdraw_cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u32) -> Vec<Ipv4Addr> {
        (1..=n)
            .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 128, 0)) + i))
            .collect()
    }

    #[test]
    fn fanout_observers_expect_every_other_block() {
        let (s, p) = Shape::Fanout {
            clients: 10,
            observers: 3,
        }
        .build(&addrs(10))
        .unwrap();
        assert_eq!(s.len(), 10);
        assert!(p.iter().all(|p| p.client));
        let obs: Vec<usize> = (0..10).filter(|&i| s[i].expect.is_some()).collect();
        assert_eq!(obs, [0, 4, 9]);
        let e = s[4].expect.as_ref().unwrap();
        assert_eq!(e.len(), 36);
        assert!(!e.iter().any(|b| s[4].announce.contains(b)));
        assert_eq!(s[1].announce[0].to_string(), "100.64.1.0/26");
        assert_eq!(s[9].announce[3].to_string(), "100.64.9.192/26");
    }

    #[test]
    fn ingest_prefixes_are_distinct_and_observed() {
        let (s, p) = Shape::Ingest {
            peers: 3,
            prefixes: 5,
        }
        .build(&addrs(4))
        .unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(p.iter().filter(|p| p.client).count(), 1);
        assert!(p[3].client);
        let e = s[3].expect.as_ref().unwrap();
        assert_eq!(e.len(), 15);
        let uniq: std::collections::HashSet<_> = e.iter().collect();
        assert_eq!(uniq.len(), 15);
        assert_eq!(s[2].announce[4].to_string(), "100.64.0.56/30");
    }

    #[test]
    fn full_table_goes_from_one_client_to_every_other() {
        let (s, p) = Shape::FullTable {
            clients: 10,
            prefixes: 50,
            attr_sets: 3,
            observers: 2,
        }
        .build(&addrs(11))
        .unwrap();
        assert_eq!(s.len(), 11);
        assert!(p.iter().all(|p| p.client));
        assert_eq!(s[0].announce.len(), 50);
        assert!(s[0].withdraw_after && s[0].attr_sets == 3);
        assert_eq!(s[0].announce[1].to_string(), "100.64.0.16/28");
        let observers: Vec<usize> = (1..11).filter(|&i| s[i].expect.is_some()).collect();
        assert_eq!(observers, [1, 10]);
        assert!(
            (1..11)
                .filter(|i| !observers.contains(i))
                .all(|i| s[i].count == Some(50) && s[i].announce.is_empty())
        );
        assert_eq!(s[10].expect.as_ref().unwrap(), &s[0].announce);
    }

    #[test]
    fn oversized_loads_are_refused() {
        assert!(
            Shape::Ingest {
                peers: 11,
                prefixes: 100_000
            }
            .build(&addrs(12))
            .is_err()
        );
    }
}
