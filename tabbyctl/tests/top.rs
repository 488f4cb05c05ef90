//! `tabbyctl top` as an operator sees it: the built binary in a real tmux
//! (a detached session of fixed size on a socket of its own) against a real
//! API server, its screen read with `capture-pane` while the daemon's state
//! changes underneath, then `q`, and the terminal checked to be given back.

#[path = "../../api/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{TestCore, TestServer};
use tabby_api::model::{BfdPhase, BfdStatus, SessionState};

const TABBYCTL: &str = env!("CARGO_BIN_EXE_tabbyctl");
/// How long the screen may take to show what is expected.
const WAIT: Duration = Duration::from_secs(20);

/// Fails, in one line, where tmux is missing: this test drives top in it.
fn require_tmux() {
    if let Err(e) = std::process::Command::new("tmux").arg("-V").output() {
        panic!(
            "tmux is missing (`tmux -V`: {e}): install the Debian package tmux (scripts/install-deps.sh does)"
        );
    }
}

/// A tmux server of this test's own (`-L`, no configuration file), killed
/// on drop with everything running in it.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` in a detached 160x40 session.
    async fn start(command: &str) -> Tmux {
        static N: AtomicU64 = AtomicU64::new(0);
        let t = Tmux {
            socket: format!(
                "tabby-top-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        };
        t.run(&[
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "40",
            "-s",
            "top",
            command,
        ])
        .await;
        t
    }

    async fn run(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .await
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"]).await
    }

    /// Waits until the screen satisfies `ready`; fails with the screen.
    async fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let s = self.screen().await;
            if ready(&s) {
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("the screen did not show {what} within {WAIT:?}; it shows:\n{s}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The words of the sessions table's row for `peer` (its first cell
/// exactly), without the borders.
fn row(screen: &str, peer: &str) -> Option<Vec<String>> {
    screen.lines().find_map(|l| {
        let words: Vec<String> = l
            .split_whitespace()
            .filter(|w| *w != "│")
            .map(str::to_owned)
            .collect();
        (words.first().map(String::as_str) == Some(peer)).then_some(words)
    })
}

/// Columns of a row: PEER AS TYPE STATE UPTIME RCVD ACPT ADV IN/s OUT/s BFD.
const STATE: usize = 3;
const UPD_IN: usize = 8;
const BFD: usize = 10;

async fn start_server(core: Arc<TestCore>, socket: &Path) -> TestServer {
    let socket = socket.to_path_buf();
    TestServer::start_with(core, move |c| c.unix_socket = Some(socket)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_follows_sessions_and_routes_and_gives_the_terminal_back() {
    require_tmux();
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 64513, SessionState::Established);
    core.add_test_peer("198.18.0.3", 64513, SessionState::Active);
    core.set_peer_bfd(
        "198.18.0.2",
        Some(BfdStatus {
            phase: BfdPhase::Up,
            ..Default::default()
        }),
    );
    core.learn("198.19.7.0/24", "198.18.0.2", vec![64513], 100);
    core.learn("2001:db8:1000::/48", "198.18.0.2", vec![64513], 100);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tabbyd.sock");
    let srv = start_server(core.clone(), &socket).await;

    // After top: its exit status and whether the terminal is cooked again.
    let script = dir.path().join("run.sh");
    std::fs::write(
        &script,
        format!(
            "'{TABBYCTL}' --api 'unix:{}' top --interval 1\n\
             echo \"top exited $?\"\n\
             if stty -a | tr ' ;' '\\n\\n' | grep -qx -e -icanon -e -echo; then echo 'tty raw'; else echo 'tty cooked'; fi\n\
             exec sleep 300\n",
            socket.display()
        ),
    )
    .unwrap();
    let tmux = Tmux::start(&format!("sh '{}'", script.display())).await;

    // The first screen: the header, both sessions, the routes.
    let s = tmux
        .wait_for("both sessions and the routes", |s| {
            s.contains("connected · tabbyd 0.1.0-test · router id 198.18.0.1 · AS 64512 · up 1h2m")
                && row(s, "198.18.0.3").is_some()
                && s.contains("IPv6 best routes           1")
        })
        .await;
    let up = row(&s, "198.18.0.2").expect("row of 198.18.0.2");
    assert_eq!(
        up[..4],
        ["198.18.0.2", "64513", "node-mesh", "Established"],
        "{s}"
    );
    assert_eq!(up[5..8], ["3", "3", "2"], "prefixes: {s}");
    assert_eq!(up[BFD], "Up", "{s}");
    assert!(s.contains("peers 2 configured, 1 established"), "{s}");
    assert!(s.contains("IPv4 best routes           1"), "{s}");
    assert_eq!(
        s.lines().next().map(|l| l.chars().count()),
        Some(160),
        "drawn at the pane's width: {s}"
    );

    // UPDATEs arriving at about 50 per second show as a rate.
    let bump = {
        let core = core.clone();
        tokio::spawn(async move {
            let peer = "198.18.0.2".parse().unwrap();
            loop {
                if let Some(p) = core.state().peers.get_mut(&peer) {
                    p.counters.updates_received += 5;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tmux.wait_for("about 50 UPDATEs in per second from 198.18.0.2", |s| {
        row(s, "198.18.0.2")
            .and_then(|r| r[UPD_IN].parse::<f64>().ok())
            .is_some_and(|r| (25.0..=100.0).contains(&r))
    })
    .await;
    bump.abort();

    // A session comes up: the watch carries it.
    core.set_peer_state("198.18.0.3", SessionState::Established);
    tmux.wait_for("198.18.0.3 Established", |s| {
        row(s, "198.18.0.3").is_some_and(|r| r[STATE] == "Established")
    })
    .await;

    // A route announced through the API is a change, and a best route more.
    let out = tokio::process::Command::new(TABBYCTL)
        .args(["--api", &format!("unix:{}", socket.display())])
        .args(["announce", "100.64.1.0/26", "--kind", "pod-block"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    tmux.wait_for("the announced route", |s| {
        s.contains("+ 100.64.1.0/26 via 198.18.0.1 from local:tabbyctl")
            && s.contains("IPv4 best routes           2")
    })
    .await;

    // The daemon goes away: top says so and keeps the last state; it comes
    // back: top reconnects by itself.
    srv.shutdown().await;
    let s = tmux
        .wait_for("DISCONNECTED", |s| s.contains("DISCONNECTED ("))
        .await;
    assert!(row(&s, "198.18.0.2").is_some(), "{s}");
    let srv = start_server(core.clone(), &socket).await;
    tmux.wait_for("connected again", |s| {
        s.contains("connected · tabbyd") && !s.contains("DISCONNECTED")
    })
    .await;

    // A smaller window: the screen is drawn again at its size.
    tmux.run(&["resize-window", "-t", "top", "-x", "100", "-y", "30"])
        .await;
    tmux.wait_for("the screen at 100 columns", |s| {
        s.lines().next().map(|l| l.chars().count()) == Some(100) && row(s, "198.18.0.3").is_some()
    })
    .await;

    // q quits; the terminal is cooked again and off the alternate screen.
    tmux.run(&["send-keys", "-t", "top", "q"]).await;
    let s = tmux.wait_for("top's exit", |s| s.contains("tty ")).await;
    assert!(s.contains("top exited 0"), "{s}");
    assert!(s.contains("tty cooked"), "{s}");
    assert!(
        !s.contains("198.18.0.2"),
        "the alternate screen is gone: {s}"
    );
    let alt = tmux
        .run(&["display-message", "-p", "-t", "top", "#{alternate_on}"])
        .await;
    assert_eq!(alt.trim(), "0");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_top_is_one_line_of_error() {
    let core = TestCore::new();
    let srv = TestServer::start(core).await;
    for api in [
        format!("unix:{}", srv.socket.display()),
        "unix:/nonexistent/tabbyd.sock".to_string(),
    ] {
        let out = tokio::process::Command::new(TABBYCTL)
            .args(["--api", &api, "top"])
            .env_remove("TABBY_API")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("tabbyctl top draws on a terminal"), "{err}");
        assert!(out.stdout.is_empty());
    }
    let out = tokio::process::Command::new(TABBYCTL)
        .args(["top", "--interval", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0.1 to 3600 seconds"), "{err}");
    srv.shutdown().await;
}
