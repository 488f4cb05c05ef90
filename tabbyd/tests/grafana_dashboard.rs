//! deploy/grafana/tabby-dashboard.json against the series tabbyd really
//! exports. `tabbyd metrics` lists every series its registry holds (a scrape
//! leaves out families without samples yet); that list is checked against
//! a real scrape: the binary started with `--metrics` on a small file
//! datastore. Every metric a panel's query (or the `instance` variable)
//! names must be one of those series, and every series must be graphed by
//! some panel.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const DASHBOARD: &str = include_str!("../../deploy/grafana/tabby-dashboard.json");

/// Series exported but deliberately not graphed, with the reason. Empty:
/// every series has a panel.
const NOT_GRAPHED: &[(&str, &str)] = &[];

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD)
        .unwrap_or_else(|e| panic!("deploy/grafana/tabby-dashboard.json is not JSON: {e}"))
}

// ---------------------------------------------------------------------------
// What tabbyd exports.

/// Every series `tabbyd metrics` lists, with its type.
fn exported() -> &'static BTreeMap<String, String> {
    static EXPORTED: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    EXPORTED.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_tabbyd"))
            .arg("metrics")
            .output()
            .expect("tabbyd runs");
        assert!(
            out.status.success(),
            "tabbyd metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        let series: BTreeMap<String, String> = text
            .lines()
            .map(|l| {
                let mut w = l.split_whitespace();
                match (w.next(), w.next(), w.next()) {
                    (Some(name), Some(kind), Some(_help)) => (name.to_owned(), kind.to_owned()),
                    _ => panic!("tabbyd metrics: {l:?} is not NAME TYPE HELP"),
                }
            })
            .collect();
        assert!(!series.is_empty(), "tabbyd metrics lists nothing");
        series
    })
}

/// One daemon's `/metrics`, scraped once for every test.
fn scrape() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(scrape_running_tabbyd)
}

/// The sample names of a scrape.
fn sample_names(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect()
}

/// Kills the daemon when the scrape is done or has failed.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nobody listens on now (the OS's choice).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Starts tabbyd (no kernel, one node, no peers; BGP on a free port) and
/// returns its `/metrics` text.
fn scrape_running_tabbyd() -> String {
    let dir = std::env::temp_dir().join(format!("tabbyd-grafana-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cluster: PathBuf = dir.join("cluster.yaml");
    std::fs::write(
        &cluster,
        format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\n\
             metadata: {{name: default}}\n\
             spec: {{asNumber: 64512, nodeToNodeMeshEnabled: true, listenPort: {}}}\n\
             ---\napiVersion: projectcalico.org/v3\nkind: Node\n\
             metadata: {{name: node-a}}\nspec: {{bgp: {{ipv4Address: 198.18.0.11/24}}}}\n",
            free_port()
        ),
    )
    .unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tabbyd"));
    cmd.args(["--node-name", "node-a", "--no-fib", "--log-level", "error"])
        .arg("--datastore")
        .arg(format!("file:{}", cluster.display()))
        .arg("--api")
        .arg(format!("unix:{}", dir.join("tabbyd.sock").display()))
        .arg("--run-dir")
        .arg(&dir)
        .args(["--metrics", &metrics])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("TABBY_") {
            cmd.env_remove(k);
        }
    }
    let mut daemon = Daemon(cmd.spawn().expect("tabbyd starts"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = daemon.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("tabbyd exited ({status}) before serving /metrics:\n{err}");
        }
        if let Some(text) = http_get(&metrics, "/metrics") {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "tabbyd did not serve http://{metrics}/metrics within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The body of a 200 answer, or `None`.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

// ---------------------------------------------------------------------------
// What the dashboard uses.

/// Every PromQL query of the dashboard: each panel's targets (rows' nested
/// panels too) and the template variables, as (where, query).
fn queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            let title = p["title"].as_str().unwrap_or("(untitled)");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("panel {title:?}"), e.to_owned()));
                }
            }
            if let Some(nested) = p["panels"].as_array() {
                walk(nested, out);
            }
        }
    }
    walk(dash["panels"].as_array().expect("panels"), &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("?");
        let q = match &v["query"] {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("query").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        // `label_values(METRIC, LABEL)`: the metric; `label_values(LABEL)`
        // names none.
        let q = q.map(|q| match q.trim().strip_prefix("label_values(") {
            Some(args) => args
                .rsplit_once(',')
                .map(|(metric, _)| metric.to_owned())
                .unwrap_or_default(),
            None => q,
        });
        if let Some(q) = q.filter(|q| !q.is_empty()) {
            out.push((format!("variable {name:?}"), q));
        }
    }
    out
}

/// PromQL words that are never metric names: operators, modifiers and the
/// aggregations (which may come before `by (...)` instead of `(`).
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
];

/// The metric names a PromQL query (with Grafana's `$var`) selects: every
/// identifier that is not a function or aggregation (followed by `(`), a
/// keyword, a label in `{...}` or in a `by (...)` list, a string, a
/// duration or a Grafana variable.
fn metric_names(query: &str) -> Vec<String> {
    let c: Vec<char> = query.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_string = |i: usize| -> usize {
        let quote = c[i];
        let mut j = i + 1;
        while j < c.len() && c[j] != quote {
            j += if c[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    };
    // Past the bracket that closes the one at `i`, strings skipped.
    let skip_group = |i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        let mut j = i;
        while j < c.len() {
            match c[j] {
                '"' | '\'' | '`' => {
                    j = skip_string(j);
                    continue;
                }
                x if x == open => depth += 1,
                x if x == close => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        j
    };
    let ident = |x: char| x.is_ascii_alphanumeric() || x == '_' || x == ':';
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(i),
            '{' => i = skip_group(i, '{', '}'),
            '[' => i = skip_group(i, '[', ']'),
            '$' => {
                i += 1;
                if c.get(i) == Some(&'{') {
                    i = skip_group(i, '{', '}');
                } else {
                    while i < c.len() && ident(c[i]) {
                        i += 1;
                    }
                }
            }
            x if x.is_ascii_digit() || x == '.' => {
                while i < c.len() && (ident(c[i]) || c[i] == '.') {
                    i += 1;
                }
            }
            x if x.is_ascii_alphabetic() || x == '_' || x == ':' => {
                let start = i;
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let mut j = i;
                while j < c.len() && c[j].is_whitespace() {
                    j += 1;
                }
                let lower = word.to_ascii_lowercase();
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&lower.as_str())
                {
                    // A list of labels, not of metrics.
                    if c.get(j) == Some(&'(') {
                        i = skip_group(j, '(', ')');
                    }
                } else if lower == "offset" {
                    i = j;
                    while i < c.len() && (ident(c[i]) || c[i] == '-') {
                        i += 1;
                    }
                } else if KEYWORDS.contains(&lower.as_str()) || c.get(j) == Some(&'(') {
                    // A keyword, a function or an aggregation.
                } else {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Each query's metric names that tabbyd does not export, as one line each.
fn unknown_series(dash: &Value, exported: &BTreeMap<String, String>) -> Vec<String> {
    let mut bad = Vec::new();
    for (place, q) in queries(dash) {
        let names = metric_names(&q);
        if names.is_empty() {
            bad.push(format!("{place}: {q:?} names no metric"));
        }
        for n in names {
            if !exported.contains_key(&n) {
                bad.push(format!("{place}: {n} is not a series tabbyd exports ({q})"));
            }
        }
    }
    bad
}

/// Exported series no panel graphs (the allowed exceptions left out).
fn ungraphed(dash: &Value, exported: &BTreeMap<String, String>) -> Vec<String> {
    let used: BTreeSet<String> = queries(dash)
        .into_iter()
        .filter(|(place, _)| place.starts_with("panel "))
        .flat_map(|(_, q)| metric_names(&q))
        .collect();
    exported
        .keys()
        .filter(|s| !used.contains(*s) && !NOT_GRAPHED.iter().any(|(n, _)| n == s))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn every_panel_names_only_series_tabbyd_exports() {
    let bad = unknown_series(&dashboard(), exported());
    assert!(
        bad.is_empty(),
        "fix deploy/grafana/tabby-dashboard.json; tabbyd exports {:?}:\n{}",
        exported().keys().collect::<Vec<_>>(),
        bad.join("\n")
    );
}

#[test]
fn the_listed_series_are_what_a_running_tabbyd_serves() {
    let text = scrape();
    let samples = sample_names(text);
    assert!(!samples.is_empty(), "an empty scrape:\n{text}");
    for s in &samples {
        assert!(
            exported().contains_key(*s),
            "/metrics serves {s}, which `tabbyd metrics` does not list:\n{text}"
        );
    }
    // Families a scrape announces carry the type listed.
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (family, kind) = line.split_once(' ').expect("# TYPE NAME TYPE");
        assert!(
            exported()
                .iter()
                .any(|(name, k)| name.starts_with(family) && k == kind),
            "/metrics has `# TYPE {line}`, not listed by `tabbyd metrics`"
        );
    }
}

#[test]
fn every_exported_series_is_graphed() {
    let missing = ungraphed(&dashboard(), exported());
    assert!(
        missing.is_empty(),
        "no panel of deploy/grafana/tabby-dashboard.json graphs {missing:?}: add a panel, \
         or list the series in NOT_GRAPHED with the reason"
    );
    for (series, reason) in NOT_GRAPHED {
        assert!(
            exported().contains_key(*series),
            "NOT_GRAPHED lists {series}, which tabbyd no longer exports"
        );
        assert!(!reason.is_empty(), "NOT_GRAPHED: {series} needs a reason");
    }
}

#[test]
fn a_misspelt_or_missing_series_is_caught() {
    let mut dash = dashboard();
    // The family name of a counter is not a series: its samples are `_total`.
    dash["panels"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "title": "wrong",
            "targets": [{"expr": "rate(tabby_bgp_updates_received{instance=~\"$instance\"}[5m])"}],
        }));
    let bad = unknown_series(&dash, exported());
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("tabby_bgp_updates_received is not"),
        "{bad:?}"
    );

    // A dashboard without the BFD drops panel leaves that family ungraphed.
    let mut dash = dashboard();
    let strip = |panels: &mut Vec<Value>| {
        panels.retain(|p| !p.to_string().contains("tabby_bfd_packets_dropped_total"))
    };
    strip(dash["panels"].as_array_mut().unwrap());
    assert_eq!(
        ungraphed(&dash, exported()),
        ["tabby_bfd_packets_dropped_total"],
        "the check must notice an exported series without a panel"
    );
}

#[test]
fn the_query_reader_finds_metric_names_and_nothing_else() {
    let cases: &[(&str, &[&str])] = &[
        ("tabby_bgp_sessions", &["tabby_bgp_sessions"]),
        (
            r#"sum by (state, peer) (tabby_bgp_sessions{instance=~"$instance", state!="Established"})"#,
            &["tabby_bgp_sessions"],
        ),
        (
            r#"sum(rate(tabby_bgp_updates_sent_total{peer="x{y}"}[$__rate_interval])) without (job) / on(instance) group_left(node) tabby_api_calls_total"#,
            &["tabby_bgp_updates_sent_total", "tabby_api_calls_total"],
        ),
        (
            r#"sum(increase(a:b_total[1h] offset 5m)) or vector(0) > bool 1e3"#,
            &["a:b_total"],
        ),
        (
            r#"label_values(tabby_bfd_packets_received_total, instance)"#,
            &["tabby_bfd_packets_received_total", "instance"],
        ),
        (
            r#"label_replace(up, "dst", "$1", "src", "(.*)") unless ${var} and max_over_time(m[5m:1m])"#,
            &["up", "m"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(metric_names(q), *want, "{q}");
    }
}

#[test]
fn the_instance_variable_lists_every_tabbyd() {
    let dash = dashboard();
    let vars = dash["templating"]["list"].as_array().expect("templating");
    let instance = vars
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an `instance` template variable");
    let q = instance["query"]["query"]
        .as_str()
        .or(instance["query"].as_str())
        .expect("the variable's query");
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{q}: expected label_values(METRIC, instance)"));
    let (metric, label) = inner.split_once(',').expect("two arguments");
    assert_eq!(label.trim(), "instance");
    // A series every tabbyd has a sample of, peers or not: a counter
    // without labels.
    let samples = sample_names(scrape());
    assert!(
        samples.contains(metric.trim()),
        "{metric} has no sample on a tabbyd without peers; the variable would list nothing"
    );
}

#[test]
fn the_dashboard_imports_with_a_prometheus_input_and_filters_on_instance() {
    let dash = dashboard();
    let inputs = dash["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "panel {title:?}: duplicate id"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {title:?}"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            assert_eq!(
                t["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {title:?}"
            );
            let expr = t["expr"].as_str().unwrap();
            // Every selector is narrowed to the chosen instances.
            let selectors = expr.matches("tabby_").count();
            let filtered = expr.matches(r#"instance=~"$instance""#).count();
            assert_eq!(
                selectors, filtered,
                "panel {title:?}: every series needs instance=~\"$instance\": {expr}"
            );
        }
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "panel {title:?} is wider than the dashboard"
        );
    }
}
