//! Proves the lab library against real peers: sessions establish, routes show
//! up where they should, and the lab leaves nothing behind.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use interop_tests::*;
use ipnet::IpNet;

const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

fn need(needs: &[Need]) {
    if let Err(e) = preflight(needs) {
        panic!("{e}");
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

/// BIRD 2 (AS 65001) ↔ GoBGP (AS 65002) over eBGP: BIRD's static blackhole
/// reaches GoBGP's RIB with the right AS path and next hop, and GoBGP's
/// announcement reaches BIRD's kernel.
#[test]
fn bird2_gobgp_ebgp() -> Result<()> {
    need(&[Need::Bird2, Need::GoBgp]);
    let started = Instant::now();
    let mut lab = Lab::new("b2gobgp")?;
    let a = lab.ns("bird")?;
    let b = lab.ns("gobgp")?;
    let seg = lab.link(&a, &b)?;
    let (a4, b4) = (seg.v4(&a)?, seg.v4(&b)?);

    let bird_conf = Bird2Conf::new(a4)
        .blackhole(net("100.64.0.0/26"))
        .peer(Bird2Peer::ebgp("gobgp", 65001, b4.into(), 65002));
    let bird = lab.start_bird2(&a, "bird", &bird_conf.render())?;
    let mut n = GoBgpNeighbor::new(a4.into(), 65001);
    n.local_address = Some(b4.into());
    let gconf = GoBgpConf::new(65002, b4).neighbor(n);
    let gobgp = lab.start_gobgp(&b, "gobgp", &gconf.render())?;

    lab.wait_for("BIRD 2 ↔ GoBGP Established", SESSION_TIMEOUT, || {
        bird.established("gobgp")?;
        gobgp.established(a4.into())
    })?;
    let path = lab.wait_for("BIRD's block in GoBGP's RIB", SESSION_TIMEOUT, || {
        let rib = gobgp.rib("ipv4")?;
        rib.into_iter()
            .find(|p| p.prefix == net("100.64.0.0/26"))
            .ok_or_else(|| anyhow::anyhow!("not there yet"))
    })?;
    assert_eq!(path.as_path, vec![65001]);
    assert_eq!(path.next_hop, Some(IpAddr::V4(a4)));

    gobgp.announce(net("100.64.1.0/26"), b4.into())?;
    let r = lab.wait_for("GoBGP's route in BIRD's kernel", SESSION_TIMEOUT, || {
        lab.kernel_routes_proto(&a, "bird")?
            .into_iter()
            .find(|r| r.dst == net("100.64.1.0/26"))
            .ok_or_else(|| anyhow::anyhow!("not in the kernel yet"))
    })?;
    assert_eq!(r.gateway(), Some(IpAddr::V4(b4)));
    let br = bird.routes_for(net("100.64.1.0/26"))?;
    ensure!(br.len() == 1 && br[0].as_path() == vec![65002], "{br:?}");

    // `ip netns exec` execs in place: the pid the lab accounts is BIRD's own.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", lab.pid("bird")?))?;
    ensure!(comm.trim() == "bird", "pid is {comm:?}, not bird");
    let st = lab.stats("bird")?;
    assert!(st.peak_rss_kib > 0);
    eprintln!(
        "bird2_gobgp_ebgp: {:?}; bird cpu {:.2}s peak {:.1} MiB",
        started.elapsed(),
        st.cpu_secs,
        st.peak_rss_mib()
    );
    Ok(())
}

/// BIRD 2 ↔ BIRD 1.6 configured like a Calico node (`bird` for IPv4,
/// `bird6` for IPv6): the Calico node's blocks reach BIRD 2's kernel, and
/// BIRD 2's routes reach the Calico node's kernel.
#[test]
fn bird2_bird1_calico_mesh() -> Result<()> {
    need(&[Need::Bird2, Need::Bird1]);
    let mut lab = Lab::new("b2b1")?;
    let a = lab.ns("bird2")?;
    let c = lab.ns("calico")?;
    let seg = lab.lan(&[&a, &c])?;
    let (a4, c4) = (seg.v4(&a)?, seg.v4(&c)?);
    let (a6, c6) = (seg.v6(&a)?, seg.v6(&c)?);
    let asn = 64512;

    let mut calico = CalicoBird1Conf::new(c4, asn);
    calico.node_ip6 = Some(c6);
    calico.blocks.push(net("100.64.2.0/26"));
    calico.blocks.push(net("2001:db8:1000:2::/122"));
    for cidr in ["100.64.0.0/16", "2001:db8:1000::/48"] {
        calico.pools.push(CalicoPool {
            cidr: net(cidr),
            mode: PoolMode::None,
            disable_bgp_export: false,
        });
    }
    for ip in [
        IpAddr::V4(a4),
        IpAddr::V4(c4),
        IpAddr::V6(a6),
        IpAddr::V6(c6),
    ] {
        calico = calico.mesh_peer(ip);
    }
    let b1 = lab.start_bird1(&c, "calico", &calico.render())?;
    let v6conf = calico
        .render_v6()
        .ok_or_else(|| anyhow::anyhow!("no v6 config"))?;
    let b16 = lab.start_bird1_v6(&c, "calico6", &v6conf)?;

    let mut peer = Bird2Peer::ibgp("mesh", asn, c4.into());
    peer.local_addr = Some(a4.into());
    let mut peer6 = Bird2Peer::ibgp("mesh6", asn, c6.into());
    peer6.local_addr = Some(a6.into());
    let b2conf = Bird2Conf::new(a4)
        .blackhole(net("100.64.3.0/26"))
        .blackhole(net("2001:db8:1000:3::/122"))
        .peer(peer)
        .peer(peer6);
    let b2 = lab.start_bird2(&a, "bird2", &b2conf.render())?;

    let mesh_name = format!("Mesh_{}", a4.to_string().replace('.', "_"));
    let mesh6_name = format!("Mesh_{}", a6.to_string().replace(':', "_"));
    lab.wait_for(
        "BIRD 2 ↔ BIRD 1.6 (v4 and v6) Established",
        SESSION_TIMEOUT,
        || {
            b2.established("mesh")?;
            b2.established("mesh6")?;
            b1.established(&mesh_name)?;
            b16.established(&mesh6_name)
        },
    )?;
    let r = lab.wait_kernel_route(&a, Some("bird"), net("100.64.2.0/26"), SESSION_TIMEOUT)?;
    assert_eq!(r.gateway(), Some(IpAddr::V4(c4)));
    let r6 = lab.wait_kernel_route(
        &a,
        Some("bird"),
        net("2001:db8:1000:2::/122"),
        SESSION_TIMEOUT,
    )?;
    assert_eq!(r6.gateway(), Some(IpAddr::V6(c6)));
    // The Calico node blackholes its own blocks and programs BIRD 2's.
    lab.wait_for(
        "routes in the Calico node's kernel",
        SESSION_TIMEOUT,
        || {
            let k = lab.kernel_routes(&c)?;
            let has = |p: &str, f: &dyn Fn(&KernelRoute) -> bool| {
                k.iter().any(|r| r.dst == net(p) && f(r))
            };
            let own = has("100.64.2.0/26", &|r| r.kind == "blackhole");
            let own6 = has("2001:db8:1000:2::/122", &|r| r.kind == "blackhole");
            let learned = has("100.64.3.0/26", &|r| r.gateway() == Some(IpAddr::V4(a4)));
            let learned6 = has("2001:db8:1000:3::/122", &|r| {
                r.gateway() == Some(IpAddr::V6(a6))
            });
            ensure!(
                own && own6 && learned && learned6,
                "own {own}/{own6}, learned {learned}/{learned6}"
            );
            Ok(())
        },
    )?;
    Ok(())
}

/// Nothing survives a lab: namespaces gone, daemons dead — after a normal
/// drop and after a panic inside the test body.
#[test]
fn lab_cleans_up_after_drop_and_panic() -> Result<()> {
    need(&[Need::Bird2]);
    let run = |panic: bool| -> (Vec<String>, Vec<u32>, std::thread::Result<()>) {
        let mut names = vec![];
        let mut pids = vec![];
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut lab = Lab::new("cleanup").expect("lab");
            let a = lab.ns("a").expect("ns");
            let b = lab.ns("b").expect("ns");
            let _ = lab.lan(&[&a, &b]).expect("lan");
            names.extend(lab.namespaces().iter().map(|n| n.name.clone()));
            let conf = Bird2Conf::new(Ipv4Addr::new(198, 18, 1, 1)).render();
            lab.start_bird2(&a, "b1", &conf).expect("bird");
            // A helper child of a daemon-like process must die too.
            lab.start(
                &b,
                "sh",
                Daemon::other("sh", &["-c", "sleep 300 & sleep 300"]),
            )
            .expect("sh");
            std::thread::sleep(Duration::from_millis(200));
            pids.push(lab.pid("b1").expect("pid"));
            let sh = lab.pid("sh").expect("pid");
            pids.push(sh);
            pids.extend(interop_tests::procfs::descendants(sh));
            if panic {
                panic!("deliberate panic inside a lab");
            }
        }));
        (names, pids, r)
    };
    for panic in [false, true] {
        let (names, pids, r) = run(panic);
        ensure!(r.is_err() == panic, "panic={panic}: unexpected outcome");
        ensure!(
            names.len() == 3,
            "expected 3 namespaces (a, b, fabric): {names:?}"
        );
        ensure!(
            pids.len() >= 3,
            "expected bird, sh and its sleeps: {pids:?}"
        );
        for n in &names {
            ensure!(
                !Path::new("/run/netns").join(n).exists(),
                "namespace {n} survived (panic={panic})"
            );
        }
        for &p in &pids {
            if interop_tests::procfs::alive(p) {
                bail!("pid {p} survived the lab (panic={panic})");
            }
        }
    }
    Ok(())
}

/// Timeouts say what was awaited and dump the daemons.
#[test]
fn wait_for_timeout_dumps_state() -> Result<()> {
    need(&[Need::Bird2]);
    let mut lab = Lab::new("dump")?;
    let a = lab.ns("a")?;
    let conf = Bird2Conf::new(Ipv4Addr::new(198, 18, 1, 1))
        .peer(Bird2Peer::ebgp(
            "nobody",
            65001,
            "198.18.1.9".parse()?,
            65002,
        ))
        .render();
    let bird = lab.start_bird2(&a, "lonely", &conf)?;
    let t = Instant::now();
    let e = lab
        .wait_for(
            "a session nobody answers",
            Duration::from_millis(500),
            || bird.established("nobody"),
        )
        .unwrap_err()
        .to_string();
    ensure!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    ensure!(e.contains("a session nobody answers"), "{e}");
    ensure!(e.contains("protocol nobody is"), "{e}");
    ensure!(e.contains("show protocols all"), "{e}");
    ensure!(e.contains("lonely.log"), "{e}");
    Ok(())
}

/// FRR (ToR, AS 65000) ↔ BIRD 2 (AS 65001): the session establishes and
/// routes flow both ways with the expected AS paths.
#[test]
fn frr_bird2_ebgp() -> Result<()> {
    need(&[Need::Bird2, Need::Frr]);
    let mut lab = Lab::new("frrb2")?;
    let t = lab.ns("tor")?;
    let n = lab.ns("node")?;
    let seg = lab.link(&t, &n)?;
    let (t4, n4) = (seg.v4(&t)?, seg.v4(&n)?);

    let fconf = FrrConf::new("tor", 65000, t4)
        .network(net("198.19.0.0/24"))
        .neighbor(FrrNeighbor::new(n4.into(), 65001));
    let frr = lab.start_frr(&t, "tor", &fconf.render())?;
    let bconf = Bird2Conf::new(n4)
        .blackhole(net("100.64.4.0/26"))
        .peer(Bird2Peer::ebgp("tor", 65001, t4.into(), 65000));
    let bird = lab.start_bird2(&n, "node", &bconf.render())?;

    lab.wait_for("FRR ↔ BIRD 2 Established", SESSION_TIMEOUT, || {
        frr.established(n4.into())?;
        bird.established("tor")
    })?;
    // FRR selects best paths asynchronously: wait for the selection too.
    let p = lab.wait_for("BIRD's block as FRR's best path", SESSION_TIMEOUT, || {
        frr.routes("ipv4")?
            .into_iter()
            .find(|p| p.prefix == net("100.64.4.0/26") && p.best)
            .ok_or_else(|| anyhow::anyhow!("not there yet"))
    })?;
    ensure!(p.valid && p.best && p.as_path == vec![65001], "{p:?}");
    ensure!(p.next_hops.contains(&IpAddr::V4(n4)), "{p:?}");
    let k = lab.wait_for("FRR's network in BIRD's kernel", SESSION_TIMEOUT, || {
        lab.kernel_routes_proto(&n, "bird")?
            .into_iter()
            .find(|r| r.dst == net("198.19.0.0/24"))
            .ok_or_else(|| anyhow::anyhow!("not in the kernel yet"))
    })?;
    assert_eq!(k.gateway(), Some(IpAddr::V4(t4)));
    Ok(())
}

/// ExaBGP injects scripted routes (one with an unknown optional transitive
/// attribute) into BIRD 2.
#[test]
fn exabgp_injects_into_bird2() -> Result<()> {
    need(&[Need::Bird2, Need::ExaBgp]);
    let mut lab = Lab::new("exab2")?;
    let x = lab.ns("exa")?;
    let b = lab.ns("bird")?;
    let seg = lab.link(&x, &b)?;
    let (x4, b4) = (seg.v4(&x)?, seg.v4(&b)?);
    let bconf = Bird2Conf::new(b4).peer(Bird2Peer::ebgp("exa", 65001, x4.into(), 65099));
    let bird = lab.start_bird2(&b, "bird", &bconf.render())?;
    let econf =
        ExaBgpConf::new(x4).neighbor(ExaBgpNeighbor::new(b4.into(), 65001, x4.into(), 65099));
    let exa = lab.start_exabgp(&x, "exa", &econf)?;
    lab.wait_for("ExaBGP → BIRD 2 Established", SESSION_TIMEOUT, || {
        bird.established("exa")
    })?;
    exa.send(&format!("announce route 100.64.7.0/24 next-hop {x4}"))?;
    // Attribute 0x63 (unassigned), flags optional+transitive, two bytes.
    exa.send(&format!(
        "announce route 100.64.8.0/24 next-hop {x4} attribute [ 0x63 0xc0 0x0102 ]"
    ))?;
    let routes = lab.wait_for("both routes at BIRD", SESSION_TIMEOUT, || {
        let r = bird.routes()?;
        let got: Vec<_> = r
            .into_iter()
            .filter(|r| r.prefix == net("100.64.7.0/24") || r.prefix == net("100.64.8.0/24"))
            .collect();
        ensure!(got.len() == 2, "have {} of 2", got.len());
        Ok(got)
    })?;
    for r in &routes {
        ensure!(r.as_path() == vec![65099], "{r:?}");
    }
    exa.send("withdraw route 100.64.7.0/24")?;
    lab.wait_for("withdrawal at BIRD", SESSION_TIMEOUT, || {
        ensure!(
            bird.routes_for(net("100.64.7.0/24"))?.is_empty(),
            "still there"
        );
        Ok(())
    })?;
    Ok(())
}

/// etcd runs on a lab address and answers another namespace's etcdctl.
#[test]
fn etcd_serves_the_lab() -> Result<()> {
    need(&[Need::Etcd]);
    let mut lab = Lab::new("etcd")?;
    let d = lab.ns("store")?;
    let c = lab.ns("client")?;
    let seg = lab.link(&d, &c)?;
    let etcd = lab.start_etcd(&d, "etcd", seg.v4(&d)?.into())?;
    let key = "/calico/resources/v3/projectcalico.org/bgppeers/tor";
    etcd.put(key, r#"{"kind":"BGPPeer","spec":{"peerIP":"198.18.1.1"}}"#)?;
    assert_eq!(
        etcd.get(key)?.as_deref(),
        Some(r#"{"kind":"BGPPeer","spec":{"peerIP":"198.18.1.1"}}"#)
    );
    // The same data seen from the other namespace, over the link.
    let remote = Etcd {
        ns: c.clone(),
        ..etcd.clone()
    };
    assert_eq!(remote.keys("/calico/")?, vec![key.to_string()]);
    assert_eq!(etcd.del(key)?, 1);
    assert_eq!(etcd.get(key)?, None);
    Ok(())
}

/// BIRD 2 as route reflector (cluster 198.18.0.100) with a BIRD 2 client and
/// a GoBGP client: reflected routes carry ORIGINATOR_ID and CLUSTER_LIST
/// (RFC 4456 §8) as both clients' parsers see them.
#[test]
fn bird2_reflector_with_bird2_and_gobgp_clients() -> Result<()> {
    need(&[Need::Bird2, Need::GoBgp]);
    let asn = 64512;
    let cluster = Ipv4Addr::new(198, 18, 0, 100);
    let mut lab = Lab::new("rr")?;
    let rr = lab.ns("rr")?;
    let c1 = lab.ns("c1")?;
    let c2 = lab.ns("c2")?;
    let seg = lab.lan(&[&rr, &c1, &c2])?;
    let (rr4, c14, c24) = (seg.v4(&rr)?, seg.v4(&c1)?, seg.v4(&c2)?);

    let mut rrconf = Bird2Conf::new(rr4);
    rrconf.kernel_export = false;
    for (name, addr) in [("c1", c14), ("c2", c24)] {
        let mut p = Bird2Peer::ibgp(name, asn, addr.into());
        p.rr_client = true;
        p.rr_cluster_id = Some(cluster);
        rrconf.peers.push(p);
    }
    let rrd = lab.start_bird2(&rr, "rr", &rrconf.render())?;
    let c1conf = Bird2Conf::new(c14)
        .blackhole(net("100.64.10.0/26"))
        .peer(Bird2Peer::ibgp("rr1", asn, rr4.into()));
    let c1d = lab.start_bird2(&c1, "c1", &c1conf.render())?;
    let gconf = GoBgpConf::new(asn, c24).neighbor(GoBgpNeighbor::new(rr4.into(), asn));
    let c2d = lab.start_gobgp(&c2, "c2", &gconf.render())?;

    lab.wait_for(
        "both clients Established with the reflector",
        SESSION_TIMEOUT,
        || {
            rrd.established("c1")?;
            rrd.established("c2")?;
            c1d.established("rr1")?;
            c2d.established(rr4.into())
        },
    )?;
    c2d.announce(net("100.64.11.0/26"), c24.into())?;

    let at_c1 = lab.wait_for("GoBGP's route reflected to BIRD", SESSION_TIMEOUT, || {
        c1d.routes_for(net("100.64.11.0/26"))?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("not there yet"))
    })?;
    ensure!(at_c1.originator_id() == Some(c24), "{at_c1:?}");
    ensure!(at_c1.cluster_list() == vec![cluster], "{at_c1:?}");
    ensure!(at_c1.bgp_next_hop() == vec![IpAddr::V4(c24)], "{at_c1:?}");
    let k = lab.wait_kernel_route(&c1, Some("bird"), net("100.64.11.0/26"), SESSION_TIMEOUT)?;
    ensure!(k.gateway() == Some(IpAddr::V4(c24)), "{k:?}");

    let at_c2 = lab.wait_for("BIRD's block reflected to GoBGP", SESSION_TIMEOUT, || {
        c2d.rib("ipv4")?
            .into_iter()
            .find(|p| p.prefix == net("100.64.10.0/26"))
            .ok_or_else(|| anyhow::anyhow!("not there yet"))
    })?;
    ensure!(at_c2.originator_id == Some(c14), "{at_c2:?}");
    ensure!(at_c2.cluster_list == vec![cluster], "{at_c2:?}");
    ensure!(at_c2.as_path.is_empty(), "{at_c2:?}");
    Ok(())
}

/// IPv6 session between FRR and BIRD 2 carrying IPv6 blocks and IPv4 with
/// IPv6 next hops (RFC 8950) into BIRD's kernel.
#[test]
fn frr_bird2_ipv6_and_extended_next_hop() -> Result<()> {
    need(&[Need::Bird2, Need::Frr]);
    let mut lab = Lab::new("v6")?;
    let t = lab.ns("tor")?;
    let n = lab.ns("node")?;
    let seg = lab.link(&t, &n)?;
    let (t6, n6) = (seg.v6(&t)?, seg.v6(&n)?);

    let mut fn_ = FrrNeighbor::new(n6.into(), 65001);
    fn_.ipv4 = true;
    fn_.extended_nexthop = true;
    let fconf = FrrConf::new("tor", 65000, seg.v4(&t)?)
        .network(net("198.19.2.0/24"))
        .network(net("2001:db8:1000:2::/64"))
        .neighbor(fn_);
    let frr = lab.start_frr(&t, "tor", &fconf.render())?;
    let mut bp = Bird2Peer::ebgp("tor", 65001, t6.into(), 65000);
    bp.ipv4 = true;
    bp.extended_next_hop = true;
    // bgpd without zebra knows no interfaces, so it rejects link-local next
    // hops ("no peer interface information"); BIRD sends only the global
    // next hop on a multihop session.
    bp.multihop = true;
    let bconf = Bird2Conf::new(seg.v4(&n)?)
        .blackhole(net("2001:db8:1000:1::/64"))
        .blackhole(net("100.64.12.0/26"))
        .peer(bp);
    let bird = lab.start_bird2(&n, "node", &bconf.render())?;

    lab.wait_for(
        "FRR ↔ BIRD 2 over IPv6 Established",
        SESSION_TIMEOUT,
        || {
            frr.established(n6.into())?;
            bird.established("tor")
        },
    )?;
    let v6 = lab.wait_kernel_route(
        &n,
        Some("bird"),
        net("2001:db8:1000:2::/64"),
        SESSION_TIMEOUT,
    )?;
    ensure!(v6.gateway().is_some_and(|g| g.is_ipv6()), "{v6:?}");
    let v4 = lab.wait_kernel_route(&n, Some("bird"), net("198.19.2.0/24"), SESSION_TIMEOUT)?;
    ensure!(
        v4.gateway().is_some_and(|g| g.is_ipv6()),
        "IPv4 route should have an IPv6 gateway: {v4:?}"
    );
    lab.wait_for("BIRD's blocks at FRR", SESSION_TIMEOUT, || {
        let r4 = frr.routes("ipv4")?;
        let r6 = frr.routes("ipv6")?;
        ensure!(
            r4.iter()
                .any(|p| p.prefix == net("100.64.12.0/26") && p.best),
            "v4 block missing"
        );
        ensure!(
            r6.iter()
                .any(|p| p.prefix == net("2001:db8:1000:1::/64") && p.best),
            "v6 block missing"
        );
        Ok(())
    })?;
    Ok(())
}

/// `kill9` and `restart`: with graceful restart (RFC 4724) the surviving BIRD
/// keeps the dead peer's route in its kernel; the restarted daemon (new pid)
/// re-establishes.
#[test]
fn kill9_and_restart_keep_routes_under_graceful_restart() -> Result<()> {
    need(&[Need::Bird2]);
    let mut lab = Lab::new("gr")?;
    let a = lab.ns("a")?;
    let b = lab.ns("b")?;
    let seg = lab.link(&a, &b)?;
    let (a4, b4) = (seg.v4(&a)?, seg.v4(&b)?);
    let aconf = Bird2Conf::new(a4).peer(Bird2Peer::ebgp("b", 65001, b4.into(), 65002));
    let ad = lab.start_bird2(&a, "a", &aconf.render())?;
    let bconf = Bird2Conf::new(b4)
        .blackhole(net("100.64.13.0/26"))
        .peer(Bird2Peer::ebgp("a", 65002, a4.into(), 65001));
    let bd = lab.start_bird2(&b, "b", &bconf.render())?;
    lab.wait_for("a ↔ b Established", SESSION_TIMEOUT, || {
        ad.established("b")?;
        bd.established("a")
    })?;
    lab.wait_kernel_route(&a, Some("bird"), net("100.64.13.0/26"), SESSION_TIMEOUT)?;

    let old = lab.pid("b")?;
    lab.kill9("b")?;
    ensure!(!interop_tests::procfs::alive(old), "b survived kill9");
    // The peer notices the closed connection; the route must stay (stale).
    lab.wait_for("a to notice b is gone", SESSION_TIMEOUT, || {
        let p = ad.protocol("b")?;
        ensure!(!p.established(), "still Established");
        Ok(())
    })?;
    std::thread::sleep(Duration::from_secs(1));
    let k = lab.kernel_routes_proto(&a, "bird")?;
    ensure!(
        k.iter().any(|r| r.dst == net("100.64.13.0/26")),
        "route lost during graceful restart: {k:?}"
    );

    let new = lab.restart("b")?;
    ensure!(new != old, "restart kept the pid");
    lab.wait_for("a ↔ b Established again", SESSION_TIMEOUT, || {
        ad.established("b")?;
        bd.established("a")
    })?;
    let stale = ad.routes_for(net("100.64.13.0/26"))?;
    ensure!(stale.len() == 1, "{stale:?}");
    Ok(())
}

/// The raw peer reaches Established with BIRD 2, its UPDATE is accepted, a
/// malformed ORIGIN is treated as withdraw with the session up (RFC 7606
/// §7.1), and a broken marker draws NOTIFICATION 1/1 (RFC 4271 §6.1).
#[test]
fn raw_peer_against_bird2() -> Result<()> {
    use interop_tests::raw::{self, RawBgp};
    need(&[Need::Bird2]);
    let mut lab = Lab::new("raw")?;
    let r = lab.ns("raw")?;
    let b = lab.ns("bird")?;
    let seg = lab.link(&r, &b)?;
    let (r4, b4) = (seg.v4(&r)?, seg.v4(&b)?);
    let mut peer = Bird2Peer::ebgp("raw", 65001, r4.into(), 65099);
    peer.passive = true;
    let bird = lab.start_bird2(&b, "bird", &Bird2Conf::new(b4).peer(peer).render())?;

    let mut raw = RawBgp::connect(
        &lab,
        &r,
        Some(r4.into()),
        (IpAddr::V4(b4), 179).into(),
        Duration::from_secs(5),
    )?;
    let open = raw.establish(65099, r4, 90)?;
    ensure!(open.open_my_as() == Some(65001), "{open:?}");
    lab.wait_for(
        "BIRD sees the raw peer Established",
        SESSION_TIMEOUT,
        || bird.established("raw"),
    )?;

    let good = raw::update_body(
        &[],
        &raw::basic_attrs(&[65099], r4),
        &["100.64.20.0/24".parse()?],
    );
    raw.send_msg(raw::UPDATE, &good)?;
    let got = lab.wait_for("the raw route at BIRD", SESSION_TIMEOUT, || {
        bird.routes_for(net("100.64.20.0/24"))?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("not there yet"))
    })?;
    ensure!(got.as_path() == vec![65099], "{got:?}");

    // ORIGIN 7 does not exist: treat-as-withdraw, session stays up.
    let mut bad = raw::attr(raw::TRANSITIVE, 1, &[7]);
    bad.extend(raw::attr(raw::TRANSITIVE, 2, &[2, 1, 0, 0, 0xfe, 0x4b]));
    bad.extend(raw::attr(raw::TRANSITIVE, 3, &r4.octets()));
    raw.send_msg(
        raw::UPDATE,
        &raw::update_body(&[], &bad, &["100.64.20.0/24".parse()?]),
    )?;
    lab.wait_for(
        "the malformed update to withdraw the route",
        SESSION_TIMEOUT,
        || {
            ensure!(
                bird.routes_for(net("100.64.20.0/24"))?.is_empty(),
                "route still there"
            );
            Ok(())
        },
    )?;
    bird.established("raw")?;
    while let Some(m) = raw.recv(Duration::from_millis(300))? {
        ensure!(m.notification().is_none(), "BIRD reset the session: {m:?}");
    }

    let mut broken = raw::frame(raw::KEEPALIVE, &[]);
    broken[0] = 0;
    raw.send(&broken)?;
    let (code, sub, _) = raw.expect_notification(Duration::from_secs(5))?;
    ensure!((code, sub) == (1, 1), "expected 1/1, got {code}/{sub}");
    Ok(())
}

/// A namespace left by a lab whose process died without Drop is removed,
/// with what runs inside it; `in_ns` runs code inside a namespace.
#[test]
fn stale_namespaces_are_reaped_and_in_ns_works() -> Result<()> {
    need(&[]);
    let mut dead = std::process::Command::new("true").spawn()?;
    let dead_pid = dead.id();
    dead.wait()?;
    let name = format!("tl{dead_pid}x0");
    interop_tests::cmd::run_ok("ip", &["netns", "add", &name], Duration::from_secs(5))?;
    let mut inside = std::process::Command::new("ip")
        .args(["netns", "exec", &name, "sleep", "300"])
        .spawn()?;
    std::thread::sleep(Duration::from_millis(100));
    interop_tests::lab::reap_stale_namespaces();
    let gone = !Path::new("/run/netns").join(&name).exists();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut status = inside.try_wait()?;
    while status.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        status = inside.try_wait()?;
    }
    if status.is_none() {
        let _ = inside.kill();
        let _ = inside.wait();
    }
    if !gone {
        let _ = interop_tests::cmd::run("ip", &["netns", "del", &name], Duration::from_secs(5));
    }
    ensure!(gone, "stale namespace {name} survived");
    ensure!(
        status.is_some(),
        "process inside the stale namespace survived"
    );

    let mut lab = Lab::new("inns")?;
    let a = lab.ns("a")?;
    let b = lab.ns("b")?;
    lab.link(&a, &b)?;
    // Inside `a` the link's address is local; outside it is not.
    let local =
        |addr: &str| std::net::UdpSocket::bind((addr.parse::<IpAddr>().expect("addr"), 0)).is_ok();
    ensure!(lab.in_ns(&a, || local("198.18.1.1"))?, "not inside a");
    ensure!(
        !local("198.18.1.1"),
        "198.18.1.1 must not exist outside the lab"
    );
    Ok(())
}

/// TCP-MD5 (RFC 2385) with GoBGP and, with GTSM (RFC 5082) on top, with
/// FRR; a wrong key keeps a session down.
#[test]
fn md5_and_gtsm_with_gobgp_and_frr() -> Result<()> {
    need(&[Need::Bird2, Need::GoBgp, Need::Frr]);
    let mut lab = Lab::new("md5")?;
    let hub = lab.ns("hub")?;
    let g = lab.ns("gobgp")?;
    let f = lab.ns("frr")?;
    let w = lab.ns("wrong")?;
    let seg = lab.lan(&[&hub, &g, &f, &w])?;
    let (h4, g4, f4, w4) = (seg.v4(&hub)?, seg.v4(&g)?, seg.v4(&f)?, seg.v4(&w)?);

    let mut to_g = Bird2Peer::ebgp("gob", 65001, g4.into(), 65002);
    to_g.password = Some("lab-secret-1".into());
    let mut to_f = Bird2Peer::ebgp("frr", 65001, f4.into(), 65003);
    to_f.password = Some("lab-secret-2".into());
    to_f.ttl_security = true;
    let mut to_w = Bird2Peer::ebgp("wrong", 65001, w4.into(), 65004);
    to_w.password = Some("lab-secret-3".into());
    let hconf = Bird2Conf::new(h4).peer(to_g).peer(to_f).peer(to_w);
    let hd = lab.start_bird2(&hub, "hub", &hconf.render())?;

    let mut gn = GoBgpNeighbor::new(h4.into(), 65001);
    gn.password = Some("lab-secret-1".into());
    let gd = lab.start_gobgp(
        &g,
        "gobgp",
        &GoBgpConf::new(65002, g4).neighbor(gn).render(),
    )?;
    let mut fnb = FrrNeighbor::new(h4.into(), 65001);
    fnb.password = Some("lab-secret-2".into());
    fnb.ttl_security_hops = Some(1);
    let fd = lab.start_frr(
        &f,
        "frr",
        &FrrConf::new("frr", 65003, f4).neighbor(fnb).render(),
    )?;
    let mut wn = FrrNeighbor::new(h4.into(), 65001);
    wn.password = Some("not-the-key".into());
    lab.start_frr(
        &w,
        "wrong",
        &FrrConf::new("wrong", 65004, w4).neighbor(wn).render(),
    )?;

    lab.wait_for("MD5 sessions with the right keys", SESSION_TIMEOUT, || {
        hd.established("gob")?;
        hd.established("frr")?;
        gd.established(h4.into())?;
        fd.established(h4.into())
    })?;
    // Both sides retry every 2 s: several attempts with the wrong key.
    std::thread::sleep(Duration::from_secs(5));
    let p = hd.protocol("wrong")?;
    ensure!(!p.established(), "wrong key established: {p:?}");
    Ok(())
}

/// Bulk source addresses: one namespace reaches a peer from 300 addresses.
#[test]
fn bulk_addresses_reach_the_peer() -> Result<()> {
    need(&[]);
    let mut lab = Lab::new("bulk")?;
    let gen_ns = lab.ns("gen")?;
    let dut = lab.ns("dut")?;
    let seg = lab.link(&gen_ns, &dut)?;
    let t = Instant::now();
    let addrs = lab.attach_bulk(&seg, &gen_ns, 300)?;
    let took = t.elapsed();
    ensure!(addrs.len() == 300 && addrs[0] == Ipv4Addr::new(198, 18, 128, 1));
    let dut4 = seg.v4(&dut)?;
    ensure!(lab.ping(&gen_ns, dut4.into()), "no IPv4 ping over the link");
    ensure!(
        lab.ping(&gen_ns, seg.v6(&dut)?.into()),
        "no IPv6 ping over the link"
    );
    // Connect from the first and the last bulk address to a listener in `dut`.
    let listener = lab.in_ns(&dut, || std::net::TcpListener::bind((dut4, 7179)))??;
    for src in [addrs[0], addrs[299]] {
        let peer = tcp_connect_from(&lab, &gen_ns, src, dut4)?;
        let (_, from) = listener.accept()?;
        ensure!(from.ip() == IpAddr::V4(src), "{from} is not {src}");
        drop(peer);
    }
    eprintln!("300 bulk addresses in {took:?}");
    Ok(())
}

/// A plain TCP connect from a given source inside a namespace.
fn tcp_connect_from(
    lab: &Lab,
    ns: &Ns,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<std::net::TcpStream> {
    lab.in_ns(ns, || -> Result<std::net::TcpStream> {
        use socket2::{Domain, SockAddr, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.bind(&SockAddr::from(std::net::SocketAddr::from((src, 0))))?;
        s.connect_timeout(
            &SockAddr::from(std::net::SocketAddr::from((dst, 7179))),
            Duration::from_secs(3),
        )?;
        Ok(s.into())
    })?
}

/// A stand-in tunnel device takes onlink routes (the lab kernel has no
/// `ipip`), and a capture records the BGP session on a link.
#[test]
fn tunnel_stand_in_and_capture() -> Result<()> {
    need(&[Need::Bird2, Need::Tcpdump]);
    let mut lab = Lab::new("tun")?;
    let a = lab.ns("a")?;
    let b = lab.ns("b")?;
    let seg = lab.link(&a, &b)?;
    let (a4, b4) = (seg.v4(&a)?, seg.v4(&b)?);
    lab.stub_iface(&a, "tunl9")?;
    lab.add_route(&a, &format!("100.64.30.0/26 via {b4} dev tunl9 onlink"))?;
    let r = lab
        .kernel_routes(&a)?
        .into_iter()
        .find(|r| r.dst == net("100.64.30.0/26"))
        .ok_or_else(|| anyhow::anyhow!("onlink route missing"))?;
    ensure!(r.dev() == Some("tunl9") && r.nexthops[0].onlink, "{r:?}");

    let pcap = lab.capture(&a, "cap", seg.ifname(&a)?, None)?;
    let ad = lab.start_bird2(
        &a,
        "a",
        &Bird2Conf::new(a4)
            .peer(Bird2Peer::ebgp("b", 65001, b4.into(), 65002))
            .render(),
    )?;
    lab.start_bird2(
        &b,
        "b",
        &Bird2Conf::new(b4)
            .peer(Bird2Peer::ebgp("a", 65002, a4.into(), 65001))
            .render(),
    )?;
    lab.wait_for("a ↔ b Established", SESSION_TIMEOUT, || {
        ad.established("b")
    })?;
    lab.stop("cap")?;
    let out = interop_tests::cmd::run_ok(
        "tcpdump",
        &["-n", "-r", &pcap.display().to_string()],
        Duration::from_secs(10),
    )?;
    ensure!(
        out.contains(".179"),
        "no BGP packets in the capture:\n{out}"
    );
    Ok(())
}
