//! Replays the fuzz seed corpus (`../fuzz/seeds/<target>/`) and every crash
//! input the fuzzers found (`tests/fuzz_regressions/<target>-*`) through the
//! same checks the fuzz targets make, so a fixed crash stays fixed without
//! cargo-fuzz.

use std::path::Path;

use tabby_bgp::testing::{FuzzTarget, check_fuzz_input};

/// The checks of the fuzz target called `target` (a seed directory's or a
/// crash input's name).
fn run(target: &str, data: &[u8]) {
    let t = FuzzTarget::from_name(target).unwrap_or_else(|| panic!("unknown fuzz target {target}"));
    check_fuzz_input(t, data);
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Seed directories of other crates' fuzz targets, replayed by their own
/// tests (`bmp`: `bmp/tests/fuzz_oracle.rs`).
const OTHER_CRATES: &[&str] = &["bmp"];

#[test]
fn seed_corpus_replays() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let mut n = 0;
    for dir in files(&seeds).into_iter().filter(|p| p.is_dir()) {
        let target = dir.file_name().unwrap().to_string_lossy().to_string();
        if OTHER_CRATES.contains(&target.as_str()) {
            continue;
        }
        for f in files(&dir) {
            run(&target, &std::fs::read(&f).unwrap());
            // Every seed also goes through the whole-message and round-trip checks.
            run("message", &std::fs::read(&f).unwrap());
            n += 1;
        }
    }
    assert!(
        n >= 40,
        "seed corpus missing: found {n} files under {}",
        seeds.display()
    );
}

#[test]
fn crash_inputs_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    for f in files(&dir) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let Some((target, _)) = name.split_once('-') else {
            continue;
        };
        run(target, &std::fs::read(&f).unwrap());
    }
}
