//! Felix's endpoint status files: what this node's workloads are, and which `BGPPeer`
//! (one with `localWorkloadSelector`) Felix chose for each.
//!
//! Felix writes one JSON file per local workload endpoint into
//! `<prefix>/endpoint-status/` (`EndpointStatusPathPrefix`, default `/var/run/calico`),
//! named `<orchestrator> <namespace%2Fworkload> <endpoint>` (each field URL-path escaped,
//! separated by spaces). Calico's confd reads the same directory, the prefix taken from
//! `CALICO_ENDPOINT_STATUS_PATH_PREFIX` (else `/var/run/calico`), and keeps the files whose
//! `bgpPeerName` is set. Felix writes in place (not by rename), so a file can be caught
//! half written: it is reported, and the reader keeps the last good contents it had.
//!
//! Which BGPPeer a workload gets is Felix's decision (its active BGP peer calculator: of
//! the BGPPeers selecting this node whose `localWorkloadSelector` matches the workload,
//! the first by name); Tabby, like confd, relies on it and does not evaluate workload
//! selectors itself.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

/// The environment variable confd reads for the prefix, and tabbyd with it.
pub const ENDPOINT_STATUS_PREFIX_ENV: &str = "CALICO_ENDPOINT_STATUS_PATH_PREFIX";
/// Felix's and confd's default prefix.
pub const DEFAULT_ENDPOINT_STATUS_PREFIX: &str = "/var/run/calico";
/// The directory under the prefix.
pub const ENDPOINT_STATUS_DIR: &str = "endpoint-status";

/// The status directory under a prefix (`<prefix>/endpoint-status`).
pub fn endpoint_status_dir(prefix: &Path) -> PathBuf {
    prefix.join(ENDPOINT_STATUS_DIR)
}

/// One endpoint status file, as Felix writes it (`epstatusfile.WorkloadEndpointStatus`).
/// Unknown keys are ignored and absent or `null` lists are empty, as Go's decoder does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpointStatus {
    #[serde(default)]
    pub iface_name: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    /// The workload's IPv4 addresses as CIDRs (`198.19.0.5/32`); the first one peers.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ipv4_nets: Vec<String>,
    /// The workload's IPv6 addresses as CIDRs; the first one peers.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ipv6_nets: Vec<String>,
    /// The `BGPPeer` Felix chose for this workload; empty or absent: none.
    #[serde(default, rename = "bgpPeerName")]
    pub bgp_peer_name: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl WorkloadEndpointStatus {
    /// Parses one file's text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not an endpoint status JSON object: {e}"))
    }

    /// The BGPPeer Felix chose, if any.
    pub fn bgp_peer(&self) -> Option<&str> {
        self.bgp_peer_name.as_deref().filter(|n| !n.is_empty())
    }
}

/// The endpoint status files of this node that name a BGPPeer, by file name, and what
/// could not be read. Empty when the directory does not exist (Felix creates it with the
/// first workload).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalEndpoints {
    pub endpoints: BTreeMap<String, Arc<WorkloadEndpointStatus>>,
    /// One line per file that could not be read or parsed, for the operator.
    pub problems: Vec<String>,
}

impl LocalEndpoints {
    /// Reads every file of `dir` now. A file that cannot be read or parsed is reported in
    /// [`LocalEndpoints::problems`]; if `previous` held that file, its last good contents
    /// stay. Files without `bgpPeerName` are left out. `Err` only when the directory itself
    /// exists but cannot be listed.
    pub fn read_dir(dir: &Path, previous: Option<&LocalEndpoints>) -> io::Result<LocalEndpoints> {
        let mut out = LocalEndpoints::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot be read: {e}"))
                .and_then(|t| WorkloadEndpointStatus::from_json(&t));
            match parsed {
                Ok(st) => {
                    if st.bgp_peer().is_some() {
                        out.endpoints.insert(name, Arc::new(st));
                    }
                }
                Err(reason) => {
                    let kept = previous.and_then(|p| p.endpoints.get(&name)).cloned();
                    let tail = if kept.is_some() {
                        "skipped, its last good contents stay"
                    } else {
                        "skipped"
                    };
                    tracing::warn!(file = %path.display(), %reason, "endpoint status file skipped; read again on the next poll");
                    out.problems.push(format!(
                        "endpoint status file {}: {reason}; {tail} (Felix rewrites it; read again every second)",
                        path.display()
                    ));
                    if let Some(st) = kept {
                        out.endpoints.insert(name, st);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn felix_json_with_null_lists_and_unknown_keys() {
        let st = WorkloadEndpointStatus::from_json(
            r#"{"ifaceName":"cali1","mac":"ee:ee:ee:ee:ee:ee","ipv4Nets":["198.19.0.5/32"],"ipv6Nets":null,"bgpPeerName":"workloads","future":1}"#,
        )
        .unwrap();
        assert_eq!(st.ipv4_nets, vec!["198.19.0.5/32".to_string()]);
        assert!(st.ipv6_nets.is_empty());
        assert_eq!(st.bgp_peer(), Some("workloads"));
        let none =
            WorkloadEndpointStatus::from_json(r#"{"ifaceName":"cali2","bgpPeerName":""}"#).unwrap();
        assert_eq!(none.bgp_peer(), None);
        assert!(WorkloadEndpointStatus::from_json(r#"{"ipv4Nets":["198.19"#).is_err());
        assert!(WorkloadEndpointStatus::from_json(r#"{"ipv4Nets":"198.19.0.5/32"}"#).is_err());
    }

    #[test]
    fn the_directory_is_under_the_prefix() {
        assert_eq!(
            endpoint_status_dir(Path::new(DEFAULT_ENDPOINT_STATUS_PREFIX)),
            PathBuf::from("/var/run/calico/endpoint-status")
        );
    }
}
