//! The fuzz oracle: what the `bfd_packet` cargo-fuzz target (`fuzz/`)
//! checks, kept here so that the fuzzer and the test that replays byte
//! vectors through it (`tests/fuzz_oracle.rs`) run the same checks.
//!
//! Not for the daemon: [`check_packet_fuzz_input`] panics when the codec
//! breaks a promise, which is what a fuzzer looks for.

use crate::packet::Packet;

/// Decoding never panics; whatever decodes encodes to bytes that decode to
/// the same packet, and that encoding is stable.
pub fn check_packet_fuzz_input(data: &[u8]) {
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    let bytes = packet.encode();
    assert_eq!(
        bytes.len(),
        packet.wire_len(),
        "Length field and octets agree"
    );
    let again = Packet::decode(&bytes).expect("our own encoding decodes");
    assert_eq!(again, packet, "decode(encode(p)) == p");
    assert_eq!(again.encode(), bytes, "encoding is stable");
}
