//! Running short helper commands (`ip`, `birdc`, `gobgp`, `vtysh`, `etcdctl`)
//! with a hard time limit, so a wedged daemon cannot hang a test.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Default limit for one helper command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Renders a command line for messages.
pub fn display(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        if a.contains(' ') || a.is_empty() {
            s.push('\'');
            s.push_str(a);
            s.push('\'');
        } else {
            s.push_str(a);
        }
    }
    s
}

fn drain<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `program args…`, killing it after `timeout`. A non-zero exit is not an
/// error here (see [`run_ok`]).
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<CmdOutput> {
    run_env(program, args, &[], timeout)
}

/// [`run`] with extra environment variables.
pub fn run_env(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<CmdOutput> {
    run_full(program, args, env, None, timeout)
}

/// [`run`] with `input` written to the command's standard input (then closed).
pub fn run_input(
    program: &str,
    args: &[&str],
    input: &str,
    timeout: Duration,
) -> Result<CmdOutput> {
    run_full(program, args, &[], Some(input.as_bytes().to_vec()), timeout)
}

fn run_full(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<CmdOutput> {
    let shown = display(program, args);
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().with_context(|| {
        format!("cannot start `{shown}` (is it installed? run scripts/install-deps.sh)")
    })?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        // A writer thread: a command that does not read its input (or fills
        // its output pipe first) must not block us past the time limit.
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out_rx = child.stdout.take().map(drain);
    let err_rx = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    // A grandchild may hold the pipes open; do not wait for it forever.
    let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(2)).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(CmdOutput {
        status,
        stdout: collect(out_rx),
        stderr: collect(err_rx),
    })
}

/// Runs a command and returns its stdout; a non-zero exit becomes an error
/// that quotes the command and its stderr.
pub fn run_ok(program: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let out = run(program, args, timeout)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            display(program, args),
            out.status,
            first_lines(&format!("{}{}", out.stderr, out.stdout), 6)
        );
    }
    Ok(out.stdout)
}

/// The first `n` lines of `s`, trimmed, for error messages.
pub fn first_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.trim().lines().take(n).collect();
    v.join(" | ")
}

/// The last `n` lines of a file (empty if unreadable).
pub fn tail_file(path: &std::path::Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = s.lines().collect();
            let start = lines.len().saturating_sub(n);
            lines[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_status() {
        let out = run("sh", &["-c", "echo hi; echo err >&2; exit 3"], CMD_TIMEOUT).unwrap();
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.code(), Some(3));
        let e = run_ok("sh", &["-c", "echo bad >&2; exit 1"], CMD_TIMEOUT).unwrap_err();
        assert!(e.to_string().contains("bad"), "{e}");
    }

    #[test]
    fn run_input_feeds_stdin() {
        let out = run_input("sh", &["-c", "tr a-z A-Z"], "abc\n", CMD_TIMEOUT).unwrap();
        assert_eq!(out.stdout, "ABC\n");
        assert!(out.status.success());
    }

    #[test]
    fn run_enforces_timeout() {
        let t = Instant::now();
        let e = run("sleep", &["5"], Duration::from_millis(200)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(e.to_string().contains("did not finish"), "{e}");
    }

    #[test]
    fn missing_program_says_what_to_do() {
        let e = run("/nonexistent/tool", &[], CMD_TIMEOUT).unwrap_err();
        assert!(e.to_string().contains("install-deps"), "{e}");
    }
}
