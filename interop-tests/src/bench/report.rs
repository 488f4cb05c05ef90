//! Markdown tables of benchmark results: medians with min–max, and ratios
//! against the best anchor (the best of BIRD 2, GoBGP and FRR per column).

use std::fmt::Write;
use std::time::Duration;

use super::anchors::Dut;
use super::generator::Phase;
use super::scenario::RunResult;

/// Every run of one daemon under one load.
#[derive(Debug, Clone)]
pub struct Row {
    pub dut: Dut,
    pub runs: Vec<RunResult>,
    /// Repetitions asked for (fewer ran when one timed out or failed).
    pub requested: usize,
    /// Why the daemon was not measured, or why its last run failed.
    pub note: Option<String>,
}

/// Median, min and max of `v`; `None` when it is empty.
pub(crate) fn spread(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some((med, s[0], s[n - 1]))
}

/// A phase over all runs: the times if every run finished, else the limit.
enum Cell {
    Times(f64, f64, f64),
    Over(Duration, usize, usize),
    Missing,
}

fn phase_cell(phases: &[Option<Phase>]) -> Cell {
    let mut times = Vec::new();
    for p in phases {
        match p {
            Some(Phase::Done(d)) => times.push(d.as_secs_f64()),
            Some(Phase::TimedOut { limit, done, of }) => return Cell::Over(*limit, *done, *of),
            None => return Cell::Missing,
        }
    }
    match spread(&times) {
        Some((m, lo, hi)) => Cell::Times(m, lo, hi),
        None => Cell::Missing,
    }
}

fn fmt_spread(m: f64, lo: f64, hi: f64, runs: usize) -> String {
    if runs <= 1 {
        format!("{m:.2}")
    } else {
        format!("{m:.2} ({lo:.2}–{hi:.2})")
    }
}

fn cell_text(c: &Cell, runs: usize, what: &str) -> String {
    match c {
        Cell::Times(m, lo, hi) => fmt_spread(*m, *lo, *hi, runs),
        Cell::Over(limit, done, of) => {
            format!("> {} s ({done}/{of} {what})", limit.as_secs())
        }
        Cell::Missing => "—".into(),
    }
}

/// The median of `v`; `None` when it is empty.
pub(crate) fn median(v: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.collect();
    spread(&v).map(|s| s.0)
}

/// `median (min–max)` of `v` with `digits` decimals: the median alone for
/// one value, `—` for none.
pub(crate) fn spread_text(v: &[f64], digits: usize) -> String {
    match spread(v) {
        Some((m, lo, hi)) if v.len() > 1 => {
            format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})")
        }
        Some((m, ..)) => format!("{m:.digits$}"),
        None => "—".into(),
    }
}

fn ratio(v: Option<f64>, best: Option<f64>) -> String {
    match (v, best) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "—".into(),
    }
}

/// The lowest of `f` over the anchors that ran.
fn best_anchor(rows: &[Row], f: &dyn Fn(&Row) -> Option<f64>) -> Option<f64> {
    rows.iter()
        .filter(|r| r.dut.is_anchor() && !r.runs.is_empty())
        .filter_map(f)
        .min_by(f64::total_cmp)
}

/// The row of a daemon that did not run: why, and `columns` cells in all.
fn not_measured(o: &mut String, r: &Row, columns: usize) {
    let why = r
        .note
        .as_deref()
        .unwrap_or("no run")
        .replace('|', "/")
        .replace('\n', " ");
    let _ = writeln!(
        o,
        "| {} | 0/{} | not measured: {why} |{}",
        r.dut.name(),
        r.requested,
        " |".repeat(columns - 3)
    );
}

/// Each measured daemon's note, as a list below the table.
fn push_notes(o: &mut String, rows: &[Row]) {
    let notes: Vec<String> = rows
        .iter()
        .filter(|r| !r.runs.is_empty())
        .filter_map(|r| r.note.as_ref().map(|n| format!("- {}: {n}", r.dut.name())))
        .collect();
    if !notes.is_empty() {
        o.push('\n');
        for n in notes {
            let _ = writeln!(o, "{n}");
        }
    }
}

/// The table for one load.
pub fn table(title: &str, rows: &[Row]) -> String {
    let conv = |r: &Row| -> Option<f64> {
        match phase_cell(&r.runs.iter().map(|x| x.converge).collect::<Vec<_>>()) {
            Cell::Times(m, ..) => Some(m),
            _ => None,
        }
    };
    let cpu = |r: &Row| median(r.runs.iter().map(|x| x.daemon_cpu));
    let rss = |r: &Row| median(r.runs.iter().map(|x| x.daemon_rss_mib));
    let done_cpu = |r: &Row| conv(r).and(cpu(r));
    let done_rss = |r: &Row| conv(r).and(rss(r));
    let best = |f: &dyn Fn(&Row) -> Option<f64>| best_anchor(rows, f);
    let (bc, bcpu, brss) = (best(&conv), best(&done_cpu), best(&done_rss));
    let mut o = String::new();
    let _ = writeln!(o, "### {title}\n");
    o.push_str("| daemon | runs | established (s) | converged (s) | × best | daemon CPU (s) | × best | peak RSS (MiB) | × best | generator CPU (s) | host load |\n");
    o.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        if r.runs.is_empty() {
            not_measured(&mut o, r, 11);
            continue;
        }
        let n = r.runs.len();
        let est = phase_cell(&r.runs.iter().map(|x| Some(x.establish)).collect::<Vec<_>>());
        let cv = phase_cell(&r.runs.iter().map(|x| x.converge).collect::<Vec<_>>());
        let c = spread(&r.runs.iter().map(|x| x.daemon_cpu).collect::<Vec<_>>());
        let g = spread(&r.runs.iter().map(|x| x.gen_cpu).collect::<Vec<_>>());
        let _ = writeln!(
            o,
            "| {} | {n}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.dut.name(),
            r.requested,
            cell_text(&est, n, "established"),
            cell_text(&cv, n, "observers done"),
            ratio(conv(r), bc),
            c.map(|(m, lo, hi)| fmt_spread(m, lo, hi, n))
                .unwrap_or_default(),
            // A daemon that never converged did less work than asked: its
            // CPU and memory compare with nothing.
            ratio(conv(r).and(cpu(r)), bcpu),
            rss(r).map(|m| format!("{m:.0}")).unwrap_or_default(),
            ratio(conv(r).and(rss(r)), brss),
            g.map(|(m, lo, hi)| fmt_spread(m, lo, hi, n))
                .unwrap_or_default(),
            median(r.runs.iter().map(|x| x.host_load))
                .map(|l| format!("{l:.1}"))
                .unwrap_or_default(),
        );
    }
    push_notes(&mut o, rows);
    o
}

/// The table for a load with a withdrawal stage (the full table): each
/// phase's time and the daemon's CPU over that phase, with ratios to the
/// best anchor.
pub fn table_staged(title: &str, rows: &[Row]) -> String {
    let time = |r: &Row, f: &dyn Fn(&RunResult) -> Option<Phase>| -> Option<f64> {
        match phase_cell(&r.runs.iter().map(f).collect::<Vec<_>>()) {
            Cell::Times(m, ..) => Some(m),
            _ => None,
        }
    };
    let conv = |r: &Row| time(r, &|x| x.converge);
    let wd = |r: &Row| time(r, &|x| x.withdraw);
    let ccpu = |r: &Row| conv(r).and(median(r.runs.iter().filter_map(|x| x.converge_cpu)));
    let wcpu = |r: &Row| wd(r).and(median(r.runs.iter().filter_map(|x| x.withdraw_cpu)));
    let rss = |r: &Row| conv(r).and(median(r.runs.iter().map(|x| x.daemon_rss_mib)));
    let best = |f: &dyn Fn(&Row) -> Option<f64>| best_anchor(rows, f);
    let b = [best(&conv), best(&ccpu), best(&wd), best(&wcpu), best(&rss)];
    let mut o = String::new();
    let _ = writeln!(o, "### {title}\n");
    o.push_str("| daemon | runs | established (s) | converged (s) | × best | CPU (s) | × best | all withdrawn (s) | × best | CPU (s) | × best | peak RSS (MiB) | × best | generator CPU (s) | host load |\n");
    o.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        if r.runs.is_empty() {
            not_measured(&mut o, r, 15);
            continue;
        }
        let n = r.runs.len();
        let cells = |f: &dyn Fn(&RunResult) -> Option<Phase>, what: &str| {
            cell_text(
                &phase_cell(&r.runs.iter().map(f).collect::<Vec<_>>()),
                n,
                what,
            )
        };
        let cpu_text = |v: Vec<f64>| {
            spread(&v)
                .map(|(m, lo, hi)| fmt_spread(m, lo, hi, v.len()))
                .unwrap_or_else(|| "—".into())
        };
        let _ = writeln!(
            o,
            "| {} | {n}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.dut.name(),
            r.requested,
            cells(&|x| Some(x.establish), "established"),
            cells(&|x| x.converge, "clients done"),
            ratio(conv(r), b[0]),
            cpu_text(r.runs.iter().filter_map(|x| x.converge_cpu).collect()),
            ratio(ccpu(r), b[1]),
            cells(&|x| x.withdraw, "clients done"),
            ratio(wd(r), b[2]),
            cpu_text(r.runs.iter().filter_map(|x| x.withdraw_cpu).collect()),
            ratio(wcpu(r), b[3]),
            median(r.runs.iter().map(|x| x.daemon_rss_mib))
                .map(|m| format!("{m:.0}"))
                .unwrap_or_default(),
            ratio(rss(r), b[4]),
            cpu_text(r.runs.iter().map(|x| x.gen_cpu).collect()),
            median(r.runs.iter().map(|x| x.host_load))
                .map(|l| format!("{l:.1}"))
                .unwrap_or_default(),
        );
    }
    push_notes(&mut o, rows);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(conv: Option<f64>, cpu: f64, rss: f64) -> RunResult {
        RunResult {
            establish: Phase::Done(Duration::from_millis(500)),
            converge: Some(match conv {
                Some(s) => Phase::Done(Duration::from_secs_f64(s)),
                None => Phase::TimedOut {
                    limit: Duration::from_secs(60),
                    done: 3,
                    of: 8,
                },
            }),
            daemon_cpu: cpu,
            daemon_rss_mib: rss,
            gen_cpu: 0.1,
            observers: vec![],
            host_load: 1.0,
            withdraw: None,
            converge_cpu: None,
            withdraw_cpu: None,
        }
    }

    #[test]
    fn medians_ratios_and_timeouts() {
        let rows = vec![
            Row {
                dut: Dut::Bird2,
                runs: vec![
                    run(Some(2.0), 2.0, 28.0),
                    run(Some(3.0), 2.5, 28.0),
                    run(Some(2.5), 2.4, 28.0),
                ],
                requested: 3,
                note: None,
            },
            Row {
                dut: Dut::GoBgp,
                runs: vec![run(None, 50.0, 300.0)],
                requested: 3,
                note: Some("stopped after a timeout".into()),
            },
            Row {
                dut: Dut::Tabby,
                runs: vec![],
                requested: 3,
                note: Some("tabbyd not available: x".into()),
            },
        ];
        let t = table("t", &rows);
        assert!(t.contains("| BIRD 2 | 3/3 | 0.50 (0.50–0.50) | 2.50 (2.00–3.00) | 1.00× | 2.40 (2.00–2.50) | 1.00× | 28 | 1.00× | 0.10 (0.10–0.10) | 1.0 |"), "{t}");
        assert!(t.contains("> 60 s (3/8 observers done)"), "{t}");
        assert!(
            t.contains(
                "| GoBGP | 1/3 | 0.50 | > 60 s (3/8 observers done) | — | 50.00 | — | 300 | — |"
            ),
            "{t}"
        );
        assert!(t.contains("not measured: tabbyd not available: x"), "{t}");
        assert!(t.contains("- GoBGP: stopped after a timeout"), "{t}");
    }

    #[test]
    fn staged_table_has_both_phases_and_their_cpu() {
        let staged = |conv: f64, wd: Option<f64>, c: f64| RunResult {
            withdraw: Some(match wd {
                Some(s) => Phase::Done(Duration::from_secs_f64(s)),
                None => Phase::TimedOut {
                    limit: Duration::from_secs(60),
                    done: 2,
                    of: 9,
                },
            }),
            converge_cpu: Some(c),
            withdraw_cpu: Some(c / 2.0),
            ..run(Some(conv), c, 40.0)
        };
        let rows = vec![
            Row {
                dut: Dut::Bird2,
                runs: vec![staged(4.0, Some(2.0), 4.0), staged(6.0, Some(3.0), 6.0)],
                requested: 2,
                note: None,
            },
            Row {
                dut: Dut::Tabby,
                runs: vec![staged(0.5, Some(0.25), 0.5), staged(0.5, Some(0.25), 0.5)],
                requested: 2,
                note: None,
            },
            Row {
                dut: Dut::Frr,
                runs: vec![staged(8.0, None, 9.0)],
                requested: 2,
                note: None,
            },
        ];
        let t = table_staged("t", &rows);
        assert!(t.contains("| BIRD 2 | 2/2 | 0.50 (0.50–0.50) | 5.00 (4.00–6.00) | 1.00× | 5.00 (4.00–6.00) | 1.00× | 2.50 (2.00–3.00) | 1.00× | 2.50 (2.00–3.00) | 1.00× | 40 | 1.00× |"), "{t}");
        assert!(t.contains("| Tabby (tabbyd) | 2/2 | 0.50 (0.50–0.50) | 0.50 (0.50–0.50) | 0.10× | 0.50 (0.50–0.50) | 0.10× | 0.25 (0.25–0.25) | 0.10× | 0.25 (0.25–0.25) | 0.10× | 40 | 1.00× |"), "{t}");
        assert!(t.contains("> 60 s (2/9 clients done)"), "{t}");
    }
}
