//! Runs a real `gobgp` CLI (v3 or v4) against a test server's GoBGP port.

use std::path::Path;
use std::time::Duration;

/// `BIN -u 127.0.0.1 -p PORT ARGS...`, the arguments written as one command
/// line (`"neighbor 198.18.0.2 reset"`).
pub fn command(bin: &Path, port: u16, args: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["-u", "127.0.0.1", "-p", &port.to_string()])
        .args(args.split_whitespace())
        .kill_on_drop(true);
    cmd
}

/// Runs [`command`]; returns (success, stdout+stderr).
pub async fn run(bin: &Path, port: u16, args: &str) -> (bool, String) {
    let out = tokio::time::timeout(Duration::from_secs(20), command(bin, port, args).output())
        .await
        .expect("gobgp finished within 20s")
        .expect("gobgp ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs [`command`], failing the test with its output unless it succeeds.
pub async fn ok(bin: &Path, port: u16, args: &str) -> String {
    let (success, text) = run(bin, port, args).await;
    assert!(success, "gobgp {args} failed:\n{text}");
    text
}
