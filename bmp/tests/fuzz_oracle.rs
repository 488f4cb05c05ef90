//! Replays the byte vectors, every truncation of them and one-octet changes
//! through the checks of the `bmp` fuzz target (`fuzz/fuzz_targets/bmp.rs`),
//! so the oracle itself runs without cargo-fuzz.

mod common;

use tabby_bmp::decode;
use tabby_bmp::testing::check_fuzz_input;

#[test]
fn vectors_pass_the_oracle() {
    for v in common::all() {
        let bytes = common::hex(&v);
        assert!(decode(&bytes).is_ok(), "{v}");
        check_fuzz_input(&bytes);
    }
}

#[test]
fn mutations_and_truncations_pass_the_oracle() {
    let mut decoded = 0;
    for v in common::all() {
        let bytes = common::hex(&v);
        for len in 0..bytes.len() {
            check_fuzz_input(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            for x in [0x01, 0x04, 0x20, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                decoded += usize::from(decode(&b).is_ok());
                check_fuzz_input(&b);
            }
        }
    }
    assert!(
        decoded > 500,
        "mutations reach past the header checks: {decoded}"
    );
}

/// The fuzz target's seed corpus (`fuzz/seeds/bmp`, the vectors above as
/// files) decodes and passes the oracle.
#[test]
fn seed_corpus_passes_the_oracle() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/bmp");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz/seeds/bmp exists") {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(decode(&bytes).is_ok());
        check_fuzz_input(&bytes);
        n += 1;
    }
    assert!(n >= common::all().len());
}
