//! The `kdd` benchmark's measurements work: at tiny sizes (20 nodes, one
//! sample each) against the lab's real kube-apiserver, a BGPPeer comes up,
//! the node under test derives its two reflector peers from the cluster,
//! and a reflector's new address reaches its peer list.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use interop_tests::bench::kdd::{KddLab, moved_addr, node_addr};
use interop_tests::{Need, preflight, tabbyd_bin};

#[test]
fn kdd_measurements_at_tiny_sizes() {
    preflight(&[Need::Root, Need::KubeApiServer, Need::Bird2]).unwrap_or_else(|e| panic!("{e}"));
    let tabbyd = tabbyd_bin().unwrap_or_else(|e| panic!("lab test cannot run: {e:#}"));
    let t0 = Instant::now();
    let mut k = KddLab::start(&tabbyd).unwrap_or_else(|e| panic!("{e:#}"));

    let p = k.peer_apply(1).unwrap_or_else(|e| panic!("(1): {e:#}"));
    assert_eq!(p.runs.len(), 1);
    assert!(p.rest_cpu_per_s >= 0.0, "{p:?}");
    let p = p.runs[0];
    assert!(p.kubectl > Duration::ZERO, "{p:?}");
    assert!(
        p.configured > Duration::ZERO && p.configured <= p.established,
        "{p:?}"
    );
    assert!(p.established < Duration::from_secs(30), "{p:?}");
    assert!(p.delete_gone > Duration::ZERO, "{p:?}");

    let s = k
        .create_cluster(20)
        .unwrap_or_else(|e| panic!("(2) setup: {e:#}"));
    assert_eq!(s.objects, 19 + 19 + 2, "{s:?}");
    let rr: [Ipv4Addr; 2] = [node_addr(18).unwrap(), node_addr(19).unwrap()];
    assert_eq!(k.reflectors, Some(rr));

    let st = k.first_config(1).unwrap_or_else(|e| panic!("(2): {e:#}"));
    assert_eq!(st.len(), 1);
    let st = &st[0];
    assert!(st.first_config > Duration::ZERO, "{st:?}");
    assert!(st.cpu > 0.0 && st.peak_rss_mib > 1.0, "{st:?}");
    let mut want: Vec<String> = rr.iter().map(Ipv4Addr::to_string).collect();
    want.sort();
    assert_eq!(
        st.peers, want,
        "the node peers with exactly the two reflectors"
    );

    let c = k.node_change(1).unwrap_or_else(|e| panic!("(3): {e:#}"));
    assert_eq!(c.runs.len(), 1);
    let r = c.runs[0];
    assert_eq!((r.from, r.to), (rr[0], moved_addr(rr[0])));
    assert!(
        r.seen > Duration::ZERO && r.kubectl > Duration::ZERO,
        "{r:?}"
    );
    assert_eq!(k.reflectors, Some([moved_addr(rr[0]), rr[1]]));
    drop(k);
    eprintln!("kdd smoke test: {:?}", t0.elapsed());
    assert!(
        t0.elapsed() < Duration::from_secs(90),
        "took {:?}",
        t0.elapsed()
    );
}
