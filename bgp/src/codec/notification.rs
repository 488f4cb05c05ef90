//! NOTIFICATION (RFC 4271 §4.5): code, subcode, data. Every code is
//! accepted as received; the data is kept raw and interpreted (RFC 9003
//! shutdown text, RFC 8538 Hard Reset) by [`Notification`]'s methods.

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::notification::{MessageHeaderError, Notification};

/// Decodes a NOTIFICATION body (after the header).
pub fn decode_notification(body: &[u8]) -> Result<Notification, DecodeError> {
    match body {
        [c, s, data @ ..] => Ok(Notification::new(*c, *s, data.to_vec())),
        _ => Err(DecodeError::new(
            MessageHeaderError::BadMessageLength((body.len() + 19) as u16),
            "NOTIFICATION shorter than 21 octets",
        )),
    }
}

/// Appends a NOTIFICATION body.
pub fn encode_notification(n: &Notification, out: &mut BytesMut) {
    out.put_u8(n.code);
    out.put_u8(n.subcode);
    out.put_slice(&n.data);
}
