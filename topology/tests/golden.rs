//! Golden files: the whole derived state of a few nodes, as text, reviewed in diffs.
//! Regenerate with `TABBY_BLESS=1 cargo test -p tabby-topology --test golden`.

use tabby_topology::*;

fn check(fixture: &str, node: &str) {
    let dir = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{dir}/tests/fixtures/{fixture}")).unwrap();
    let res = Resources::from_yaml_str(&text, fixture).unwrap();
    let state = derive(&res, node).unwrap();
    let mut out = format!("{state:#?}\n");
    for peer in state.peers.values() {
        out.push_str(&format!(
            "export {}: {:#?}\n",
            peer.key,
            state.export_policy(peer)
        ));
    }
    let golden = format!(
        "{dir}/tests/golden/{}-{node}.txt",
        fixture.trim_end_matches(".yaml")
    );
    if std::env::var_os("TABBY_BLESS").is_some() {
        std::fs::create_dir_all(format!("{dir}/tests/golden")).unwrap();
        std::fs::write(&golden, &out).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden)
        .unwrap_or_else(|_| panic!("{golden} missing: run with TABBY_BLESS=1 to create it"));
    if want != out {
        let first = want
            .lines()
            .zip(out.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(out.lines().count()));
        panic!(
            "{golden} differs from the derived state at line {}:\n  want: {:?}\n  got:  {:?}\nrerun with TABBY_BLESS=1 if the change is intended",
            first + 1,
            want.lines().nth(first),
            out.lines().nth(first)
        );
    }
}

#[test]
fn full_node_a() {
    check("full.yaml", "node-a");
}

#[test]
fn route_reflector_rr_1() {
    check("route-reflectors.yaml", "rr-1");
}

#[test]
fn passwords_never_appear() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{dir}/tests/fixtures/full.yaml")).unwrap();
    let res = Resources::from_yaml_str(&text, "full.yaml").unwrap();
    let dump = format!("{:?} {:?}", derive(&res, "node-a").unwrap(), res);
    assert!(!dump.contains("tor-secret") && !dump.contains("mesh-secret"));
}
