//! BIRD 2 and BIRD 1.6: starting them, asking `birdc`, and parsing what it prints.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ipnet::IpNet;

use crate::cmd::{self, CMD_TIMEOUT};
use crate::daemon::{Control, Daemon, DaemonKind};
use crate::lab::{Lab, Ns};
use crate::preflight;

/// How long a freshly started BIRD gets to answer on its control socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running BIRD (1.6 or 2) and its control socket.
#[derive(Debug, Clone)]
pub struct Bird {
    pub label: String,
    pub ns: Ns,
    pub kind: DaemonKind,
    pub conf: PathBuf,
    pub sock: PathBuf,
    birdc: PathBuf,
}

/// One line of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdProtocol {
    pub name: String,
    /// `BGP`, `Static`, `Kernel`, `Device`, `Direct`, …
    pub proto: String,
    pub table: String,
    /// `up`, `down`, `start`, …
    pub state: String,
    pub since: String,
    /// For BGP: `Established`, `Active`, `Connect`, … followed by details.
    pub info: String,
}

impl BirdProtocol {
    /// True for a BGP protocol in state Established.
    pub fn established(&self) -> bool {
        self.proto == "BGP" && self.info.starts_with("Established")
    }
}

/// One route of `show route all` (BIRD 1.6 or 2 format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdRoute {
    pub prefix: IpNet,
    /// The protocol that supplied it (e.g. the BGP protocol's name).
    pub protocol: String,
    /// Selected as best (`*`).
    pub primary: bool,
    /// `unicast`, `blackhole`, `unreachable`, …
    pub kind: String,
    /// Gateways (`via X on IF`); empty for device routes and blackholes.
    pub gateways: Vec<IpAddr>,
    /// Raw attribute lines: `BGP.as_path` → `65001 65002`, `Type` → `BGP univ`.
    pub attrs: BTreeMap<String, String>,
}

impl BirdRoute {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
    /// `BGP.as_path` as numbers (set brackets ignored).
    pub fn as_path(&self) -> Vec<u32> {
        self.attr("BGP.as_path")
            .map(|s| {
                s.split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == ',')
                    .filter_map(|t| t.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// `BGP.next_hop` addresses (a global and possibly a link-local for IPv6).
    pub fn bgp_next_hop(&self) -> Vec<IpAddr> {
        parse_addrs(self.attr("BGP.next_hop"))
    }
    pub fn local_pref(&self) -> Option<u32> {
        self.attr("BGP.local_pref")?.trim().parse().ok()
    }
    pub fn med(&self) -> Option<u32> {
        self.attr("BGP.med")?.trim().parse().ok()
    }
    pub fn originator_id(&self) -> Option<Ipv4Addr> {
        self.attr("BGP.originator_id")?.trim().parse().ok()
    }
    /// `BGP.cluster_list`, nearest reflector first.
    pub fn cluster_list(&self) -> Vec<Ipv4Addr> {
        parse_addrs(self.attr("BGP.cluster_list"))
            .into_iter()
            .filter_map(|a| match a {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            })
            .collect()
    }
    /// Standard communities as `(asn, value)` pairs.
    pub fn communities(&self) -> Vec<(u16, u16)> {
        let Some(s) = self.attr("BGP.community") else {
            return vec![];
        };
        s.split(')')
            .filter_map(|t| {
                let t = t.trim().trim_start_matches('(');
                let (a, b) = t.split_once(',')?;
                Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
            })
            .collect()
    }
    /// `BGP.origin`: `IGP`, `EGP` or `Incomplete`.
    pub fn origin(&self) -> Option<&str> {
        self.attr("BGP.origin")
    }
}

fn parse_addrs(s: Option<&str>) -> Vec<IpAddr> {
    s.map(|s| {
        s.split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

impl Bird {
    /// Runs one `birdc` command and returns its output without the banner.
    pub fn cmd(&self, command: &str) -> Result<String> {
        let sock = self.sock.display().to_string();
        let mut args = vec!["-s", sock.as_str()];
        args.extend(command.split_whitespace());
        let out = cmd::run_ok(&self.birdc.display().to_string(), &args, CMD_TIMEOUT)
            .with_context(|| format!("birdc of {}", self.label))?;
        if out.contains("Unable to connect to server") {
            bail!(
                "birdc cannot reach {} at {}: {}",
                self.label,
                sock,
                out.trim()
            );
        }
        let body: Vec<&str> = out
            .lines()
            .filter(|l| !(l.starts_with("BIRD ") && l.ends_with(" ready.")))
            .collect();
        Ok(body.join("\n"))
    }

    /// `show protocols`, parsed.
    pub fn protocols(&self) -> Result<Vec<BirdProtocol>> {
        Ok(parse_protocols(&self.cmd("show protocols")?))
    }

    /// One protocol by name.
    pub fn protocol(&self, name: &str) -> Result<BirdProtocol> {
        self.protocols()?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow!("{} has no protocol {name}", self.label))
    }

    /// Ok when BGP protocol `name` is Established, else an error saying its state.
    pub fn established(&self, name: &str) -> Result<()> {
        let p = self.protocol(name)?;
        if p.established() {
            Ok(())
        } else {
            bail!("{} protocol {name} is {} {}", self.label, p.state, p.info)
        }
    }

    /// `show route all`, parsed (every table BIRD prints).
    pub fn routes(&self) -> Result<Vec<BirdRoute>> {
        parse_routes(&self.cmd("show route all")?)
    }

    /// The routes for exactly `prefix`.
    pub fn routes_for(&self, prefix: IpNet) -> Result<Vec<BirdRoute>> {
        Ok(self
            .routes()?
            .into_iter()
            .filter(|r| r.prefix == prefix)
            .collect())
    }

    /// Reloads the configuration file (`configure`).
    pub fn configure(&self) -> Result<()> {
        let out = self.cmd("configure")?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            bail!(
                "{} refused the new configuration: {}",
                self.label,
                out.trim()
            );
        }
        Ok(())
    }
}

/// Parses `show protocols`.
pub fn parse_protocols(out: &str) -> Vec<BirdProtocol> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            if name.eq_ignore_ascii_case("name") {
                return None;
            }
            let proto = it.next()?;
            let table = it.next()?;
            let state = it.next()?;
            let since = it.next().unwrap_or("");
            let info: Vec<&str> = it.collect();
            Some(BirdProtocol {
                name: name.into(),
                proto: proto.into(),
                table: table.into(),
                state: state.into(),
                since: since.into(),
                info: info.join(" "),
            })
        })
        .collect()
}

/// Parses the head of one route: `[PREFIX] WHAT [proto time …] [*] (pref) …`.
/// BIRD 2 puts the route type in `WHAT` (`unicast`, `blackhole`) and next
/// hops on following lines; BIRD 1.6 puts `via X on IF`, `dev IF` or
/// `blackhole` there.
fn parse_head(prefix: IpNet, rest: &str) -> Result<BirdRoute> {
    let open = rest
        .find('[')
        .ok_or_else(|| anyhow!("route line without [protocol]: {rest:?}"))?;
    let close = rest[open..]
        .find(']')
        .map(|c| c + open)
        .ok_or_else(|| anyhow!("route line without ]: {rest:?}"))?;
    let what = rest[..open].trim();
    let protocol = rest[open + 1..close]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let primary = rest[close + 1..].trim_start().starts_with('*');
    let mut gateways = vec![];
    let words: Vec<&str> = what.split_whitespace().collect();
    let kind = match words.first().copied() {
        Some("via") => {
            if let Some(g) = words.get(1).and_then(|g| g.parse().ok()) {
                gateways.push(g);
            }
            "unicast"
        }
        Some("dev") | None => "unicast",
        Some(k) => k,
    }
    .to_string();
    Ok(BirdRoute {
        prefix,
        protocol,
        primary,
        kind,
        gateways,
        attrs: BTreeMap::new(),
    })
}

/// Parses `show route all` of BIRD 1.6 or 2.
pub fn parse_routes(out: &str) -> Result<Vec<BirdRoute>> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut prefix: Option<IpNet> = None;
    for line in out.lines() {
        if line.trim().is_empty() || line.starts_with("Table ") {
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            let Some(cur) = routes.last_mut() else {
                continue;
            };
            let attr = attr.trim();
            if let Some(via) = attr.strip_prefix("via ") {
                if let Some(g) = via.split_whitespace().next().and_then(|g| g.parse().ok()) {
                    cur.gateways.push(g);
                }
            } else if let Some((k, v)) = attr.split_once(':') {
                cur.attrs.insert(k.trim().to_string(), v.trim().to_string());
            }
        } else if line.starts_with(' ') {
            // Another route for the same prefix.
            let p =
                prefix.ok_or_else(|| anyhow!("route continuation before any prefix: {line:?}"))?;
            routes.push(parse_head(p, line.trim())?);
        } else {
            let (p, rest) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| anyhow!("unexpected birdc line: {line:?}"))?;
            let p: IpNet = p
                .parse()
                .with_context(|| format!("unexpected birdc line: {line:?}"))?;
            prefix = Some(p);
            routes.push(parse_head(p, rest.trim())?);
        }
    }
    Ok(routes)
}

impl Lab {
    fn start_bird(&mut self, ns: &Ns, label: &str, conf: &str, kind: DaemonKind) -> Result<Bird> {
        let (program, birdc) = match kind {
            DaemonKind::Bird2 => (PathBuf::from("bird"), PathBuf::from("birdc")),
            DaemonKind::Bird1 { v6 } => (preflight::bird1_bin(v6), preflight::bird1_birdc(v6)),
            other => bail!("{other} is not BIRD"),
        };
        let conf_path = self.write_file(&format!("{label}.conf"), conf)?;
        let sock = self.path(&format!("{label}.ctl"));
        let pid = self.path(&format!("{label}.pid"));
        let s = |p: &PathBuf| p.display().to_string();
        let daemon = Daemon {
            kind,
            program,
            args: vec![
                "-f".into(),
                "-c".into(),
                s(&conf_path),
                "-s".into(),
                s(&sock),
                "-P".into(),
                s(&pid),
            ],
            env: vec![],
            control: Control::Bird {
                birdc: birdc.clone(),
                sock: sock.clone(),
            },
        };
        self.start(ns, label, daemon)?;
        let bird = Bird {
            label: label.into(),
            ns: ns.clone(),
            kind,
            conf: conf_path,
            sock,
            birdc,
        };
        self.wait_ready(label, READY_TIMEOUT, || bird.cmd("show status"))?;
        Ok(bird)
    }

    /// Starts BIRD 2 in `ns` with configuration text `conf` (see [`crate::config::Bird2Conf`]).
    pub fn start_bird2(&mut self, ns: &Ns, label: &str, conf: &str) -> Result<Bird> {
        self.start_bird(ns, label, conf, DaemonKind::Bird2)
    }

    /// Starts BIRD 1.6 (`bird`, IPv4) in `ns` (see [`crate::config::CalicoBird1Conf`]).
    pub fn start_bird1(&mut self, ns: &Ns, label: &str, conf: &str) -> Result<Bird> {
        self.start_bird(ns, label, conf, DaemonKind::Bird1 { v6: false })
    }

    /// Starts BIRD 1.6's IPv6 daemon (`bird6`) in `ns`.
    pub fn start_bird1_v6(&mut self, ns: &Ns, label: &str, conf: &str) -> Result<Bird> {
        self.start_bird(ns, label, conf, DaemonKind::Bird1 { v6: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIRD2: &str = "Table master4:
100.64.1.0/26        unicast [b1 20:51:23.406] * (100) [AS65002i]
\tvia 198.18.1.2 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65002 {65010 65011}
\tBGP.next_hop: 198.18.1.2
\tBGP.local_pref: 100
\tBGP.originator_id: 198.18.9.9
\tBGP.cluster_list: 198.18.0.1 198.18.0.2
\tBGP.community: (65000,1) (65000,20)
100.64.0.0/26        blackhole [st 20:51:19.466] * (200)
\tType: static univ
198.18.1.0/24        unicast [direct1 20:51:19.467] * (240)
\tdev eth0
\tType: device univ
                     unicast [b1 20:51:23.406 from 198.18.1.3] (100) [i]
\tvia 198.18.1.2 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 
\tBGP.next_hop: 198.18.1.2
\tBGP.local_pref: 100
";

    const BIRD1: &str =
        "100.64.0.0/26      via 198.18.1.1 on eth0 [Mesh_198_18_1_1 20:51:23] * (100/0) [i]
\tType: BGP unicast univ
\tBGP.origin: IGP
\tBGP.as_path: 
\tBGP.next_hop: 198.18.1.1
\tBGP.local_pref: 100
100.64.1.0/26      blackhole [static1 20:51:19] * (200)
\tType: static unicast univ
198.18.1.0/24      dev eth0 [direct1 20:51:19] * (240)
\tType: device unicast univ
";

    #[test]
    fn parses_bird2_routes() {
        let r = parse_routes(BIRD2).unwrap();
        assert_eq!(r.len(), 4);
        let a = &r[0];
        assert_eq!(a.prefix, "100.64.1.0/26".parse::<IpNet>().unwrap());
        assert_eq!(a.protocol, "b1");
        assert!(a.primary);
        assert_eq!(a.kind, "unicast");
        assert_eq!(a.gateways, vec!["198.18.1.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.as_path(), vec![65002, 65010, 65011]);
        assert_eq!(a.local_pref(), Some(100));
        assert_eq!(a.originator_id(), Some(Ipv4Addr::new(198, 18, 9, 9)));
        assert_eq!(
            a.cluster_list(),
            vec![Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)]
        );
        assert_eq!(a.communities(), vec![(65000, 1), (65000, 20)]);
        assert_eq!(r[1].kind, "blackhole");
        assert_eq!(r[3].prefix, r[2].prefix);
        assert_eq!(r[3].protocol, "b1");
        assert!(!r[3].primary);
        assert!(r[3].as_path().is_empty());
    }

    #[test]
    fn parses_bird1_routes() {
        let r = parse_routes(BIRD1).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].protocol, "Mesh_198_18_1_1");
        assert_eq!(r[0].gateways, vec!["198.18.1.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(r[0].bgp_next_hop(), r[0].gateways);
        assert_eq!(r[1].kind, "blackhole");
        assert_eq!(r[2].kind, "unicast");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_routes("not-a-prefix foo").is_err());
        assert!(parse_routes("   unicast [x 1] *").is_err());
    }

    #[test]
    fn parses_protocols() {
        let p = parse_protocols(
            "Name       Proto      Table      State  Since         Info
device1    Device     ---        up     20:51:19.466
b1         BGP        ---        up     20:51:23.406  Established
Mesh_198_18_1_1 BGP      master   start  20:51:23    Active        Socket: Connection refused",
        );
        assert_eq!(p.len(), 3);
        assert!(!p[0].established());
        assert!(p[1].established());
        assert_eq!(p[2].state, "start");
        assert_eq!(p[2].info, "Active Socket: Connection refused");
    }
}
