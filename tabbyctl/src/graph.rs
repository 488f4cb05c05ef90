//! `tabbyctl graph`: BGP sessions as a Graphviz picture, from one of two
//! sources. A running tabbyd: this node and each peer (address, AS, type),
//! one edge per session labelled with its state and prefixes in and out,
//! coloured by state. A datastore: the cluster as its resources intend it,
//! every Calico node (route reflectors marked), every external BGPPeer, and
//! the peerings each node derives, a session seen from both ends drawn once.
//!
//! Writes DOT; [`svg`] has Graphviz's `dot` draw it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use tabby_proto::v1 as pb;
use tabby_topology::{NodeState, PeerKey, PeerKind, Resources};

use crate::render::{peer_name, peer_type_name, state_name};

/// What a vertex stands for; decides its shape and colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The node whose daemon was asked.
    Local,
    /// A Calico node.
    Node,
    /// A Calico node that is a route reflector.
    Reflector,
    /// A Calico node whose derivation warns (something is skipped).
    Warned,
    /// A Calico node that cannot run at all.
    Unusable,
    /// A peer that is no Calico node: a top-of-rack router, an outside reflector.
    External,
}

#[derive(Debug)]
struct Vertex {
    role: Role,
    lines: Vec<String>,
}

/// How an edge is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pen {
    color: &'static str,
    style: &'static str,
}

const GREEN: Pen = Pen {
    color: "#2e7d32",
    style: "solid",
};
const AMBER: Pen = Pen {
    color: "#ef6c00",
    style: "solid",
};
const RED: Pen = Pen {
    color: "#c62828",
    style: "dashed",
};
const GREY: Pen = Pen {
    color: "#757575",
    style: "dotted",
};
const SLATE: Pen = Pen {
    color: "#546e7a",
    style: "solid",
};
const BLUE: Pen = Pen {
    color: "#1565c0",
    style: "solid",
};

#[derive(Debug)]
struct Edge {
    a: String,
    b: String,
    lines: Vec<String>,
    pen: Pen,
}

/// A picture: vertices by id, edges in a stable order.
#[derive(Debug)]
pub struct Graph {
    title: Vec<String>,
    left_to_right: bool,
    vertices: BTreeMap<String, Vertex>,
    edges: Vec<Edge>,
}

/// The node a daemon runs for, as its status and configuration say.
#[derive(Debug, Clone, Default)]
pub struct Local {
    /// The Calico node name, when the daemon reports one.
    pub name: Option<String>,
    pub router_id: String,
    pub local_as: u32,
}

/// A running daemon's sessions: the node in the middle, a peer per session.
pub fn sessions(local: &Local, peers: &[pb::Peer]) -> Graph {
    let me = local
        .name
        .clone()
        .unwrap_or_else(|| "this node".to_string());
    let mut g = Graph {
        title: vec![format!("BGP sessions of {me}")],
        left_to_right: true,
        vertices: BTreeMap::new(),
        edges: Vec::new(),
    };
    let mut me_lines = vec![me.clone()];
    if !local.router_id.is_empty() {
        me_lines.push(format!("router id {}", local.router_id));
    }
    me_lines.push(format!("AS {}", local.local_as));
    g.vertices.insert(
        me.clone(),
        Vertex {
            role: Role::Local,
            lines: me_lines,
        },
    );
    for p in peers {
        let c = p.config.clone().unwrap_or_default();
        let id = unique(&g.vertices, peer_name(p));
        let calico_node = p
            .settings
            .as_ref()
            .map(|s| s.calico_node.clone())
            .filter(|n| !n.is_empty());
        let mut lines = vec![
            id.clone(),
            format!("AS {}", c.remote_as),
            peer_type_name(c.r#type).to_string(),
        ];
        if let Some(n) = &calico_node {
            lines.push(format!("node {n}"));
        }
        let role = if calico_node.is_some() {
            Role::Node
        } else {
            Role::External
        };
        g.vertices.insert(id.clone(), Vertex { role, lines });
        let n = p.counters.unwrap_or_default();
        let state = if p.enabled {
            state_name(p.state)
        } else {
            "disabled"
        };
        let mut lines = vec![
            state.to_string(),
            format!("in {} / out {}", n.prefixes_received, n.prefixes_advertised),
        ];
        if let Some(b) = &p.bfd {
            lines.push(format!("BFD {}", crate::render::bfd_phase_name(b.phase)));
        }
        g.edges.push(Edge {
            a: me.clone(),
            b: id,
            lines,
            pen: session_pen(p),
        });
    }
    if peers.is_empty() {
        g.title.push("no peers".into());
    }
    g
}

/// Green once Established, amber while opening, red while down, grey when
/// an operator disabled it.
fn session_pen(p: &pb::Peer) -> Pen {
    if !p.enabled {
        return GREY;
    }
    match pb::SessionState::try_from(p.state) {
        Ok(pb::SessionState::Established) => GREEN,
        Ok(pb::SessionState::OpenSent | pb::SessionState::OpenConfirm) => AMBER,
        _ => RED,
    }
}

/// `id`, or `id (2)`… when a vertex of that id exists.
fn unique(vertices: &BTreeMap<String, Vertex>, id: String) -> String {
    if !vertices.contains_key(&id) {
        return id;
    }
    (2..)
        .map(|n| format!("{id} ({n})"))
        .find(|c| !vertices.contains_key(c))
        .unwrap_or(id)
}

/// A session of the cluster, seen from one or both ends.
#[derive(Debug, Default)]
struct Peering {
    /// The Calico nodes that derive it.
    ends: BTreeSet<String>,
    kinds: BTreeSet<&'static str>,
    internal: bool,
    /// Reflectors that treat the other end as their client.
    reflectors: BTreeSet<String>,
}

/// The cluster's intended topology: every node derived from `res` as tabbyd
/// would derive it on that node.
pub fn cluster(res: &Resources, origin: &str) -> Graph {
    let mut g = Graph {
        title: Vec::new(),
        left_to_right: false,
        vertices: BTreeMap::new(),
        edges: Vec::new(),
    };
    let mut states: Vec<NodeState> = Vec::new();
    for (name, node) in &res.nodes {
        match tabby_topology::derive(res, name) {
            Ok(s) => {
                let mut lines = vec![name.clone()];
                lines.extend(node.ipv4_addr().map(|a| a.to_string()));
                lines.extend(node.ipv6_addr().map(|a| a.to_string()));
                lines.push(format!("AS {}", s.local_as));
                let mut role = Role::Node;
                if let Some(id) = s.rr_cluster_id {
                    lines.push(format!("route reflector, cluster id {id}"));
                    role = Role::Reflector;
                }
                if !s.warnings.is_empty() {
                    lines.push(format!(
                        "{} warning(s): tabbyd plan --node {name}",
                        s.warnings.len()
                    ));
                    role = Role::Warned;
                }
                g.vertices.insert(name.clone(), Vertex { role, lines });
                states.push(s);
            }
            Err(e) => {
                g.vertices.insert(
                    name.clone(),
                    Vertex {
                        role: Role::Unusable,
                        lines: vec![name.clone(), format!("cannot run: {e}")],
                    },
                );
            }
        }
    }
    // External peers, by address and port; each node's peerings.
    let mut external: BTreeMap<PeerKey, String> = BTreeMap::new();
    let mut peerings: BTreeMap<(String, String, bool), Peering> = BTreeMap::new();
    for s in &states {
        for peer in s.peers.values() {
            let other = match &peer.calico_node {
                Some(n) => n.clone(),
                None => match external.get(&peer.key) {
                    Some(id) => id.clone(),
                    None => {
                        let id = unique(&g.vertices, key_name(peer.key));
                        g.vertices.insert(
                            id.clone(),
                            Vertex {
                                role: Role::External,
                                lines: vec![
                                    id.clone(),
                                    format!("AS {}", peer.peer_as),
                                    peer.origin.clone(),
                                ],
                            },
                        );
                        external.insert(peer.key, id.clone());
                        id
                    }
                },
            };
            let (a, b) = if s.node_name <= other {
                (s.node_name.clone(), other.clone())
            } else {
                (other.clone(), s.node_name.clone())
            };
            let v6 = matches!(peer.key.address, IpAddr::V6(_));
            let p = peerings.entry((a, b, v6)).or_default();
            p.ends.insert(s.node_name.clone());
            p.kinds.insert(match peer.kind {
                PeerKind::Mesh => "node-mesh",
                PeerKind::Global => "global",
                PeerKind::Node => "node-specific",
                PeerKind::Workload => "workload",
            });
            p.internal = peer.internal;
            if peer.rr_client {
                p.reflectors.insert(s.node_name.clone());
            }
        }
    }
    let sessions = peerings.len();
    for ((a, b, v6), p) in peerings {
        let mut lines = vec![format!(
            "{} {}{}",
            p.kinds.into_iter().collect::<Vec<_>>().join("/"),
            if p.internal { "iBGP" } else { "eBGP" },
            if v6 { " IPv6" } else { "" },
        )];
        for r in &p.reflectors {
            let client = if *r == a { &b } else { &a };
            lines.push(format!("{client} is a client of {r}"));
        }
        let calico = |v: &str| {
            g.vertices
                .get(v)
                .is_some_and(|x| !matches!(x.role, Role::External))
        };
        let pen = if calico(&a) && calico(&b) && p.ends.len() < 2 {
            // Both ends are Calico nodes and only one would open the session:
            // the other has no peering back and refuses it.
            let (from, to) = match p.ends.first() {
                Some(e) if *e == a => (&a, &b),
                _ => (&b, &a),
            };
            lines.push(format!("one-sided: {to} has no peering back to {from}"));
            RED
        } else if !p.reflectors.is_empty() {
            BLUE
        } else if calico(&a) && calico(&b) {
            SLATE
        } else {
            AMBER
        };
        g.edges.push(Edge { a, b, lines, pen });
    }
    let unusable = g
        .vertices
        .values()
        .filter(|v| v.role == Role::Unusable)
        .count();
    let mut summary = format!(
        "{origin}: {} node(s), {} session(s)",
        res.nodes.len(),
        sessions
    );
    if unusable > 0 {
        summary.push_str(&format!(", {unusable} node(s) cannot run"));
    }
    if !res.problems.is_empty() {
        summary.push_str(&format!(
            ", {} resource(s) skipped: tabbyd plan says which",
            res.problems.len()
        ));
    }
    g.title.push("intended BGP topology".into());
    g.title.push(summary);
    g
}

/// `198.51.100.1`, `198.51.100.1:1179`, `[2001:db8::1]:1179`: the port
/// only when it is not BGP's.
fn key_name(k: PeerKey) -> String {
    match (k.address, k.port) {
        (a, 179) => a.to_string(),
        _ => k.to_string(),
    }
}

/// A DOT quoted string: `"` and `\` escaped, line breaks as centred `\n`.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn label(lines: &[String]) -> String {
    quote(&lines.join("\n"))
}

impl Graph {
    /// The picture in Graphviz's DOT language (an undirected graph).
    pub fn to_dot(&self) -> String {
        let mut s = String::from("graph tabby {\n");
        s.push_str(&format!(
            "  graph [label={}, labelloc=t, fontname=\"Helvetica\", fontsize=12{}];\n",
            label(&self.title),
            if self.left_to_right {
                ", rankdir=LR"
            } else {
                ""
            },
        ));
        s.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n");
        s.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
        for (id, v) in &self.vertices {
            let look = match v.role {
                Role::Local => {
                    "shape=box, style=\"rounded,filled,bold\", fillcolor=\"#bbdefb\", color=\"#0d47a1\""
                }
                Role::Node => "shape=box, style=\"rounded,filled\", fillcolor=\"#eceff1\"",
                Role::Reflector => {
                    "shape=box, peripheries=2, style=\"rounded,filled\", fillcolor=\"#c5cae9\", color=\"#1a237e\""
                }
                Role::Warned => {
                    "shape=box, style=\"rounded,filled\", fillcolor=\"#fff3e0\", color=\"#ef6c00\""
                }
                Role::Unusable => {
                    "shape=box, style=\"rounded,filled,dashed\", fillcolor=\"#ffebee\", color=\"#c62828\""
                }
                Role::External => "shape=ellipse, style=filled, fillcolor=\"#fff8e1\"",
            };
            s.push_str(&format!(
                "  {} [label={}, {look}];\n",
                quote(id),
                label(&v.lines)
            ));
        }
        for e in &self.edges {
            s.push_str(&format!(
                "  {} -- {} [label={}, color=\"{}\", fontcolor=\"{}\", style={}];\n",
                quote(&e.a),
                quote(&e.b),
                label(&e.lines),
                e.pen.color,
                e.pen.color,
                e.pen.style,
            ));
        }
        s.push_str("}\n");
        s
    }
}

/// DOT drawn as SVG by Graphviz's `dot -Tsvg`.
pub fn svg(dot: &str) -> Result<String> {
    let mut child = match Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "-o svg needs Graphviz's `dot`, which is not installed: install graphviz \
             (apt-get install graphviz), or print DOT with -o dot and draw it elsewhere"
        ),
        Err(e) => return Err(e).context("cannot run Graphviz's `dot`"),
    };
    // Written from another thread: dot may fill its output pipe before it
    // has read all of its input.
    let mut stdin = child.stdin.take().context("dot's standard input")?;
    let input = dot.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .context("reading Graphviz's output")?;
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to Graphviz failed"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "Graphviz's `dot -Tsvg` failed ({}): {}",
            out.status,
            err.lines().next().unwrap_or("no message")
        );
    }
    written.context("writing to Graphviz")?;
    String::from_utf8(out.stdout).context("Graphviz wrote SVG that is not UTF-8")
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
