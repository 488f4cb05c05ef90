#![no_main]
//! See [`FuzzTarget::Attributes`] for what this target checks.
use libfuzzer_sys::fuzz_target;
use tabby_bgp::testing::{FuzzTarget, check_fuzz_input};

fuzz_target!(|data: &[u8]| check_fuzz_input(FuzzTarget::Attributes, data));
