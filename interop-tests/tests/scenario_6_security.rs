//! Scenario 6 (issue 7): session security against BIRD 2. TCP-MD5 (RFC
//! 2385) with the password taken from a `Secret` through the `BGPPeer`'s
//! `password.secretKeyRef`: the right key establishes, a wrong key never
//! does. GTSM (RFC 5082) through `ttlSecurity`: a peer sending TTL 255
//! establishes, one that does not is never accepted.
//!
//! Max-prefix: tabbyd's `--max-prefixes` limit, exceeded by a raw peer,
//! ends the session with Cease/1 (Calico's `BGPPeer` has no such field).

mod fixtures;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use fixtures::*;
use interop_tests::raw;
use interop_tests::*;

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: bgp-secrets
  namespace: calico-system
type: Opaque
stringData:
  tor: s3cret-Key";

#[test]
fn md5_and_gtsm_with_bird2() -> Result<()> {
    need(&[Need::Bird2]);
    let started = Instant::now();
    let mut lab = Lab::new("scen6")?;
    let tn = lab.ns("node-1")?;
    let names = ["md5-ok", "md5-bad", "gtsm-ok", "gtsm-bad"];
    let mut bns = vec![];
    for n in names {
        bns.push(lab.ns(n)?);
    }
    let mut all = vec![&tn];
    all.extend(bns.iter());
    let seg = lab.lan(&all)?;
    let ta = seg.v4(&tn)?;
    let ip = IpAddr::V4;
    let addrs: Vec<_> = bns.iter().map(|n| seg.v4(n)).collect::<Result<_>>()?;

    let pw = "  password:\n    secretKeyRef:\n      name: bgp-secrets\n      key: tor\n";
    let gtsm = "  ttlSecurity: 1\n";
    let c = Cluster::new()
        .node(NodeSpec::v4("node-1", ta))
        .doc(SECRET)
        .doc(&bgp_peer_yaml("md5-ok", ip(addrs[0]), 65001, None, pw))
        .doc(&bgp_peer_yaml("md5-bad", ip(addrs[1]), 65002, None, pw))
        .doc(&bgp_peer_yaml("gtsm-ok", ip(addrs[2]), 65003, None, gtsm))
        .doc(&bgp_peer_yaml("gtsm-bad", ip(addrs[3]), 65004, None, gtsm));
    let file = lab.write_file("cluster.yaml", &c.render())?;

    let mut birds = vec![];
    for (i, n) in bns.iter().enumerate() {
        let asn = 65001 + i as u32;
        let mut p = Bird2Peer::ebgp("tabby", asn, ip(ta), CLUSTER_AS);
        p.local_addr = Some(ip(addrs[i]));
        match i {
            0 => p.password = Some("s3cret-Key".into()),
            1 => p.password = Some("wrong-Key".into()),
            2 => p.ttl_security = true,
            _ => {}
        }
        let conf = Bird2Conf::new(addrs[i]).blackhole(net(&format!("198.19.{}.0/24", i + 1)));
        birds.push(lab.start_bird2(n, names[i], &conf.peer(p).render())?);
    }
    let mut o = TabbydOpts::new("node-1", Datastore::File(file));
    o.deferral_time = Some(5);
    let t = lab.start_tabbyd(&tn, "tabby", &o)?;

    lab.wait_for("the right MD5 key and GTSM establish", T, || {
        birds[0].established("tabby")?;
        birds[2].established("tabby")?;
        established(&t, &[ip(addrs[0]), ip(addrs[2])])
    })?;
    wait_kernel(
        &lab,
        &tn,
        &[
            (net("198.19.1.0/24"), Want::Via(ip(addrs[0]))),
            (net("198.19.3.0/24"), Want::Via(ip(addrs[2]))),
        ],
    )?;
    // Both sides retry every 2–5 s; watch the bad pairs for longer than that.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for i in [1, 3] {
            ensure!(
                birds[i].established("tabby").is_err(),
                "{} established with tabbyd",
                names[i]
            );
            let p = peer(&t, ip(addrs[i]))?;
            ensure!(
                p["state"].as_str() != Some("Established"),
                "{}: {p}",
                names[i]
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let k = lab.kernel_routes(&tn)?;
    for p in ["198.19.2.0/24", "198.19.4.0/24"] {
        ensure!(!k.iter().any(|r| r.dst == net(p)), "{p} leaked in: {k:?}");
    }
    eprintln!("scenario 6: passed in {:?}", started.elapsed());
    Ok(())
}

/// Max-prefix (CONFORMANCE.md faults row 11): a peer announcing more
/// prefixes than `--max-prefixes` allows gets Cease / Maximum Number of
/// Prefixes Reached with AFI, SAFI and the limit as data (RFC 4486 §4).
#[test]
fn max_prefix_exceeded_is_cease_1() -> Result<()> {
    need(&[]);
    let mut lab = Lab::new("scen6mp")?;
    let tn = lab.ns("node-1")?;
    let rn = lab.ns("peer")?;
    let seg = lab.link(&tn, &rn)?;
    let (ta, ra) = (seg.v4(&tn)?, seg.v4(&rn)?);
    let c =
        Cluster::new()
            .node(NodeSpec::v4("node-1", ta))
            .peer("greedy", IpAddr::V4(ra), 65099, None);
    let file = lab.write_file("cluster.yaml", &c.render())?;
    let mut o = TabbydOpts::new("node-1", Datastore::File(file));
    o.deferral_time = Some(5);
    o.extra_args = vec!["--max-prefixes".into(), "3".into()];
    let t = lab.start_tabbyd(&tn, "tabby", &o)?;

    let mut s = lab.wait_for("a session Established with tabbyd", T, || {
        let mut r = RawBgp::connect(
            &lab,
            &rn,
            Some(IpAddr::V4(ra)),
            std::net::SocketAddr::new(IpAddr::V4(ta), 179),
            Duration::from_secs(2),
        )?;
        r.establish(65099, ra, 90)?;
        Ok(r)
    })?;
    let attrs = raw::basic_attrs(&[65099], ra);
    let three: Vec<ipnet::Ipv4Net> = (1..=3)
        .map(|i| format!("198.19.{i}.0/24").parse())
        .collect::<Result<_, _>>()?;
    s.send_msg(raw::UPDATE, &raw::update_body(&[], &attrs, &three))?;
    // At the limit: accepted, session up.
    lab.wait_for("three prefixes accepted", T, || {
        let p = peer(&t, IpAddr::V4(ra))?;
        ensure!(
            p["counters"]["prefixes_accepted"].as_u64() == Some(3),
            "{p}"
        );
        Ok(())
    })?;
    s.keepalive()?;
    let fourth: ipnet::Ipv4Net = "198.19.4.0/24".parse()?;
    s.send_msg(raw::UPDATE, &raw::update_body(&[], &attrs, &[fourth]))?;
    let (code, sub, data) = s.expect_notification(Duration::from_secs(10))?;
    ensure!((code, sub) == (6, 1), "got NOTIFICATION {code}/{sub}");
    // AFI 1, SAFI 1, limit 3.
    ensure!(data == [0, 1, 1, 0, 0, 0, 3], "Cease data {data:?}");
    lab.check_alive("tabby")?;
    Ok(())
}
