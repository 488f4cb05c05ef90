//! Scenario 11 (issue 14): Calico's Kubernetes datastore, against a real
//! kube-apiserver (built from k8s.io/kubernetes) with its own etcd. Every
//! object goes in with `kubectl` as an operator would; every tabbyd runs as
//! the DaemonSet's ServiceAccount with exactly `deploy/tabby-node.yaml`'s RBAC.
//!
//! - `mesh_tor_edits_and_secret_rotation`: three nodes and a BIRD 2 ToR, every
//!   block in every kernel; add, edit and delete of a BGPPeer, a BGPFilter, an
//!   IPPool, a BlockAffinity and a Node annotation each touch only their own
//!   sessions or routes; a rotated Secret re-establishes only its peer.
//! - `api_server_outage_and_relist`: the API server killed for 60 s: no
//!   session reset, no route removed; a change written meanwhile (straight
//!   into its etcd) is applied once it is back, through a re-list (410 Gone).
//! - `forbidden_verb_and_route_reflector`: a reflector (no FIB) and two
//!   clients; a ClusterRole without `watch` on bgpfilters gives one clear
//!   error and a `/readyz` reason, and nothing is lost; restored, it recovers.
//! - `calico_crds_in_the_v3_group`: Calico 3.32+'s CRDs in
//!   `projectcalico.org/v3` are found and read.
//! - `per_service_routes_follow_local_endpoints`: a Local LoadBalancer Service
//!   announced (ingress and cluster IP, /32 each) by the node of its ready
//!   endpoint only, following the EndpointSlice from node to node.

mod fixtures;

use ipnet::IpNet;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;

/// When the session with `addr` last entered its state (seconds since epoch).
fn since(t: &Tabbyd, addr: IpAddr) -> Result<u64> {
    peer(t, addr)?["state_since_unix_seconds"]
        .as_u64()
        .ok_or_else(|| anyhow!("no state_since for {addr}"))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Waits until the wall clock is past `t`, so a session re-established after
/// this shows a later `since` than one left alone.
fn next_second(lab: &Lab, t: u64) -> Result<()> {
    lab.wait_for("a second passes", T, || {
        ensure!(now_secs() > t, "same second");
        Ok(())
    })
}

/// Every session of `t` listed in `keep` still Established since the same second.
struct Uptimes(Vec<(usize, IpAddr, u64)>);

impl Uptimes {
    fn take(t: &[Tabbyd], pairs: &[(usize, IpAddr)]) -> Result<Uptimes> {
        Ok(Uptimes(
            pairs
                .iter()
                .map(|&(i, a)| Ok((i, a, since(&t[i], a)?)))
                .collect::<Result<_>>()?,
        ))
    }

    fn newest(&self) -> u64 {
        self.0.iter().map(|x| x.2).max().unwrap_or(0)
    }

    fn unchanged(&self, t: &[Tabbyd], what: &str) -> Result<()> {
        for &(i, a, s) in &self.0 {
            let p = peer(&t[i], a)?;
            ensure!(
                p["state"].as_str() == Some("Established") && since(&t[i], a)? == s,
                "{what}: {}'s session with {a} was touched: {p}",
                t[i].label
            );
        }
        Ok(())
    }
}

fn kdd_opts(name: &str, kubeconfig: &Path) -> TabbydOpts {
    let mut o = TabbydOpts::new(name, Datastore::Kubernetes(kubeconfig.to_path_buf()));
    o.deferral_time = Some(5);
    o.metrics = Some("127.0.0.1:9099".into());
    o.extra_args = vec!["--secret-namespace".into(), "tabby-system".into()];
    o
}

/// One tabbyd per node of `mesh`, each reading the API server as the
/// DaemonSet's ServiceAccount.
fn start_nodes(lab: &mut Lab, mesh: &NodeMesh, kubeconfig: &Path) -> Result<Vec<Tabbyd>> {
    (0..mesh.ns.len())
        .map(|i| {
            let name = node_name(i);
            lab.start_tabbyd(&mesh.ns[i], &name, &kdd_opts(&name, kubeconfig))
        })
        .collect()
}

/// `GET /readyz` of the tabbyd in `ns`: (HTTP status, body).
fn readyz(lab: &Lab, ns: &Ns) -> Result<(u16, String)> {
    let out = lab.exec(
        ns,
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "-w",
            "\n%{http_code}",
            "http://127.0.0.1:9099/readyz",
        ],
    )?;
    let (body, code) = out
        .trim_end()
        .rsplit_once('\n')
        .ok_or_else(|| anyhow!("curl printed {out:?}"))?;
    Ok((code.trim().parse()?, body.to_string()))
}

/// `n` nodes (`node-1`…), namespace `api` and one namespace per name in
/// `others`, all on one LAN.
fn kdd_lab(lab: &mut Lab, n: usize, others: &[&str]) -> Result<(NodeMesh, Ns, Vec<Ns>, Segment)> {
    let api = lab.ns("api")?;
    let nodes: Vec<Ns> = (0..n)
        .map(|i| lab.ns(&node_name(i)))
        .collect::<Result<_>>()?;
    let rest: Vec<Ns> = others.iter().map(|o| lab.ns(o)).collect::<Result<_>>()?;
    let members: Vec<&Ns> = std::iter::once(&api).chain(&nodes).chain(&rest).collect();
    let seg = lab.lan(&members)?;
    let addrs = nodes
        .iter()
        .map(|m| seg.v4(m).map(IpAddr::V4))
        .collect::<Result<_>>()?;
    Ok((NodeMesh { ns: nodes, addrs }, api, rest, seg))
}

#[test]
fn mesh_tor_edits_and_secret_rotation() -> Result<()> {
    need(&[Need::KubeApiServer, Need::Bird2]);
    let started = Instant::now();
    let mut lab = Lab::new("scen11a")?;
    let (mesh, api_ns, tors, seg) = kdd_lab(&mut lab, 3, &["tor-a", "tor-b"])?;
    let ip = |n: &Ns| seg.v4(n).map(IpAddr::V4);
    let api = lab.start_kube_apiserver(&api_ns, "kube", ip(&api_ns)?)?;
    let kubeconfig = kdd_install(&api)?;
    let (ta, tb) = (&tors[0], &tors[1]);
    let (aa, ab) = (ip(ta)?, ip(tb)?);
    let a = mesh.addrs.clone();

    // The cluster, through the API server: pool, nodes with blocks, the
    // mesh, BGPPeer tor-a (with a password from a Secret).
    let secret = |pw: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bgp-passwords\n  namespace: tabby-system\n\
             stringData:\n  tor-a: {pw}\n"
        )
    };
    api.apply(&secret("first-key"))?;
    let tor_a_peer = |more: &str| {
        kdd_doc(&bgp_peer_yaml(
            "tor-a",
            aa,
            65001,
            None,
            &format!(
                "  password:\n    secretKeyRef:\n      name: bgp-passwords\n      key: tor-a\n{more}"
            ),
        ))
    };
    let c = mesh.cluster(true).doc(&tor_a_peer(""));
    api.apply(&c.kdd())?;

    // The ToRs: tor-a with the password, tor-b ready for a BGPPeer that comes later.
    let tor_conf = |addr: IpAddr, asn: u32, origin: &str, pw: Option<&str>| {
        let IpAddr::V4(rid) = addr else {
            unreachable!()
        };
        let mut conf = Bird2Conf::new(rid).blackhole(net(origin));
        for (i, &n) in a.iter().enumerate() {
            let mut p = Bird2Peer::ebgp(&format!("node{}", i + 1), asn, n, CLUSTER_AS);
            p.local_addr = Some(addr);
            p.password = pw.map(str::to_string);
            conf = conf.peer(p);
        }
        conf.render()
    };
    let bird_a = lab.start_bird2(
        ta,
        "bird-tor-a",
        &tor_conf(aa, 65001, "198.19.1.0/24", Some("first-key")),
    )?;
    lab.start_bird2(
        tb,
        "bird-tor-b",
        &tor_conf(ab, 65002, "198.19.2.0/24", None),
    )?;

    let t = start_nodes(&mut lab, &mesh, &kubeconfig)?;
    lab.wait_for("mesh and tor-a Established on every node", T, || {
        for (i, ti) in t.iter().enumerate() {
            let mut want = mesh.others(i);
            want.push(aa);
            established(ti, &want)?;
        }
        Ok(())
    })?;
    for i in 0..3 {
        wait_kernel(&lab, &mesh.ns[i], &[(net("198.19.1.0/24"), Want::Via(aa))])?;
        for owner in 0..3 {
            mesh.wait_block_at(&lab, net(&format!("100.64.{}.0/26", owner + 1)), owner)?;
        }
    }
    let converged = started.elapsed();
    eprintln!("scenario 11a: three nodes converged from the API server in {converged:?}");

    // Every session there is now, to check that each edit leaves them alone.
    let all: Vec<(usize, IpAddr)> = (0..3)
        .flat_map(|i| {
            let mut v: Vec<(usize, IpAddr)> = mesh.others(i).into_iter().map(|o| (i, o)).collect();
            v.push((i, aa));
            v
        })
        .collect();
    let base = Uptimes::take(&t, &all)?;
    next_second(&lab, base.newest())?;

    // 1. BGPPeer added: tor-b comes up everywhere, nothing else moves.
    api.apply(&kdd_doc(&bgp_peer_yaml("tor-b", ab, 65002, None, "")))?;
    lab.wait_for("tor-b Established on every node", T, || {
        for ti in &t {
            established(ti, &[ab])?;
        }
        Ok(())
    })?;
    wait_kernel(&lab, &mesh.ns[2], &[(net("198.19.2.0/24"), Want::Via(ab))])?;
    base.unchanged(&t, "BGPPeer tor-b added")?;

    // 2. BGPPeer edited: tor-b only for node-1. node-2/3 drop it, node-1 keeps it.
    let tb1 = since(&t[0], ab)?;
    api.apply(&kdd_doc(&bgp_peer_yaml(
        "tor-b",
        ab,
        65002,
        Some("node-1"),
        "",
    )))?;
    lab.wait_for("tor-b gone from node-2 and node-3", T, || {
        for ti in &t[1..] {
            ensure!(peer(ti, ab).is_err(), "{} still has tor-b", ti.label);
        }
        Ok(())
    })?;
    ensure!(since(&t[0], ab)? == tb1, "node-1's tor-b session was reset");
    base.unchanged(&t, "BGPPeer tor-b narrowed to node-1")?;

    // 3. BGPPeer deleted.
    api.kubectl(&["delete", "bgppeers.crd.projectcalico.org", "tor-b"])?;
    lab.wait_for("tor-b gone from node-1", T, || {
        ensure!(peer(&t[0], ab).is_err(), "node-1 still has tor-b");
        Ok(())
    })?;
    lab.wait_no_kernel_route(&mesh.ns[0], Some(TABBY_PROTO), net("198.19.2.0/24"), T)?;
    base.unchanged(&t, "BGPPeer tor-b deleted")?;

    // 3b. BFD for tor-a through the annotation Calico's CRD keeps (its
    // schema would prune a spec field): every node starts a BFD session
    // (tor-a's BIRD runs none, so it stays Starting) and no BGP session
    // moves; the annotation's removal in step 4 moves none either.
    api.apply(&tor_a_peer("").replacen(
        "  name: tor-a\n",
        "  name: tor-a\n  annotations:\n    tabby-routing.io/bfd: '{\"interval\":\"200ms\"}'\n",
        1,
    ))?;
    lab.wait_for("BFD configured for tor-a on every node", T, || {
        for ti in &t {
            let b = &peer(ti, aa)?["bfd"];
            ensure!(
                b["desired_min_tx_us"] == 200_000 && b["state"] == "Starting",
                "{}: tor-a's BFD: {b}",
                ti.label
            );
        }
        Ok(())
    })?;
    base.unchanged(&t, "BFD turned on for tor-a")?;

    // 4. BGPFilter: tor-a's route rejected on import, then the filter removed.
    api.apply(&format!(
        "apiVersion: {KDD_API_VERSION}\nkind: BGPFilter\nmetadata:\n  name: no-tor-a\nspec:\n  importV4:\n  \
         - action: Reject\n    matchOperator: Equal\n    cidr: 198.19.1.0/24\n"
    ))?;
    api.apply(&tor_a_peer("  filters:\n  - no-tor-a\n"))?;
    for i in 0..3 {
        lab.wait_no_kernel_route(&mesh.ns[i], Some(TABBY_PROTO), net("198.19.1.0/24"), T)?;
    }
    base.unchanged(&t, "BGPFilter attached (a soft change)")?;
    api.kubectl(&["delete", "bgpfilters.crd.projectcalico.org", "no-tor-a"])?;
    for i in 0..3 {
        wait_kernel(&lab, &mesh.ns[i], &[(net("198.19.1.0/24"), Want::Via(aa))])?;
    }
    base.unchanged(&t, "BGPFilter deleted")?;
    // Still named by tor-a: reported (readiness, status), the rest runs.
    lab.wait_for("the missing BGPFilter reported", T, || {
        let (code, body) = readyz(&lab, &mesh.ns[0])?;
        ensure!(
            code == 503 && body.contains("BGPFilter 'no-tor-a' does not exist"),
            "{code} {body}"
        );
        let st = ctl(&t[0], &["status"])?;
        ensure!(st.contains("no-tor-a"), "{st}");
        Ok(())
    })?;
    api.apply(&tor_a_peer(""))?;
    lab.wait_for("node-1 ready once tor-a no longer names it", T, || {
        let (code, body) = readyz(&lab, &mesh.ns[0])?;
        ensure!(code == 200, "{code} {body}");
        Ok(())
    })?;
    base.unchanged(&t, "filter reference removed")?;

    // 5. IPPool and BlockAffinity: a second pool with a block on node-2.
    let b2 = net("100.65.2.0/26");
    api.apply(&format!(
        "apiVersion: {KDD_API_VERSION}\nkind: IPPool\nmetadata:\n  name: second\nspec:\n  cidr: 100.65.0.0/16\n  \
         blockSize: 26\n  ipipMode: Never\n  vxlanMode: Never\n---\n{}",
        kdd_doc(&block_affinity_yaml("node-2", b2))
    ))?;
    mesh.wait_block_at(&lab, b2, 1)?;
    base.unchanged(&t, "IPPool and BlockAffinity added")?;
    api.kubectl(&[
        "delete",
        "blockaffinities.crd.projectcalico.org",
        &block_affinity_name("node-2", b2),
    ])?;
    for i in 0..3 {
        lab.wait_no_kernel_route(&mesh.ns[i], Some(TABBY_PROTO), b2, T)?;
    }
    api.kubectl(&["delete", "ippools.crd.projectcalico.org", "second"])?;
    base.unchanged(&t, "BlockAffinity and IPPool deleted")?;

    // 6. Node annotation: node-3 moves to its own AS. Only node-3's mesh
    //    sessions are re-established (iBGP becomes eBGP); node-1 ↔ node-2 and
    //    every ToR session stay.
    api.kubectl(&[
        "annotate",
        "--overwrite",
        "node",
        "node-3",
        "projectcalico.org/ASNumber=64999",
    ])?;
    let a3 = a[2];
    lab.wait_for("node-3's mesh sessions re-established as eBGP", T, || {
        for ti in &t[..2] {
            let p = peer(ti, a3)?;
            ensure!(
                p["state"].as_str() == Some("Established")
                    && p["remote_as"].as_u64() == Some(64999),
                "{}: {p}",
                ti.label
            );
        }
        Ok(())
    })?;
    let untouched: Vec<(usize, IpAddr)> = all
        .iter()
        .copied()
        .filter(|&(i, p)| i != 2 && p != a3)
        .collect();
    let kept = Uptimes(
        base.0
            .iter()
            .copied()
            .filter(|x| untouched.contains(&(x.0, x.1)))
            .collect(),
    );
    kept.unchanged(&t, "node-3's AS annotation changed")?;
    mesh.wait_block_at(&lab, net("100.64.3.0/26"), 2)?;
    // The annotation removed: node-3 is back in the cluster AS (and tor-a,
    // which expects it there, takes it again).
    api.kubectl(&["annotate", "node", "node-3", "projectcalico.org/ASNumber-"])?;
    lab.wait_for("node-3 back in AS 64512 with every session", T, || {
        for (i, ti) in t.iter().enumerate() {
            let mut want = mesh.others(i);
            want.push(aa);
            established(ti, &want)?;
        }
        ensure!(peer(&t[0], a3)?["remote_as"].as_u64() == Some(u64::from(CLUSTER_AS)));
        Ok(())
    })?;

    // 7. Secret rotation: tor-a's password changes on both sides; only the
    //    tor-a sessions are re-established.
    let base = Uptimes::take(&t, &all)?;
    next_second(&lab, base.newest())?;
    let tor_a_before: Vec<u64> = (0..3).map(|i| since(&t[i], aa)).collect::<Result<_>>()?;
    std::fs::write(
        &bird_a.conf,
        tor_conf(aa, 65001, "198.19.1.0/24", Some("second-key")),
    )?;
    bird_a.configure()?;
    api.apply(&secret("second-key"))?;
    lab.wait_for("tor-a re-established with the new password", T, || {
        for i in 0..3 {
            established(&t[i], &[aa])?;
            ensure!(
                since(&t[i], aa)? > tor_a_before[i],
                "{} not yet",
                t[i].label
            );
        }
        bird_a.established("node1")
    })?;
    let mesh_only: Vec<(usize, IpAddr)> = all.iter().copied().filter(|&(_, p)| p != aa).collect();
    Uptimes(
        base.0
            .iter()
            .copied()
            .filter(|x| mesh_only.contains(&(x.0, x.1)))
            .collect(),
    )
    .unchanged(&t, "Secret rotated")?;
    for (ti, n) in t.iter().zip(&mesh.ns) {
        let (code, body) = readyz(&lab, n)?;
        ensure!(code == 200, "{} not ready: {body}", ti.label);
    }

    // 8. CalicoNodeStatus: node-1's is filled as calico-node fills it.
    api.apply(&format!(
        "apiVersion: {KDD_API_VERSION}\nkind: CalicoNodeStatus\nmetadata:\n  name: node-1-status\nspec:\n  \
         node: node-1\n  classes: [Agent, BGP, Routes]\n  updatePeriodSeconds: 5\n"
    ))?;
    lab.wait_for("node-1's CalicoNodeStatus filled", T, || {
        let out = api.kubectl(&[
            "get",
            "caliconodestatuses.crd.projectcalico.org",
            "node-1-status",
            "-o",
            "json",
        ])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        let s = &v["status"];
        ensure!(s["bgp"]["numberEstablishedV4"] == 3, "{s}");
        ensure!(s["agent"]["birdV4"]["state"] == "Ready", "{s}");
        ensure!(s["agent"]["birdV4"]["routerID"] == a[0].to_string(), "{s}");
        let peers = s["bgp"]["peersV4"].as_array().cloned().unwrap_or_default();
        let tor = peers.iter().find(|p| p["peerIP"] == aa.to_string());
        ensure!(
            tor.is_some_and(|p| p["type"] == "GlobalPeer" && p["state"] == "Established"),
            "{peers:?}"
        );
        ensure!(
            peers.iter().filter(|p| p["type"] == "NodeMesh").count() == 2,
            "{peers:?}"
        );
        let routes = s["routes"]["routesV4"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ensure!(
            routes.iter().any(|r| r["destination"] == "100.64.2.0/26"
                && r["type"] == "FIB"
                && r["gateway"] == a[1].to_string()
                && r["learnedFrom"]["sourceType"] == "NodeMesh"),
            "{routes:?}"
        );
        ensure!(
            routes.iter().any(|r| r["destination"] == "100.64.1.0/26"
                && r["learnedFrom"]["sourceType"] == "Static"),
            "{routes:?}"
        );
        ensure!(s["lastUpdated"].is_string(), "{s}");
        Ok(())
    })?;
    eprintln!("scenario 11a: passed in {:?}", started.elapsed());
    Ok(())
}

/// The revision etcd is at now (from a read's response header).
fn etcd_revision(etcd: &Etcd) -> Result<u64> {
    let out = etcd.ctl(&["get", "/registry/namespaces/default", "-w", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v["header"]["revision"]
        .as_u64()
        .or_else(|| {
            v["header"]["revision"]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .ok_or_else(|| anyhow!("no revision in {out}"))
}

#[test]
fn api_server_outage_and_relist() -> Result<()> {
    need(&[Need::KubeApiServer]);
    let started = Instant::now();
    let mut lab = Lab::new("scen11b")?;
    let (mesh, api_ns, _, seg) = kdd_lab(&mut lab, 2, &[])?;
    let api = lab.start_kube_apiserver(&api_ns, "kube", IpAddr::V4(seg.v4(&api_ns)?))?;
    let kubeconfig = kdd_install(&api)?;
    api.apply(&mesh.cluster(true).kdd())?;
    let t = start_nodes(&mut lab, &mesh, &kubeconfig)?;
    lab.wait_for("mesh Established", T, || mesh.established(&t))?;
    for owner in 0..2 {
        mesh.wait_block_at(&lab, net(&format!("100.64.{}.0/26", owner + 1)), owner)?;
    }
    let pairs = [(0, mesh.addrs[1]), (1, mesh.addrs[0])];
    let base = Uptimes::take(&t, &pairs)?;

    // The API server goes away for 60 s.
    api.kill9(&mut lab)?;
    let down = Instant::now();
    lab.wait_for("both nodes report the API server unreachable", T, || {
        for (i, n) in mesh.ns.iter().enumerate() {
            let (code, body) = readyz(&lab, n)?;
            ensure!(
                code == 503 && body.contains("retrying with back-off"),
                "{}: {code} {body}",
                t[i].label
            );
        }
        Ok(())
    })?;
    // Meanwhile a block is confirmed for node-1 (written where the API
    // server keeps it), and etcd's history is compacted past every
    // resourceVersion the watchers hold: their resumed watches get 410 Gone.
    let b = net("100.64.11.0/26");
    let name = block_affinity_name("node-1", b);
    api.etcd.put(
        &format!("/registry/crd.projectcalico.org/blockaffinities/{name}"),
        &serde_json::json!({
            "apiVersion": KDD_API_VERSION,
            "kind": "BlockAffinity",
            "metadata": {
                "name": name,
                "uid": "6f1d5f2e-5d1e-4f7e-9a59-1b0c3d6e0b11",
                "creationTimestamp": "2026-12-07T00:00:00Z",
                "generation": 1
            },
            "spec": {"node": "node-1", "cidr": b.to_string(), "state": "confirmed", "deleted": "false"}
        })
        .to_string(),
    )?;
    let rev = etcd_revision(&api.etcd)?;
    api.etcd.ctl(&["compact", &rev.to_string()])?;
    while down.elapsed() < Duration::from_secs(60) {
        base.unchanged(&t, "API server down")?;
        for owner in 0..2 {
            let block = net(&format!("100.64.{}.0/26", owner + 1));
            for (i, n) in mesh.ns.iter().enumerate() {
                let want = if i == owner {
                    Want::Blackhole
                } else {
                    Want::Via(mesh.addrs[owner])
                };
                kernel_has(&lab, n, &[(block, want)])?;
            }
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    api.restart(&mut lab)?;
    mesh.wait_block_at(&lab, b, 0)?;
    base.unchanged(&t, "API server back")?;
    lab.wait_for("both nodes ready again", Duration::from_secs(90), || {
        for (i, n) in mesh.ns.iter().enumerate() {
            let (code, body) = readyz(&lab, n)?;
            ensure!(code == 200, "{}: {code} {body}", t[i].label);
        }
        Ok(())
    })?;
    for ti in &t {
        let log = std::fs::read_to_string(lab.log_path(&ti.label)?)?;
        ensure!(
            log.contains("410 Gone"),
            "{}: no watch was answered with 410 Gone (and re-listed)",
            ti.label
        );
    }
    eprintln!("scenario 11b: passed in {:?}", started.elapsed());
    Ok(())
}

/// The ClusterRole `tabby-node` with `bgpfilters` reduced to `list` (no
/// `get`, no `watch`).
fn without_bgpfilter_watch(role: &str) -> Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(role)?;
    let rules = v["rules"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("ClusterRole without rules: {role}"))?;
    let mut groups = vec![];
    for r in rules.iter_mut() {
        if let Some(res) = r["resources"].as_array_mut()
            && res.iter().any(|x| x == "bgpfilters")
        {
            res.retain(|x| x != "bgpfilters");
            groups = r["apiGroups"].as_array().cloned().unwrap_or_default();
        }
    }
    ensure!(!groups.is_empty(), "no rule grants bgpfilters: {role}");
    rules.retain(|r| r["resources"].as_array().is_some_and(|a| !a.is_empty()));
    rules.push(serde_json::json!({
        "apiGroups": groups, "resources": ["bgpfilters"], "verbs": ["list"]
    }));
    Ok(strip_server_fields(v))
}

/// An object as read, without what the server sets (so `replace` takes it).
fn strip_server_fields(mut v: serde_json::Value) -> String {
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    v.to_string()
}

#[test]
fn forbidden_verb_and_route_reflector() -> Result<()> {
    need(&[Need::KubeApiServer]);
    let started = Instant::now();
    let mut lab = Lab::new("scen11c")?;
    let (mesh, api_ns, others, seg) = kdd_lab(&mut lab, 2, &["rr-1"])?;
    let rr_ns = &others[0];
    let rr_addr = IpAddr::V4(seg.v4(rr_ns)?);
    let api = lab.start_kube_apiserver(&api_ns, "kube", IpAddr::V4(seg.v4(&api_ns)?))?;
    let kubeconfig = kdd_install(&api)?;

    // No mesh: both nodes peer with the reflector rr-1, selected by label.
    let mut c = mesh.cluster(true);
    c.mesh = false;
    let IpAddr::V4(rr4) = rr_addr else {
        unreachable!()
    };
    let mut rr = NodeSpec::v4("rr-1", rr4);
    rr.rr_cluster_id = Some("224.0.0.1".parse()?);
    rr.labels.push(("route-reflector".into(), "true".into()));
    c = c.node(rr).doc(&format!(
        "apiVersion: {KDD_API_VERSION}\nkind: BGPPeer\nmetadata:\n  name: peer-with-rr\nspec:\n  \
         nodeSelector: \"!has(route-reflector)\"\n  peerSelector: has(route-reflector)"
    ));
    api.apply(&c.kdd())?;

    let mut ro = kdd_opts("rr-1", &kubeconfig);
    ro.no_fib = true;
    let trr = lab.start_tabbyd(rr_ns, "rr-1", &ro)?;
    let t = start_nodes(&mut lab, &mesh, &kubeconfig)?;
    lab.wait_for("clients Established with the reflector", T, || {
        established(&trr, &mesh.addrs)?;
        for (i, ti) in t.iter().enumerate() {
            established(ti, &[rr_addr])?;
            ensure!(
                peer(ti, mesh.addrs[1 - i]).is_err(),
                "{} has a mesh session although the mesh is off",
                ti.label
            );
        }
        Ok(())
    })?;
    for owner in 0..2 {
        mesh.wait_block_at(&lab, net(&format!("100.64.{}.0/26", owner + 1)), owner)?;
    }
    ensure!(
        lab.kernel_routes_proto(rr_ns, TABBY_PROTO)?.is_empty(),
        "the reflector (--no-fib) programmed its kernel"
    );
    eprintln!(
        "scenario 11c: reflector and clients converged in {:?}",
        started.elapsed()
    );

    // node-2 restarts under a ClusterRole that lacks `watch` on bgpfilters.
    let role = api.kubectl(&["get", "clusterrole", "tabby-node", "-o", "json"])?;
    api.kubectl_stdin(&["replace", "-f", "-"], &without_bgpfilter_watch(&role)?)?;
    let keep = Uptimes::take(&t, &[(0, rr_addr)])?;
    lab.restart(&t[1].label)?;
    lab.wait_for(
        "node-2 back with its session and a readiness reason",
        T,
        || {
            established(&t[1], &[rr_addr])?;
            let (code, body) = readyz(&lab, &mesh.ns[1])?;
            ensure!(
                code == 503 && body.contains("bgpfilters") && body.contains("forbidden"),
                "{code} {body}"
            );
            Ok(())
        },
    )?;
    for owner in 0..2 {
        mesh.wait_block_at(&lab, net(&format!("100.64.{}.0/26", owner + 1)), owner)?;
    }
    keep.unchanged(&t, "node-2 restarted without watch on bgpfilters")?;
    let log = std::fs::read_to_string(lab.log_path("node-2")?)?;
    let lines = log
        .lines()
        .filter(|l| l.contains("cannot read bgpfilters: forbidden"))
        .count();
    ensure!(
        lines == 1,
        "expected one clear log line about the forbidden watch, found {lines}:\n{log}"
    );
    // Everything else still applies: a new block for node-1 reaches node-2.
    let b = net("100.64.21.0/26");
    api.apply(&kdd_doc(&block_affinity_yaml("node-1", b)))?;
    mesh.wait_block_at(&lab, b, 0)?;

    // The verb restored: node-2 recovers by itself (its watcher backs off and retries).
    api.kubectl_stdin(
        &["replace", "-f", "-"],
        &strip_server_fields(serde_json::from_str(&role)?),
    )?;
    lab.wait_for("node-2 ready again", Duration::from_secs(120), || {
        let (code, body) = readyz(&lab, &mesh.ns[1])?;
        ensure!(code == 200, "{code} {body}");
        Ok(())
    })?;
    eprintln!("scenario 11c: passed in {:?}", started.elapsed());
    Ok(())
}

/// Calico 3.32+ may install its CRDs in `projectcalico.org/v3` instead of
/// `crd.projectcalico.org/v1`: tabbyd finds them there by itself.
#[test]
fn calico_crds_in_the_v3_group() -> Result<()> {
    need(&[Need::KubeApiServer]);
    let started = Instant::now();
    let mut lab = Lab::new("scen11d")?;
    let (mesh, api_ns, _, seg) = kdd_lab(&mut lab, 2, &[])?;
    let api = lab.start_kube_apiserver(&api_ns, "kube", IpAddr::V4(seg.v4(&api_ns)?))?;
    // Our CRDs, moved to the v3 group the way Calico 3.32+ names them.
    let crds = interop_tests::preflight::workspace_root().join("deploy/crds");
    let mut docs = vec![];
    for e in std::fs::read_dir(&crds)? {
        let text = std::fs::read_to_string(e?.path())?;
        docs.push(
            text.replace(".crd.projectcalico.org", ".projectcalico.org")
                .replace("group: crd.projectcalico.org", "group: projectcalico.org")
                .replace("  - name: v1\n", "  - name: v3\n"),
        );
    }
    api.apply(&docs.join("\n---\n"))?;
    api.wait_crds()?;
    let kubeconfig = api.install_tabby_node()?;
    let objects = mesh.cluster(true).kdd().replace(
        &format!("apiVersion: {KDD_API_VERSION}"),
        "apiVersion: projectcalico.org/v3",
    );
    api.apply(&objects)?;
    let t = start_nodes(&mut lab, &mesh, &kubeconfig)?;
    lab.wait_for("mesh Established", T, || mesh.established(&t))?;
    for owner in 0..2 {
        mesh.wait_block_at(&lab, net(&format!("100.64.{}.0/26", owner + 1)), owner)?;
    }
    let log = std::fs::read_to_string(lab.log_path("node-1")?)?;
    ensure!(
        log.contains("connected to the Kubernetes API group=V3"),
        "node-1 did not use the v3 group:\n{log}"
    );
    eprintln!("scenario 11d: passed in {:?}", started.elapsed());
    Ok(())
}

/// Which of the nodes originate `prefix` themselves (the others may have it from them:
/// as in Calico, a route inside a service range is exported whoever it came from).
fn originators(t: &[Tabbyd], prefix: IpNet) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for (i, ti) in t.iter().enumerate() {
        let local = rib_paths(ti, prefix)?.iter().any(|p| {
            p["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("local:"))
        });
        if local {
            out.push(i + 1);
        }
    }
    Ok(out)
}

#[test]
fn per_service_routes_follow_local_endpoints() -> Result<()> {
    // A LoadBalancer Service with externalTrafficPolicy Local, its ingress IP in
    // serviceLoadBalancerIPs: announced as a /32 (with its cluster IP) by the node
    // where its ready endpoint is, wherever the EndpointSlice moves it.
    need(&[Need::KubeApiServer, Need::Bird2]);
    let mut lab = Lab::new("scen11e")?;
    let (mesh, api_ns, tors, seg) = kdd_lab(&mut lab, 2, &["tor"])?;
    let ip = |n: &Ns| seg.v4(n).map(IpAddr::V4);
    let api = lab.start_kube_apiserver(&api_ns, "kube", ip(&api_ns)?)?;
    let kubeconfig = kdd_install(&api)?;
    let at = ip(&tors[0])?;
    let mut c = mesh
        .cluster(true)
        .doc(&kdd_doc(&bgp_peer_yaml("tor", at, 65001, None, "")));
    c.default_spec = vec![
        "serviceClusterIPs: [{cidr: 198.19.255.0/24}]".into(),
        "serviceLoadBalancerIPs: [{cidr: 198.19.100.0/24}]".into(),
    ];
    api.apply(&c.kdd())?;
    let IpAddr::V4(rid) = at else { unreachable!() };
    let mut conf = Bird2Conf::new(rid);
    for (i, &n) in mesh.addrs.iter().enumerate() {
        conf = conf.peer(Bird2Peer::ebgp(
            &format!("node{}", i + 1),
            65001,
            n,
            CLUSTER_AS,
        ));
    }
    let bird = lab.start_bird2(&tors[0], "bird-tor", &conf.render())?;
    let t = start_nodes(&mut lab, &mesh, &kubeconfig)?;
    lab.wait_for("the ToR Established on both nodes", T, || {
        for ti in &t {
            established(ti, &[at])?;
        }
        Ok(())
    })?;

    api.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\n\
         spec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports:\n  - port: 80\n",
    )?;
    api.kubectl(&[
        "patch",
        "service",
        "web",
        "-n",
        "default",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"198.19.100.20"}]}}}"#,
    ])?;
    let cluster_ip = api
        .kubectl(&[
            "get",
            "service",
            "web",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])?
        .trim()
        .to_string();
    let cluster_ip: IpNet = format!("{cluster_ip}/32").parse()?;
    let lb = net("198.19.100.20/32");
    let slice = |node: &str, ready: bool| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  \
             namespace: default\n  labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\n\
             endpoints:\n- addresses: [100.64.1.5]\n  conditions: {{ready: {ready}}}\n  nodeName: {node}\n\
             ports:\n- port: 80\n  protocol: TCP\n"
        )
    };
    // Ready on node-1: only node-1 announces it.
    api.apply(&slice("node-1", true))?;
    lab.wait_for("the Service's addresses from node-1 only", T, || {
        for p in [lb, cluster_ip] {
            let by = originators(&t, p)?;
            ensure!(by == [1], "{p} originated by nodes {by:?}");
            ensure!(!bird.routes_for(p)?.is_empty(), "{p} not at the ToR");
        }
        Ok(())
    })?;
    // The endpoint moves to node-2.
    api.apply(&slice("node-2", true))?;
    lab.wait_for("the Service's addresses from node-2 only", T, || {
        for p in [lb, cluster_ip] {
            let by = originators(&t, p)?;
            ensure!(by == [2], "{p} originated by nodes {by:?}");
            ensure!(!bird.routes_for(p)?.is_empty(), "{p} not at the ToR");
        }
        Ok(())
    })?;
    // Not ready: nobody announces it.
    api.apply(&slice("node-2", false))?;
    lab.wait_for("the Service's addresses withdrawn", T, || {
        for p in [lb, cluster_ip] {
            let by = originators(&t, p)?;
            ensure!(by.is_empty(), "{p} originated by nodes {by:?}");
            let at = bird.routes_for(p)?;
            ensure!(at.is_empty(), "{p} still at the ToR: {at:?}");
        }
        Ok(())
    })?;
    // The range itself stays announced by both.
    let by = originators(&t, net("198.19.100.0/24"))?;
    ensure!(by == [1, 2], "the LoadBalancer range originated by {by:?}");
    Ok(())
}
