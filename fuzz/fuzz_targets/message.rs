#![no_main]
use libfuzzer_sys::fuzz_target;
use tabby_bgp::codec::decode_message;

fuzz_target!(|data: &[u8]| {
    let (ctx, bytes) = tabby_bgp_fuzz::ctx_and_data(data);
    let _ = decode_message(bytes, &ctx);
});
