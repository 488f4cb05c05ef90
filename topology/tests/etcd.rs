//! The etcd datastore against a real `etcd` (Debian package etcd-server) on loopback:
//! list, watch, per-key rejection of bad values, deletes, reconnect after a restart
//! (resuming the watch) and a re-list after compaction.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use tabby_topology::*;

const PREFIX: &str = "/calico/resources/v3/projectcalico.org";

/// One etcd process on two free loopback ports; killed (by pid) on drop.
struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        let mut e = Etcd {
            child: None,
            dir: dir.to_path_buf(),
            client_port: free_port(),
            peer_port: free_port(),
        };
        e.spawn();
        e
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        if Command::new("etcd").arg("--version").output().is_err() {
            panic!(
                "etcd not found: install the Debian package etcd-server (scripts/install-deps.sh)"
            );
        }
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let child = Command::new("etcd")
            .arg("--name=tabby-test")
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!("--listen-client-urls={}", self.url()))
            .arg(format!("--advertise-client-urls={}", self.url()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=tabby-test={peer}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn client(&self) -> Client {
        for _ in 0..100 {
            if let Ok(mut c) = Client::connect([self.url()], None).await
                && c.status().await.is_ok()
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        panic!("etcd did not come up on {}:\n{log}", self.url());
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn put(c: &mut Client, path: &str, json: &str) {
    c.put(format!("{PREFIX}/{path}"), json, None).await.unwrap();
}

async fn next(src: &mut EtcdSource) -> Result<Arc<Resources>, TopologyError> {
    tokio::time::timeout(Duration::from_secs(30), src.next())
        .await
        .expect("etcd source produced nothing within 30 s")
}

fn node(name: &str, ip: &str) -> String {
    format!(
        r#"{{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{{"name":"{name}"}},"spec":{{"bgp":{{"ipv4Address":"{ip}/24"}}}}}}"#
    )
}

fn peer(name: &str, spec: &str) -> String {
    format!(
        r#"{{"apiVersion":"projectcalico.org/v3","kind":"BGPPeer","metadata":{{"name":"{name}"}},"spec":{spec}}}"#
    )
}

fn filter(cidr: &str) -> String {
    format!(
        r#"{{"apiVersion":"projectcalico.org/v3","kind":"BGPFilter","metadata":{{"name":"edge"}},"spec":{{"exportV4":[{{"action":"Reject","matchOperator":"In","cidr":"{cidr}"}}]}}}}"#
    )
}

fn key(ip: &str) -> PeerKey {
    PeerKey {
        address: ip.parse().unwrap(),
        port: 179,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_reject_delete_reconnect_relist() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Etcd::start(dir.path());
    let mut c = etcd.client().await;

    put(&mut c, "bgpconfigurations/default", r#"{"kind":"BGPConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"asNumber":64512}}"#).await;
    put(&mut c, "nodes/node-a", &node("node-a", "198.18.0.11")).await;
    put(&mut c, "nodes/node-b", &node("node-b", "198.18.0.12")).await;
    put(&mut c, "nodes/node-c", &node("node-c", "198.18.0.13")).await;
    put(&mut c, "bgpfilters/edge", &filter("198.19.0.0/16")).await;
    put(
        &mut c,
        "bgppeers/tor",
        &peer(
            "tor",
            r#"{"peerIP":"198.18.0.1","asNumber":65000,"filters":["edge"]}"#,
        ),
    )
    .await;
    put(
        &mut c,
        "bgppeers/tor2",
        &peer("tor2", r#"{"node":"node-a","peerIP":"198.18.0.2","asNumber":65000,"password":{"secretKeyRef":{"name":"bgp","key":"pw"}}}"#),
    )
    .await;
    // A Secret under secrets/<namespace>/<name>; its object names no namespace.
    put(&mut c, "secrets/calico-system/bgp", r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"bgp"},"stringData":{"pw":"s3cret"}}"#).await;
    // Something Tabby does not use.
    put(
        &mut c,
        "felixconfigurations/default",
        r#"{"kind":"FelixConfiguration","metadata":{"name":"default"}}"#,
    )
    .await;

    let spec: DatastoreSpec = format!("etcd:{}", etcd.url()).parse().unwrap();
    let DatastoreSpec::Etcd(urls) = spec else {
        unreachable!()
    };
    // Small pages so the paged list is exercised with a handful of keys.
    let mut src = EtcdSource::new(urls).with_page_size(3);

    // 1. Initial list.
    let r1 = next(&mut src).await.unwrap();
    assert_eq!(r1.nodes.len(), 3);
    assert_eq!(r1.bgp_peers.len(), 2);
    let s1 = derive(&r1, "node-a").unwrap();
    assert_eq!(s1.peers.len(), 4, "two mesh + tor + tor2");
    // 9 keys (one of a kind Tabby ignores) in pages of 3.
    assert_eq!(src.pages_last_list(), 3);
    assert_eq!(
        s1.peers[&key("198.18.0.2")].password.as_deref(),
        Some("s3cret")
    );

    // 2. Edit one BGPPeer: only that session changes.
    put(
        &mut c,
        "bgppeers/tor2",
        &peer("tor2", r#"{"node":"node-a","peerIP":"198.18.0.2","asNumber":65001,"password":{"secretKeyRef":{"name":"bgp","key":"pw"}}}"#),
    )
    .await;
    let r2 = next(&mut src).await.unwrap();
    let s2 = derive(&r2, "node-a").unwrap();
    assert_eq!(
        diff(&s1, &s2),
        vec![Change::PeerChanged {
            key: key("198.18.0.2"),
            fields: vec![PeerField::PeerAs]
        }]
    );

    // 3. Edit the BGPFilter: policy only, on the one peer using it.
    put(&mut c, "bgpfilters/edge", &filter("198.19.0.0/17")).await;
    let r3 = next(&mut src).await.unwrap();
    let s3 = derive(&r3, "node-a").unwrap();
    let d = diff(&s2, &s3);
    assert_eq!(
        d,
        vec![Change::PeerChanged {
            key: key("198.18.0.1"),
            fields: vec![PeerField::Filters]
        }]
    );
    assert!(!d[0].needs_reset());

    // 4. A bad value is reported and not applied; the key keeps its good value.
    put(
        &mut c,
        "bgppeers/tor",
        &peer("tor", r#"{"peerIP":"198.18.0.999","asNumber":65000}"#),
    )
    .await;
    let e = next(&mut src).await.unwrap_err();
    assert!(e.to_string().contains("spec.peerIP"), "{e}");
    put(&mut c, "nodes/node-d", &node("node-d", "198.18.0.14")).await;
    let r4 = next(&mut src).await.unwrap();
    assert_eq!(
        r4.bgp_peers["tor"]
            .peer_ip
            .map(|p| p.0.to_string())
            .as_deref(),
        Some("198.18.0.1")
    );
    assert_eq!(r4.nodes.len(), 4);

    // 5. Delete.
    c.delete(format!("{PREFIX}/bgppeers/tor2"), None)
        .await
        .unwrap();
    let r5 = next(&mut src).await.unwrap();
    assert!(!r5.bgp_peers.contains_key("tor2"));

    // 6. etcd restarts; a change made meanwhile arrives through the resumed watch.
    etcd.stop();
    let e = next(&mut src).await.unwrap_err();
    assert!(matches!(e, TopologyError::Etcd { .. }), "{e}");
    etcd.spawn();
    let mut c = etcd.client().await;
    put(&mut c, "nodes/node-e", &node("node-e", "198.18.0.15")).await;
    let r6 = loop {
        // While etcd comes back the source may report more connection errors first.
        match next(&mut src).await {
            Ok(r) => break r,
            Err(TopologyError::Etcd { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(r6.nodes.contains_key("node-e"));
    assert_eq!(src.list_count(), 1, "the watch resumed; no re-list");
    assert!(r6.bgp_peers.contains_key("tor"));

    // 7. Restart again, change, compact past our revision: the source lists afresh.
    let before = src.revision();
    etcd.stop();
    let _ = next(&mut src).await.unwrap_err();
    etcd.spawn();
    let mut c = etcd.client().await;
    put(&mut c, "nodes/node-f", &node("node-f", "198.18.0.16")).await;
    c.delete(format!("{PREFIX}/nodes/node-d"), None)
        .await
        .unwrap();
    let head = c.get("x", None).await.unwrap().header().unwrap().revision();
    c.compact(head, None).await.unwrap();
    assert!(head > before + 1);
    let mut still_bad_reported = false;
    let r7 = loop {
        match next(&mut src).await {
            Ok(r) => break r,
            Err(TopologyError::Etcd { .. }) => continue,
            // The re-list reads the still-bad `tor` again and says so again.
            Err(e @ TopologyError::Invalid { .. }) => {
                assert!(e.to_string().contains("BGPPeer 'tor'"), "{e}");
                still_bad_reported = true;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(still_bad_reported);
    // …and keeps its last good value through the re-list.
    assert_eq!(r7.bgp_peers["tor"].as_number, Some(65000));
    assert!(r7.nodes.contains_key("node-f"));
    assert!(!r7.nodes.contains_key("node-d"));
    assert!(src.revision() >= head);
    assert_eq!(src.list_count(), 2, "compaction forced exactly one re-list");
    let s7 = derive(&r7, "node-a").unwrap();
    assert_eq!(
        s7.peers
            .values()
            .filter(|p| p.kind == PeerKind::Mesh)
            .count(),
        4
    );
}
