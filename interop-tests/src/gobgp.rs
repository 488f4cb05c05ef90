//! GoBGP: TOML configuration, starting `gobgpd` with its API on the
//! namespace's own loopback, and reading its state through `gobgp -j`.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::cmd::{self, CMD_TIMEOUT};
use crate::daemon::{Control, Daemon, DaemonKind};
use crate::lab::{Lab, Ns};

/// GoBGP's API port inside each namespace (loopback is per namespace, so one
/// port serves every instance).
pub const GOBGP_API_PORT: u16 = 50051;

/// One `[[neighbors]]` of a GoBGP configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBgpNeighbor {
    pub address: IpAddr,
    pub peer_as: u32,
    pub local_address: Option<IpAddr>,
    pub passive: bool,
    /// This GoBGP reflects to the neighbor.
    pub rr_client: bool,
    pub rr_cluster_id: Option<Ipv4Addr>,
    pub graceful_restart: bool,
    pub restart_time: u16,
    pub hold_time: Option<u16>,
    pub password: Option<String>,
    pub ebgp_multihop_ttl: Option<u8>,
    /// `ipv4-unicast`, `ipv6-unicast`.
    pub families: Vec<String>,
}

impl GoBgpNeighbor {
    pub fn new(address: IpAddr, peer_as: u32) -> GoBgpNeighbor {
        GoBgpNeighbor {
            address,
            peer_as,
            local_address: None,
            passive: false,
            rr_client: false,
            rr_cluster_id: None,
            graceful_restart: false,
            restart_time: 120,
            hold_time: None,
            password: None,
            ebgp_multihop_ttl: None,
            families: vec![if address.is_ipv6() {
                "ipv6-unicast".into()
            } else {
                "ipv4-unicast".into()
            }],
        }
    }
}

/// A gobgpd configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBgpConf {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// BGP listen port; -1 does not listen.
    pub port: i32,
    pub local_addresses: Vec<IpAddr>,
    pub neighbors: Vec<GoBgpNeighbor>,
}

impl GoBgpConf {
    pub fn new(asn: u32, router_id: Ipv4Addr) -> GoBgpConf {
        GoBgpConf {
            asn,
            router_id,
            port: 179,
            local_addresses: vec![],
            neighbors: vec![],
        }
    }

    pub fn neighbor(mut self, n: GoBgpNeighbor) -> GoBgpConf {
        self.neighbors.push(n);
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = {}",
            self.asn, self.router_id, self.port
        );
        if !self.local_addresses.is_empty() {
            let l: Vec<String> = self
                .local_addresses
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect();
            let _ = writeln!(o, "  local-address-list = [{}]", l.join(", "));
        }
        for n in &self.neighbors {
            let _ = writeln!(
                o,
                "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
                n.address, n.peer_as
            );
            if let Some(p) = &n.password {
                let _ = writeln!(o, "    auth-password = \"{p}\"");
            }
            // Short connect retry keeps lab tests quick.
            let _ = writeln!(o, "  [neighbors.timers.config]\n    connect-retry = 2");
            if let Some(h) = n.hold_time {
                let _ = writeln!(
                    o,
                    "    hold-time = {h}\n    keepalive-interval = {}",
                    (h / 3).max(1)
                );
            }
            let _ = writeln!(
                o,
                "  [neighbors.transport.config]\n    passive-mode = {}",
                n.passive
            );
            if let Some(l) = n.local_address {
                let _ = writeln!(o, "    local-address = \"{l}\"");
            }
            if let Some(ttl) = n.ebgp_multihop_ttl {
                let _ = writeln!(
                    o,
                    "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = {ttl}"
                );
            }
            if n.rr_client {
                let _ = writeln!(
                    o,
                    "  [neighbors.route-reflector.config]\n    route-reflector-client = true"
                );
                if let Some(c) = n.rr_cluster_id {
                    let _ = writeln!(o, "    route-reflector-cluster-id = \"{c}\"");
                }
            }
            if n.graceful_restart {
                let _ = writeln!(
                    o,
                    "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {}",
                    n.restart_time
                );
            }
            for f in &n.families {
                let _ = writeln!(
                    o,
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\""
                );
                if n.graceful_restart {
                    let _ = writeln!(
                        o,
                        "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true"
                    );
                }
            }
        }
        o
    }
}

/// A running gobgpd.
#[derive(Debug, Clone)]
pub struct GoBgp {
    pub label: String,
    pub ns: Ns,
    pub conf: PathBuf,
    pub port: u16,
}

/// A neighbor as `gobgp -j neighbor` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBgpPeer {
    pub address: IpAddr,
    pub peer_as: u32,
    /// `idle`, `connect`, `active`, `opensent`, `openconfirm`, `established`.
    pub state: String,
    /// Prefixes received / accepted, summed over families.
    pub received: u64,
    pub accepted: u64,
}

impl GoBgpPeer {
    pub fn established(&self) -> bool {
        self.state == "established"
    }
}

/// One path of GoBGP's global RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBgpPath {
    pub prefix: IpNet,
    pub best: bool,
    pub next_hop: Option<IpAddr>,
    pub as_path: Vec<u32>,
    pub local_pref: Option<u32>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    /// Standard communities as 32-bit values.
    pub communities: Vec<u32>,
    /// The neighbor it came from (none for local routes).
    pub neighbor: Option<IpAddr>,
}

/// apipb `PeerState.SessionState`.
fn session_state_name(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(1) => "idle",
            Some(2) => "connect",
            Some(3) => "active",
            Some(4) => "opensent",
            Some(5) => "openconfirm",
            Some(6) => "established",
            _ => "unknown",
        }
        .to_string(),
        Value::String(s) => s.to_ascii_lowercase(),
        _ => "unknown".into(),
    }
}

/// Parses `gobgp -j neighbor`.
pub fn parse_neighbors(json: &str) -> Result<Vec<GoBgpPeer>> {
    let v: Vec<Value> =
        serde_json::from_str(json.trim()).context("cannot parse `gobgp -j neighbor` output")?;
    v.iter()
        .map(|n| {
            let state = &n["state"];
            let addr = state["neighbor_address"]
                .as_str()
                .or_else(|| n["conf"]["neighbor_address"].as_str())
                .ok_or_else(|| anyhow!("gobgp neighbor without an address"))?;
            let mut received = 0;
            let mut accepted = 0;
            if let Some(afs) = n["afi_safis"].as_array() {
                for af in afs {
                    received += af["state"]["received"].as_u64().unwrap_or(0);
                    accepted += af["state"]["accepted"].as_u64().unwrap_or(0);
                }
            }
            Ok(GoBgpPeer {
                address: addr
                    .parse()
                    .with_context(|| format!("bad address {addr:?}"))?,
                peer_as: n["conf"]["peer_asn"].as_u64().unwrap_or(0) as u32,
                state: session_state_name(&state["session_state"]),
                received,
                accepted,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct RawPath {
    #[serde(default)]
    best: bool,
    #[serde(default)]
    attrs: Vec<Value>,
    #[serde(rename = "neighbor-ip")]
    neighbor_ip: Option<String>,
}

/// Parses `gobgp -j global rib` (a map prefix → paths).
pub fn parse_rib(json: &str) -> Result<Vec<GoBgpPath>> {
    let json = json.trim();
    if json.is_empty() || json == "null" {
        return Ok(vec![]);
    }
    let m: std::collections::BTreeMap<String, Vec<RawPath>> =
        serde_json::from_str(json).context("cannot parse `gobgp -j global rib` output")?;
    let mut out = Vec::new();
    for (prefix, paths) in m {
        let prefix: IpNet = prefix
            .parse()
            .with_context(|| format!("bad prefix {prefix:?} in gobgp rib"))?;
        for p in paths {
            let mut path = GoBgpPath {
                prefix,
                best: p.best,
                next_hop: None,
                as_path: vec![],
                local_pref: None,
                originator_id: None,
                cluster_list: vec![],
                communities: vec![],
                neighbor: p.neighbor_ip.as_deref().and_then(|s| s.parse().ok()),
            };
            for a in &p.attrs {
                match a["type"].as_u64() {
                    // RFC 4271 §5.1.2 AS_PATH
                    Some(2) => {
                        for seg in a["as_paths"].as_array().into_iter().flatten() {
                            for asn in seg["asns"].as_array().into_iter().flatten() {
                                if let Some(x) = asn.as_u64() {
                                    path.as_path.push(x as u32);
                                }
                            }
                        }
                    }
                    // NEXT_HOP, or MP_REACH_NLRI's next hop (RFC 4760)
                    Some(3) | Some(14) => {
                        path.next_hop = a["nexthop"].as_str().and_then(|s| s.parse().ok());
                    }
                    Some(5) => path.local_pref = a["value"].as_u64().map(|v| v as u32),
                    Some(8) => {
                        path.communities = a["communities"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.as_u64().map(|c| c as u32))
                            .collect();
                    }
                    // RFC 4456 ORIGINATOR_ID and CLUSTER_LIST
                    Some(9) => {
                        path.originator_id = a["value"].as_str().and_then(|s| s.parse().ok())
                    }
                    Some(10) => {
                        path.cluster_list = a["value"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.as_str().and_then(|s| s.parse().ok()))
                            .collect();
                    }
                    _ => {}
                }
            }
            out.push(path);
        }
    }
    Ok(out)
}

impl GoBgp {
    /// Runs `gobgp -u 127.0.0.1 -p PORT args…` inside the namespace.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let port = self.port.to_string();
        let mut full = vec![
            "netns",
            "exec",
            self.ns.name.as_str(),
            "gobgp",
            "-u",
            "127.0.0.1",
            "-p",
            port.as_str(),
        ];
        full.extend_from_slice(args);
        cmd::run_ok("ip", &full, CMD_TIMEOUT).with_context(|| format!("gobgp of {}", self.label))
    }

    /// Every neighbor and its state.
    pub fn neighbors(&self) -> Result<Vec<GoBgpPeer>> {
        parse_neighbors(&self.cli(&["-j", "neighbor"])?)
    }

    /// Ok when the session with `addr` is Established.
    pub fn established(&self, addr: IpAddr) -> Result<()> {
        let n = self.neighbors()?;
        let p = n
            .iter()
            .find(|p| p.address == addr)
            .ok_or_else(|| anyhow!("{} has no neighbor {addr}", self.label))?;
        if !p.established() {
            bail!("{} neighbor {addr} is {}", self.label, p.state);
        }
        Ok(())
    }

    /// The global RIB of one family (`ipv4` or `ipv6`).
    pub fn rib(&self, family: &str) -> Result<Vec<GoBgpPath>> {
        parse_rib(&self.cli(&["-j", "global", "rib", "-a", family])?)
    }

    /// Both families' global RIBs.
    pub fn rib_all(&self) -> Result<Vec<GoBgpPath>> {
        let mut r = self.rib("ipv4")?;
        r.extend(self.rib("ipv6")?);
        Ok(r)
    }

    /// Originates `prefix` with `next_hop`.
    pub fn announce(&self, prefix: IpNet, next_hop: IpAddr) -> Result<()> {
        let fam = if prefix.addr().is_ipv6() {
            "ipv6"
        } else {
            "ipv4"
        };
        let p = prefix.to_string();
        let nh = next_hop.to_string();
        self.cli(&["global", "rib", "add", &p, "nexthop", &nh, "-a", fam])?;
        Ok(())
    }

    /// Withdraws a prefix it originated.
    pub fn withdraw(&self, prefix: IpNet) -> Result<()> {
        let fam = if prefix.addr().is_ipv6() {
            "ipv6"
        } else {
            "ipv4"
        };
        let p = prefix.to_string();
        self.cli(&["global", "rib", "del", &p, "-a", fam])?;
        Ok(())
    }
}

impl Lab {
    /// Starts gobgpd in `ns` with `conf` (TOML text, see [`GoBgpConf`]); its
    /// API listens on 127.0.0.1:50051 inside the namespace.
    pub fn start_gobgp(&mut self, ns: &Ns, label: &str, conf: &str) -> Result<GoBgp> {
        self.start_gobgp_args(ns, label, conf, &[])
    }

    /// [`Lab::start_gobgp`] with extra gobgpd flags (e.g. `--log-level=error`
    /// for benchmarks).
    pub fn start_gobgp_args(
        &mut self,
        ns: &Ns,
        label: &str,
        conf: &str,
        extra: &[&str],
    ) -> Result<GoBgp> {
        let path = self.write_file(&format!("{label}.toml"), conf)?;
        let port = GOBGP_API_PORT;
        let daemon = Daemon {
            kind: DaemonKind::GoBgp,
            program: "gobgpd".into(),
            args: [
                "-f".to_string(),
                path.display().to_string(),
                "-t".into(),
                "toml".into(),
                "--api-hosts".into(),
                format!("127.0.0.1:{port}"),
                "--pprof-disable".into(),
                "--log-plain".into(),
            ]
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect(),
            env: vec![],
            control: Control::GoBgp { port },
        };
        self.start(ns, label, daemon)?;
        let g = GoBgp {
            label: label.into(),
            ns: ns.clone(),
            conf: path,
            port,
        };
        self.wait_ready(label, Duration::from_secs(10), || g.cli(&["global"]))?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_neighbor_json() {
        let j = r#"[{"conf":{"local_asn":65001,"neighbor_address":"198.18.1.2","peer_asn":65002},
          "state":{"neighbor_address":"198.18.1.2","peer_asn":65002,"session_state":6},
          "afi_safis":[{"state":{"family":{"afi":1,"safi":1},"received":3,"accepted":2}}]},
          {"conf":{"neighbor_address":"198.18.1.3","peer_asn":65003},"state":{"session_state":3}}]"#;
        let n = parse_neighbors(j).unwrap();
        assert_eq!(n.len(), 2);
        assert!(n[0].established());
        assert_eq!((n[0].received, n[0].accepted), (3, 2));
        assert_eq!(n[1].state, "active");
        assert_eq!(n[1].address, "198.18.1.3".parse::<IpAddr>().unwrap());
        assert!(parse_neighbors("nope").is_err());
    }

    #[test]
    fn parses_rib_json() {
        let j = r#"{"100.64.5.0/24":[{"nlri":{"prefix":"100.64.5.0/24"},"age":1,"best":true,
          "attrs":[{"type":1,"value":2},{"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[65002,65010]}]},
          {"type":3,"nexthop":"198.18.1.2"},{"type":9,"value":"198.18.9.9"},{"type":10,"value":["198.18.0.1"]},
          {"type":8,"communities":[4259840001]}],"neighbor-ip":"198.18.1.2"}],
          "2001:db8:1000::/64":[{"best":false,"attrs":[{"type":14,"nexthop":"2001:db8:0:1::2","afi":2,"safi":1,"value":[]}]}]}"#;
        let r = parse_rib(j).unwrap();
        assert_eq!(r.len(), 2);
        let v4 = r.iter().find(|p| p.prefix.addr().is_ipv4()).unwrap();
        assert!(v4.best);
        assert_eq!(v4.as_path, vec![65002, 65010]);
        assert_eq!(v4.next_hop, Some("198.18.1.2".parse().unwrap()));
        assert_eq!(v4.originator_id, Some(Ipv4Addr::new(198, 18, 9, 9)));
        assert_eq!(v4.cluster_list, vec![Ipv4Addr::new(198, 18, 0, 1)]);
        assert_eq!(v4.communities, vec![4259840001]);
        assert_eq!(v4.neighbor, Some("198.18.1.2".parse().unwrap()));
        let v6 = r.iter().find(|p| p.prefix.addr().is_ipv6()).unwrap();
        assert_eq!(v6.next_hop, Some("2001:db8:0:1::2".parse().unwrap()));
        assert!(parse_rib("{}").unwrap().is_empty());
    }

    #[test]
    fn renders_toml() {
        let mut n = GoBgpNeighbor::new("198.18.1.1".parse().unwrap(), 65001);
        n.rr_client = true;
        n.graceful_restart = true;
        let t = GoBgpConf::new(65002, Ipv4Addr::new(198, 18, 1, 2))
            .neighbor(n)
            .render();
        assert!(t.contains("neighbor-address = \"198.18.1.1\""));
        assert!(t.contains("route-reflector-client = true"));
        assert!(t.contains("afi-safi-name = \"ipv4-unicast\""));
        assert!(t.contains("[neighbors.graceful-restart.config]"));
    }
}
