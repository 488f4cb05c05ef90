#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tabby_bgp::codec::{decode_capabilities, encode_capability};

fuzz_target!(|data: &[u8]| {
    if let Ok(caps) = decode_capabilities(data) {
        // Whatever decodes must encode and decode to the same values.
        let mut out = BytesMut::new();
        for c in &caps {
            encode_capability(c, &mut out).expect("a decoded capability encodes");
        }
        assert_eq!(decode_capabilities(&out).expect("re-decodes"), caps);
    }
});
