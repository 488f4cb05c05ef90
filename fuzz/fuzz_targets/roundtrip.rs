#![no_main]
//! decode → encode → decode → encode: once a message has been through the
//! codec, its bytes are stable (the first pass applies the documented
//! normalisation: Partial bit, dropped non-transitive unknowns, AS4
//! reconciliation, cleared host bits).
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tabby_bgp::codec::{decode_message, encode_message};

fuzz_target!(|data: &[u8]| {
    let (ctx, bytes) = tabby_bgp_fuzz::ctx_and_data(data);
    let Ok(m1) = decode_message(bytes, &ctx) else {
        return;
    };
    let mut b1 = BytesMut::new();
    if encode_message(&m1, &ctx, &mut b1).is_err() {
        return;
    }
    let m2 = decode_message(&b1, &ctx).expect("our own encoding decodes");
    let mut b2 = BytesMut::new();
    encode_message(&m2, &ctx, &mut b2).expect("re-encodes");
    assert_eq!(b1, b2, "encoding is not stable");
    if let tabby_bgp::Message::Update(u) = &m2 {
        if u.issues.is_empty() {
            assert_eq!(&m2, &decode_message(&b2, &ctx).expect("decodes"));
        }
    }
});
