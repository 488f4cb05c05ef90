//! FRR's `bgpd` on its own (no zebra, no vty port), configured from a
//! generated file and asked through `vtysh --vty_socket DIR … json`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ipnet::IpNet;
use serde_json::Value;

use crate::cmd::{self, CMD_TIMEOUT};
use crate::daemon::{Control, Daemon, DaemonKind};
use crate::lab::{Lab, Ns};

/// One `neighbor` of an FRR configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrNeighbor {
    pub address: IpAddr,
    pub remote_as: u32,
    pub passive: bool,
    /// This FRR reflects to the neighbor (RFC 4456).
    pub rr_client: bool,
    pub password: Option<String>,
    pub update_source: Option<IpAddr>,
    pub ebgp_multihop: Option<u8>,
    /// GTSM (RFC 5082) with this many hops.
    pub ttl_security_hops: Option<u8>,
    /// (keepalive, hold) seconds.
    pub timers: Option<(u16, u16)>,
    /// Exchange IPv4 unicast on this session.
    pub ipv4: bool,
    /// Exchange IPv6 unicast on this session.
    pub ipv6: bool,
    /// RFC 8950 extended next hop (IPv4 over an IPv6 session).
    pub extended_nexthop: bool,
}

impl FrrNeighbor {
    /// A neighbor exchanging the family of its own address.
    pub fn new(address: IpAddr, remote_as: u32) -> FrrNeighbor {
        FrrNeighbor {
            address,
            remote_as,
            passive: false,
            rr_client: false,
            password: None,
            update_source: None,
            ebgp_multihop: None,
            ttl_security_hops: None,
            timers: None,
            ipv4: address.is_ipv4(),
            ipv6: address.is_ipv6(),
            extended_nexthop: false,
        }
    }
}

/// An FRR `bgpd.conf`: a ToR or a reflector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrConf {
    pub hostname: String,
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub cluster_id: Option<Ipv4Addr>,
    pub graceful_restart: bool,
    /// Prefixes originated with `network` (no zebra: import check off).
    pub networks: Vec<IpNet>,
    pub neighbors: Vec<FrrNeighbor>,
    /// Informational logging to stdout (the lab's log file); off for benchmarks.
    pub log: bool,
    /// Extra text appended inside `router bgp`.
    pub extra_router: Vec<String>,
}

impl FrrConf {
    pub fn new(hostname: &str, asn: u32, router_id: Ipv4Addr) -> FrrConf {
        FrrConf {
            hostname: hostname.into(),
            asn,
            router_id,
            cluster_id: None,
            graceful_restart: false,
            networks: vec![],
            neighbors: vec![],
            log: true,
            extra_router: vec![],
        }
    }

    pub fn neighbor(mut self, n: FrrNeighbor) -> FrrConf {
        self.neighbors.push(n);
        self
    }

    pub fn network(mut self, p: IpNet) -> FrrConf {
        self.networks.push(p);
        self
    }

    /// The configuration text.
    pub fn render(&self) -> String {
        let mut o = String::from("frr defaults traditional\n");
        let _ = writeln!(o, "hostname {}", self.hostname);
        if self.log {
            o.push_str("log stdout informational\n");
        } else {
            o.push_str("log stdout errors\n");
        }
        o.push_str("!\n");
        let _ = writeln!(o, "router bgp {}", self.asn);
        let _ = writeln!(o, " bgp router-id {}", self.router_id);
        // eBGP without policy would otherwise exchange nothing (RFC 8212 default).
        o.push_str(" no bgp ebgp-requires-policy\n");
        // bgpd runs without zebra: `network` cannot check the RIB.
        o.push_str(" no bgp network import-check\n");
        o.push_str(" no bgp default ipv4-unicast\n");
        if self.graceful_restart {
            o.push_str(" bgp graceful-restart\n");
        }
        if let Some(c) = self.cluster_id {
            let _ = writeln!(o, " bgp cluster-id {c}");
        }
        for n in &self.neighbors {
            let a = n.address;
            let _ = writeln!(o, " neighbor {a} remote-as {}", n.remote_as);
            let _ = writeln!(o, " neighbor {a} timers connect 2");
            if n.passive {
                let _ = writeln!(o, " neighbor {a} passive");
            }
            if let Some(p) = &n.password {
                let _ = writeln!(o, " neighbor {a} password {p}");
            }
            if let Some(s) = n.update_source {
                let _ = writeln!(o, " neighbor {a} update-source {s}");
            }
            if let Some(h) = n.ebgp_multihop {
                let _ = writeln!(o, " neighbor {a} ebgp-multihop {h}");
            }
            if let Some(h) = n.ttl_security_hops {
                let _ = writeln!(o, " neighbor {a} ttl-security hops {h}");
            }
            if let Some((k, h)) = n.timers {
                let _ = writeln!(o, " neighbor {a} timers {k} {h}");
            }
            if n.extended_nexthop {
                let _ = writeln!(o, " neighbor {a} capability extended-nexthop");
            }
        }
        for l in &self.extra_router {
            let _ = writeln!(o, " {l}");
        }
        for (fam, v6) in [("ipv4", false), ("ipv6", true)] {
            let nets: Vec<&IpNet> = self
                .networks
                .iter()
                .filter(|p| p.addr().is_ipv6() == v6)
                .collect();
            let ns: Vec<&FrrNeighbor> = self
                .neighbors
                .iter()
                .filter(|n| if v6 { n.ipv6 } else { n.ipv4 })
                .collect();
            if nets.is_empty() && ns.is_empty() {
                continue;
            }
            let _ = writeln!(o, " !\n address-family {fam} unicast");
            for p in nets {
                let _ = writeln!(o, "  network {p}");
            }
            for n in ns {
                let _ = writeln!(o, "  neighbor {} activate", n.address);
                if n.rr_client {
                    let _ = writeln!(o, "  neighbor {} route-reflector-client", n.address);
                }
            }
            o.push_str(" exit-address-family\n");
        }
        o.push_str("!\n");
        o
    }
}

/// A running FRR bgpd.
#[derive(Debug, Clone)]
pub struct Frr {
    pub label: String,
    pub ns: Ns,
    pub conf: PathBuf,
    pub vty_dir: PathBuf,
}

/// A peer in `show bgp summary json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrPeer {
    pub address: IpAddr,
    /// `ipv4Unicast`, `ipv6Unicast`.
    pub family: String,
    pub remote_as: u32,
    /// `Established`, `Active`, `Connect`, `Idle`, …
    pub state: String,
    pub prefixes_received: u64,
    pub prefixes_sent: u64,
}

/// A path in `show bgp <afi> unicast json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrPath {
    pub prefix: IpNet,
    pub valid: bool,
    pub best: bool,
    pub as_path: Vec<u32>,
    pub next_hops: Vec<IpAddr>,
    pub peer: Option<IpAddr>,
}

/// Parses `show bgp summary json`.
pub fn parse_summary(json: &str) -> Result<Vec<FrrPeer>> {
    let v: Value = serde_json::from_str(json.trim()).context("cannot parse FRR summary json")?;
    let mut out = Vec::new();
    let Some(fams) = v.as_object() else {
        bail!("FRR summary json is not an object");
    };
    for (family, f) in fams {
        let Some(peers) = f["peers"].as_object() else {
            continue;
        };
        for (addr, p) in peers {
            out.push(FrrPeer {
                address: addr
                    .parse()
                    .with_context(|| format!("bad peer address {addr:?}"))?,
                family: family.clone(),
                remote_as: p["remoteAs"].as_u64().unwrap_or(0) as u32,
                state: p["state"].as_str().unwrap_or("unknown").to_string(),
                prefixes_received: p["pfxRcd"].as_u64().unwrap_or(0),
                prefixes_sent: p["pfxSnt"].as_u64().unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// Parses `show bgp ipv4|ipv6 unicast json`.
pub fn parse_routes(json: &str) -> Result<Vec<FrrPath>> {
    let v: Value = serde_json::from_str(json.trim()).context("cannot parse FRR routes json")?;
    let mut out = Vec::new();
    let routes: BTreeMap<String, Value> = match v.get("routes") {
        Some(r) => serde_json::from_value(r.clone()).context("FRR routes is not a map")?,
        None => return Ok(out),
    };
    for (prefix, paths) in routes {
        let prefix: IpNet = prefix
            .parse()
            .with_context(|| format!("bad prefix {prefix:?} from FRR"))?;
        for p in paths.as_array().into_iter().flatten() {
            out.push(FrrPath {
                prefix,
                valid: p["valid"].as_bool().unwrap_or(false),
                best: p["bestpath"].as_bool().unwrap_or(false),
                as_path: p["path"]
                    .as_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|t| t.trim_matches(|c| c == '{' || c == '}').parse().ok())
                    .collect(),
                next_hops: p["nexthops"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n["ip"].as_str().and_then(|s| s.parse().ok()))
                    .collect(),
                peer: p["peerId"].as_str().and_then(|s| s.parse().ok()),
            });
        }
    }
    Ok(out)
}

impl Frr {
    /// Runs one vtysh command against this bgpd.
    pub fn vtysh(&self, command: &str) -> Result<String> {
        self.vtysh_within(command, CMD_TIMEOUT)
    }

    fn vtysh_within(&self, command: &str, limit: Duration) -> Result<String> {
        let dir = self.vty_dir.display().to_string();
        cmd::run_ok(
            "vtysh",
            &["--vty_socket", &dir, "-d", "bgpd", "-c", command],
            limit,
        )
        .with_context(|| format!("vtysh of {}", self.label))
    }

    /// Every peer of every family.
    pub fn summary(&self) -> Result<Vec<FrrPeer>> {
        parse_summary(&self.vtysh("show bgp summary json")?)
    }

    /// Ok when the session with `addr` is Established.
    pub fn established(&self, addr: IpAddr) -> Result<()> {
        let s = self.summary()?;
        let p = s
            .iter()
            .find(|p| p.address == addr)
            .ok_or_else(|| anyhow!("{} has no peer {addr}", self.label))?;
        if p.state != "Established" {
            bail!("{} peer {addr} is {}", self.label, p.state);
        }
        Ok(())
    }

    /// The BGP table of one family (`ipv4` or `ipv6`).
    pub fn routes(&self, family: &str) -> Result<Vec<FrrPath>> {
        parse_routes(&self.vtysh(&format!("show bgp {family} unicast json"))?)
    }
}

impl Lab {
    /// Starts FRR's bgpd alone in `ns` with `conf` (see [`FrrConf`]).
    pub fn start_frr(&mut self, ns: &Ns, label: &str, conf: &str) -> Result<Frr> {
        let path = self.write_file(&format!("{label}.frr.conf"), conf)?;
        let vty_dir = self.path(&format!("{label}.vty"));
        std::fs::create_dir_all(&vty_dir)?;
        let pid = self.path(&format!("{label}.pid"));
        let s = |p: &PathBuf| p.display().to_string();
        let daemon = Daemon {
            kind: DaemonKind::Frr,
            program: "/usr/lib/frr/bgpd".into(),
            args: vec![
                "-Z".into(),
                "-n".into(),
                "-S".into(),
                "-P".into(),
                "0".into(),
                "-f".into(),
                s(&path),
                "-i".into(),
                s(&pid),
                "--vty_socket".into(),
                s(&vty_dir),
            ],
            env: vec![],
            control: Control::Frr {
                vty_dir: vty_dir.clone(),
            },
        };
        self.start(ns, label, daemon)?;
        let f = Frr {
            label: label.into(),
            ns: ns.clone(),
            conf: path,
            vty_dir,
        };
        // bgpd reads its whole configuration before it answers: thousands
        // of neighbours (the benchmark's reflector) take it seconds.
        let neighbors = conf
            .lines()
            .filter(|l| l.trim_start().starts_with("neighbor "))
            .count();
        let limit = Duration::from_secs(10).max(Duration::from_millis(20 * neighbors as u64));
        self.wait_ready(label, limit, || {
            parse_summary(&f.vtysh_within("show bgp summary json", limit)?)
        })?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tor() {
        let mut n = FrrNeighbor::new("2001:db8:0:1::2".parse().unwrap(), 65002);
        n.ipv4 = true;
        n.extended_nexthop = true;
        let c = FrrConf::new("tor", 65000, Ipv4Addr::new(198, 18, 1, 1))
            .network("100.64.9.0/24".parse().unwrap())
            .neighbor(n)
            .render();
        assert!(c.contains("no bgp ebgp-requires-policy"));
        assert!(c.contains("neighbor 2001:db8:0:1::2 capability extended-nexthop"));
        let v4 = c.find("address-family ipv4 unicast").unwrap();
        let v6 = c.find("address-family ipv6 unicast").unwrap();
        assert!(c[v4..v6].contains("network 100.64.9.0/24"));
        assert!(c[v4..v6].contains("neighbor 2001:db8:0:1::2 activate"));
        assert!(c[v6..].contains("neighbor 2001:db8:0:1::2 activate"));
    }

    #[test]
    fn parses_summary_and_routes() {
        let s = r#"{"ipv4Unicast":{"routerId":"198.18.1.1","peers":{"198.18.1.2":{"remoteAs":65002,"state":"Established","pfxRcd":2,"pfxSnt":1}}},
                    "ipv6Unicast":{"peers":{"2001:db8:0:1::2":{"remoteAs":65002,"state":"Active"}}}}"#;
        let p = parse_summary(s).unwrap();
        assert_eq!(p.len(), 2);
        let v4 = p.iter().find(|p| p.family == "ipv4Unicast").unwrap();
        assert_eq!(
            (v4.state.as_str(), v4.prefixes_received),
            ("Established", 2)
        );
        let r = r#"{"routes":{"100.64.0.0/26":[{"valid":true,"bestpath":true,"path":"65002 65010","peerId":"198.18.1.2",
                    "nexthops":[{"ip":"198.18.1.2","afi":"ipv4","used":true}]}]}}"#;
        let r = parse_routes(r).unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].valid && r[0].best);
        assert_eq!(r[0].as_path, vec![65002, 65010]);
        assert_eq!(
            r[0].next_hops,
            vec!["198.18.1.2".parse::<IpAddr>().unwrap()]
        );
        assert!(parse_routes(r#"{"routes":{}}"#).unwrap().is_empty());
        assert!(parse_summary("[").is_err());
    }
}
