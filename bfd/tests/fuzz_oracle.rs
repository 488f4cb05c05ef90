//! Replays the codec's byte vectors, and every one-octet change and every
//! truncation of them, through the checks the `bfd_packet` fuzz target makes
//! (`fuzz/fuzz_targets/bfd_packet.rs`), so the oracle itself is exercised
//! without cargo-fuzz.

mod common;

use common::{VECTORS, hex};
use tabby_bfd::packet::Packet;
use tabby_bfd::testing::check_packet_fuzz_input;

#[test]
fn vectors_pass_the_oracle() {
    for v in VECTORS {
        let bytes = hex(v);
        assert!(Packet::decode(&bytes).is_ok(), "{v}");
        check_packet_fuzz_input(&bytes);
    }
}

#[test]
fn mutations_and_truncations_pass_the_oracle() {
    let mut decoded = 0;
    for v in VECTORS {
        let bytes = hex(v);
        for len in 0..bytes.len() {
            check_packet_fuzz_input(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            for x in [0x00, 0x01, 0x04, 0x20, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                decoded += usize::from(Packet::decode(&b).is_ok());
                check_packet_fuzz_input(&b);
            }
        }
    }
    assert!(decoded > 100, "the mutations reach past the header checks");
}
