//! The file datastore: initial load, re-apply on change, a bad document skipped (its last
//! good version kept) while the rest applies, a non-YAML update reported while the caller
//! keeps its last snapshot, recovery.

use std::time::Duration;

use tabby_topology::*;

const NODE: &str = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node-a}\nspec: {bgp: {ipv4Address: 198.18.0.11/24}}\n";
const PEER: &str = "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 198.18.0.1, asNumber: 65000}\n";

async fn next(src: &mut FileSource) -> Result<std::sync::Arc<Resources>, TopologyError> {
    tokio::time::timeout(Duration::from_secs(10), src.next())
        .await
        .expect("file source produced nothing within 10 s")
}

fn write(path: &std::path::Path, text: &str) {
    // Write-then-rename, as editors and config managers do, so the poller never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn reloads_on_change_and_survives_a_bad_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    write(&path, NODE);
    let mut src = FileSource::new(path.clone()).with_interval(Duration::from_millis(50));

    let first = next(&mut src).await.unwrap();
    assert_eq!(first.nodes.len(), 1);
    assert!(first.bgp_peers.is_empty());

    write(&path, &format!("{NODE}{PEER}"));
    let second = next(&mut src).await.unwrap();
    assert_eq!(second.bgp_peers.len(), 1);
    let good = derive(&second, "node-a").unwrap();
    assert_eq!(good.peers.len(), 1);

    // A bad edit of one document: a snapshot all the same, the rest applied, that document
    // skipped with a problem naming the field, and its last good version kept.
    write(
        &path,
        &format!(
            "{}{}",
            NODE.replace("198.18.0.11/24", "198.18.0.12/24"),
            PEER.replace("198.18.0.1", "198.18.0.999")
        ),
    );
    let partial = next(&mut src).await.unwrap();
    assert_eq!(
        partial.nodes["node-a"].ipv4_addr(),
        Some("198.18.0.12".parse().unwrap())
    );
    assert_eq!(partial.bgp_peers["tor"], second.bgp_peers["tor"]);
    assert_eq!(partial.problems.len(), 1);
    let p = &partial.problems[0];
    assert!(
        p.contains("document 2") && p.contains("spec.peerIP") && p.contains("last good version"),
        "{p}"
    );

    // Text that is not YAML: an error for the whole file; the caller keeps `partial`.
    write(&path, &format!("{NODE}---\nkind: [unclosed\n"));
    let e = next(&mut src).await.unwrap_err();
    assert!(e.to_string().contains("not valid YAML"), "{e}");

    // Fixed again: a new good snapshot arrives.
    write(&path, &format!("{NODE}{}", PEER.replace("65000", "65001")));
    let third = next(&mut src).await.unwrap();
    assert_eq!(third.bgp_peers["tor"].as_number, Some(65001));

    // Touching the file without changing it produces nothing new.
    write(&path, &format!("{NODE}{}", PEER.replace("65000", "65001")));
    let quiet = tokio::time::timeout(Duration::from_millis(400), src.next()).await;
    assert!(quiet.is_err(), "an unchanged file must not be re-applied");
}

#[tokio::test]
async fn a_bad_document_at_start_is_skipped_without_a_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    write(
        &path,
        &format!("{NODE}{}", PEER.replace("65000", "sixty-five")),
    );
    let mut src = FileSource::new(path.clone()).with_interval(Duration::from_millis(50));
    let first = next(&mut src).await.unwrap();
    assert_eq!(first.nodes.len(), 1);
    assert!(first.bgp_peers.is_empty());
    assert_eq!(first.problems.len(), 1);
    assert!(
        first.problems[0].ends_with("; skipped"),
        "{}",
        first.problems[0]
    );
    // The node itself derives; nothing for the skipped peer.
    assert!(derive(&first, "node-a").unwrap().peers.is_empty());
}

#[tokio::test]
async fn missing_file_is_an_error_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.yaml");
    let spec: DatastoreSpec = format!("file:{}", path.display()).parse().unwrap();
    let mut src = Source::open(&spec, None);
    let e = tokio::time::timeout(Duration::from_secs(5), src.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("later.yaml"), "{e}");
    // An empty file is a valid (empty) datastore.
    write(&path, "");
    let r = tokio::time::timeout(Duration::from_secs(5), src.next())
        .await
        .unwrap()
        .unwrap();
    assert!(r.is_empty());
    write(&path, NODE);
    let r = tokio::time::timeout(Duration::from_secs(5), src.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.nodes.len(), 1);
    // Removed: reported once; back with the same text: nothing new to apply.
    std::fs::remove_file(&path).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), src.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, TopologyError::Io { .. }), "{e}");
    write(&path, NODE);
    let quiet = tokio::time::timeout(Duration::from_millis(2500), src.next()).await;
    assert!(quiet.is_err(), "same contents as the last good snapshot");
}
