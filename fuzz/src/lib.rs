//! Shared helpers for the fuzz targets: the first input octet chooses the
//! negotiated context, the rest is the data.

use std::collections::BTreeSet;

use tabby_bgp::Family;
use tabby_bgp::codec::CodecCtx;

/// Splits `data` into a context (from its first octet) and the rest.
pub fn ctx_and_data(data: &[u8]) -> (CodecCtx, &[u8]) {
    let Some((&f, rest)) = data.split_first() else {
        return (CodecCtx::default(), data);
    };
    let add_path = if f & 0x02 != 0 {
        BTreeSet::from([Family::IPV4_UNICAST, Family::IPV6_UNICAST])
    } else {
        BTreeSet::new()
    };
    let ctx = CodecCtx {
        four_octet_as: f & 0x01 != 0,
        add_path_rx: add_path.clone(),
        add_path_tx: add_path,
        extended_next_hop: f & 0x04 != 0,
        ebgp: f & 0x08 != 0,
        max_message_len: if f & 0x10 != 0 { 65535 } else { 4096 },
    };
    (ctx, rest)
}
