//! A namespace's kernel routing table, read with `ip -j route`.

use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnet::IpNet;
use serde::Deserialize;

use crate::cmd::{self, CMD_TIMEOUT};

/// One next hop of a kernel route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNextHop {
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    pub onlink: bool,
    pub weight: Option<u32>,
}

/// One route from a namespace's main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub dst: IpNet,
    /// `unicast`, `blackhole`, `unreachable`, `local`, …
    pub kind: String,
    /// Protocol name or number as `ip` prints it (`bird`, `kernel`, `static`, `200`).
    pub protocol: String,
    pub metric: Option<u32>,
    /// One entry for a plain route, several for ECMP; empty for blackholes.
    pub nexthops: Vec<KernelNextHop>,
}

impl KernelRoute {
    /// The single gateway of a non-ECMP route.
    pub fn gateway(&self) -> Option<IpAddr> {
        match self.nexthops.as_slice() {
            [nh] => nh.gateway,
            _ => None,
        }
    }
    /// The single device of a non-ECMP route.
    pub fn dev(&self) -> Option<&str> {
        match self.nexthops.as_slice() {
            [nh] => nh.dev.as_deref(),
            _ => None,
        }
    }
}

/// `via` of a route whose gateway is of the other family (RFC 8950).
#[derive(Debug, Deserialize)]
struct RawVia {
    host: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawNh {
    gateway: Option<String>,
    via: Option<RawVia>,
    dev: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct RawRoute {
    #[serde(rename = "type")]
    kind: Option<String>,
    dst: String,
    gateway: Option<String>,
    via: Option<RawVia>,
    dev: Option<String>,
    protocol: Option<String>,
    metric: Option<u32>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    nexthops: Vec<RawNh>,
}

fn parse_dst(dst: &str, v6: bool) -> Result<IpNet> {
    if dst == "default" {
        return Ok(if v6 {
            "::/0".parse()?
        } else {
            "0.0.0.0/0".parse()?
        });
    }
    if dst.contains('/') {
        return dst
            .parse()
            .with_context(|| format!("bad route destination {dst:?}"));
    }
    // `ip` prints host routes without a length.
    let a: IpAddr = dst
        .parse()
        .with_context(|| format!("bad route destination {dst:?}"))?;
    Ok(IpNet::from(a))
}

fn parse_gw(g: &Option<String>, via: &Option<RawVia>) -> Option<IpAddr> {
    g.as_deref()
        .or_else(|| via.as_ref().and_then(|v| v.host.as_deref()))
        .and_then(|s| s.parse().ok())
}

/// Parses `ip -j route show` output for one family.
pub fn parse_routes(json: &str, v6: bool) -> Result<Vec<KernelRoute>> {
    let json = json.trim();
    if json.is_empty() {
        return Ok(vec![]);
    }
    let raw: Vec<RawRoute> =
        serde_json::from_str(json).context("cannot parse `ip -j route` output")?;
    raw.into_iter()
        .map(|r| {
            let nexthops = if r.nexthops.is_empty() {
                if r.gateway.is_none() && r.via.is_none() && r.dev.is_none() {
                    vec![]
                } else {
                    vec![KernelNextHop {
                        gateway: parse_gw(&r.gateway, &r.via),
                        dev: r.dev.clone(),
                        onlink: r.flags.iter().any(|f| f == "onlink"),
                        weight: None,
                    }]
                }
            } else {
                r.nexthops
                    .iter()
                    .map(|n| KernelNextHop {
                        gateway: parse_gw(&n.gateway, &n.via),
                        dev: n.dev.clone(),
                        onlink: n.flags.iter().any(|f| f == "onlink"),
                        weight: n.weight,
                    })
                    .collect()
            };
            Ok(KernelRoute {
                dst: parse_dst(&r.dst, v6)?,
                kind: r.kind.unwrap_or_else(|| "unicast".into()),
                protocol: r.protocol.unwrap_or_else(|| "boot".into()),
                metric: r.metric,
                nexthops,
            })
        })
        .collect()
}

/// Routes of namespace `ns` (main table, both families), optionally only
/// those of protocol `proto`.
pub fn routes(ns: &str, proto: Option<&str>) -> Result<Vec<KernelRoute>> {
    let mut out = Vec::new();
    for (fam, v6) in [("-4", false), ("-6", true)] {
        let mut args = vec!["-j", fam, "-n", ns, "route", "show", "table", "main"];
        if let Some(p) = proto {
            args.extend_from_slice(&["proto", p]);
        }
        let json = cmd::run_ok("ip", &args, CMD_TIMEOUT)?;
        out.extend(parse_routes(&json, v6)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_blackhole_and_ecmp() {
        let json = r#"[{"type":"blackhole","dst":"100.64.0.0/26","protocol":"bird","metric":32,"flags":[]},
            {"dst":"100.64.1.0/26","gateway":"198.18.1.2","dev":"eth0","protocol":"bird","metric":32,"flags":["onlink"]},
            {"dst":"100.64.2.5","dev":"eth0","protocol":"kernel","scope":"link","flags":[]},
            {"dst":"default","protocol":"static","flags":[],"nexthops":[{"gateway":"198.18.1.1","dev":"eth0","weight":1,"flags":[]},{"gateway":"198.18.2.1","dev":"eth1","weight":1,"flags":[]}]}]"#;
        let r = parse_routes(json, false).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].kind, "blackhole");
        assert!(r[0].nexthops.is_empty());
        assert_eq!(r[1].gateway(), Some("198.18.1.2".parse().unwrap()));
        assert!(r[1].nexthops[0].onlink);
        assert_eq!(r[2].dst, "100.64.2.5/32".parse::<IpNet>().unwrap());
        assert_eq!(r[3].dst, "0.0.0.0/0".parse::<IpNet>().unwrap());
        assert_eq!(r[3].nexthops.len(), 2);
        assert_eq!(r[3].gateway(), None);
        assert!(parse_routes("", false).unwrap().is_empty());
        let x = r#"[{"dst":"100.64.3.0/26","via":{"family":"inet6","host":"2001:db8:0:1::1"},"dev":"eth0","protocol":"bird","flags":[]}]"#;
        let x = parse_routes(x, false).unwrap();
        assert_eq!(x[0].gateway(), Some("2001:db8:0:1::1".parse().unwrap()));
        assert!(parse_routes("{bad", false).is_err());
    }
}
