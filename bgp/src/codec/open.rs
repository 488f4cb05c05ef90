//! OPEN (RFC 4271 §4.2) with optional parameters in the classic form and the
//! RFC 9072 extended form.

use bytes::{BufMut, BytesMut};

use crate::capability::Capability;
use crate::error::DecodeError;
use crate::message::Open;
use crate::notification::OpenMessageError;
use crate::types::Asn;

use super::EncodeError;
use super::capabilities::{decode_capabilities, encode_capability};
use super::wire::{self, PResult};

/// Optional parameter type carrying capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 §2: the non-extended length and type both 255 mark the
/// extended form.
const PARAM_EXTENDED: u8 = 255;

fn malformed(what: impl Into<String>) -> DecodeError {
    // RFC 4271 §6.2: a malformed recognised optional parameter is 2/0.
    DecodeError::new(OpenMessageError::Unspecific, what)
}

fn fixed(i: &[u8]) -> PResult<'_, (u8, u16, u16, u32, u8)> {
    let (i, version) = wire::u8(i)?;
    let (i, my_as) = wire::u16(i)?;
    let (i, hold) = wire::u16(i)?;
    let (i, id) = wire::u32(i)?;
    let (i, opt_len) = wire::u8(i)?;
    Ok((i, (version, my_as, hold, id, opt_len)))
}

fn param(i: &[u8], extended: bool) -> PResult<'_, (u8, &[u8])> {
    let (i, ty) = wire::u8(i)?;
    let (i, len) = if extended {
        wire::u16(i)?
    } else {
        let (i, l) = wire::u8(i)?;
        (i, l as u16)
    };
    let (i, v) = wire::take(i, len as usize)?;
    Ok((i, (ty, v)))
}

/// Decodes an OPEN body (after the header).
///
/// Checks that need no session context are made here: version 4 (2/1),
/// hold time not 1 or 2 (2/6), BGP identifier not 0 (2/3, RFC 6286 §2.2),
/// AS_TRANS only with the 4-octet AS capability (2/2, RFC 6793 §4.2).
/// The FSM checks the peer AS, our own identifier and required capabilities.
pub fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    let (rest, (version, my_as, hold_time, id, opt_len)) =
        fixed(body).map_err(|_| malformed("OPEN shorter than its fixed fields"))?;
    if version != 4 {
        // RFC 4271 §6.2: data = the largest version we support, 2 octets.
        return Err(DecodeError::new(
            OpenMessageError::UnsupportedVersion(4),
            format!("peer speaks BGP version {version}, we speak 4"),
        ));
    }
    let (params, extended) = if opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED) {
        let Ok((after, ext_len)) = wire::u16(rest.get(1..).unwrap_or_default()) else {
            return Err(malformed(
                "truncated RFC 9072 extended optional parameters length",
            ));
        };
        if after.len() != ext_len as usize {
            return Err(malformed(format!(
                "extended optional parameters length {ext_len} disagrees with the {} octets present",
                after.len()
            )));
        }
        (after, true)
    } else {
        if rest.len() != opt_len as usize {
            return Err(malformed(format!(
                "optional parameters length {opt_len} disagrees with the {} octets present",
                rest.len()
            )));
        }
        (rest, false)
    };

    let mut capabilities = Vec::new();
    let mut unknown_params = Vec::new();
    let mut p = params;
    while !p.is_empty() {
        let (next, (ty, value)) =
            param(p, extended).map_err(|_| malformed("optional parameter overruns the OPEN"))?;
        if ty == PARAM_CAPABILITIES {
            capabilities.extend(decode_capabilities(value)?);
        } else {
            unknown_params.push((ty, value.to_vec()));
        }
        p = next;
    }

    let open_msg = Open {
        version,
        my_as,
        hold_time,
        bgp_id: id.into(),
        capabilities,
        unknown_params,
    };
    if hold_time == 1 || hold_time == 2 {
        return Err(DecodeError::new(
            OpenMessageError::UnacceptableHoldTime,
            format!("hold time {hold_time} s is not allowed (0 or at least 3)"),
        ));
    }
    if id == 0 {
        return Err(DecodeError::new(
            OpenMessageError::BadBgpIdentifier(Some(open_msg.bgp_id)),
            "BGP identifier 0.0.0.0 is not allowed (RFC 6286)",
        ));
    }
    let four_octet = open_msg
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::FourOctetAs(_)));
    if Asn(my_as as u32) == Asn::TRANS && !four_octet {
        return Err(DecodeError::new(
            OpenMessageError::BadPeerAs(Some(my_as)),
            "OPEN carries AS_TRANS (23456) without the 4-octet AS capability",
        ));
    }
    Ok(open_msg)
}

/// Appends an OPEN body. Capabilities share classic optional parameters of
/// up to 255 octets; when the parameters exceed 255 octets in total (or a
/// parameter of type 255 must be sent) the RFC 9072 extended form is used.
pub fn encode_open(o: &Open, out: &mut BytesMut) -> Result<(), EncodeError> {
    let mut caps: Vec<BytesMut> = Vec::with_capacity(o.capabilities.len());
    for c in &o.capabilities {
        let mut b = BytesMut::with_capacity(8);
        encode_capability(c, &mut b)?;
        caps.push(b);
    }

    // Classic form: group capabilities into parameters of at most 255.
    let mut groups: Vec<Vec<u8>> = Vec::new();
    for c in &caps {
        match groups.last_mut() {
            Some(g) if g.len() + c.len() <= 255 => g.extend_from_slice(c),
            _ => groups.push(c.to_vec()),
        }
    }
    let classic_len: usize = groups.iter().map(|g| 2 + g.len()).sum::<usize>()
        + o.unknown_params
            .iter()
            .map(|(_, v)| 2 + v.len())
            .sum::<usize>();
    let needs_extended = classic_len > 255
        || o.unknown_params
            .iter()
            .any(|(t, v)| *t == PARAM_EXTENDED || v.len() > 255);

    out.put_u8(o.version);
    out.put_u16(o.my_as);
    out.put_u16(o.hold_time);
    out.put_u32(o.bgp_id.into());
    if !needs_extended {
        out.put_u8(classic_len as u8);
        for g in &groups {
            out.put_u8(PARAM_CAPABILITIES);
            out.put_u8(g.len() as u8);
            out.put_slice(g);
        }
        for (t, v) in &o.unknown_params {
            out.put_u8(*t);
            out.put_u8(v.len() as u8);
            out.put_slice(v);
        }
        return Ok(());
    }

    // RFC 9072 §2: one capabilities parameter with a 2-octet length.
    let caps_len: usize = caps.iter().map(|c| c.len()).sum();
    let ext_len = if caps.is_empty() { 0 } else { 3 + caps_len }
        + o.unknown_params
            .iter()
            .map(|(_, v)| 3 + v.len())
            .sum::<usize>();
    let (Ok(ext_len), Ok(caps_len)) = (u16::try_from(ext_len), u16::try_from(caps_len)) else {
        return Err(EncodeError::Unrepresentable(
            "OPEN optional parameters exceed 65535 octets".into(),
        ));
    };
    out.put_u8(255);
    out.put_u8(PARAM_EXTENDED);
    out.put_u16(ext_len);
    if !caps.is_empty() {
        out.put_u8(PARAM_CAPABILITIES);
        out.put_u16(caps_len);
        for c in &caps {
            out.put_slice(c);
        }
    }
    for (t, v) in &o.unknown_params {
        out.put_u8(*t);
        out.put_u16(v.len() as u16);
        out.put_slice(v);
    }
    Ok(())
}
