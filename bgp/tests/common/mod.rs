//! Helpers shared by the codec tests: hex byte vectors and round trips.
#![allow(dead_code)]

use bytes::BytesMut;
use tabby_bgp::Message;
use tabby_bgp::codec::{CodecCtx, decode_message, encode_message};

/// Parses hex, ignoring whitespace and `|` separators used for readability.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| b.is_ascii_hexdigit())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        })
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {s:?}"
    );
    digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

pub const MARKER: &str = "ffffffffffffffffffffffffffffffff";

/// A whole message: marker, length computed from `body`, type.
pub fn msg(kind: u8, body: &str) -> Vec<u8> {
    let body = hex(body);
    let mut v = hex(MARKER);
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(kind);
    v.extend_from_slice(&body);
    v
}

pub fn encode(m: &Message, ctx: &CodecCtx) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_message(m, ctx, &mut out).expect("encodes");
    out.to_vec()
}

/// Checks both directions of one byte vector.
pub fn both_ways(bytes: &[u8], m: &Message, ctx: &CodecCtx) {
    let decoded = decode_message(bytes, ctx).expect("decodes");
    assert_eq!(&decoded, m, "decode");
    assert_eq!(encode(m, ctx), bytes, "encode");
}

/// An UPDATE body from hex sections, with the two lengths computed.
pub fn update_body(withdrawn: &str, attrs: &str, nlri: &str) -> String {
    let (w, a) = (hex(withdrawn), hex(attrs));
    format!("{:04x} {withdrawn} {:04x} {attrs} {nlri}", w.len(), a.len())
}

/// A whole UPDATE message from hex sections.
pub fn update(withdrawn: &str, attrs: &str, nlri: &str) -> Vec<u8> {
    msg(2, &update_body(withdrawn, attrs, nlri))
}

pub fn ctx4() -> CodecCtx {
    CodecCtx {
        four_octet_as: true,
        ..CodecCtx::default()
    }
}

pub fn ibgp() -> CodecCtx {
    ctx4()
}

pub fn ebgp() -> CodecCtx {
    CodecCtx {
        ebgp: true,
        ..ctx4()
    }
}

pub fn decode_update(bytes: &[u8], ctx: &CodecCtx) -> tabby_bgp::message::Update {
    match tabby_bgp::codec::decode_message(bytes, ctx) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}
