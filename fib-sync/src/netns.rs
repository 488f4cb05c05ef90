//! Running code inside a named network namespace, for tests and the bench.
//!
//! A namespace is made with `ip netns add` (so `ip -n NAME` works on it) and
//! deleted when the [`NetNs`] guard drops, on success, failure or panic.

use std::fs::File;
use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

/// A network namespace that lives as long as this guard.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl NetNs {
    /// Creates `PREFIX-<pid>-<n>` and brings its loopback up.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let ns = Self { name };
        ns.ip(&["netns", "add", &ns.name]).or_else(|e| {
            // A leftover from a killed run with a reused pid.
            let _ = Command::new("ip").args(["netns", "del", &ns.name]).status();
            ns.ip(&["netns", "add", &ns.name]).map_err(|_| e)
        })?;
        ns.exec(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip -n NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn ip(&self, args: &[&str]) -> io::Result<String> {
        let out = Command::new("ip").args(args).output().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot run `ip` (install iproute2): {e}"))
        })?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `ip -n NAME ARGS...` and returns its standard output.
    pub fn exec(&self, args: &[&str]) -> io::Result<String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        self.ip(&all)
    }

    /// Runs `f` on a new thread that has entered the namespace; sockets it
    /// opens belong to the namespace.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<std::thread::JoinHandle<T>> {
        let file = File::open(format!("/run/netns/{}", self.name))?;
        std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || {
                if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
                    panic!("setns into the test namespace failed (needs root): {e}");
                }
                drop(file);
                f()
            })
    }

    /// Like [`run`](Self::run) with a current-thread tokio runtime, waiting
    /// for the result.
    pub fn block_on<T, F>(&self, f: impl FnOnce() -> F + Send + 'static) -> io::Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = T>,
    {
        let h = self.run(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok::<T, io::Error>(rt.block_on(f()))
        })?;
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
