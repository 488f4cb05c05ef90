#![no_main]
//! See [`tabby_bfd::testing::check_packet_fuzz_input`] for what this target
//! checks: decode never panics, and what decodes re-encodes to bytes that
//! decode to the same packet.
use libfuzzer_sys::fuzz_target;
use tabby_bfd::testing::check_packet_fuzz_input;

fuzz_target!(|data: &[u8]| check_packet_fuzz_input(data));
