#![no_main]
use libfuzzer_sys::fuzz_target;
use tabby_bgp::codec::{decode_attributes, parse_as_path};

fuzz_target!(|data: &[u8]| {
    let (ctx, body) = tabby_bgp_fuzz::ctx_and_data(data);
    let _ = decode_attributes(body, &ctx);
    let _ = parse_as_path(body, ctx.four_octet_as);
});
