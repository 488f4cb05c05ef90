//! Wire codec: nom parses, bytes writes.
//!
//! The entry points are [`decode_message`] (one whole message, header
//! included), [`encode_message`], [`frame_len`] for stream framing, the
//! packing [`UpdatePacker`] and the shared [`UpdateBatch`] for the RIB's
//! update groups. All take a [`CodecCtx`]: what the session negotiated
//! that changes the wire format. (A tokio-util `Decoder` / `Encoder` over
//! these, `BgpCodec`, is in `tabby-bgp-driver`.)
//!
//! No input makes a decoder panic: wire data is never indexed or unwrapped.

use std::collections::BTreeSet;

use bytes::BytesMut;

use crate::error::DecodeError;
use crate::message::{MAX_MESSAGE_LEN, Message, kind};
use crate::types::Family;

mod attributes;
mod batch;
mod capabilities;
mod header;
mod nlri;
mod notification;
mod open;
mod pack;
mod route_refresh;
mod update;
mod wire;

pub use attributes::{
    DecodedAttributes, decode_attributes, encode_attributes, encode_mp_reach, encode_mp_unreach,
    parse_as_path,
};
pub use batch::{Member, UpdateBatch};
pub use capabilities::{
    decode_capabilities, decode_capability, encode_capability, unsupported_capability,
};
pub use header::frame_len;
pub use nlri::{NlriError, decode_prefixes, nlri_len, put_nlri};
pub use notification::{decode_notification, encode_notification};
pub use open::{decode_open, encode_open};
pub use pack::{UpdatePacker, encode_announcements, encode_withdrawals};
pub use route_refresh::{decode_route_refresh, encode_route_refresh};
pub use update::{decode_update, encode_update};

/// Negotiated parameters that change how messages are encoded and decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodecCtx {
    /// RFC 6793: both sides announced 4-octet AS support.
    pub four_octet_as: bool,
    /// 4096, or 65535 when RFC 8654 extended messages were negotiated.
    pub max_message_len: usize,
    /// Families in which received NLRI carry ADD-PATH path identifiers.
    pub add_path_rx: BTreeSet<Family>,
    /// Families in which sent NLRI carry ADD-PATH path identifiers.
    pub add_path_tx: BTreeSet<Family>,
    /// RFC 8950: IPv4 unicast NLRI may carry an IPv6 next hop.
    pub extended_next_hop: bool,
    /// The peer is external: changes RFC 7606 treatment of LOCAL_PREF,
    /// ORIGINATOR_ID and CLUSTER_LIST.
    pub ebgp: bool,
}

impl CodecCtx {
    /// True when messages encoded with `self` are what `other` would
    /// encode: the fields that only shape decoding are not compared.
    pub fn encodes_like(&self, other: &CodecCtx) -> bool {
        self.four_octet_as == other.four_octet_as
            && self.max_message_len == other.max_message_len
            && self.add_path_tx == other.add_path_tx
            && self.extended_next_hop == other.extended_next_hop
    }
}

impl Default for CodecCtx {
    /// The context before capabilities are negotiated (used for OPEN).
    fn default() -> Self {
        CodecCtx {
            four_octet_as: false,
            max_message_len: MAX_MESSAGE_LEN,
            add_path_rx: BTreeSet::new(),
            add_path_tx: BTreeSet::new(),
            extended_next_hop: false,
            ebgp: false,
        }
    }
}

/// An encode failure: the message cannot be represented within the
/// negotiated limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {len} octets exceeds the negotiated maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("cannot encode: {0}")]
    Unrepresentable(String),
}

/// Decodes one whole message (header included) from `buf`.
///
/// The header is checked against `ctx.max_message_len` (RFC 8654).
pub fn decode_message(buf: &[u8], ctx: &CodecCtx) -> Result<Message, DecodeError> {
    let (ty, body) = header::split_message(buf, ctx.max_message_len)?;
    Ok(match ty {
        kind::OPEN => Message::Open(open::decode_open(body)?),
        kind::UPDATE => Message::Update(update::decode_update(body, ctx)?),
        kind::NOTIFICATION => Message::Notification(notification::decode_notification(body)?),
        kind::KEEPALIVE => Message::Keepalive,
        kind::ROUTE_REFRESH => {
            Message::RouteRefresh(route_refresh::decode_route_refresh(body, buf)?)
        }
        // frame_len rejected every other type.
        other => {
            return Err(DecodeError::new(
                crate::notification::MessageHeaderError::BadMessageType(other),
                format!("unknown message type {other}"),
            ));
        }
    })
}

/// Appends the wire form of `msg` to `out`. On error nothing is appended.
pub fn encode_message(
    msg: &Message,
    ctx: &CodecCtx,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = header::begin(out, msg.kind());
    let body = match msg {
        Message::Open(o) => open::encode_open(o, out),
        Message::Update(u) => update::encode_update(u, ctx, out),
        Message::Notification(n) => {
            notification::encode_notification(n, out);
            Ok(())
        }
        Message::Keepalive => Ok(()),
        Message::RouteRefresh(rr) => {
            route_refresh::encode_route_refresh(rr, out);
            Ok(())
        }
    };
    if let Err(e) = body {
        out.truncate(start);
        return Err(e);
    }
    header::finish(out, start, ctx.max_message_len)
}
