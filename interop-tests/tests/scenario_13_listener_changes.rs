//! Scenario 13 (issue 16 point 7): live changes of the settings behind
//! tabbyd's BGP listener never leave the node without one.
//!
//! node-1 (tabbyd, the node under test) has two BGPPeer-derived sessions
//! that can only come up through its listener:
//!
//! - node-2 (a second tabbyd) through one global BGPPeer naming node-2:
//!   Calico makes that peering unidirectional and node-1, the lower
//!   address, is the passive side; node-2 peers back (reverse peering) on
//!   node-1's listen port, which it reads from the same datastore;
//! - a BIRD 2 ToR whose BGPPeer says `peerIP: ADDR:1`, a closed port, so
//!   node-1's own connection attempts are refused and only BIRD's
//!   connections to node-1's listen port can bring the session up.
//!
//! Each listener-affecting field of node-1 is changed live in the file
//! datastore, and after each change something listens where it should (and
//! nothing where it should not: `ss -ltn` in node-1's namespace), both
//! sessions are Established again on connections accepted on that port, and
//! tabbyd's log has no EADDRINUSE:
//!
//! a. `routeReflectorClusterID` set: same addresses, the listener stays;
//! b. `listenPort` 179 → 1790 (BIRD reconfigured to connect there);
//! c. `bindMode` None → NodeIP (`[::]:1790` → `ADDR:1790`, the same port on
//!    an overlapping address) and back;
//! d. binds that must fail keep the old listener, accepting, and say so in
//!    the log (address and errno) and in `/readyz`:
//!    1. `listenPort` 1791 while another socket listens there (EADDRINUSE):
//!       BIRD, still connecting to 1790, comes back through the old
//!       listener; back to 1790 clears the problem;
//!    2. `bindMode` NodeIP with a Node IPv6 address that is not on any
//!       interface (EADDRNOTAVAIL) after the IPv4 one, which overlaps the
//!       wildcard, was bound: the wildcard listens again and both peers come
//!       back through it.
//!
//! Needs root and BIRD 2.

mod fixtures;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;

const TOR_AS: u32 = 65000;
const METRICS_PORT: u16 = 9464;
/// Nothing listens here: node-1's connections to BIRD are refused.
const CLOSED_PORT: u16 = 1;
/// The ports the test moves node-1 between (or blocks).
const PORTS: [u16; 3] = [179, 1790, 1791];
/// A Node IPv6 address that is on no interface of node-1's namespace.
const ABSENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0xff, 0, 0, 0, 1);

/// node-1's settings in the datastore.
#[derive(Debug, Clone, Copy, Default)]
struct Node1 {
    rr_cluster_id: Option<Ipv4Addr>,
    listen_port: Option<u16>,
    bind_node_ip: bool,
    v6: Option<Ipv6Addr>,
}

struct Setup {
    a1: Ipv4Addr,
    a2: Ipv4Addr,
    at: Ipv4Addr,
}

impl Setup {
    fn cluster(&self, n1: Node1) -> String {
        let mut c = Cluster::new()
            .pool("100.64.0.0/16", "Never")
            .block("node-1", "100.64.1.0/26")
            .block("node-2", "100.64.2.0/26")
            // Global, naming a Calico node: node-1 is the passive side,
            // node-2 peers back on node-1's port.
            .doc(&bgp_peer_yaml(
                "node-2",
                IpAddr::V4(self.a2),
                CLUSTER_AS,
                None,
                "",
            ))
            .doc(&format!(
                "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\n\
                 spec:\n  node: node-1\n  peerIP: {}:{CLOSED_PORT}\n  asNumber: {TOR_AS}",
                self.at
            ));
        c.mesh = false;
        let mut spec = String::from(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.node-1\n\
             spec:\n  logSeverityScreen: Info\n",
        );
        if let Some(p) = n1.listen_port {
            spec.push_str(&format!("  listenPort: {p}\n"));
        }
        if n1.bind_node_ip {
            spec.push_str("  bindMode: NodeIP\n");
        }
        let mut s1 = NodeSpec::v4("node-1", self.a1);
        s1.rr_cluster_id = n1.rr_cluster_id;
        s1.v6 = n1.v6;
        c.doc(&spec)
            .node(s1)
            .node(NodeSpec::v4("node-2", self.a2))
            .render()
    }

    fn bird(&self, port: u16) -> String {
        let mut p = Bird2Peer::ebgp("node1", TOR_AS, IpAddr::V4(self.a1), CLUSTER_AS);
        p.port = Some(port);
        Bird2Conf::new(self.at)
            .blackhole(net("198.19.0.0/24"))
            .peer(p)
            .render()
    }
}

fn log_of(lab: &Lab, label: &str) -> Result<String> {
    Ok(std::fs::read_to_string(lab.log_path(label)?)?)
}

/// Times node-1 loaded a configuration from scratch (startup and every
/// change of router id, AS or cluster id) or swapped its listener for a
/// change of listen settings (which keeps the sessions).
fn loads(lab: &Lab) -> Result<usize> {
    let log = log_of(lab, "node-1")?;
    Ok(log.matches("configuration loaded").count() + log.matches("swapping the listener").count())
}

/// Waits until node-1 applied its `n`th whole configuration.
fn wait_loads(lab: &Lab, n: usize) -> Result<()> {
    lab.wait_for(&format!("node-1's configuration load #{n}"), T, || {
        let k = loads(lab)?;
        ensure!(k >= n, "node-1 loaded its configuration {k} times");
        Ok(())
    })
}

/// `ADDR:PORT` of `ss`, with `*` for the dual-stack wildcard and IPv4-mapped
/// addresses as IPv4.
fn norm(a: &str) -> String {
    let (host, port) = a.rsplit_once(':').unwrap_or((a, ""));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_prefix("::ffff:").unwrap_or(host);
    format!("{host}:{port}")
}

/// node-1's TCP listeners on the ports the test uses.
fn listeners(lab: &Lab, ns: &Ns) -> Result<Vec<String>> {
    let out = lab.exec(ns, &["ss", "-Hltn"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(norm)
        .filter(|a| {
            a.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_some_and(|p| PORTS.contains(&p))
        })
        .collect())
}

/// Ok when node-1's listeners on the test's ports are exactly `want`.
fn listening_exactly(lab: &Lab, ns: &Ns, want: &[String]) -> Result<()> {
    let mut have = listeners(lab, ns)?;
    have.sort();
    let mut want = want.to_vec();
    want.sort();
    ensure!(
        have == want,
        "node-1 listens on {have:?}, expected {want:?}"
    );
    Ok(())
}

/// Ok when node-1 has an established connection from `peer` accepted on `port`.
fn accepted_on(lab: &Lab, ns: &Ns, peer: IpAddr, port: u16) -> Result<()> {
    let out = lab.exec(ns, &["ss", "-Htn", "state", "established"])?;
    let conns: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Recv-Q Send-Q Local Peer (one state asked: no state column).
            Some((norm(f.get(2)?), norm(f.get(3)?)))
        })
        .collect();
    ensure!(
        conns
            .iter()
            .any(|(l, p)| l.ends_with(&format!(":{port}")) && p.starts_with(&format!("{peer}:"))),
        "no connection from {peer} accepted on port {port}: {conns:?}"
    );
    Ok(())
}

/// `GET path` from node-1's metrics listener: (status line, body).
fn http_get(lab: &Lab, ns: &Ns, path: &str) -> Result<(String, String)> {
    let path = path.to_string();
    lab.in_ns(ns, move || -> Result<(String, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let (head, body) = out
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("not an HTTP response: {out}"))?;
        Ok((
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        ))
    })?
}

/// The `/readyz` lines about the BGP listener.
fn listener_reasons(lab: &Lab, ns: &Ns) -> Result<Vec<String>> {
    let (_, body) = http_get(lab, ns, "/readyz")?;
    Ok(body
        .lines()
        .filter(|l| l.contains("BGP listener"))
        .map(str::to_string)
        .collect())
}

fn no_eaddrinuse(lab: &Lab) -> Result<()> {
    let log = log_of(lab, "node-1")?;
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("EADDRINUSE")
                || l.contains("Address already in use")
                || l.contains("os error 98")
        })
        .collect();
    ensure!(bad.is_empty(), "node-1's log reports EADDRINUSE: {bad:#?}");
    Ok(())
}

#[test]
fn listener_changes_keep_a_listener_and_the_sessions() -> Result<()> {
    need(&[Need::Bird2]);
    let started = Instant::now();
    let mut lab = Lab::new("scen13")?;
    let n1 = lab.ns("node-1")?;
    let n2 = lab.ns("node-2")?;
    let tor = lab.ns("tor")?;
    let seg = lab.lan(&[&n1, &n2, &tor])?;
    let s = Setup {
        a1: seg.v4(&n1)?,
        a2: seg.v4(&n2)?,
        at: seg.v4(&tor)?,
    };
    let (i1, i2, it) = (IpAddr::V4(s.a1), IpAddr::V4(s.a2), IpAddr::V4(s.at));
    ensure!(
        i2.to_string() > i1.to_string(),
        "node-1 must be the passive side toward node-2"
    );

    let mut n1cfg = Node1::default();
    let file = lab.write_file("cluster.yaml", &s.cluster(n1cfg))?;
    let bird = lab.start_bird2(&tor, "tor", &s.bird(179))?;
    let mut tabby = vec![];
    for (ns, name) in [(&n1, "node-1"), (&n2, "node-2")] {
        let mut o = TabbydOpts::new(name, Datastore::File(file.clone()));
        o.deferral_time = Some(2);
        o.metrics = Some(format!("127.0.0.1:{METRICS_PORT}"));
        tabby.push(lab.start_tabbyd(ns, name, &o)?);
    }
    let (t1, t2) = (&tabby[0], &tabby[1]);

    // Both sessions of node-1 Established, on connections its listener on
    // `port` accepted.
    let sessions_via = |what: &str, port: u16| -> Result<()> {
        lab.wait_for(&format!("{what}: sessions through port {port}"), T, || {
            established(t1, &[i2, it])?;
            established(t2, &[i1])?;
            bird.established("node1")?;
            accepted_on(&lab, &n1, i2, port)?;
            accepted_on(&lab, &n1, it, port)
        })
    };
    let listening = |what: &str, want: &[String]| -> Result<()> {
        lab.wait_for(&format!("{what}: node-1 listens on {want:?}"), T, || {
            listening_exactly(&lab, &n1, want)
        })
    };
    let wild = |p: u16| format!("*:{p}");
    let node_ip = |p: u16| format!("{}:{p}", s.a1);

    listening("start", &[wild(179)])?;
    sessions_via("start", 179)?;
    let mut load = loads(&lab)?;

    // (a) A cluster id: every session restarts, the listener stays.
    n1cfg.rr_cluster_id = Some(Ipv4Addr::new(198, 18, 255, 1));
    write_atomic(&file, &s.cluster(n1cfg))?;
    load += 1;
    wait_loads(&lab, load)?;
    listening("(a) cluster id", &[wild(179)])?;
    sessions_via("(a) cluster id", 179)?;
    no_eaddrinuse(&lab)?;
    eprintln!(
        "scenario 13: (a) cluster id done at {:?}",
        started.elapsed()
    );

    // (b) listenPort 179 → 1790: node-2 follows from the datastore, BIRD is
    // told.
    n1cfg.listen_port = Some(1790);
    write_atomic(&file, &s.cluster(n1cfg))?;
    std::fs::write(&bird.conf, s.bird(1790))?;
    bird.configure()?;
    load += 1;
    wait_loads(&lab, load)?;
    listening("(b) listenPort", &[wild(1790)])?;
    sessions_via("(b) listenPort", 1790)?;
    no_eaddrinuse(&lab)?;
    eprintln!(
        "scenario 13: (b) listenPort done at {:?}",
        started.elapsed()
    );

    // (c) bindMode NodeIP: the same port on an address the wildcard covers.
    n1cfg.bind_node_ip = true;
    write_atomic(&file, &s.cluster(n1cfg))?;
    load += 1;
    wait_loads(&lab, load)?;
    listening("(c) bindMode NodeIP", &[node_ip(1790)])?;
    sessions_via("(c) bindMode NodeIP", 1790)?;
    no_eaddrinuse(&lab)?;
    // … and back to the wildcard.
    n1cfg.bind_node_ip = false;
    write_atomic(&file, &s.cluster(n1cfg))?;
    load += 1;
    wait_loads(&lab, load)?;
    listening("(c) bindMode None", &[wild(1790)])?;
    sessions_via("(c) bindMode None", 1790)?;
    no_eaddrinuse(&lab)?;
    ensure!(
        listener_reasons(&lab, &n1)?.is_empty(),
        "no listener problem expected yet"
    );
    eprintln!("scenario 13: (c) bindMode done at {:?}", started.elapsed());

    // (d1) Another socket holds the new port: the bind fails, the old
    // listener keeps accepting (BIRD still connects to 1790), and it is said.
    let blocker = lab.in_ns(&n1, || std::net::TcpListener::bind(("0.0.0.0", 1791)))??;
    n1cfg.listen_port = Some(1791);
    write_atomic(&file, &s.cluster(n1cfg))?;
    load += 1;
    wait_loads(&lab, load)?;
    lab.wait_for("(d1) the failed bind reported", T, || {
        let log = log_of(&lab, "node-1")?;
        ensure!(
            log.lines().any(|l| l.contains("ERROR")
                && l.contains("[::]:1791")
                && l.contains("EADDRINUSE")),
            "no error naming [::]:1791 and EADDRINUSE in node-1's log"
        );
        let r = listener_reasons(&lab, &n1)?;
        ensure!(
            r.iter()
                .any(|l| l.contains("[::]:1791") && l.contains("EADDRINUSE")),
            "/readyz says nothing about the listener: {r:?}"
        );
        Ok(())
    })?;
    // The blocker and the kept listener.
    listening("(d1) bind failed", &[wild(1790), "0.0.0.0:1791".into()])?;
    lab.wait_for("(d1) BIRD back through the kept listener", T, || {
        established(t1, &[it])?;
        bird.established("node1")?;
        accepted_on(&lab, &n1, it, 1790)
    })?;
    // Back to 1790: the listener in place is the one asked for; the problem
    // is gone and node-2 returns.
    n1cfg.listen_port = Some(1790);
    write_atomic(&file, &s.cluster(n1cfg))?;
    load += 1;
    wait_loads(&lab, load)?;
    sessions_via("(d1) back to 1790", 1790)?;
    lab.wait_for("(d1) the listener problem cleared", T, || {
        let r = listener_reasons(&lab, &n1)?;
        ensure!(r.is_empty(), "/readyz still says {r:?}");
        Ok(())
    })?;
    drop(blocker);
    eprintln!(
        "scenario 13: (d1) blocked port done at {:?}",
        started.elapsed()
    );

    // (d2) bindMode NodeIP with a Node IPv6 address on no interface: the
    // IPv4 address (overlapping the wildcard) binds, the IPv6 one cannot;
    // the wildcard listens again and both peers come back through it.
    n1cfg.v6 = Some(ABSENT_V6);
    n1cfg.bind_node_ip = true;
    write_atomic(&file, &s.cluster(n1cfg))?;
    load += 1;
    wait_loads(&lab, load)?;
    let bad = format!("[{ABSENT_V6}]:1790");
    lab.wait_for("(d2) the failed bind reported", T, || {
        let log = log_of(&lab, "node-1")?;
        ensure!(
            log.lines()
                .any(|l| l.contains("ERROR") && l.contains(&bad) && l.contains("EADDRNOTAVAIL")),
            "no error naming {bad} and EADDRNOTAVAIL in node-1's log"
        );
        let r = listener_reasons(&lab, &n1)?;
        ensure!(
            r.iter().any(|l| l.contains(&bad)),
            "/readyz says nothing about the listener: {r:?}"
        );
        Ok(())
    })?;
    listening("(d2) bind failed", &[wild(1790)])?;
    sessions_via("(d2) bind failed", 1790)?;
    no_eaddrinuse_after(&lab, "[::]:1791")?;
    eprintln!("scenario 13: done after {:?}", started.elapsed());
    Ok(())
}

/// No EADDRINUSE in node-1's log but the lines naming `expected` (d1's).
fn no_eaddrinuse_after(lab: &Lab, expected: &str) -> Result<()> {
    let log = log_of(lab, "node-1")?;
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            (l.contains("EADDRINUSE") || l.contains("os error 98")) && !l.contains(expected)
        })
        .collect();
    ensure!(bad.is_empty(), "node-1's log reports EADDRINUSE: {bad:#?}");
    Ok(())
}
