//! The 19-octet message header (RFC 4271 §4.1) and stream framing.

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::message::{HEADER_LEN, kind};
use crate::notification::MessageHeaderError;

use super::EncodeError;

/// Minimum whole-message lengths per type (RFC 4271 §4.2-4.5, RFC 2918 §3).
fn min_len(kind: u8) -> Option<usize> {
    Some(match kind {
        kind::OPEN => 29,
        kind::UPDATE => 23,
        kind::NOTIFICATION => 21,
        kind::KEEPALIVE => HEADER_LEN,
        kind::ROUTE_REFRESH => HEADER_LEN,
        _ => return None,
    })
}

fn bad_length(len: u16) -> DecodeError {
    DecodeError::new(
        MessageHeaderError::BadMessageLength(len),
        format!("message length {len} is out of range for its type"),
    )
}

/// Checks the header of a possibly partial message at the start of `buf`.
///
/// Returns `Ok(None)` while fewer than 19 octets (or fewer than the whole
/// message) are buffered, `Ok(Some(len))` once the whole message of `len`
/// octets is available, and the header error (RFC 4271 §6.1) as soon as the
/// bytes present prove one: marker not all ones (1/1), a length below 19,
/// above `max_len` or below the minimum of its type (1/2, data = the length),
/// or an unknown type (1/3, data = the type).
pub fn frame_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    let marker_seen = buf.len().min(16);
    if buf.iter().take(marker_seen).any(|&b| b != 0xFF) {
        return Err(DecodeError::new(
            MessageHeaderError::ConnectionNotSynchronized,
            "message marker is not all ones",
        ));
    }
    let (Some(&hi), Some(&lo), Some(&ty)) = (buf.get(16), buf.get(17), buf.get(18)) else {
        return Ok(None);
    };
    let len = u16::from_be_bytes([hi, lo]);
    let l = len as usize;
    if l < HEADER_LEN || l > max_len {
        return Err(bad_length(len));
    }
    let Some(min) = min_len(ty) else {
        return Err(DecodeError::new(
            MessageHeaderError::BadMessageType(ty),
            format!("unknown message type {ty}"),
        ));
    };
    // RFC 4271 §6.1: KEEPALIVE is exactly 19 octets; the others have a floor.
    if l < min || (ty == kind::KEEPALIVE && l != HEADER_LEN) {
        return Err(bad_length(len));
    }
    if buf.len() < l {
        return Ok(None);
    }
    Ok(Some(l))
}

/// Validates the header of one whole message and returns (type, body).
pub(crate) fn split_message(buf: &[u8], max_len: usize) -> Result<(u8, &[u8]), DecodeError> {
    match frame_len(buf, max_len)? {
        Some(len) if len == buf.len() => {
            let ty = buf.get(18).copied().unwrap_or_default();
            Ok((ty, buf.get(HEADER_LEN..).unwrap_or_default()))
        }
        Some(len) => Err(DecodeError::new(
            MessageHeaderError::BadMessageLength(len as u16),
            format!(
                "header length {len} does not match the {} octets given",
                buf.len()
            ),
        )),
        None => {
            let len = match (buf.get(16), buf.get(17)) {
                (Some(&h), Some(&l)) => u16::from_be_bytes([h, l]),
                _ => buf.len() as u16,
            };
            Err(DecodeError::new(
                MessageHeaderError::BadMessageLength(len),
                format!("truncated message: {} of {len} octets", buf.len()),
            ))
        }
    }
}

/// Writes a header with a placeholder length; returns the message start.
pub(crate) fn begin(out: &mut BytesMut, ty: u8) -> usize {
    let start = out.len();
    out.put_bytes(0xFF, 16);
    out.put_u16(0);
    out.put_u8(ty);
    start
}

/// Patches the length of the message that began at `start`, checking it
/// against `max_len` (and rolling the message back when too long).
pub(crate) fn finish(out: &mut BytesMut, start: usize, max_len: usize) -> Result<(), EncodeError> {
    let max_len = max_len.min(crate::message::MAX_EXTENDED_MESSAGE_LEN);
    let len = out.len() - start;
    if len > max_len {
        out.truncate(start);
        return Err(EncodeError::TooLong { len, max: max_len });
    }
    if let Some(field) = out.get_mut(start + 16..start + 18) {
        field.copy_from_slice(&(len as u16).to_be_bytes());
    }
    Ok(())
}
