//! tokio-util framing: [`BgpCodec`] splits a TCP byte stream into messages
//! with `tabby_bgp`'s sans-IO [`frame_len`] and decoders, for callers that
//! use `tokio_util::codec::Framed`. (The peer task does not: it feeds the
//! session bytes, and the session frames them.)

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use tabby_bgp::codec::{CodecCtx, EncodeError, decode_message, encode_message, frame_len};
use tabby_bgp::error::DecodeError;
use tabby_bgp::message::{Message, RefreshSubtype};
use tabby_bgp::notification::Notification;

/// Errors of the framed stream.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent something the session must be reset for: send
    /// `.notification` and close.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Encode(#[from] EncodeError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

impl CodecError {
    /// The NOTIFICATION to send before closing, if the error calls for one.
    pub fn notification(&self) -> Option<Notification> {
        match self {
            CodecError::Decode(e) => Some(e.notification()),
            _ => None,
        }
    }
}

/// A BGP message codec for `tokio_util::codec::Framed`. Its user replaces
/// [`BgpCodec::ctx`] (see [`BgpCodec::set_ctx`]) once OPENs are exchanged.
#[derive(Debug, Clone, Default)]
pub struct BgpCodec {
    pub ctx: CodecCtx,
}

impl BgpCodec {
    pub fn new(ctx: CodecCtx) -> Self {
        BgpCodec { ctx }
    }

    /// Switches to the negotiated context (max size, 4-octet AS, ADD-PATH).
    pub fn set_ctx(&mut self, ctx: CodecCtx) {
        self.ctx = ctx;
    }
}

impl Decoder for BgpCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        loop {
            let Some(len) = frame_len(src, self.ctx.max_message_len)? else {
                // Make room for the rest of the message in one allocation.
                if let (Some(&h), Some(&l)) = (src.get(16), src.get(17)) {
                    src.reserve((u16::from_be_bytes([h, l]) as usize).saturating_sub(src.len()));
                }
                return Ok(None);
            };
            let frame = src.split_to(len);
            let msg = decode_message(&frame, &self.ctx)?;
            if let Message::RouteRefresh(rr) = &msg
                && rr.subtype == RefreshSubtype::Reserved
            {
                // RFC 7313 §5: ignore unknown subtypes.
                tracing::debug!(family = %rr.family, "ignoring ROUTE-REFRESH with a reserved subtype");
                continue;
            }
            return Ok(Some(msg));
        }
    }
}

impl Encoder<Message> for BgpCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_message(&item, &self.ctx, dst)?)
    }
}

impl Encoder<&Message> for BgpCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_message(item, &self.ctx, dst)?)
    }
}

/// Already-encoded messages (e.g. from [`UpdatePacker`](tabby_bgp::codec::UpdatePacker)) pass through.
impl Encoder<Bytes> for BgpCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}
