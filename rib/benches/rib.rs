//! RIB benches (issue: ingest, RR fan-out, churn). Figures go in README.md.
//!
//! Timings are thread CPU time (the bench machine is shared). Memory per
//! path is measured by the `memory` bench, which counts allocations.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net};
use tabby_bgp::attr::{LocalPref, Origin};
use tabby_bgp::message::Update;
use tabby_bgp::{Asn, Nlri, PathAttributes};
use tabby_rib::*;

mod common;
use common::*;

fn bench_ingest(c: &mut Criterion) {
    let updates = ingest_updates();
    let paths = (PEERS * PREFIXES) as u64;
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(paths));
    g.bench_function("10 peers x 100k IPv4 prefixes", |b| {
        // CPU time of this thread: the bench machine is shared, wall time
        // would measure the other tenants.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut rib = ingest_rib();
                let t = ThreadTime::now();
                ingest(&mut rib, &updates);
                black_box(rib.drain_best_changes().len());
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

const CLIENTS: u32 = 1000;

fn client_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xC612_0000u32 + 256 + i) // 198.18.1.0 + i
}

/// A reflector with 1,000 clients in one update group, every client up.
fn fanout_rib() -> (Rib, Vec<(PeerId, Update)>) {
    let mut c = RibConfig::new(Ipv4Addr::new(198, 18, 0, 1), Asn(64512));
    c.cluster_id = Some(Ipv4Addr::new(198, 18, 0, 1));
    let mut rib = Rib::new(c);
    let now = Instant::now();
    let mut updates = Vec::new();
    for i in 0..CLIENTS {
        let mut pc = PeerConfig::new(IpAddr::V4(client_addr(i)), Asn(64512));
        pc.rr_client = true;
        pc.local_v4 = Some(Ipv4Addr::new(198, 18, 0, 1));
        rib.add_peer(PeerId(i), pc).expect("new peer");
        let mut s = PeerSession::basic(client_addr(i));
        s.families = vec![tabby_bgp::Family::IPV4_UNICAST];
        rib.peer_up(PeerId(i), s, now).expect("configured");
        let nlri = (0..4)
            .map(|k| {
                let n = i * 4 + k;
                Nlri::new(IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from(0x6440_0000u32 + (n << 6)), 26).expect("/26"),
                ))
            })
            .collect();
        updates.push((
            PeerId(i),
            Update {
                attributes: PathAttributes {
                    origin: Some(Origin::Igp),
                    next_hop: Some(client_addr(i)),
                    local_pref: Some(LocalPref::new(100)),
                    ..Default::default()
                },
                nlri,
                ..Default::default()
            },
        ));
    }
    rib.drain_outgoing();
    (rib, updates)
}

/// Applies every client's routes and drains the outgoing UPDATEs, which the
/// update groups encode once each. Returns (UPDATEs encoded, deliveries,
/// bytes).
fn fanout(rib: &mut Rib, updates: &[(PeerId, Update)]) -> (usize, usize, usize) {
    ingest(rib, updates);
    let out = rib.drain_outgoing();
    let (mut enc, mut deliveries, mut bytes) = (0, 0, 0);
    for o in &out {
        enc += o.batch.messages() as usize;
        bytes += o.batch.len();
        deliveries +=
            o.to.peers()
                .iter()
                .map(|p| o.batch.messages_for(p.0) as usize)
                .sum::<usize>();
    }
    (enc, deliveries, bytes)
}

fn fanout_report() {
    let (mut rib, updates) = fanout_rib();
    let t = ThreadTime::now();
    let (enc, deliveries, bytes) = fanout(&mut rib, &updates);
    let cpu = t.elapsed();
    println!(
        "fan-out: {CLIENTS} clients x 4 /26: {cpu:?} CPU, {enc} UPDATEs encoded ({} update groups), {deliveries} deliveries ({:.0} per encoding), {bytes} bytes encoded",
        rib.stats().update_groups,
        deliveries as f64 / enc as f64
    );
}

fn bench_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.sample_size(10);
    let report = std::sync::Once::new();
    g.bench_function("1000 RR clients x 4 /26", |b| {
        report.call_once(fanout_report);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (mut rib, updates) = fanout_rib();
                let t = ThreadTime::now();
                black_box(fanout(&mut rib, &updates));
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn bench_churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("churn");
    g.sample_size(20);
    // Built once: criterion calls this closure for every sample.
    let mut state: Option<(Rib, Vec<Flap>)> = None;
    let mut k = 0usize;
    g.bench_function("one flap (withdraw + re-announce) on 1M paths", |b| {
        let (rib, flaps) = state.get_or_insert_with(churn_setup);
        b.iter_custom(|iters| {
            let t = ThreadTime::now();
            for _ in 0..iters {
                let (p, w, a) = &flaps[k % flaps.len()];
                k += 1;
                rib.apply_update(*p, w).expect("up");
                black_box(rib.drain_outgoing());
                rib.apply_update(*p, a).expect("up");
                black_box(rib.drain_outgoing());
                black_box(rib.drain_best_changes());
            }
            t.elapsed()
        })
    });
    g.finish();
}

type Flap = (PeerId, Update, Update);

fn churn_setup() -> (Rib, Vec<Flap>) {
    let updates = ingest_updates();
    let mut rib = ingest_rib();
    ingest(&mut rib, &updates);
    rib.drain_best_changes();
    rib.drain_outgoing();
    // Flap the best path of 10k prefixes: withdraw it, re-announce it. Each
    // change runs through decision, best-change stream and all update
    // groups (10 eBGP peers).
    let flaps: Vec<Flap> = (0..10_000u32)
        .map(|i| {
            let prefix = prefix27(i * 7 % PREFIXES);
            let best = rib.best(&prefix).expect("in table");
            let peer = best.next_hops[0].peer.expect("learned");
            let set = (i * 7 % PREFIXES) / PER_SET;
            let (_, orig) = &updates[(peer.0 * (PREFIXES / PER_SET) + set) as usize];
            let w = Update {
                withdrawn: vec![Nlri::new(prefix)],
                ..Default::default()
            };
            let a = Update {
                attributes: orig.attributes.clone(),
                nlri: vec![Nlri::new(prefix)],
                ..Default::default()
            };
            (peer, w, a)
        })
        .collect();
    let mut lat: Vec<Duration> = Vec::with_capacity(20_000);
    for (p, w, a) in &flaps {
        for u in [w, a] {
            let t = ThreadTime::now();
            rib.apply_update(*p, u).expect("up");
            black_box(rib.drain_best_changes());
            black_box(rib.drain_outgoing());
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "churn (thread CPU time per change, incl. best-change stream and 10 update groups): {} changes on a {}-path table: p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        rib.stats().paths,
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
    (rib, flaps)
}

criterion_group!(benches, bench_ingest, bench_fanout, bench_churn);
criterion_main!(benches);
