#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tabby_bgp::Afi;
use tabby_bgp::codec::{decode_prefixes, put_nlri};

fuzz_target!(|data: &[u8]| {
    let (ctx, body) = tabby_bgp_fuzz::ctx_and_data(data);
    let add_path = !ctx.add_path_rx.is_empty();
    let afi = if ctx.four_octet_as {
        Afi::IPV6
    } else {
        Afi::IPV4
    };
    let mut out = Vec::new();
    if decode_prefixes(body, afi, add_path, &mut out).is_ok() {
        // Re-encoding gives bytes that decode to the same prefixes.
        let mut wire = BytesMut::new();
        for n in &out {
            put_nlri(&mut wire, n, add_path);
        }
        let mut again = Vec::new();
        decode_prefixes(&wire, afi, add_path, &mut again).expect("re-decodes");
        assert_eq!(again, out);
    }
});
