//! `tabbyctl graph` as an operator runs it: the built binary on a cluster
//! file and against a real API server, its SVG drawn by the real Graphviz
//! and read back: one `<title>` per vertex and per edge.

#[path = "../../api/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::{TestCore, TestServer};
use tabby_api::model::SessionState;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/graph-cluster.yaml"
);

/// Fails, in one line, where Graphviz is missing: these tests draw with it.
fn require_graphviz() {
    if let Err(e) = Command::new("dot").arg("-V").output() {
        panic!(
            "graphviz is missing (`dot -V`: {e}): install the Debian package graphviz (scripts/install-deps.sh does)"
        );
    }
}

fn tabbyctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tabbyctl"))
        .args(args)
        .env_remove("TABBY_API")
        .output()
        .expect("tabbyctl runs")
}

fn stdout_of(args: &[&str]) -> String {
    let out = tabbyctl(args);
    assert!(
        out.status.success(),
        "tabbyctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The text of an SVG's entities as Graphviz writes them.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find(';') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let entity = &rest[i + 1..i + j];
        match entity {
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "amp" => out.push('&'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            e => match e
                .strip_prefix('#')
                .and_then(|n| match n.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse().ok(),
                })
                .and_then(char::from_u32)
            {
                Some(c) => out.push(c),
                None => panic!("unknown entity &{e}; in {s:?}"),
            },
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

/// The titles of an SVG's vertices and edges (`<g class="node">` and
/// `<g class="edge">`, each with a `<title>`).
fn titles(svg: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    assert!(
        svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
        "not an SVG document:\n{svg}"
    );
    let of = |class: &str| -> BTreeSet<String> {
        let marker = format!("class=\"{class}\"");
        svg.match_indices(&marker)
            .map(|(at, _)| {
                let rest = &svg[at..];
                let open = rest.find("<title>").expect("a <title> after the <g>") + "<title>".len();
                let close = rest[open..].find("</title>").expect("</title>") + open;
                unescape(&rest[open..close])
            })
            .collect()
    };
    (of("node"), of("edge"))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_cluster_file_is_drawn_with_every_node_and_each_session_once() {
    require_graphviz();
    let svg = stdout_of(&[
        "graph",
        "--datastore",
        &format!("file:{FIXTURE}"),
        "-o",
        "svg",
    ]);
    let (vertices, edges) = titles(&svg);
    assert_eq!(
        vertices,
        set(&[
            "rr-1",
            "rr-2",
            "node-a",
            "node-b",
            "node-c",
            "198.51.100.1",
            "[2001:db8:2::1]:1179",
        ]),
        "{svg}"
    );
    assert_eq!(
        edges,
        set(&[
            "node-a--rr-1",
            "node-a--rr-2",
            "node-b--rr-1",
            "node-b--rr-2",
            "node-c--rr-1",
            "node-c--rr-2",
            "rr-1--rr-2",
            "198.51.100.1--node-a",
            "198.51.100.1--node-b",
            "[2001:db8:2::1]:1179--node-c",
        ]),
        "{svg}"
    );
    // Edge labels are drawn as text.
    assert!(
        unescape(&svg).contains(">node-a is a client of rr-1</text>"),
        "{svg}"
    );
}

#[test]
fn dot_is_the_default_and_needs_no_daemon() {
    let dot = stdout_of(&[
        "--api",
        "unix:/nonexistent/tabbyd.sock",
        "graph",
        "--datastore",
        &format!("file:{FIXTURE}"),
    ]);
    assert!(dot.starts_with("graph tabby {\n"), "{dot}");
    assert_eq!(dot.matches(" -- ").count(), 10, "{dot}");
}

#[test]
fn svg_without_graphviz_is_one_line_saying_so() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tabbyctl"))
        .args([
            "graph",
            "--datastore",
            &format!("file:{FIXTURE}"),
            "-o",
            "svg",
        ])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("Graphviz") && err.contains("apt-get install graphviz"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn formats_other_than_dot_and_svg_are_refused() {
    let out = tabbyctl(&[
        "-o",
        "json",
        "graph",
        "--datastore",
        &format!("file:{FIXTURE}"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-o dot (the default) or -o svg"), "{err}");
    let missing = tabbyctl(&["graph", "--datastore", "file:/nonexistent/cluster.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("/nonexistent/cluster.yaml"), "{err}");
}

async fn against(socket: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tabbyctl"))
        .arg("--api")
        .arg(format!("unix:{}", socket.display()))
        .args(args)
        .env_remove("TABBY_API")
        .kill_on_drop(true)
        .output()
        .await
        .expect("tabbyctl runs")
}

async fn graph_of(socket: &Path, output: &str) -> String {
    let out = against(socket, &["graph", "-o", output]).await;
    assert!(
        out.status.success(),
        "tabbyctl graph: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemons_sessions_are_drawn_with_their_state() {
    require_graphviz();
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.add_test_peer("198.18.0.3", 64513, SessionState::Active);
    let srv = TestServer::start(core.clone()).await;

    let dot = graph_of(&srv.socket, "dot").await;
    assert!(
        dot.contains(
            r##""this node" -- "198.18.0.2" [label="Established\nin 3 / out 2", color="#2e7d32""##
        ),
        "{dot}"
    );
    assert!(
        dot.contains(
            r##""this node" -- "198.18.0.3" [label="Active\nin 0 / out 0", color="#c62828""##
        ),
        "{dot}"
    );
    assert!(dot.contains(r#"router id 198.18.0.1\nAS 64512"#), "{dot}");

    let svg = graph_of(&srv.socket, "svg").await;
    let (vertices, edges) = titles(&svg);
    assert_eq!(vertices, set(&["this node", "198.18.0.2", "198.18.0.3"]));
    assert_eq!(
        edges,
        set(&["this node--198.18.0.2", "this node--198.18.0.3"])
    );

    // The other commands print text, not pictures.
    let out = against(&srv.socket, &["-o", "svg", "peers"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-o svg draws a picture: it is for `tabbyctl graph`"),
        "{err}"
    );
    srv.shutdown().await;
}
