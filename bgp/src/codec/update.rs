//! UPDATE (RFC 4271 §4.3): withdrawn routes, path attributes, NLRI.

use std::net::{IpAddr, Ipv4Addr};

use bytes::{BufMut, BytesMut};

use crate::attr::code;
use crate::error::{DecodeError, Rfc7606Action, Rfc7606Issue};
use crate::message::Update;
use crate::notification::{UpdateMessageError, update as sub};
use crate::types::{Afi, Family};

use super::attributes::{decode_attributes, encode_attributes, encode_mp_reach, encode_mp_unreach};
use super::nlri::{decode_prefixes, matches_afi, nlri_len, put_nlri};
use super::wire::{self, PResult};
use super::{CodecCtx, EncodeError};

fn sections(i: &[u8]) -> PResult<'_, (&[u8], &[u8], &[u8])> {
    let (i, wlen) = wire::u16(i)?;
    let (i, withdrawn) = wire::take(i, wlen as usize)?;
    let (i, alen) = wire::u16(i)?;
    let (i, attrs) = wire::take(i, alen as usize)?;
    Ok((&[], (withdrawn, attrs, i)))
}

fn network_error(field: &str, e: super::nlri::NlriError) -> DecodeError {
    // RFC 7606 §5.3: an unparsable NLRI field resets the session.
    DecodeError::new(
        UpdateMessageError::InvalidNetworkField,
        format!("{field}: {}", e.0),
    )
}

/// RFC 4271 §6.3 semantic NEXT_HOP check that needs no session context:
/// unspecified, loopback and multicast addresses are never usable.
fn unusable_next_hop(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            v.is_unspecified() || v.is_loopback() || v.is_multicast() || v == Ipv4Addr::BROADCAST
        }
        IpAddr::V6(v) => v.is_unspecified() || v.is_loopback() || v.is_multicast(),
    }
}

/// Decodes an UPDATE body (after the header).
///
/// Session-reset cases (RFC 7606 §4-5) are errors: section lengths beyond the
/// message (3/1), unparsable prefixes (3/10), and the attribute cases listed
/// in [`decode_attributes`]. Everything else lands in `Update::issues`.
pub fn decode_update(body: &[u8], ctx: &CodecCtx) -> Result<Update, DecodeError> {
    let Ok((_, (wd, attrs, nlri))) = sections(body) else {
        return Err(DecodeError::new(
            UpdateMessageError::MalformedAttributeList,
            "withdrawn-routes or total path attribute length runs past the end of the UPDATE",
        ));
    };
    let ap4 = ctx.add_path_rx.contains(&Family::IPV4_UNICAST);
    let mut withdrawn = Vec::new();
    decode_prefixes(wd, Afi::IPV4, ap4, &mut withdrawn)
        .map_err(|e| network_error("withdrawn routes", e))?;
    let decoded = decode_attributes(attrs, ctx)?;
    let mut announced = Vec::with_capacity(nlri.len() / 4);
    decode_prefixes(nlri, Afi::IPV4, ap4, &mut announced).map_err(|e| network_error("NLRI", e))?;

    let as_path_present = decoded.as_path_present;
    let mut u = Update {
        withdrawn,
        attributes: decoded.attributes,
        nlri: announced,
        mp_reach: decoded.mp_reach,
        mp_unreach: decoded.mp_unreach,
        issues: decoded.issues,
    };
    check_mandatory(&mut u, as_path_present);
    Ok(u)
}

/// RFC 7606 §3 (d): missing well-known mandatory attributes in an UPDATE
/// that announces routes mean treat-as-withdraw; RFC 4760 §3 makes NEXT_HOP
/// mandatory only for the classic NLRI field.
fn check_mandatory(u: &mut Update, as_path_present: bool) {
    let mp_announces = u.mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
    if u.nlri.is_empty() && !mp_announces {
        return;
    }
    let missing = |attr: u8, name: &str, issues: &mut Vec<Rfc7606Issue>| {
        issues.push(Rfc7606Issue {
            action: Rfc7606Action::TreatAsWithdraw,
            attribute: attr,
            subcode: sub::MISSING_WELL_KNOWN_ATTRIBUTE,
            reason: format!("UPDATE announces routes without {name}"),
        })
    };
    let a = &u.attributes;
    let absent_origin = a.origin.is_none();
    let absent_nh = !u.nlri.is_empty() && a.next_hop.is_none();
    // A treat-as-withdraw already recorded for the attribute explains it.
    let explained = |attr: u8, issues: &[Rfc7606Issue]| issues.iter().any(|i| i.attribute == attr);
    if absent_origin && !explained(code::ORIGIN, &u.issues) {
        missing(code::ORIGIN, "ORIGIN", &mut u.issues);
    }
    if !as_path_present && !explained(code::AS_PATH, &u.issues) {
        missing(code::AS_PATH, "AS_PATH", &mut u.issues);
    }
    if absent_nh && !explained(code::NEXT_HOP, &u.issues) {
        missing(code::NEXT_HOP, "NEXT_HOP", &mut u.issues);
    }
    let bad_nh = match (&u.attributes.next_hop, &u.mp_reach) {
        (Some(nh), _) if !u.nlri.is_empty() && unusable_next_hop(IpAddr::V4(*nh)) => {
            Some(IpAddr::V4(*nh))
        }
        // A link-local-only next hop (global ::, RFC 2545 §3 as sent by
        // some unnumbered setups) is usable through its link-local part.
        (_, Some(r))
            if !r.nlri.is_empty()
                && unusable_next_hop(r.next_hop.addr)
                && r.next_hop.link_local.is_none_or(|ll| ll.is_unspecified()) =>
        {
            Some(r.next_hop.addr)
        }
        _ => None,
    };
    if let Some(nh) = bad_nh {
        u.issues.push(Rfc7606Issue {
            action: Rfc7606Action::TreatAsWithdraw,
            attribute: code::NEXT_HOP,
            subcode: sub::INVALID_NEXT_HOP_ATTRIBUTE,
            reason: format!("next hop {nh} can never be used"),
        });
    }
}

/// Appends an UPDATE body. MP_REACH_NLRI and MP_UNREACH_NLRI come first
/// (RFC 7606 §5.1).
pub fn encode_update(u: &Update, ctx: &CodecCtx, out: &mut BytesMut) -> Result<(), EncodeError> {
    let ap4 = ctx.add_path_tx.contains(&Family::IPV4_UNICAST);
    for n in u.withdrawn.iter().chain(&u.nlri) {
        if !matches_afi(&n.prefix, Afi::IPV4) {
            return Err(EncodeError::Unrepresentable(format!(
                "{} in the IPv4 NLRI field (use MP_REACH/MP_UNREACH)",
                n.prefix
            )));
        }
    }
    let wlen: usize = u.withdrawn.iter().map(|n| nlri_len(n, ap4)).sum();
    let Ok(wlen16) = u16::try_from(wlen) else {
        return Err(EncodeError::TooLong {
            len: wlen,
            max: ctx.max_message_len,
        });
    };
    out.put_u16(wlen16);
    for n in &u.withdrawn {
        put_nlri(out, n, ap4);
    }
    let len_at = out.len();
    out.put_u16(0);
    if let Some(r) = &u.mp_reach {
        encode_mp_reach(r, ctx, out)?;
    }
    if let Some(w) = &u.mp_unreach {
        encode_mp_unreach(w, ctx, out)?;
    }
    encode_attributes(&u.attributes, ctx, out)?;
    let alen = out.len() - len_at - 2;
    let Ok(alen16) = u16::try_from(alen) else {
        return Err(EncodeError::TooLong {
            len: alen,
            max: ctx.max_message_len,
        });
    };
    if let Some(f) = out.get_mut(len_at..len_at + 2) {
        f.copy_from_slice(&alen16.to_be_bytes());
    }
    for n in &u.nlri {
        put_nlri(out, n, ap4);
    }
    Ok(())
}
