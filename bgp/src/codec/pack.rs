//! NLRI packing: the encoder for the RIB's update groups.
//!
//! An [`UpdatePacker`] encodes one attribute set once and then fills each
//! UPDATE up to the negotiated maximum size with as many prefixes as fit,
//! in the classic NLRI field (IPv4 with an IPv4 next hop) or inside
//! MP_REACH_NLRI (IPv6, and IPv4 over an IPv6 next hop per RFC 8950).

use bytes::{BufMut, BytesMut};

use crate::attr::{NextHop, PathAttributes, code, flags};
use crate::message::{HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, kind};
use crate::types::{Afi, Family, Nlri};

use super::attributes::{check_next_hop, encode_attributes, put_mp_reach_head};
use super::nlri::{matches_afi, nlri_len, put_nlri};
use super::{CodecCtx, EncodeError};

/// Where the NLRI go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Classic NLRI field after the attributes.
    Classic,
    /// Inside MP_REACH_NLRI, which leads the attribute list.
    MpReach,
}

/// One attribute set pre-encoded for one session context, ready to pack.
#[derive(Debug, Clone)]
pub struct UpdatePacker {
    family: Family,
    placement: Placement,
    /// Every attribute except MP_REACH_NLRI.
    attrs: BytesMut,
    /// MP_REACH_NLRI value up to the NLRI (AFI, SAFI, next hop, reserved).
    mp_head: BytesMut,
    add_path: bool,
    max_len: usize,
}

fn start_message(out: &mut BytesMut, max_len: usize) -> usize {
    out.reserve(max_len);
    let start = out.len();
    out.put_bytes(0xFF, 16);
    out.put_u16(0);
    out.put_u8(kind::UPDATE);
    start
}

fn patch_u16(out: &mut BytesMut, at: usize, v: usize) {
    if let Some(f) = out.get_mut(at..at + 2) {
        f.copy_from_slice(&(v as u16).to_be_bytes());
    }
}

fn check_family(n: &Nlri, family: Family) -> Result<(), EncodeError> {
    if matches_afi(&n.prefix, family.afi) {
        Ok(())
    } else {
        Err(EncodeError::Unrepresentable(format!(
            "prefix {} given for {family}",
            n.prefix
        )))
    }
}

impl UpdatePacker {
    /// Pre-encodes `attrs` for announcements of `family` with `next_hop`.
    ///
    /// For IPv4 unicast an IPv4 `next_hop` (or, when `None`,
    /// `attrs.next_hop`) selects the classic NLRI field; an IPv6 one selects
    /// MP_REACH_NLRI (RFC 8950, needs `ctx.extended_next_hop`). Other
    /// families always use MP_REACH_NLRI and need `next_hop`.
    pub fn new(
        family: Family,
        attrs: &PathAttributes,
        next_hop: Option<NextHop>,
        ctx: &CodecCtx,
    ) -> Result<Self, EncodeError> {
        let max_len = ctx.max_message_len.min(MAX_EXTENDED_MESSAGE_LEN);
        let add_path = ctx.add_path_tx.contains(&family);
        let classic_nh = match (family, next_hop) {
            (Family::IPV4_UNICAST, None) => attrs.next_hop,
            (Family::IPV4_UNICAST, Some(nh)) => match nh.addr {
                std::net::IpAddr::V4(a) if nh.link_local.is_none() => Some(a),
                _ => None,
            },
            _ => None,
        };
        let mut attrs_buf = BytesMut::with_capacity(128);
        let mut mp_head = BytesMut::new();
        let placement = if let Some(nh) = classic_nh {
            let mut a = attrs.clone();
            a.next_hop = Some(nh);
            encode_attributes(&a, ctx, &mut attrs_buf)?;
            Placement::Classic
        } else {
            let Some(nh) = next_hop else {
                return Err(EncodeError::Unrepresentable(format!(
                    "no next hop given for {family}"
                )));
            };
            check_next_hop(family, &nh, ctx)?;
            put_mp_reach_head(&mut mp_head, family, &nh);
            // RFC 4760 §3: the NEXT_HOP attribute is not used with MP_REACH.
            if attrs.next_hop.is_some() {
                let mut a = attrs.clone();
                a.next_hop = None;
                encode_attributes(&a, ctx, &mut attrs_buf)?;
            } else {
                encode_attributes(attrs, ctx, &mut attrs_buf)?;
            }
            Placement::MpReach
        };
        let p = UpdatePacker {
            family,
            placement,
            attrs: attrs_buf,
            mp_head,
            add_path,
            max_len,
        };
        // Largest single NLRI: path id 4 + length 1 + 16 octets.
        if p.overhead() + 21 > max_len {
            return Err(EncodeError::TooLong {
                len: p.overhead() + 21,
                max: max_len,
            });
        }
        Ok(p)
    }

    /// Octets of an UPDATE from this packer before any NLRI.
    pub fn overhead(&self) -> usize {
        let base = HEADER_LEN + 4 + self.attrs.len();
        match self.placement {
            Placement::Classic => base,
            Placement::MpReach => base + 4 + self.mp_head.len(),
        }
    }

    /// The family this packer announces.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Appends UPDATEs announcing every entry of `nlri`, each as full as the
    /// negotiated size allows. Returns the number of messages written.
    pub fn pack(&self, nlri: &[Nlri], out: &mut BytesMut) -> Result<usize, EncodeError> {
        let mut messages = 0;
        let mut rest = nlri;
        let ap = self.add_path;
        while !rest.is_empty() {
            let start = start_message(out, self.max_len);
            out.put_u16(0); // no withdrawn routes
            let tal_at = out.len();
            out.put_u16(0);
            let mut budget = self.max_len - self.overhead();
            let mp_len_at = out.len() + 2;
            if self.placement == Placement::MpReach {
                out.put_u8(flags::OPTIONAL | flags::EXTENDED_LENGTH);
                out.put_u8(code::MP_REACH_NLRI);
                out.put_u16(0);
                out.extend_from_slice(&self.mp_head);
            } else {
                out.extend_from_slice(&self.attrs);
            }
            let nlri_start = out.len();
            let mut taken = 0;
            for n in rest {
                let l = nlri_len(n, ap);
                if l > budget {
                    break;
                }
                if let Err(e) = check_family(n, self.family) {
                    out.truncate(start);
                    return Err(e);
                }
                budget -= l;
                put_nlri(out, n, ap);
                taken += 1;
            }
            let nlri_bytes = out.len() - nlri_start;
            if self.placement == Placement::MpReach {
                out.extend_from_slice(&self.attrs);
                patch_u16(out, mp_len_at, self.mp_head.len() + nlri_bytes);
                patch_u16(
                    out,
                    tal_at,
                    4 + self.mp_head.len() + nlri_bytes + self.attrs.len(),
                );
            } else {
                patch_u16(out, tal_at, self.attrs.len());
            }
            let len = out.len() - start;
            patch_u16(out, start + 16, len);
            rest = rest.get(taken..).unwrap_or_default();
            messages += 1;
        }
        Ok(messages)
    }
}

/// Appends UPDATEs announcing `nlri` of `family` with `attrs` (see
/// [`UpdatePacker::new`] for how the next hop is placed). Returns the number
/// of messages.
pub fn encode_announcements(
    family: Family,
    attrs: &PathAttributes,
    next_hop: Option<NextHop>,
    nlri: &[Nlri],
    ctx: &CodecCtx,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    if nlri.is_empty() {
        return Ok(0);
    }
    UpdatePacker::new(family, attrs, next_hop, ctx)?.pack(nlri, out)
}

/// Appends UPDATEs withdrawing `nlri` of `family`, packed: the classic
/// withdrawn-routes field for IPv4 unicast, MP_UNREACH_NLRI otherwise.
/// Returns the number of messages.
pub fn encode_withdrawals(
    family: Family,
    nlri: &[Nlri],
    ctx: &CodecCtx,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let max_len = ctx.max_message_len.min(MAX_EXTENDED_MESSAGE_LEN);
    let ap = ctx.add_path_tx.contains(&family);
    let classic = family == Family::IPV4_UNICAST;
    let overhead = HEADER_LEN + 4 + if classic { 0 } else { 7 };
    if overhead + 21 > max_len {
        return Err(EncodeError::TooLong {
            len: overhead + 21,
            max: max_len,
        });
    }
    if family.afi != Afi::IPV4 && family.afi != Afi::IPV6 {
        return Err(EncodeError::Unrepresentable(format!(
            "cannot withdraw prefixes of {family}"
        )));
    }
    let mut messages = 0;
    let mut rest = nlri;
    while !rest.is_empty() {
        let start = start_message(out, max_len);
        let wlen_at = out.len();
        out.put_u16(0);
        let mut mp_len_at = 0;
        if !classic {
            out.put_u16(0);
            out.put_u8(flags::OPTIONAL | flags::EXTENDED_LENGTH);
            out.put_u8(code::MP_UNREACH_NLRI);
            mp_len_at = out.len();
            out.put_u16(0);
            out.put_u16(family.afi.0);
            out.put_u8(family.safi.0);
        }
        let nlri_start = out.len();
        let mut budget = max_len - overhead;
        let mut taken = 0;
        for n in rest {
            let l = nlri_len(n, ap);
            if l > budget {
                break;
            }
            if let Err(e) = check_family(n, family) {
                out.truncate(start);
                return Err(e);
            }
            budget -= l;
            put_nlri(out, n, ap);
            taken += 1;
        }
        let nlri_bytes = out.len() - nlri_start;
        if classic {
            patch_u16(out, wlen_at, nlri_bytes);
            out.put_u16(0);
        } else {
            patch_u16(out, mp_len_at, 3 + nlri_bytes);
            patch_u16(out, wlen_at + 2, 7 + nlri_bytes);
        }
        let len = out.len() - start;
        patch_u16(out, start + 16, len);
        rest = rest.get(taken..).unwrap_or_default();
        messages += 1;
    }
    Ok(messages)
}
