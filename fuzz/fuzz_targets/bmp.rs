#![no_main]
//! See [`tabby_bmp::testing::check_fuzz_input`] for what this target checks:
//! decoding never panics, and what decodes encodes back to the same octets
//! and decodes again to the same message.
use libfuzzer_sys::fuzz_target;
use tabby_bmp::testing::check_fuzz_input;

fuzz_target!(|data: &[u8]| check_fuzz_input(data));
