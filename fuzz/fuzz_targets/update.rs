#![no_main]
use libfuzzer_sys::fuzz_target;
use tabby_bgp::codec::decode_update;

fuzz_target!(|data: &[u8]| {
    let (ctx, body) = tabby_bgp_fuzz::ctx_and_data(data);
    let _ = decode_update(body, &ctx);
});
