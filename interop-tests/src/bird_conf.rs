//! Configuration text for BIRD 2 (ToR, reflector client, reflector) and for
//! BIRD 1.6 configured the way Calico's confd templates configure a node.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// A static route: a blackhole (Calico's block) or via a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    pub prefix: IpNet,
    pub via: Option<IpAddr>,
}

/// A BIRD 2 channel filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    None,
    /// A BIRD filter expression used as `where EXPR`.
    Where(String),
}

impl Filter {
    fn render(&self) -> String {
        match self {
            Filter::All => "all".into(),
            Filter::None => "none".into(),
            Filter::Where(e) => format!("where {e}"),
        }
    }
}

/// One `protocol bgp` of a BIRD 2 configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bird2Peer {
    /// Protocol name (letters, digits, `_`; not a BIRD keyword such as `rr`).
    pub name: String,
    pub local_as: u32,
    pub local_addr: Option<IpAddr>,
    pub neighbor: IpAddr,
    pub peer_as: u32,
    pub port: Option<u16>,
    pub passive: bool,
    pub multihop: bool,
    /// This BIRD reflects to the peer (RFC 4456).
    pub rr_client: bool,
    pub rr_cluster_id: Option<Ipv4Addr>,
    pub next_hop_self: bool,
    pub graceful_restart: bool,
    pub password: Option<String>,
    pub hold_time: Option<u16>,
    /// GTSM (RFC 5082).
    pub ttl_security: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    /// RFC 8950: IPv4 NLRI with IPv6 next hops.
    pub extended_next_hop: bool,
    pub import: Filter,
    /// Default: static and BGP routes, never device routes.
    pub export: Filter,
    /// Extra lines placed inside the protocol block as given.
    pub extra: Vec<String>,
}

impl Bird2Peer {
    /// An eBGP session (IPv4 unicast, fast retry, exports statics and BGP routes).
    pub fn ebgp(name: &str, local_as: u32, neighbor: IpAddr, peer_as: u32) -> Bird2Peer {
        Bird2Peer {
            name: name.into(),
            local_as,
            local_addr: None,
            neighbor,
            peer_as,
            port: None,
            passive: false,
            multihop: false,
            rr_client: false,
            rr_cluster_id: None,
            next_hop_self: false,
            graceful_restart: true,
            password: None,
            hold_time: None,
            ttl_security: false,
            ipv4: !neighbor.is_ipv6(),
            ipv6: neighbor.is_ipv6(),
            extended_next_hop: false,
            import: Filter::All,
            export: Filter::Where("source ~ [ RTS_STATIC, RTS_BGP ]".into()),
            extra: vec![],
        }
    }

    /// An iBGP session (e.g. a client of a Tabby route reflector).
    pub fn ibgp(name: &str, asn: u32, neighbor: IpAddr) -> Bird2Peer {
        Bird2Peer::ebgp(name, asn, neighbor, asn)
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "protocol bgp {} {{", self.name);
        match self.local_addr {
            Some(a) => {
                let _ = writeln!(out, "  local {a} as {};", self.local_as);
            }
            None => {
                let _ = writeln!(out, "  local as {};", self.local_as);
            }
        }
        let port = self.port.map(|p| format!(" port {p}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  neighbor {}{port} as {};",
            self.neighbor, self.peer_as
        );
        // Fast reconnects keep lab tests short.
        out.push_str(
            "  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 10;\n",
        );
        if self.passive {
            out.push_str("  passive on;\n");
        }
        if self.multihop {
            out.push_str("  multihop;\n");
        }
        if self.rr_client {
            out.push_str("  rr client;\n");
        }
        if let Some(c) = self.rr_cluster_id {
            let _ = writeln!(out, "  rr cluster id {c};");
        }
        if self.graceful_restart {
            out.push_str("  graceful restart on;\n");
        }
        if let Some(p) = &self.password {
            let _ = writeln!(out, "  password \"{p}\";");
        }
        if let Some(h) = self.hold_time {
            let _ = writeln!(out, "  hold time {h};");
        }
        if self.ttl_security {
            out.push_str("  ttl security on;\n");
        }
        for l in &self.extra {
            let _ = writeln!(out, "  {l}");
        }
        for (on, fam) in [(self.ipv4, "ipv4"), (self.ipv6, "ipv6")] {
            if !on {
                continue;
            }
            let _ = writeln!(out, "  {fam} {{");
            let _ = writeln!(out, "    import {};", self.import.render());
            let _ = writeln!(out, "    export {};", self.export.render());
            if self.next_hop_self {
                out.push_str("    next hop self;\n");
            }
            if self.extended_next_hop && fam == "ipv4" {
                out.push_str("    extended next hop on;\n");
            }
            out.push_str("  };\n");
        }
        out.push_str("}\n");
    }
}

/// A BIRD 2 configuration: a ToR, a reflector or a reflector client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bird2Conf {
    pub router_id: Ipv4Addr,
    /// `log stderr all` and `debug { states }` on BGP (off for benchmarks).
    pub log: bool,
    /// Program BGP routes into the namespace's kernel.
    pub kernel_export: bool,
    pub statics: Vec<StaticRoute>,
    pub peers: Vec<Bird2Peer>,
    /// Extra top-level text appended as given.
    pub extra: String,
}

impl Bird2Conf {
    pub fn new(router_id: Ipv4Addr) -> Bird2Conf {
        Bird2Conf {
            router_id,
            log: true,
            kernel_export: true,
            statics: vec![],
            peers: vec![],
            extra: String::new(),
        }
    }

    /// Originates `prefix` as a blackhole (as Calico does for its blocks).
    pub fn blackhole(mut self, prefix: IpNet) -> Bird2Conf {
        self.statics.push(StaticRoute { prefix, via: None });
        self
    }

    pub fn peer(mut self, peer: Bird2Peer) -> Bird2Conf {
        self.peers.push(peer);
        self
    }

    /// The configuration text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "router id {};", self.router_id);
        if self.log {
            o.push_str("log stderr all;\n");
        } else {
            o.push_str("log stderr { error, fatal, bug };\n");
        }
        o.push_str("protocol device { scan time 2; }\n");
        // Device routes let iBGP resolve next hops recursively; never exported.
        o.push_str("protocol direct { ipv4; ipv6; interface \"*\"; }\n");
        if self.kernel_export {
            for fam in ["ipv4", "ipv6"] {
                let _ = writeln!(
                    o,
                    "protocol kernel {{ {fam} {{ import none; export where source = RTS_BGP; }}; merge paths on; }}"
                );
            }
        }
        for (fam, v6) in [("ipv4", false), ("ipv6", true)] {
            let routes: Vec<&StaticRoute> = self
                .statics
                .iter()
                .filter(|r| matches!(r.prefix, IpNet::V6(_)) == v6)
                .collect();
            if routes.is_empty() {
                continue;
            }
            let _ = writeln!(o, "protocol static static_{fam} {{\n  {fam};");
            for r in routes {
                match r.via {
                    Some(g) => {
                        let _ = writeln!(o, "  route {} via {g};", r.prefix);
                    }
                    None => {
                        let _ = writeln!(o, "  route {} blackhole;", r.prefix);
                    }
                }
            }
            o.push_str("}\n");
        }
        if self.log {
            o.push_str("template bgp logged { debug { states, events }; }\n");
        }
        for p in &self.peers {
            p.render(&mut o);
        }
        o.push_str(&self.extra);
        o
    }
}

/// How an IP pool reaches the kernel on a Calico node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// No encapsulation: plain routes via the peer.
    None,
    /// IP-in-IP: Calico's BIRD fork sets the tunnel device (`krt_tunnel`).
    Ipip,
    /// VXLAN: Felix programs these routes, BIRD must not.
    Vxlan,
}

/// A Calico `IPPool` as the templates see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalicoPool {
    pub cidr: IpNet,
    pub mode: PoolMode,
    pub disable_bgp_export: bool,
}

/// A BGP peer of a Calico node (`BGPPeer`, global or node-specific).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalicoPeer {
    pub ip: IpAddr,
    pub port: Option<u16>,
    pub as_num: u32,
    pub password: Option<String>,
    pub restart_time: Option<u32>,
    pub keep_next_hop: bool,
    /// The peer's route-reflector cluster id, if it is a reflector.
    pub rr_cluster_id: Option<Ipv4Addr>,
}

/// Another node of the full mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPeer {
    pub ip: IpAddr,
    /// The node's own AS; the global AS when `None`.
    pub as_num: Option<u32>,
    pub port: Option<u16>,
}

/// BIRD 1.6 configured as Calico's confd renders `bird.cfg`, `bird_aggr.cfg`
/// and `bird_ipam.cfg` (or their `bird6` twins) for one node: kernel sync
/// with `learn`, `persist` and graceful restart, the `direct` protocol, a
/// static blackhole per confirmed block, the node-to-node mesh from a common
/// template with `graceful restart`, and the export / kernel-programming
/// filters. Blocks, pools, mesh and peers of both families live in one value;
/// [`CalicoBird1Conf::render`] writes the IPv4 file (for `bird`) and
/// [`CalicoBird1Conf::render_v6`] the IPv6 one (for `bird6`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalicoBird1Conf {
    /// The node's IPv4 address: router id and IPv4 source address.
    pub node_ip: Ipv4Addr,
    /// The node's IPv6 address, for `bird6`.
    pub node_ip6: Option<Ipv6Addr>,
    pub as_num: u32,
    /// Global AS, used for mesh peers without their own.
    pub global_as: u32,
    pub listen_port: Option<u16>,
    /// This node's confirmed blocks (either family).
    pub blocks: Vec<IpNet>,
    /// IP pools (either family).
    pub pools: Vec<CalicoPool>,
    /// Every node of the mesh (either family; this node is skipped).
    pub mesh: Vec<MeshPeer>,
    pub peers: Vec<CalicoPeer>,
    /// Set when this node is a route reflector (mesh is then off for it).
    pub cluster_id: Option<Ipv4Addr>,
    /// Calico's `logSeverityScreen: Debug` → `debug all`; else `debug { states }`.
    pub debug_all: bool,
}

impl CalicoBird1Conf {
    /// A node in AS `as_num` (also the global AS) with no blocks or peers yet.
    pub fn new(node_ip: Ipv4Addr, as_num: u32) -> CalicoBird1Conf {
        CalicoBird1Conf {
            node_ip,
            node_ip6: None,
            as_num,
            global_as: as_num,
            listen_port: None,
            blocks: vec![],
            pools: vec![],
            mesh: vec![],
            peers: vec![],
            cluster_id: None,
            debug_all: false,
        }
    }

    /// Adds a mesh peer in the global AS.
    pub fn mesh_peer(mut self, ip: IpAddr) -> CalicoBird1Conf {
        self.mesh.push(MeshPeer {
            ip,
            as_num: None,
            port: None,
        });
        self
    }

    fn debug(&self) -> &'static str {
        if self.debug_all {
            "debug all;"
        } else {
            "debug { states };"
        }
    }

    /// `bird_aggr.cfg`: the blocks' blackholes and the aggregation function.
    fn render_aggr(blocks: &[&IpNet], o: &mut String) {
        // A host-length block is a borrowed address, not blackholed (Calico
        // skips /32 too).
        let blackholes: Vec<&&IpNet> = blocks
            .iter()
            .filter(|b| b.prefix_len() != b.max_prefix_len())
            .collect();
        if blackholes.is_empty() {
            o.push_str("# No IP blocks for this host.\n");
        } else {
            o.push_str("protocol static {\n  # IP blocks for this host.\n");
            for b in blackholes {
                let _ = writeln!(o, "  route {b} blackhole;");
            }
            o.push_str("}\n");
        }
        // Advertise each block itself, never the more specific routes inside it.
        o.push_str("function calico_aggr ()\n{\n");
        for b in blocks {
            let _ = writeln!(o, "  if ( net = {b} ) then {{ accept; }}");
            let _ = writeln!(o, "  if ( net ~ {b} ) then {{ reject; }}");
        }
        o.push_str("}\n\n");
    }

    /// `bird_ipam.cfg`: pool export filter and kernel programming filter.
    fn render_ipam(pools: &[&CalicoPool], o: &mut String) {
        o.push_str("function reject_disabled_pools ()\n{\n");
        for p in pools.iter().filter(|p| p.disable_bgp_export) {
            let _ = writeln!(o, "  if ( net ~ {} ) then {{ reject; }}", p.cidr);
        }
        o.push_str("}\n\n");
        o.push_str("filter calico_export_to_bgp_peers {\n");
        o.push_str("  reject_disabled_pools();\n  calico_aggr();\n");
        for p in pools.iter().filter(|p| !p.disable_bgp_export) {
            let _ = writeln!(o, "  if ( net ~ {} ) then {{ accept; }}", p.cidr);
        }
        o.push_str("  reject;\n}\n\n");
        o.push_str("filter calico_kernel_programming {\n");
        for p in pools {
            match p.mode {
                // Felix programs VXLAN routes itself.
                PoolMode::Vxlan => {
                    let _ = writeln!(o, "  if ( net ~ {} ) then {{ reject; }}", p.cidr);
                }
                // Calico's fork would set krt_tunnel here; upstream 1.6 has no
                // such attribute, so the route goes in as a plain one.
                PoolMode::Ipip | PoolMode::None => {
                    let _ = writeln!(o, "  if ( net ~ {} ) then {{ accept; }}", p.cidr);
                }
            }
        }
        o.push_str("  accept;\n}\n\n");
    }

    /// The IPv4 configuration text for `bird` (Calico's three files in one).
    pub fn render(&self) -> String {
        self.render_family(IpAddr::V4(self.node_ip))
    }

    /// The IPv6 configuration text for `bird6`; `None` without `node_ip6`.
    pub fn render_v6(&self) -> Option<String> {
        self.node_ip6.map(|ip| self.render_family(IpAddr::V6(ip)))
    }

    fn render_family(&self, me: IpAddr) -> String {
        let v6 = me.is_ipv6();
        let blocks: Vec<&IpNet> = self
            .blocks
            .iter()
            .filter(|b| b.addr().is_ipv6() == v6)
            .collect();
        let pools: Vec<&CalicoPool> = self
            .pools
            .iter()
            .filter(|p| p.cidr.addr().is_ipv6() == v6)
            .collect();
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let mut o = format!("# Calico-style node configuration (confd templates, {fam})\n");
        Self::render_aggr(&blocks, &mut o);
        Self::render_ipam(&pools, &mut o);
        // The router id is the IPv4 address in both daemons (4 octets even in MP-BGP).
        let _ = writeln!(o, "router id {};", self.node_ip);
        if let Some(p) = self.listen_port {
            let _ = writeln!(o, "listen bgp port {p};");
        }
        o.push_str("log stderr all;\n");
        o.push_str(
            "protocol kernel {\n  learn;\n  persist;\n  scan time 2;\n  import all;\n  \
             export filter calico_kernel_programming;\n  graceful restart;\n  merge paths on;\n}\n\n",
        );
        o.push_str("protocol device {\n  scan time 2;\n}\n\n");
        let _ = writeln!(
            o,
            "protocol direct {{\n  {}\n  interface -\"cali*\", -\"kube-ipvs*\", \"*\";\n}}\n",
            self.debug()
        );
        let _ = writeln!(
            o,
            "template bgp bgp_template {{\n  {}\n  description \"Connection to BGP peer\";\n  \
             local as {};\n  multihop;\n  gateway recursive;\n  import all;\n  \
             export filter calico_export_to_bgp_peers;\n  add paths on;\n  graceful restart;\n  \
             connect delay time 1;\n  connect retry time 3;\n  error wait time 5,60;\n}}\n",
            self.debug(),
            self.as_num
        );
        // Protocol names: the address with its separators replaced, as Calico does.
        let id = |ip: &str| ip.replace(['.', ':'], "_");
        let me_s = me.to_string();
        o.push_str("# ------------- Node-to-node mesh -------------\n");
        if let Some(cid) = self.cluster_id {
            let _ = writeln!(
                o,
                "# This node is a route reflector (cluster {cid}); no mesh."
            );
        } else {
            for m in self.mesh.iter().filter(|m| m.ip.is_ipv6() == v6) {
                let ip = m.ip.to_string();
                if ip == me_s {
                    let _ = writeln!(o, "# Skipping ourselves ({me_s})");
                    continue;
                }
                let port = m.port.map(|p| format!("port {p} ")).unwrap_or_default();
                let _ = writeln!(
                    o,
                    "protocol bgp Mesh_{} from bgp_template {{\n  neighbor {ip} {port}as {};\n  \
                     source address {me_s};",
                    id(&ip),
                    m.as_num.unwrap_or(self.global_as)
                );
                // Calico makes each mesh pair one-directional to keep graceful
                // restart race-free; its template compares the addresses as
                // strings, so this does too.
                if ip > me_s {
                    o.push_str("  passive on; # the peer connects to us\n");
                }
                o.push_str("  graceful restart time 120;\n}\n");
            }
        }
        o.push_str("# ------------- Peers -------------\n");
        for p in self.peers.iter().filter(|p| p.ip.is_ipv6() == v6) {
            let ip = p.ip.to_string();
            let mut pid = id(&ip);
            if let Some(port) = p.port {
                let _ = write!(pid, "_port_{port}");
            }
            let port = p.port.map(|p| format!("port {p} ")).unwrap_or_default();
            let _ = writeln!(
                o,
                "protocol bgp Global_{pid} from bgp_template {{\n  neighbor {ip} {port}as {};\n  \
                 source address {me_s};",
                p.as_num
            );
            if let Some(t) = p.restart_time {
                let _ = writeln!(o, "  graceful restart time {t};");
            }
            if let Some(cid) = self.cluster_id
                && p.as_num == self.as_num
                && p.rr_cluster_id != Some(cid)
            {
                let _ = writeln!(o, "  rr client;\n  rr cluster id {cid};");
            }
            if let Some(pw) = &p.password {
                let _ = writeln!(o, "  password \"{pw}\";");
            }
            if p.keep_next_hop && p.as_num != self.as_num {
                o.push_str("  next hop keep;\n");
            }
            o.push_str("}\n");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird2_tor_config_has_what_it_needs() {
        let c = Bird2Conf::new(Ipv4Addr::new(198, 18, 1, 1))
            .blackhole("100.64.0.0/26".parse().unwrap())
            .blackhole("2001:db8:1000::/64".parse().unwrap())
            .peer(Bird2Peer::ebgp(
                "n1",
                65000,
                "198.18.1.2".parse().unwrap(),
                65001,
            ));
        let t = c.render();
        assert!(t.contains("router id 198.18.1.1;"));
        assert!(t.contains("route 100.64.0.0/26 blackhole;"));
        assert!(t.contains(
            "protocol static static_ipv6 {\n  ipv6;\n  route 2001:db8:1000::/64 blackhole;"
        ));
        assert!(t.contains("neighbor 198.18.1.2 as 65001;"));
        assert!(t.contains("export where source ~ [ RTS_STATIC, RTS_BGP ];"));
        assert!(
            !t.contains("  ipv6 {\n    import"),
            "v4 neighbor gets no v6 channel"
        );
    }

    #[test]
    fn calico_mesh_is_one_directional_and_skips_self() {
        let mut c = CalicoBird1Conf::new(Ipv4Addr::new(198, 18, 1, 3), 64512);
        c.blocks.push("100.64.3.0/26".parse().unwrap());
        c.pools.push(CalicoPool {
            cidr: "100.64.0.0/16".parse().unwrap(),
            mode: PoolMode::Ipip,
            disable_bgp_export: false,
        });
        for h in [1, 3, 20] {
            c = c.mesh_peer(Ipv4Addr::new(198, 18, 1, h).into());
        }
        let t = c.render();
        assert!(t.contains("# Skipping ourselves (198.18.1.3)"));
        // "198.18.1.1" < "198.18.1.3": we connect; "198.18.1.20" < "198.18.1.3" as strings too.
        assert!(t.contains("protocol bgp Mesh_198_18_1_1 from bgp_template"));
        assert!(!t.contains("passive on"));
        assert!(t.contains("route 100.64.3.0/26 blackhole;"));
        assert!(t.contains("if ( net = 100.64.3.0/26 ) then { accept; }"));
        assert!(t.contains("graceful restart time 120;"));
        let mut c2 = c.clone();
        c2.node_ip = Ipv4Addr::new(198, 18, 1, 1);
        let t2 = c2.render();
        assert_eq!(t2.matches("passive on").count(), 2);
        assert_eq!(c.render_v6(), None);
    }

    #[test]
    fn calico_bird6_config_uses_v6_addresses_and_v4_router_id() {
        let mut c = CalicoBird1Conf::new(Ipv4Addr::new(198, 18, 1, 2), 64512);
        c.node_ip6 = Some("2001:db8:0:1::2".parse().unwrap());
        c.blocks.push("100.64.3.0/26".parse().unwrap());
        c.blocks.push("2001:db8:1000:3::/122".parse().unwrap());
        let c = c
            .mesh_peer("198.18.1.1".parse().unwrap())
            .mesh_peer("2001:db8:0:1::1".parse().unwrap())
            .mesh_peer("2001:db8:0:1::3".parse().unwrap());
        let t = c.render_v6().unwrap();
        assert!(t.contains("router id 198.18.1.2;"));
        assert!(t.contains("route 2001:db8:1000:3::/122 blackhole;"));
        assert!(!t.contains("100.64.3.0/26"));
        assert!(t.contains("protocol bgp Mesh_2001_db8_0_1__1 from bgp_template"));
        assert!(t.contains("source address 2001:db8:0:1::2;"));
        assert!(!t.contains("198.18.1.1"));
        assert_eq!(t.matches("passive on").count(), 1);
        let t4 = c.render();
        assert!(!t4.contains("2001:db8"));
    }
}
