//! The daemons under test, each in its documented fast configuration with
//! logging reduced to errors: BIRD 2, GoBGP, FRR bgpd and tabbyd as the
//! route reflector every generated session peers with.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::daemon::{Daemon, DaemonKind, Datastore, TabbydOpts};
use crate::lab::{Lab, Ns};

/// The reflector's AS; every generated session is iBGP in it.
pub const ASN: u32 = 64512;
/// The reflector's cluster id (RFC 4456 §7).
pub const CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// A daemon that can be benchmarked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dut {
    Bird2,
    GoBgp,
    Frr,
    Tabby,
}

impl Dut {
    pub const ALL: [Dut; 4] = [Dut::Tabby, Dut::Bird2, Dut::Frr, Dut::GoBgp];

    pub fn name(self) -> &'static str {
        match self {
            Dut::Bird2 => "BIRD 2",
            Dut::GoBgp => "GoBGP",
            Dut::Frr => "FRR bgpd",
            Dut::Tabby => "Tabby (tabbyd)",
        }
    }

    /// The command-line spelling (`--daemons bird2,frr`).
    pub fn key(self) -> &'static str {
        match self {
            Dut::Bird2 => "bird2",
            Dut::GoBgp => "gobgp",
            Dut::Frr => "frr",
            Dut::Tabby => "tabby",
        }
    }

    pub fn parse(s: &str) -> Result<Dut> {
        Dut::ALL
            .into_iter()
            .find(|d| d.key() == s)
            .with_context(|| format!("unknown daemon {s:?}: use bird2, gobgp, frr or tabby"))
    }

    /// Anchors are the established daemons Tabby is compared with.
    pub fn is_anchor(self) -> bool {
        self != Dut::Tabby
    }

    /// The configuration label reported beside the figures.
    pub fn config_note(self) -> &'static str {
        match self {
            Dut::Bird2 => {
                "explicit passive neighbors from one template, `rr client`, no kernel protocol, errors-only log"
            }
            Dut::GoBgp => "explicit passive neighbors, route-reflector-client, `--log-level=error`",
            Dut::Frr => {
                "`frr defaults datacenter`, peer-group with passive `route-reflector-client` members, bgpd without zebra, errors-only log"
            }
            Dut::Tabby => {
                "Calico resources (BGPConfiguration without mesh, reflector Node with a cluster id, one Node per peer selected by one BGPPeer), `--no-fib`, `--log-level error`"
            }
        }
    }
}

/// One peer of the reflector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub addr: Ipv4Addr,
    /// A reflector client (RFC 4456); otherwise a plain iBGP peer inside the
    /// cluster, whose routes go to clients only.
    pub client: bool,
}

/// Where the reflector runs and whom it peers with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub ns: Ns,
    /// The reflector's address (router id too).
    pub addr: Ipv4Addr,
    /// Its interface towards the generator.
    pub ifname: String,
    /// The generator's addresses are in this prefix (on-link via `ifname`).
    pub peer_net: &'static str,
    pub peers: Vec<Peer>,
}

/// Starts `dut` as the reflector of `setup` under `label`; returns once it
/// accepts connections on port 179.
/// `tabbyd` is the binary to run for [`Dut::Tabby`].
pub fn start(
    lab: &mut Lab,
    dut: Dut,
    label: &str,
    setup: &Setup,
    tabbyd: Option<&Path>,
) -> Result<()> {
    match dut {
        Dut::Bird2 => {
            lab.start_bird2(&setup.ns, label, &bird2_conf(setup))?;
        }
        Dut::GoBgp => {
            lab.start_gobgp_args(&setup.ns, label, &gobgp_conf(setup), &["--log-level=error"])?;
        }
        Dut::Frr => {
            lab.start_frr(&setup.ns, label, &frr_conf(setup))?;
        }
        Dut::Tabby => {
            let yaml = lab.write_file(&format!("{label}.cluster.yaml"), &tabby_yaml(setup))?;
            let Some(bin) = tabbyd else {
                bail!("no tabbyd binary given");
            };
            let mut opts = TabbydOpts::new("rr", Datastore::File(yaml)).no_fib();
            // TABBY_BENCH_TABBYD_LOG raises it to debug a run (off in figures).
            opts.log_level =
                std::env::var("TABBY_BENCH_TABBYD_LOG").unwrap_or_else(|_| "error".into());
            // TABBY_BENCH_TABBYD_ARGS: extra flags, to try a setting (stated in reports).
            if let Ok(extra) = std::env::var("TABBY_BENCH_TABBYD_ARGS") {
                opts.extra_args = extra.split_whitespace().map(str::to_string).collect();
            }
            opts.api = Some(format!(
                "unix:{}",
                lab.path(&format!("{label}.api.sock")).display()
            ));
            opts.run_dir = Some(lab.path(&format!("{label}.run")));
            let mut daemon = Daemon::other(bin, &[]);
            daemon.kind = DaemonKind::Tabbyd;
            daemon.args = opts.args();
            lab.start(&setup.ns, label, daemon)?;
        }
    }
    wait_listening(lab, &setup.ns, label, Duration::from_secs(60))
}

/// Waits until something in `ns` listens on TCP port 179.
fn wait_listening(lab: &mut Lab, ns: &Ns, label: &str, timeout: Duration) -> Result<()> {
    let name = ns.name.clone();
    lab.wait_ready(label, timeout, || {
        let out = crate::cmd::run_ok(
            "ip",
            &["netns", "exec", &name, "ss", "-Hltn", "sport = :179"],
            crate::cmd::CMD_TIMEOUT,
        )?;
        if out.trim().is_empty() {
            bail!("nothing listens on port 179 yet");
        }
        Ok(())
    })
}

/// BIRD 2: one template, one passive protocol per peer. Next hops of the
/// generator's routes resolve through a static device route (no kernel
/// protocol: a reflector need not program its FIB).
pub fn bird2_conf(s: &Setup) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "router id {};", s.addr);
    o.push_str("log stderr { error, fatal, bug };\n");
    o.push_str("protocol device { scan time 60; }\n");
    let _ = writeln!(
        o,
        "protocol static gen_net {{ ipv4; route {} via \"{}\"; }}",
        s.peer_net, s.ifname
    );
    for (name, client) in [("t_client", true), ("t_member", false)] {
        let _ = writeln!(
            o,
            "template bgp {name} {{\n  local {} as {ASN};\n  passive on;\n  rr cluster id {CLUSTER_ID};{}\n  ipv4 {{ import all; export where source = RTS_BGP; }};\n}}",
            s.addr,
            if client { "\n  rr client;" } else { "" }
        );
    }
    for (i, p) in s.peers.iter().enumerate() {
        let t = if p.client { "t_client" } else { "t_member" };
        let _ = writeln!(
            o,
            "protocol bgp p{i} from {t} {{ neighbor {} as {ASN}; }}",
            p.addr
        );
    }
    o
}

/// GoBGP: one passive neighbor per peer.
pub fn gobgp_conf(s: &Setup) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "[global.config]\n  as = {ASN}\n  router-id = \"{}\"\n  port = 179\n  local-address-list = [\"{}\"]",
        s.addr, s.addr
    );
    for p in &s.peers {
        let _ = writeln!(
            o,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {ASN}\n  [neighbors.transport.config]\n    passive-mode = true",
            p.addr
        );
        if p.client {
            let _ = writeln!(
                o,
                "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"{CLUSTER_ID}\""
            );
        }
        o.push_str(
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n",
        );
    }
    o
}

/// FRR: a peer group per role (members share one update group).
pub fn frr_conf(s: &Setup) -> String {
    let mut o = String::from("frr defaults datacenter\nhostname dut\nlog stdout errors\n!\n");
    let _ = writeln!(o, "router bgp {ASN}");
    let _ = writeln!(o, " bgp router-id {}", s.addr);
    o.push_str(" no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n");
    let _ = writeln!(o, " bgp cluster-id {CLUSTER_ID}");
    for g in ["clients", "members"] {
        let _ = writeln!(
            o,
            " neighbor {g} peer-group\n neighbor {g} remote-as {ASN}\n neighbor {g} passive"
        );
    }
    for p in &s.peers {
        let g = if p.client { "clients" } else { "members" };
        let _ = writeln!(o, " neighbor {} peer-group {g}", p.addr);
    }
    o.push_str(" !\n address-family ipv4 unicast\n  neighbor clients activate\n  neighbor clients route-reflector-client\n  neighbor members activate\n exit-address-family\n!\n");
    o
}

/// tabbyd: Calico resources as a cluster with reflectors has them. Every
/// peer is a Calico node selected by label from the reflector's BGPPeer:
/// clients carry no cluster id (so Calico makes them reflector clients),
/// non-clients carry the reflector's.
pub fn tabby_yaml(s: &Setup) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: {ASN}\n  nodeToNodeMeshEnabled: false\n  logSeverityScreen: Error"
    );
    let _ = writeln!(
        o,
        "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: rr\n  labels:\n    role: reflector\nspec:\n  bgp:\n    ipv4Address: {}/24\n    routeReflectorClusterID: {CLUSTER_ID}",
        s.addr
    );
    for (i, p) in s.peers.iter().enumerate() {
        let (role, cluster) = if p.client {
            ("client", String::new())
        } else {
            (
                "member",
                format!("\n    routeReflectorClusterID: {CLUSTER_ID}"),
            )
        };
        let _ = writeln!(
            o,
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {role}-{i}\n  labels:\n    role: {role}\nspec:\n  bgp:\n    ipv4Address: {}/32{cluster}",
            p.addr
        );
    }
    // Calico exports only routes inside an enabled IP pool (its
    // calico_export_to_bgp_peers filter), reflectors included.
    o.push_str("---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: bench\nspec:\n  cidr: 100.64.0.0/10\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: Never\n");
    o.push_str("---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: reflector-peers\nspec:\n  node: rr\n  peerSelector: role in {'client', 'member'}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            ns: Ns {
                label: "dut".into(),
                name: "x".into(),
            },
            addr: Ipv4Addr::new(198, 18, 1, 1),
            ifname: "eth0".into(),
            peer_net: "198.18.128.0/17",
            peers: vec![
                Peer {
                    addr: Ipv4Addr::new(198, 18, 128, 1),
                    client: true,
                },
                Peer {
                    addr: Ipv4Addr::new(198, 18, 128, 2),
                    client: false,
                },
            ],
        }
    }

    #[test]
    fn configs_name_every_peer_in_its_role() {
        let s = setup();
        let b = bird2_conf(&s);
        assert!(b.contains("protocol bgp p0 from t_client { neighbor 198.18.128.1 as 64512; }"));
        assert!(b.contains("protocol bgp p1 from t_member { neighbor 198.18.128.2 as 64512; }"));
        assert!(b.contains("route 198.18.128.0/17 via \"eth0\""));
        let g = gobgp_conf(&s);
        assert_eq!(g.matches("[[neighbors]]").count(), 2);
        assert_eq!(g.matches("route-reflector-client = true").count(), 1);
        let f = frr_conf(&s);
        assert!(f.contains(" neighbor 198.18.128.1 peer-group clients"));
        assert!(f.contains(" neighbor 198.18.128.2 peer-group members"));
        let t = tabby_yaml(&s);
        assert!(t.contains("name: client-0"));
        assert!(t.contains("ipv4Address: 198.18.128.2/32"));
        assert!(t.contains("nodeToNodeMeshEnabled: false"));
    }
}
