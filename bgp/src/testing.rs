//! The fuzz oracle: what each cargo-fuzz target (`fuzz/`) checks, kept here
//! so the fuzzers and the test that replays their seeds and crash inputs
//! (`tests/codec_fuzz_regressions.rs`) run the very same checks.
//!
//! Not for the daemon: [`check_fuzz_input`] panics when the codec breaks one
//! of its promises (a decoded value that does not encode back, an encoding
//! that is not stable), which is exactly what a fuzzer looks for.

use std::collections::BTreeSet;

use bytes::BytesMut;

use crate::codec::{
    CodecCtx, decode_attributes, decode_capabilities, decode_message, decode_notification,
    decode_open, decode_prefixes, decode_update, encode_capability, encode_message, frame_len,
    parse_as_path, put_nlri,
};
use crate::{Afi, Family, Message, Notification};

/// One decoder under fuzzing; the name is the fuzz target's and the seed
/// directory's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzTarget {
    /// Whole messages, header included.
    Message,
    /// An OPEN body.
    Open,
    /// Capability TLVs, which must encode back to what decoded.
    Capabilities,
    /// An UPDATE body.
    Update,
    /// The path attributes block, and the octets as an AS_PATH.
    Attributes,
    /// NLRI prefixes, which must encode back to what decoded.
    Nlri,
    /// A NOTIFICATION body, including its RFC 9003 shutdown message, and
    /// its typed view.
    Notification,
    /// A byte stream cut into messages as the session codec does.
    Framing,
    /// decode → encode → decode → encode: the bytes must be stable after
    /// the first pass (which applies the documented normalisation).
    Roundtrip,
}

impl FuzzTarget {
    pub const ALL: [FuzzTarget; 9] = [
        FuzzTarget::Message,
        FuzzTarget::Open,
        FuzzTarget::Capabilities,
        FuzzTarget::Update,
        FuzzTarget::Attributes,
        FuzzTarget::Nlri,
        FuzzTarget::Notification,
        FuzzTarget::Framing,
        FuzzTarget::Roundtrip,
    ];

    /// The fuzz target's name, as in `fuzz/Cargo.toml`.
    pub fn name(self) -> &'static str {
        match self {
            FuzzTarget::Message => "message",
            FuzzTarget::Open => "open",
            FuzzTarget::Capabilities => "capabilities",
            FuzzTarget::Update => "update",
            FuzzTarget::Attributes => "attributes",
            FuzzTarget::Nlri => "nlri",
            FuzzTarget::Notification => "notification",
            FuzzTarget::Framing => "framing",
            FuzzTarget::Roundtrip => "roundtrip",
        }
    }

    /// The target called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<FuzzTarget> {
        FuzzTarget::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Splits a fuzz input into a negotiated context, chosen by the bits of its
/// first octet, and the data that follows.
pub fn fuzz_ctx_and_data(data: &[u8]) -> (CodecCtx, &[u8]) {
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

/// Runs `target`'s checks on one fuzz input; panics when one fails.
pub fn check_fuzz_input(target: FuzzTarget, data: &[u8]) {
    match target {
        FuzzTarget::Message => {
            let (ctx, bytes) = fuzz_ctx_and_data(data);
            let _ = decode_message(bytes, &ctx);
        }
        FuzzTarget::Open => {
            let _ = decode_open(data);
        }
        FuzzTarget::Capabilities => {
            if let Ok(caps) = decode_capabilities(data) {
                let mut out = BytesMut::new();
                for c in &caps {
                    encode_capability(c, &mut out).expect("a decoded capability encodes");
                }
                assert_eq!(decode_capabilities(&out).expect("re-decodes"), caps);
            }
        }
        FuzzTarget::Update => {
            let (ctx, body) = fuzz_ctx_and_data(data);
            let _ = decode_update(body, &ctx);
        }
        FuzzTarget::Attributes => {
            let (ctx, body) = fuzz_ctx_and_data(data);
            let _ = decode_attributes(body, &ctx);
            let _ = parse_as_path(body, ctx.four_octet_as);
        }
        FuzzTarget::Nlri => check_nlri(data),
        FuzzTarget::Notification => {
            if let Ok(n) = decode_notification(data) {
                let _ = n.shutdown_message();
                let _ = n.to_string();
                check_notification_kind(&n);
            }
        }
        FuzzTarget::Framing => check_framing(data),
        FuzzTarget::Roundtrip => check_roundtrip(data),
    }
}

/// The typed view keeps the code and subcode, and is a fixed point after
/// one pass through the wire form (the first pass may drop data of the
/// wrong shape and cut or sanitise a shutdown communication).
fn check_notification_kind(n: &Notification) {
    let k1 = n.kind();
    let _ = k1.to_string();
    let n2 = Notification::from(k1);
    assert_eq!(
        (n2.code, n2.subcode),
        (n.code, n.subcode),
        "code or subcode changed"
    );
    let k2 = n2.kind();
    assert_eq!(
        Notification::from(k2.clone()).kind(),
        k2,
        "typed view is not stable"
    );
}

/// Re-encoding decoded prefixes gives bytes that decode to the same ones.
/// The four-octet-AS bit picks the AFI here.
fn check_nlri(data: &[u8]) {
    let (ctx, body) = fuzz_ctx_and_data(data);
    let add_path = !ctx.add_path_rx.is_empty();
    let afi = if ctx.four_octet_as {
        Afi::IPV6
    } else {
        Afi::IPV4
    };
    let mut out = Vec::new();
    if decode_prefixes(body, afi, add_path, &mut out).is_ok() {
        let mut wire = BytesMut::new();
        for n in &out {
            put_nlri(&mut wire, n, add_path);
        }
        let mut again = Vec::new();
        decode_prefixes(&wire, afi, add_path, &mut again).expect("re-decodes");
        assert_eq!(again, out);
    }
}

fn check_framing(data: &[u8]) {
    let (ctx, mut buf) = fuzz_ctx_and_data(data);
    while let Ok(Some(len)) = frame_len(buf, ctx.max_message_len) {
        let Some((frame, rest)) = buf.split_at_checked(len) else {
            panic!("frame_len returned {len} for {} octets", buf.len());
        };
        if decode_message(frame, &ctx).is_err() {
            return;
        }
        buf = rest;
    }
}

fn check_roundtrip(data: &[u8]) {
    let (ctx, bytes) = fuzz_ctx_and_data(data);
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
    // An UPDATE with issues decodes to a different value (they are noted
    // on decode, not carried in the bytes), so only a clean one compares.
    if let Message::Update(u) = &m2
        && u.issues.is_empty()
    {
        assert_eq!(&m2, &decode_message(&b2, &ctx).expect("decodes"));
    }
}
