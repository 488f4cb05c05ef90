//! Running Rust code inside a lab namespace: a scoped thread joins the
//! namespace (`setns`) and runs a closure there. Sockets it creates stay in
//! that namespace wherever they are used afterwards, so a test or the
//! benchmark's generator can open sessions from any namespace without a
//! helper process.

use std::fs::File;

use anyhow::{Context, Result, anyhow};
use nix::sched::{CloneFlags, setns};

use crate::lab::{Lab, Ns};

/// Runs `f` on a fresh thread inside network namespace `ns_name`
/// (`/run/netns/NAME`) and returns its result.
pub fn in_netns<T: Send>(ns_name: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    let path = format!("/run/netns/{ns_name}");
    let file = File::open(&path).with_context(|| format!("namespace {ns_name} does not exist"))?;
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T> {
            // Only this thread moves; the caller's namespace is untouched.
            setns(&file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter namespace {ns_name} (needs root)"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("code running in namespace {ns_name} panicked"))?
    })
}

impl Lab {
    /// Runs `f` inside `ns` (see [`in_netns`]).
    pub fn in_ns<T: Send>(&self, ns: &Ns, f: impl FnOnce() -> T + Send) -> Result<T> {
        in_netns(&ns.name, f)
    }
}
