//! The churn scenario's markdown: one row per rate and daemon, the ratios
//! to the BIRD baseline measured in the same run, and the fault rows.

use std::fmt::Write;

use super::ChurnOpts;
use super::FlavourRun;
use super::cluster::Flavour;
use super::measure::{P99_TARGET, RateRun};
use crate::bench::e2e::quantile_ms;

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "—".into())
}

fn ratio(num: Option<f64>, den: Option<f64>) -> String {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => format!("{:.1}×", n / d),
        _ => "—".into(),
    }
}

fn idle_ms(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2} ms", x * 1e3))
        .unwrap_or_else(|| "—".into())
}

/// A progress line for stderr.
pub fn one_line(r: &RateRun) -> String {
    format!(
        "{} issued, p50 {} ms, p99 {} ms, max {} ms, lag p99 {} ms, lost {}, failed calls {}, kernels {}{}",
        r.issued,
        ms(r.p(0.5)),
        ms(r.p(0.99)),
        ms(r.p(1.0)),
        ms(r.lag_p99()),
        r.lost,
        r.failed,
        kernels(r),
        match r.window.stopped_at {
            Some(t) => format!(", stopped at {:.1} s (fell behind)", t.as_secs_f64()),
            None => String::new(),
        }
    )
}

fn kernels(r: &RateRun) -> String {
    if r.kernel.clean() {
        format!("= desired ({} routes)", r.kernel.routes)
    } else {
        format!("{} missing, {} extra", r.kernel.missing, r.kernel.extra)
    }
}

fn rate_row(o: &mut String, f: &FlavourRun, r: &RateRun) {
    let net = f
        .idle
        .map(|(idle, _)| format!("{:.0}", r.node_us_net_of_idle(idle)))
        .unwrap_or_else(|| "—".into());
    let f = f.flavour;
    let (node, rr, helper, bench) = r.cpu_us_per_change();
    let issued = match r.window.stopped_at {
        Some(t) => format!(
            "{} of {} (fell behind at {:.1} s)",
            r.issued,
            r.window.planned,
            t.as_secs_f64()
        ),
        None => format!("{}", r.issued),
    };
    let helper = if f == Flavour::Bird {
        format!("{helper:.0}")
    } else {
        "—".into()
    };
    let _ = writeln!(
        o,
        "| {} | {} | {issued} | {} | {} | {} | {} / {} | {} | {} / {} | {} | {} / {} / {} | {node:.0} ({net}) | {rr:.0} | {helper} | {bench:.0} | {:.1} | {} |",
        f.name(),
        r.rate,
        ms(r.p(0.5)),
        ms(r.p(0.99)),
        ms(r.p(1.0)),
        ms(r.from_start_ms(0.5)),
        ms(r.from_start_ms(0.99)),
        ms(r.lag_p99()),
        r.lost,
        r.failed,
        kernels(r),
        r.stray_deleted.iter().sum::<u64>(),
        r.stray_added,
        r.interim,
        r.host_load,
        if r.sustained() { "yes" } else { "no" },
    );
}

/// Every table of the scenario.
pub fn tables(opts: &ChurnOpts, runs: &[FlavourRun]) -> String {
    let mut o = String::new();
    let target = P99_TARGET.as_millis();
    let _ = writeln!(
        o,
        "### Churn across a cluster: {} nodes + 2 route reflectors, {} s per rate\n",
        opts.nodes,
        opts.window.as_secs_f64()
    );
    o.push_str("| daemon | rate (changes/s) | changes | p50 (ms) | p99 (ms) | max (ms) | from the call starting p50 / p99 (ms) | schedule lag p99 (ms) | lost / failed calls | kernels after settling | stray deletions / additions / interim | node CPU per change per node (µs; net of idle) | reflector CPU per change (µs) | confd-side CPU per change (µs, birdc) | bench process CPU per change (µs: driver, monitors) | host load | sustained |\n");
    o.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for f in runs {
        for r in &f.rates {
            rate_row(&mut o, f, r);
        }
        for (rate, why) in &f.skipped {
            let _ = writeln!(
                o,
                "| {} | {rate} | not run: {why} | | | | | | | | | | | | | | no |",
                f.flavour.name()
            );
        }
        if let Some(e) = &f.error {
            let _ = writeln!(
                o,
                "| {} | — | failed: {} | | | | | | | | | | | | | | |",
                f.flavour.name(),
                e.lines().next().unwrap_or("")
            );
        }
    }
    o.push('\n');
    let _ = writeln!(
        o,
        "Sustained: p99 ≤ {target} ms, schedule lag p99 ≤ {target} ms, nothing lost, every kernel equal to the desired state after settling.\n"
    );
    let tabby = runs.iter().find(|r| r.flavour == Flavour::Tabby);
    let bird = runs.iter().find(|r| r.flavour == Flavour::Bird);
    if let (Some(t), Some(b)) = (tabby, bird) {
        o.push_str("#### Tabby against the BIRD baseline (same run)\n\n");
        o.push_str(
            "| rate (changes/s) | Tabby p99 (ms) | BIRD 2 p99 (ms) | BIRD p99 / Tabby p99 | from the call starting: Tabby / BIRD p99 (ms) | ratio | Tabby node CPU / change / node (µs) | BIRD node CPU / change / node (µs) |\n|---|---|---|---|---|---|---|---|\n",
        );
        for tr in &t.rates {
            let br = b.rates.iter().find(|r| r.rate == tr.rate);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} / {} | {} | {:.0} | {} |",
                tr.rate,
                ms(tr.p(0.99)),
                ms(br.and_then(|r| r.p(0.99))),
                ratio(br.and_then(|r| r.p(0.99)), tr.p(0.99)),
                ms(tr.from_start_ms(0.99)),
                ms(br.and_then(|r| r.from_start_ms(0.99))),
                ratio(
                    br.and_then(|r| r.from_start_ms(0.99)),
                    tr.from_start_ms(0.99)
                ),
                tr.cpu_us_per_change().0,
                br.map(|r| format!("{:.0}", r.cpu_us_per_change().0))
                    .unwrap_or_else(|| "—".into()),
            );
        }
        let (ts, bs) = (t.sustained(), b.sustained());
        let _ = writeln!(
            o,
            "\nIdle cost (5 s, nothing changing), CPU per second: Tabby node {}, reflector {}; BIRD node {}, reflector {}.\n\nHighest sustained rate: Tabby {}, BIRD 2 {}; ratio {} (the highest rate of the ladder that met every condition).\n",
            idle_ms(t.idle.map(|i| i.0)),
            idle_ms(t.idle.map(|i| i.1)),
            idle_ms(b.idle.map(|i| i.0)),
            idle_ms(b.idle.map(|i| i.1)),
            ts.map(|r| format!("{r}/s"))
                .unwrap_or_else(|| "none".into()),
            bs.map(|r| format!("{r}/s"))
                .unwrap_or_else(|| "none".into()),
            ratio(ts, bs)
        );
    }
    if let Some(t) = tabby
        && !t.faults.is_empty()
    {
        o.push_str("#### Faults during churn (Tabby)\n\n");
        o.push_str("| fault | rate (changes/s) | changes during the window | lost / failed calls | p99 (ms) | p99 additions / removals (ms) | max (ms) | unasked deletions: restarted node's kernel / other nodes | kernels after settling | down / back (s) |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for f in &t.faults {
            match f {
                Ok(f) => {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} / {} | {} | {} / {} | {} | {} / {} | {} | {:.1} / {:.1} |",
                        f.fault.title(),
                        f.run.rate,
                        f.run.issued,
                        f.run.lost,
                        f.run.failed,
                        ms(f.run.p(0.99)),
                        ms(quantile_ms(&f.run.latency_add, 0.99)),
                        ms(quantile_ms(&f.run.latency_del, 0.99)),
                        ms(f.run.p(1.0)),
                        f.deletions_own
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "—".into()),
                        f.deletions_others,
                        kernels(&f.run),
                        f.down.as_secs_f64(),
                        f.back.as_secs_f64()
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        o,
                        "| failed: {} | | | | | | | | | |",
                        e.lines().next().unwrap_or("")
                    );
                }
            }
        }
        o.push('\n');
    }
    o
}

/// What the tables measure, for the file.
pub fn describe(opts: &ChurnOpts) -> String {
    format!(
        "Setup: {n} nodes and 2 route reflectors, each in its own network namespace, on one bridge; iBGP AS 64512, every node a client of both reflectors (one cluster id). Tabby: one Calico cluster file (no mesh, reflector Nodes with `routeReflectorClusterID`, a BGPPeer selecting them), tabbyd with its FIB on every node and `--no-fib` on the reflectors. BIRD 2: the same topology; a change rewrites the node's whole configuration (a static blackhole per block and borrowed /32, exported to both reflectors) and runs `birdc configure`, as Calico's confd does; the kernel protocol exports learned routes and the node's own blocks.\n\n\
Load: each node starts with one /26; a single driver (this binary) changes one node's set per change, at a combined rate R spread over the nodes at random (seed {seed}): a /26 block appearing or going, or a borrowed /32 created or deleted (a quarter blocks). Open loop: change k is due at k/R s whether or not earlier changes have arrived; each node's changes go through its own worker in order (Tabby: one `ReplaceRoutes` with the node's whole set; BIRD: the rewrite and `birdc configure`). A prefix never has two changes in flight, so every kernel notification maps to one change. A window stops early if a change waits over 2 s to start (the rate is then plainly not sustained) and higher rates are not run.\n\n\
Latency: from the call (or `birdc configure`) returning until the route is present, or gone, in every other node's kernel, stamped by an rtnetlink monitor opened inside each node's namespace (RTM_NEWROUTE/RTM_DELROUTE of the daemon's protocol: 84 for tabbyd, 12 for BIRD); zero when every kernel had it before the call returned (BIRD's `birdc configure` returns after the reload, often after the UPDATE left). *From the call starting* adds the call's own time: what the operator waits for in all. Schedule lag: from a change's due time to its call starting. A change counts once it holds: a notification that undoes it at a node (a removed route brought back by the second reflector's late copy, a route lost in a fault) reopens it there, and its time becomes that node's last report. Lost: changes whose call succeeded but that did not hold everywhere {settle:.0} s after the window. Idle cost: every daemon's CPU over 5 s with nothing changing, before the first window; the node column's second figure subtracts it. Kernels after settling: every node's dump of the protocol's routes against the desired set (other nodes' routes, and the node's own blocks as blackholes). Stray notifications: deletions of routes a node should hold, additions of routes it should not; *interim*: a notification against the direction of the prefix's change in flight at that node (e.g. an RTM_NEWROUTE rewriting a route that is on its way out), not counted as the change's arrival. CPU from /proc over the window and settle: all nodes' daemons divided by changes and nodes; reflectors averaged; `birdc` processes (the confd side) per change; this process (driver, one monitor thread per namespace, the collector) per change.\n\n\
Faults (Tabby only, at a fixed rate, each in its own window): reflector 1 killed with SIGKILL a quarter into the window and restarted 2 s later; then node 0's tabbyd killed the same way and restarted 2 s later, the driver giving it no changes while it is down and its whole set again as soon as its API answers (as a local agent reconnecting would: routes given through the API live in the daemon's memory). Unasked deletions are stray RTM_DELROUTEs: routes a node should hold, deleted.\n",
        n = opts.nodes,
        seed = opts.seed,
        settle = opts.settle.as_secs_f64()
    )
}
