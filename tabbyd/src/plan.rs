//! `tabbyd plan`: a node's configuration derived from a datastore and
//! printed, with no socket opened and the kernel untouched — what
//! `confd -onetime` plus `bird -p` give a Calico operator, for CI of cluster
//! configurations.
//!
//! The document is the effective configuration a running tabbyd would
//! report (docs/effective-config.md), built by the same core from the same
//! derivation; only `active` differs in meaning: here it says whether a
//! running tabbyd would run the session (the first of several peerings
//! with one address).
//!
//! Workload peerings (`localWorkloadSelector`) come from Felix's endpoint status files
//! under `--endpoint-status-path-prefix` (as on the node: `/var/run/calico`); point it at
//! a copy of a node's `endpoint-status` directory's parent to see that node's.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tabby_rib::PeerId;
use tabby_topology::{DatastoreSpec, Source};

use crate::args::{Args, PlanArgs, PlanFormat};
use crate::daemon::{Daemon, Options};
use crate::metrics::Metrics;
use crate::sessions::{SessionHandle, SessionSpec, Sessions};

/// Sessions that never start: derivation only.
struct NoSessions;

impl Sessions for NoSessions {
    fn listen(&mut self, _addrs: Vec<std::net::SocketAddr>) -> Result<(), String> {
        Ok(())
    }

    fn spawn(&mut self, _id: PeerId, _spec: SessionSpec) -> Result<SessionHandle, String> {
        Err("a plan starts no session".into())
    }
}

/// Exit statuses.
const CLEAN: u8 = 0;
const REPORTED: u8 = 1;
const FAILED: u8 = 2;

pub fn run(args: &Args, plan: &PlanArgs) -> ExitCode {
    match derive(args, plan) {
        Ok((doc, reported)) => {
            let text = match plan.output {
                PlanFormat::Json => serde_json::to_string_pretty(&doc).map_err(|e| e.to_string()),
                PlanFormat::Yaml => serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string()),
            };
            match text {
                Ok(t) => {
                    println!("{}", t.trim_end());
                    ExitCode::from(if reported { REPORTED } else { CLEAN })
                }
                Err(e) => {
                    eprintln!("tabbyd plan: cannot print the plan: {e}");
                    ExitCode::from(FAILED)
                }
            }
        }
        Err(e) => {
            eprintln!("tabbyd plan: {e}");
            ExitCode::from(FAILED)
        }
    }
}

/// The document, and whether it reports anything (problems or warnings).
fn derive(args: &Args, plan: &PlanArgs) -> Result<(Value, bool), String> {
    let spec: DatastoreSpec = args.datastore.parse().map_err(|e| format!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let timeout = Duration::from_secs(plan.timeout_seconds);
    let resources = runtime.block_on(async {
        let mut source = Source::open(&spec, args.secret_namespace.clone());
        tokio::time::timeout(timeout, source.next())
            .await
            .map_err(|_| {
                format!(
                    "no complete read of {} within {timeout:?}; is the datastore reachable?",
                    args.datastore
                )
            })?
            .map_err(|e| format!("cannot read {}: {e}", args.datastore))
    })?;
    // Felix's endpoint status files, for workload peerings (none if the directory is absent).
    let ep_dir = tabby_topology::endpoint_status_dir(&args.endpoint_status_path_prefix);
    let endpoints = tabby_topology::LocalEndpoints::read_dir(&ep_dir, None).map_err(|e| {
        format!(
            "cannot list the endpoint status directory {}: {e}; fix its permissions or pass --endpoint-status-path-prefix",
            ep_dir.display()
        )
    })?;
    let resources = resources.with_local_endpoints(endpoints);
    let mut daemon = Daemon::new(
        Options {
            node_name: plan.node.clone(),
            tunnel_device: args.tunnel_device.clone(),
            deferral_time: Duration::from_secs(args.deferral_time),
            log_level: args.log_level.clone(),
            max_prefixes: args.max_prefixes,
        },
        Box::new(NoSessions),
        None,
        None,
        Arc::new(Metrics::default()),
        Instant::now(),
    );
    daemon
        .set_derive_options(tabby_topology::DeriveOptions::from_env().map_err(|e| format!("{e}"))?);
    daemon.apply_resources(&resources, Instant::now());
    let mut doc: Value = serde_json::from_str(&daemon.effective_config())
        .map_err(|e| format!("the effective configuration is not JSON: {e}"))?;
    if doc["node"].is_null() {
        return Err(format!(
            "node {}: {}",
            plan.node,
            doc["datastore"]["detail"]
                .as_str()
                .unwrap_or("cannot be derived")
        ));
    }
    mark_active(&mut doc);
    let count = |k: &str| doc["datastore"][k].as_array().map_or(0, Vec::len);
    let reported = count("problems") + count("warnings") > 0;
    Ok((doc, reported))
}

/// Peers come sorted by address and port; a running tabbyd runs the first
/// peering of each address.
fn mark_active(doc: &mut Value) {
    let Some(peers) = doc["peers"].as_array_mut() else {
        return;
    };
    let mut seen = BTreeSet::new();
    for p in peers {
        let address = p["address"].as_str().unwrap_or_default().to_owned();
        let first = seen.insert(address);
        p["active"] = Value::Bool(first);
    }
}
