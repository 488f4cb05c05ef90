//! `BgpCodec` over a byte stream: split at any point, swapped context,
//! ignored ROUTE-REFRESH subtypes, errors that carry the NOTIFICATION.

use bytes::{BufMut, BytesMut};
use tabby_bgp::Message;
use tabby_bgp::codec::CodecCtx;
use tabby_bgp::notification::{MessageHeaderError, NotificationKind};
use tabby_bgp_driver::framing::BgpCodec;
use tokio_util::codec::{Decoder, Encoder};

// The byte-vector helpers this file needs (a test cannot share another
// crate's test helpers).

/// Parses hex, ignoring whitespace and separators.
fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    hex::decode(digits).expect("valid hex")
}

const MARKER: &str = "ffffffffffffffffffffffffffffffff";

/// A whole message: marker, length computed from `body`, type.
fn msg(kind: u8, body: &str) -> Vec<u8> {
    let body = hex(body);
    let mut v = hex(MARKER);
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(kind);
    v.extend_from_slice(&body);
    v
}

fn stream() -> Vec<u8> {
    let mut s = msg(1, "04 fde9 005a c6120001 00");
    s.extend(msg(4, ""));
    s.extend(msg(5, "0001 07 01")); // reserved subtype: skipped
    s.extend(msg(5, "0001 00 01"));
    s.extend(msg(2, "0000 0000"));
    s.extend(msg(3, "06 04"));
    s
}

#[test]
fn decodes_a_stream_fed_in_pieces() {
    let bytes = stream();
    for piece in [1usize, 2, 7, 19, 23, 1000] {
        let mut codec = BgpCodec::default();
        let mut buf = BytesMut::new();
        let mut kinds = Vec::new();
        for chunk in bytes.chunks(piece) {
            buf.put_slice(chunk);
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                kinds.push(m.kind());
            }
        }
        assert_eq!(kinds, vec![1, 4, 5, 2, 3], "piece size {piece}");
        assert!(buf.is_empty());
    }
}

#[test]
fn max_size_follows_the_context() {
    let mut big = hex(&format!("{MARKER} 1400 02 0000 0000"));
    big.resize(0x1400, 0);
    let mut codec = BgpCodec::default();
    let err = codec.decode(&mut BytesMut::from(&big[..])).unwrap_err();
    assert_eq!(
        err.notification().map(|n| n.kind()),
        Some(NotificationKind::MessageHeader(
            MessageHeaderError::BadMessageLength(0x1400)
        ))
    );
    codec.set_ctx(CodecCtx {
        max_message_len: 65535,
        ..CodecCtx::default()
    });
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&big[..])),
        Ok(Some(Message::Update(_)))
    ));
}

#[test]
fn encodes_messages_and_raw_bytes() {
    let mut codec = BgpCodec::default();
    let mut out = BytesMut::new();
    codec.encode(Message::Keepalive, &mut out).unwrap();
    codec.encode(&Message::Keepalive, &mut out).unwrap();
    codec
        .encode(bytes::Bytes::from(msg(4, "")), &mut out)
        .unwrap();
    assert_eq!(out.len(), 57);
    let mut n = 0;
    while codec.decode(&mut out).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
}
