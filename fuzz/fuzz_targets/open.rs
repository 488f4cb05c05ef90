#![no_main]
use libfuzzer_sys::fuzz_target;
use tabby_bgp::codec::decode_open;

fuzz_target!(|data: &[u8]| {
    let _ = decode_open(data);
});
