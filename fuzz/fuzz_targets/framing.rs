#![no_main]
//! A byte stream split into messages the way `BgpCodec` does it.
use libfuzzer_sys::fuzz_target;
use tabby_bgp::codec::{decode_message, frame_len};

fuzz_target!(|data: &[u8]| {
    let (ctx, mut buf) = tabby_bgp_fuzz::ctx_and_data(data);
    while let Ok(Some(len)) = frame_len(buf, ctx.max_message_len) {
        let Some((frame, rest)) = buf.split_at_checked(len) else {
            panic!("frame_len returned {len} for {} octets", buf.len());
        };
        if decode_message(frame, &ctx).is_err() {
            return;
        }
        buf = rest;
    }
});
