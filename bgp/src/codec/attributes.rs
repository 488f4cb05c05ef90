//! Path attributes (RFC 4271 §4.3, §5) with RFC 7606 error handling and the
//! RFC 6793 AS4_PATH / AS4_AGGREGATOR reconciliation.
//!
//! Decoding never fails for a problem RFC 7606 handles short of a session
//! reset: such problems are recorded as [`Rfc7606Issue`]s. Only the cases
//! RFC 7606 still resets for (duplicate or unparsable MP_REACH/MP_UNREACH,
//! unknown well-known attributes, a bad MP next-hop length) are errors.

use std::net::{IpAddr, Ipv4Addr};

use bytes::{BufMut, BytesMut};

use crate::attr::{
    Aggregator, AsPath, Community, ExtCommunity, LargeCommunity, LocalPref, Med, NextHop, Origin,
    PathAttributes, RawAttribute, Segment, SegmentType, code, flags,
};
use crate::error::{DecodeError, Rfc7606Action, Rfc7606Issue};
use crate::message::{MpReach, MpUnreach};
use crate::notification::{UpdateMessageError, update as sub};
use crate::types::{Afi, Asn, Family, Safi};

use super::nlri::{decode_prefixes, matches_afi, nlri_len, put_nlri};
use super::wire::{self, PResult};
use super::{CodecCtx, EncodeError};

/// Everything the attribute section of an UPDATE decodes into.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedAttributes {
    pub attributes: PathAttributes,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub issues: Vec<Rfc7606Issue>,
    /// An AS_PATH attribute was present (an empty one decodes to the same
    /// `AsPath` as a missing one).
    pub as_path_present: bool,
}

/// The (Optional, Transitive) flags a known attribute must carry
/// (RFC 4271 §5 and the defining RFCs); `None` for codes we do not know.
fn expected_flags(type_code: u8) -> Option<u8> {
    const WK: u8 = flags::TRANSITIVE;
    const OPT_T: u8 = flags::OPTIONAL | flags::TRANSITIVE;
    const OPT_NT: u8 = flags::OPTIONAL;
    Some(match type_code {
        code::ORIGIN | code::AS_PATH | code::NEXT_HOP | code::LOCAL_PREF => WK,
        code::ATOMIC_AGGREGATE => WK,
        code::MULTI_EXIT_DISC | code::ORIGINATOR_ID | code::CLUSTER_LIST => OPT_NT,
        code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => OPT_NT,
        code::AGGREGATOR | code::COMMUNITIES | code::EXTENDED_COMMUNITIES => OPT_T,
        code::AS4_PATH | code::AS4_AGGREGATOR | code::LARGE_COMMUNITIES | code::OTC => OPT_T,
        _ => return None,
    })
}

struct Decoder<'c> {
    ctx: &'c CodecCtx,
    out: DecodedAttributes,
    seen: [u64; 4],
    as_path_seen: bool,
    /// AS4_PATH / AS4_AGGREGATOR arrived before AS_PATH (judged once the
    /// whole list is read).
    as4_path_early: bool,
    as4_aggregator_early: bool,
    as4_path: Option<AsPath>,
    as4_aggregator: Option<Aggregator>,
}

impl Decoder<'_> {
    fn issue(&mut self, action: Rfc7606Action, attribute: u8, subcode: u8, reason: String) {
        tracing::debug!(attribute, subcode, ?action, %reason, "RFC 7606 outcome");
        self.out.issues.push(Rfc7606Issue {
            action,
            attribute,
            subcode,
            reason,
        });
    }

    fn withdraw(&mut self, attribute: u8, subcode: u8, reason: impl Into<String>) {
        self.issue(
            Rfc7606Action::TreatAsWithdraw,
            attribute,
            subcode,
            reason.into(),
        );
    }

    fn discard(&mut self, attribute: u8, subcode: u8, reason: impl Into<String>) {
        self.issue(
            Rfc7606Action::AttributeDiscard,
            attribute,
            subcode,
            reason.into(),
        );
    }

    /// Marks `type_code` seen; false when it already was.
    fn first_time(&mut self, type_code: u8) -> bool {
        let (word, bit) = ((type_code / 64) as usize, type_code % 64);
        match self.seen.get_mut(word) {
            Some(w) if *w & (1 << bit) != 0 => false,
            Some(w) => {
                *w |= 1 << bit;
                true
            }
            None => true,
        }
    }
}

fn attr_header(i: &[u8]) -> PResult<'_, (u8, u8, usize)> {
    let (i, fl) = wire::u8(i)?;
    let (i, ty) = wire::u8(i)?;
    let (i, len) = if fl & flags::EXTENDED_LENGTH != 0 {
        let (i, l) = wire::u16(i)?;
        (i, l as usize)
    } else {
        let (i, l) = wire::u8(i)?;
        (i, l as usize)
    };
    Ok((i, (fl, ty, len)))
}

/// Decodes the path attribute section of an UPDATE.
pub fn decode_attributes(buf: &[u8], ctx: &CodecCtx) -> Result<DecodedAttributes, DecodeError> {
    let mut d = Decoder {
        ctx,
        out: DecodedAttributes::default(),
        seen: [0; 4],
        as_path_seen: false,
        as4_path_early: false,
        as4_aggregator_early: false,
        as4_path: None,
        as4_aggregator: None,
    };
    let mut rest = buf;
    while !rest.is_empty() {
        let Ok((after_header, (fl, ty, len))) = attr_header(rest) else {
            // RFC 7606 §4: trailing octets too short for a header.
            d.withdraw(0, sub::MALFORMED_ATTRIBUTE_LIST, format!(
                "{} trailing octets in the attribute section are too short for an attribute header",
                rest.len()
            ));
            break;
        };
        let Some((value, next)) = after_header.split_at_checked(len) else {
            // RFC 7606 §4: the last attribute overruns the total length.
            d.withdraw(ty, sub::ATTRIBUTE_LENGTH_ERROR, format!(
                "attribute {ty} of length {len} overruns the attribute section ({} octets left)",
                after_header.len()
            ));
            break;
        };
        let whole = rest.get(..rest.len() - next.len()).unwrap_or_default();
        rest = next;
        decode_one(&mut d, fl, ty, value, whole)?;
    }
    d.out.as_path_present = d.as_path_seen;
    // CONFORMANCE.md row 15: an AS4 attribute placed before AS_PATH is
    // discarded.
    if d.as_path_seen && d.as4_path_early && d.as4_path.take().is_some() {
        d.discard(
            code::AS4_PATH,
            sub::MALFORMED_AS_PATH,
            "AS4_PATH placed before AS_PATH",
        );
    }
    if d.as_path_seen && d.as4_aggregator_early && d.as4_aggregator.take().is_some() {
        d.discard(
            code::AS4_AGGREGATOR,
            sub::OPTIONAL_ATTRIBUTE_ERROR,
            "AS4_AGGREGATOR placed before AS_PATH",
        );
    }
    reconcile_as4(&mut d);
    Ok(d.out)
}

fn decode_one(
    d: &mut Decoder<'_>,
    fl: u8,
    ty: u8,
    v: &[u8],
    whole: &[u8],
) -> Result<(), DecodeError> {
    let is_mp = ty == code::MP_REACH_NLRI || ty == code::MP_UNREACH_NLRI;
    if !d.first_time(ty) {
        if is_mp {
            // RFC 7606 §3 (g).
            return Err(DecodeError::new(
                UpdateMessageError::MalformedAttributeList,
                format!("attribute {ty} (MP_REACH/MP_UNREACH) appears twice"),
            ));
        }
        d.discard(
            ty,
            sub::MALFORMED_ATTRIBUTE_LIST,
            format!("duplicate attribute {ty}: kept the first"),
        );
        return Ok(());
    }
    if ty == code::AS_PATH {
        d.as_path_seen = true;
    }
    let Some(expected) = expected_flags(ty) else {
        if fl & flags::OPTIONAL == 0 {
            // RFC 4271 §6.3: unrecognised well-known attribute.
            return Err(DecodeError::new(
                UpdateMessageError::UnrecognizedWellKnownAttribute(whole.to_vec()),
                format!("unrecognised well-known attribute {ty}"),
            ));
        }
        d.out.attributes.unknown.push(RawAttribute {
            flags: fl & (flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL),
            type_code: ty,
            value: v.to_vec(),
        });
        return Ok(());
    };
    // RFC 7606 §3 (c); the low four bits are ignored (RFC 4271 §4.3).
    if fl & (flags::OPTIONAL | flags::TRANSITIVE) != expected {
        d.withdraw(
            ty,
            sub::ATTRIBUTE_FLAGS_ERROR,
            format!("attribute {ty} has flags {fl:#04x}"),
        );
        if !is_mp {
            return Ok(());
        }
        // MP attributes are still parsed so their NLRI can be withdrawn.
    }
    let ctx = d.ctx;
    let a = &mut d.out.attributes;
    let wrong_len = |name: &str| format!("{name} of length {}", v.len());
    match ty {
        code::ORIGIN => match v {
            [0] => a.origin = Some(Origin::Igp),
            [1] => a.origin = Some(Origin::Egp),
            [2] => a.origin = Some(Origin::Incomplete),
            [x] => d.withdraw(
                ty,
                sub::INVALID_ORIGIN_ATTRIBUTE,
                format!("ORIGIN value {x}"),
            ),
            _ => d.withdraw(ty, sub::ATTRIBUTE_LENGTH_ERROR, wrong_len("ORIGIN")),
        },
        code::AS_PATH => {
            match parse_as_path(v, ctx.four_octet_as) {
                Ok(p) if p.iter().any(|a| a.0 == 0) => {
                    // RFC 7607 §2.
                    d.withdraw(ty, sub::MALFORMED_AS_PATH, "AS_PATH contains AS 0")
                }
                Ok(p) => d.out.attributes.as_path = p,
                Err(e) => d.withdraw(ty, sub::MALFORMED_AS_PATH, format!("AS_PATH: {e}")),
            }
        }
        code::NEXT_HOP => match v {
            [a1, a2, a3, a4] => a.next_hop = Some(Ipv4Addr::new(*a1, *a2, *a3, *a4)),
            _ => d.withdraw(ty, sub::ATTRIBUTE_LENGTH_ERROR, wrong_len("NEXT_HOP")),
        },
        code::MULTI_EXIT_DISC => match be32(v) {
            Some(m) => a.med = Some(Med::new(m)),
            None => d.withdraw(
                ty,
                sub::ATTRIBUTE_LENGTH_ERROR,
                wrong_len("MULTI_EXIT_DISC"),
            ),
        },
        code::LOCAL_PREF => {
            if ctx.ebgp {
                // RFC 7606 §7.5.
                d.discard(ty, 0, "LOCAL_PREF from an external peer");
            } else {
                match be32(v) {
                    Some(lp) => a.local_pref = Some(LocalPref::new(lp)),
                    None => d.withdraw(ty, sub::ATTRIBUTE_LENGTH_ERROR, wrong_len("LOCAL_PREF")),
                }
            }
        }
        code::ATOMIC_AGGREGATE => {
            if v.is_empty() {
                a.atomic_aggregate = true;
            } else {
                // RFC 7606 §7.6.
                d.discard(
                    ty,
                    sub::ATTRIBUTE_LENGTH_ERROR,
                    wrong_len("ATOMIC_AGGREGATE"),
                );
            }
        }
        code::AGGREGATOR => {
            // RFC 7606 §7.7: 6 octets from 2-octet sessions, 8 from 4-octet.
            let parsed = match (ctx.four_octet_as, v) {
                (false, [x1, x2, r @ ..]) if r.len() == 4 => {
                    Some((u16::from_be_bytes([*x1, *x2]) as u32, be32(r)))
                }
                (true, [x1, x2, x3, x4, r @ ..]) if r.len() == 4 => {
                    Some((u32::from_be_bytes([*x1, *x2, *x3, *x4]), be32(r)))
                }
                _ => None,
            };
            match parsed {
                Some((0, _)) => {
                    d.discard(ty, sub::OPTIONAL_ATTRIBUTE_ERROR, "AGGREGATOR with AS 0")
                }
                Some((asn, Some(addr))) => {
                    a.aggregator = Some(Aggregator {
                        asn: Asn(asn),
                        address: Ipv4Addr::from(addr),
                    })
                }
                _ => d.discard(ty, sub::ATTRIBUTE_LENGTH_ERROR, wrong_len("AGGREGATOR")),
            }
        }
        code::COMMUNITIES => match chunks::<4>(v) {
            Some(it) => a.communities = it.map(|c| Community(u32::from_be_bytes(c))).collect(),
            None => d.withdraw(ty, sub::OPTIONAL_ATTRIBUTE_ERROR, wrong_len("COMMUNITIES")),
        },
        code::ORIGINATOR_ID => {
            if ctx.ebgp {
                // RFC 4456 §8 attributes have no meaning across AS borders.
                d.discard(ty, 0, "ORIGINATOR_ID from an external peer");
            } else {
                match be32(v) {
                    Some(id) => a.originator_id = Some(Ipv4Addr::from(id)),
                    None => d.withdraw(ty, sub::ATTRIBUTE_LENGTH_ERROR, wrong_len("ORIGINATOR_ID")),
                }
            }
        }
        code::CLUSTER_LIST => {
            if ctx.ebgp {
                d.discard(ty, 0, "CLUSTER_LIST from an external peer");
            } else {
                match chunks::<4>(v) {
                    // RFC 7606 §7.10.
                    Some(it) => {
                        a.cluster_list = it.map(|c| Ipv4Addr::from(u32::from_be_bytes(c))).collect()
                    }
                    None => d.withdraw(ty, sub::ATTRIBUTE_LENGTH_ERROR, wrong_len("CLUSTER_LIST")),
                }
            }
        }
        code::EXTENDED_COMMUNITIES => match chunks::<8>(v) {
            Some(it) => a.ext_communities = it.map(ExtCommunity).collect(),
            None => d.withdraw(
                ty,
                sub::OPTIONAL_ATTRIBUTE_ERROR,
                wrong_len("EXTENDED_COMMUNITIES"),
            ),
        },
        code::LARGE_COMMUNITIES => match chunks::<12>(v) {
            // RFC 8092 §5.
            Some(it) => {
                a.large_communities = it
                    .map(|c| {
                        let [g1, g2, g3, g4, l1, l2, l3, l4, m1, m2, m3, m4] = c;
                        LargeCommunity {
                            global_admin: u32::from_be_bytes([g1, g2, g3, g4]),
                            local_data_1: u32::from_be_bytes([l1, l2, l3, l4]),
                            local_data_2: u32::from_be_bytes([m1, m2, m3, m4]),
                        }
                    })
                    .collect()
            }
            None => d.withdraw(
                ty,
                sub::OPTIONAL_ATTRIBUTE_ERROR,
                wrong_len("LARGE_COMMUNITIES"),
            ),
        },
        code::OTC => match be32(v) {
            // RFC 9234 §5.
            Some(asn) => a.otc = Some(Asn(asn)),
            None => d.withdraw(ty, sub::ATTRIBUTE_LENGTH_ERROR, wrong_len("OTC")),
        },
        code::AS4_PATH => {
            // RFC 6793 §3: a 4-octet session must not carry AS4_PATH.
            if ctx.four_octet_as {
                d.discard(ty, 0, "AS4_PATH on a 4-octet AS session");
            } else {
                d.as4_path_early = !d.as_path_seen;
                match parse_as_path(v, true) {
                    Ok(p) if p.iter().any(|a| a.0 == 0) => {
                        d.discard(ty, sub::MALFORMED_AS_PATH, "AS4_PATH contains AS 0")
                    }
                    Ok(mut p) => {
                        // RFC 6793 §6: confederation segments do not belong here.
                        p.segments
                            .retain(|s| matches!(s.kind, SegmentType::Sequence | SegmentType::Set));
                        d.as4_path = Some(p);
                    }
                    Err(e) => d.discard(ty, sub::MALFORMED_AS_PATH, format!("AS4_PATH: {e}")),
                }
            }
        }
        code::AS4_AGGREGATOR => {
            if ctx.four_octet_as {
                d.discard(ty, 0, "AS4_AGGREGATOR on a 4-octet AS session");
            } else {
                d.as4_aggregator_early = !d.as_path_seen;
                match (v.get(..4).and_then(be32), v.get(4..).and_then(be32)) {
                    (Some(asn), Some(addr)) if v.len() == 8 && asn != 0 => {
                        d.as4_aggregator = Some(Aggregator {
                            asn: Asn(asn),
                            address: Ipv4Addr::from(addr),
                        })
                    }
                    _ => d.discard(ty, sub::ATTRIBUTE_LENGTH_ERROR, wrong_len("AS4_AGGREGATOR")),
                }
            }
        }
        code::MP_REACH_NLRI => decode_mp_reach(d, v, whole)?,
        code::MP_UNREACH_NLRI => decode_mp_unreach(d, v, whole)?,
        _ => {}
    }
    Ok(())
}

fn be32(v: &[u8]) -> Option<u32> {
    let arr: [u8; 4] = v.try_into().ok()?;
    Some(u32::from_be_bytes(arr))
}

/// A non-empty value made of whole `N`-octet items.
fn chunks<const N: usize>(v: &[u8]) -> Option<impl Iterator<Item = [u8; N]> + '_> {
    if v.is_empty() || !v.len().is_multiple_of(N) {
        return None;
    }
    Some(
        v.chunks_exact(N)
            .filter_map(|c| <[u8; N]>::try_from(c).ok()),
    )
}

/// Parses AS_PATH / AS4_PATH segments (RFC 4271 §4.3, RFC 5065 §3,
/// RFC 7606 §7.2: zero-length or unknown segments and overruns are
/// malformed).
pub fn parse_as_path(mut v: &[u8], four_octet: bool) -> Result<AsPath, String> {
    let size = if four_octet { 4 } else { 2 };
    let mut segments = Vec::new();
    while !v.is_empty() {
        let Some((&[kind, count], rest)) = v.split_first_chunk::<2>() else {
            return Err("truncated segment header".into());
        };
        let kind = match kind {
            1 => SegmentType::Set,
            2 => SegmentType::Sequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            k => return Err(format!("unknown segment type {k}")),
        };
        if count == 0 {
            return Err("zero-length segment".into());
        }
        let Some((body, rest)) = rest.split_at_checked(count as usize * size) else {
            return Err(format!("segment of {count} ASNs overruns the attribute"));
        };
        let asns = if four_octet {
            body.chunks_exact(4)
                .filter_map(|c| be32(c).map(Asn))
                .collect()
        } else {
            body.chunks_exact(2)
                .filter_map(|c| <[u8; 2]>::try_from(c).ok())
                .map(|c| Asn(u16::from_be_bytes(c) as u32))
                .collect()
        };
        segments.push(Segment { kind, asns });
        v = rest;
    }
    Ok(AsPath { segments })
}

/// RFC 6793 §4.2.3 path length: AS_SET counts one, confederation segments
/// count zero.
fn as4_count(p: &AsPath) -> usize {
    p.path_len()
}

/// RFC 6793 §4.2.3: rebuild the real path and aggregator from a 2-octet
/// peer's AS_PATH + AS4_PATH and AGGREGATOR + AS4_AGGREGATOR.
fn reconcile_as4(d: &mut Decoder<'_>) {
    if d.ctx.four_octet_as {
        return;
    }
    let mut as4_path = d.as4_path.take();
    if let Some(as4_agg) = d.as4_aggregator.take() {
        match d.out.attributes.aggregator {
            Some(agg) if agg.asn == Asn::TRANS => d.out.attributes.aggregator = Some(as4_agg),
            // AGGREGATOR names a real 2-octet AS: both AS4 attributes are
            // ignored.
            Some(_) => as4_path = None,
            None => {}
        }
    }
    let Some(as4) = as4_path else { return };
    let path = &d.out.attributes.as_path;
    let (n, n4) = (as4_count(path), as4_count(&as4));
    if n < n4 {
        // The AS4_PATH is longer: it is ignored.
        return;
    }
    let mut need = n - n4;
    // Confederation segments (which belong at the front, RFC 5065 §3) are
    // gathered first so the result re-encodes to itself.
    let mut merged: Vec<Segment> = Vec::with_capacity(path.segments.len() + as4.segments.len());
    let mut leading: Vec<Segment> = Vec::new();
    for seg in &path.segments {
        match seg.kind {
            SegmentType::ConfedSequence | SegmentType::ConfedSet => merged.push(seg.clone()),
            _ if need == 0 => break,
            SegmentType::Set => {
                leading.push(seg.clone());
                need -= 1;
            }
            SegmentType::Sequence => {
                let take = need.min(seg.asns.len());
                leading.push(Segment {
                    kind: SegmentType::Sequence,
                    asns: seg.asns.iter().take(take).copied().collect(),
                });
                need -= take;
            }
        }
    }
    merged.extend(leading);
    // Join the two halves when a sequence was cut between them and the
    // result still fits one segment.
    let mut as4_segments = as4.segments.into_iter();
    if let Some(first) = as4_segments.next() {
        match merged.last_mut() {
            Some(last)
                if last.kind == SegmentType::Sequence
                    && first.kind == SegmentType::Sequence
                    && last.asns.len() + first.asns.len() <= 255 =>
            {
                last.asns.extend(first.asns)
            }
            _ => merged.push(first),
        }
    }
    merged.extend(as4_segments);
    d.out.attributes.as_path = AsPath { segments: merged };
}

/// Families whose NLRI are IP prefixes this codec can decode.
fn ip_family(f: Family) -> bool {
    (f.afi == Afi::IPV4 || f.afi == Afi::IPV6)
        && (f.safi == Safi::UNICAST || f.safi == Safi::MULTICAST)
}

fn mp_header(i: &[u8]) -> PResult<'_, Family> {
    let (i, afi) = wire::u16(i)?;
    let (i, safi) = wire::u8(i)?;
    Ok((i, Family::new(Afi(afi), Safi(safi))))
}

/// `whole` is the attribute with its header: the data of an RFC 4271 §6.3
/// Optional Attribute Error.
fn decode_mp_reach(d: &mut Decoder<'_>, v: &[u8], whole: &[u8]) -> Result<(), DecodeError> {
    let bad = |reason: String| {
        DecodeError::new(
            UpdateMessageError::OptionalAttributeError(whole.to_vec()),
            reason,
        )
    };
    let parsed: PResult<'_, (Family, &[u8])> = (|| {
        let (i, family) = mp_header(v)?;
        let (i, nh_len) = wire::u8(i)?;
        let (i, nh) = wire::take(i, nh_len as usize)?;
        let (i, _reserved) = wire::u8(i)?;
        Ok((i, (family, nh)))
    })();
    let Ok((nlri, (family, nh))) = parsed else {
        return Err(bad(format!(
            "MP_REACH_NLRI of {} octets is truncated",
            v.len()
        )));
    };
    if !ip_family(family) {
        d.discard(
            code::MP_REACH_NLRI,
            sub::OPTIONAL_ATTRIBUTE_ERROR,
            format!("MP_REACH_NLRI for unsupported family {family}"),
        );
        return Ok(());
    }
    // RFC 4760 §3, RFC 2545 §3, RFC 8950 §3: next-hop length per family.
    let ext_nh = d.ctx.extended_next_hop;
    let next_hop = match (family.afi, nh.len()) {
        (Afi::IPV4, 4) => wire::ipv4(nh)
            .ok()
            .map(|(_, a)| NextHop::new(IpAddr::V4(a))),
        (Afi::IPV6, 16 | 32) | (Afi::IPV4, 16 | 32) if family.afi == Afi::IPV6 || ext_nh => {
            wire::ipv6(nh).ok().map(|(rest, g)| NextHop {
                addr: IpAddr::V6(g),
                link_local: wire::ipv6(rest).ok().map(|(_, ll)| ll),
            })
        }
        _ => None,
    };
    let Some(next_hop) = next_hop else {
        // RFC 7606 §7.11: session reset (or AFI/SAFI disable).
        return Err(bad(format!(
            "MP_REACH_NLRI next-hop length {} is inconsistent with {family}",
            nh.len()
        )));
    };
    let add_path = d.ctx.add_path_rx.contains(&family);
    let mut out = Vec::with_capacity(nlri.len() / 4 + 1);
    decode_prefixes(nlri, family.afi, add_path, &mut out).map_err(|e| {
        DecodeError::new(
            UpdateMessageError::InvalidNetworkField,
            format!("MP_REACH_NLRI {family}: {}", e.0),
        )
    })?;
    d.out.mp_reach = Some(MpReach {
        family,
        next_hop,
        nlri: out,
    });
    Ok(())
}

fn decode_mp_unreach(d: &mut Decoder<'_>, v: &[u8], whole: &[u8]) -> Result<(), DecodeError> {
    let Ok((withdrawn, family)) = mp_header(v) else {
        return Err(DecodeError::new(
            UpdateMessageError::OptionalAttributeError(whole.to_vec()),
            format!("MP_UNREACH_NLRI of {} octets is truncated", v.len()),
        ));
    };
    if !ip_family(family) {
        d.discard(
            code::MP_UNREACH_NLRI,
            sub::OPTIONAL_ATTRIBUTE_ERROR,
            format!("MP_UNREACH_NLRI for unsupported family {family}"),
        );
        return Ok(());
    }
    let add_path = d.ctx.add_path_rx.contains(&family);
    let mut out = Vec::with_capacity(withdrawn.len() / 4);
    decode_prefixes(withdrawn, family.afi, add_path, &mut out).map_err(|e| {
        DecodeError::new(
            UpdateMessageError::InvalidNetworkField,
            format!("MP_UNREACH_NLRI {family}: {}", e.0),
        )
    })?;
    d.out.mp_unreach = Some(MpUnreach {
        family,
        withdrawn: out,
    });
    Ok(())
}

// ---------------------------------------------------------------- encoding

/// Appends an attribute header for a value of `len` octets, choosing the
/// extended length when needed.
pub(crate) fn put_attr_header(
    out: &mut BytesMut,
    fl: u8,
    ty: u8,
    len: usize,
) -> Result<(), EncodeError> {
    if len > 255 {
        let Ok(len) = u16::try_from(len) else {
            return Err(EncodeError::Unrepresentable(format!(
                "attribute {ty} value of {len} octets exceeds 65535"
            )));
        };
        out.put_u8((fl | flags::EXTENDED_LENGTH) & 0xF0);
        out.put_u8(ty);
        out.put_u16(len);
    } else {
        out.put_u8(fl & !flags::EXTENDED_LENGTH & 0xF0);
        out.put_u8(ty);
        out.put_u8(len as u8);
    }
    Ok(())
}

fn as_path_len(p: &AsPath, size: usize, skip_confed: bool) -> usize {
    p.segments
        .iter()
        .filter(|s| !(skip_confed && is_confed(s.kind)))
        .map(|s| s.asns.len().div_ceil(255) * 2 + s.asns.len() * size)
        .sum()
}

fn is_confed(k: SegmentType) -> bool {
    matches!(k, SegmentType::ConfedSequence | SegmentType::ConfedSet)
}

/// Segments of more than 255 ASNs are split (the count is one octet).
fn put_as_path(out: &mut BytesMut, p: &AsPath, four_octet: bool, skip_confed: bool) {
    for s in &p.segments {
        if skip_confed && is_confed(s.kind) {
            continue;
        }
        for chunk in s.asns.chunks(255) {
            out.put_u8(s.kind as u8);
            out.put_u8(chunk.len() as u8);
            for a in chunk {
                if four_octet {
                    out.put_u32(a.0);
                } else if a.is_two_octet() {
                    out.put_u16(a.0 as u16);
                } else {
                    // RFC 6793 §4.2.2: AS_TRANS stands in for it.
                    out.put_u16(Asn::TRANS.0 as u16);
                }
            }
        }
    }
}

/// Appends every attribute of `a` except MP_REACH/MP_UNREACH, in type-code
/// order. Towards a 2-octet peer (`!ctx.four_octet_as`) 4-octet ASNs become
/// AS_TRANS and AS4_PATH / AS4_AGGREGATOR carry the real values
/// (RFC 6793 §4.2.2). Optional transitive unknown attributes are sent with
/// the Partial bit (RFC 4271 §5); optional non-transitive unknown ones are
/// not sent.
pub fn encode_attributes(
    a: &PathAttributes,
    ctx: &CodecCtx,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    const WK: u8 = flags::TRANSITIVE;
    const OPT_T: u8 = flags::OPTIONAL | flags::TRANSITIVE;
    const OPT_NT: u8 = flags::OPTIONAL;
    let four = ctx.four_octet_as;

    if let Some(o) = a.origin {
        put_attr_header(out, WK, code::ORIGIN, 1)?;
        out.put_u8(o as u8);
    }
    // AS_PATH is well-known mandatory: sent, even empty (iBGP), whenever
    // the set describes a route (ORIGIN present); empty segments are
    // skipped by the writers.
    let path = &a.as_path;
    if a.origin.is_some() || !path.is_empty() {
        put_attr_header(
            out,
            WK,
            code::AS_PATH,
            as_path_len(path, if four { 4 } else { 2 }, false),
        )?;
        put_as_path(out, path, four, false);
    }
    if let Some(nh) = a.next_hop {
        put_attr_header(out, WK, code::NEXT_HOP, 4)?;
        out.put_slice(&nh.octets());
    }
    if let Some(m) = a.med {
        put_attr_header(out, OPT_NT, code::MULTI_EXIT_DISC, 4)?;
        out.put_u32(m.get());
    }
    if let Some(lp) = a.local_pref {
        put_attr_header(out, WK, code::LOCAL_PREF, 4)?;
        out.put_u32(lp.get());
    }
    if a.atomic_aggregate {
        put_attr_header(out, WK, code::ATOMIC_AGGREGATE, 0)?;
    }
    if let Some(agg) = a.aggregator {
        if four {
            put_attr_header(out, OPT_T, code::AGGREGATOR, 8)?;
            out.put_u32(agg.asn.0);
        } else {
            put_attr_header(out, OPT_T, code::AGGREGATOR, 6)?;
            let asn = if agg.asn.is_two_octet() {
                agg.asn
            } else {
                Asn::TRANS
            };
            out.put_u16(asn.0 as u16);
        }
        out.put_slice(&agg.address.octets());
    }
    if !a.communities.is_empty() {
        put_attr_header(out, OPT_T, code::COMMUNITIES, a.communities.len() * 4)?;
        for c in &a.communities {
            out.put_u32(c.0);
        }
    }
    if let Some(id) = a.originator_id {
        put_attr_header(out, OPT_NT, code::ORIGINATOR_ID, 4)?;
        out.put_slice(&id.octets());
    }
    if !a.cluster_list.is_empty() {
        put_attr_header(out, OPT_NT, code::CLUSTER_LIST, a.cluster_list.len() * 4)?;
        for c in &a.cluster_list {
            out.put_slice(&c.octets());
        }
    }
    if !a.ext_communities.is_empty() {
        put_attr_header(
            out,
            OPT_T,
            code::EXTENDED_COMMUNITIES,
            a.ext_communities.len() * 8,
        )?;
        for c in &a.ext_communities {
            out.put_slice(&c.0);
        }
    }
    if !four {
        let needs_as4 = path
            .segments
            .iter()
            .filter(|s| !is_confed(s.kind))
            .any(|s| s.asns.iter().any(|a| !a.is_two_octet()));
        if needs_as4 {
            put_attr_header(out, OPT_T, code::AS4_PATH, as_path_len(path, 4, true))?;
            put_as_path(out, path, true, true);
        }
        if let Some(agg) = a.aggregator.filter(|g| !g.asn.is_two_octet()) {
            put_attr_header(out, OPT_T, code::AS4_AGGREGATOR, 8)?;
            out.put_u32(agg.asn.0);
            out.put_slice(&agg.address.octets());
        }
    }
    if !a.large_communities.is_empty() {
        put_attr_header(
            out,
            OPT_T,
            code::LARGE_COMMUNITIES,
            a.large_communities.len() * 12,
        )?;
        for c in &a.large_communities {
            out.put_u32(c.global_admin);
            out.put_u32(c.local_data_1);
            out.put_u32(c.local_data_2);
        }
    }
    if let Some(otc) = a.otc {
        put_attr_header(out, OPT_T, code::OTC, 4)?;
        out.put_u32(otc.0);
    }
    for u in &a.unknown {
        if !u.is_optional() {
            return Err(EncodeError::Unrepresentable(format!(
                "unknown well-known attribute {} cannot be sent",
                u.type_code
            )));
        }
        if !u.is_transitive() {
            continue;
        }
        put_attr_header(out, u.flags | flags::PARTIAL, u.type_code, u.value.len())?;
        out.put_slice(&u.value);
    }
    Ok(())
}

/// The wire length of a next hop in MP_REACH_NLRI.
fn next_hop_len(nh: &NextHop) -> usize {
    match nh.addr {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16 + if nh.link_local.is_some() { 16 } else { 0 },
    }
}

/// Checks that `nh` can be sent for `family` in this session.
pub(crate) fn check_next_hop(
    family: Family,
    nh: &NextHop,
    ctx: &CodecCtx,
) -> Result<(), EncodeError> {
    match (family.afi, nh.addr) {
        (Afi::IPV4, IpAddr::V4(_)) if nh.link_local.is_none() => Ok(()),
        (Afi::IPV6, IpAddr::V6(_)) => Ok(()),
        (Afi::IPV4, IpAddr::V6(_)) if ctx.extended_next_hop => Ok(()),
        _ => Err(EncodeError::Unrepresentable(format!(
            "next hop {nh} cannot be sent for {family} (extended next hop negotiated: {})",
            ctx.extended_next_hop
        ))),
    }
}

/// Writes the MP_REACH_NLRI attribute header and fixed part up to the NLRI;
/// returns the value length of that fixed part.
pub(crate) fn put_mp_reach_head(out: &mut BytesMut, family: Family, nh: &NextHop) -> usize {
    out.put_u16(family.afi.0);
    out.put_u8(family.safi.0);
    out.put_u8(next_hop_len(nh) as u8);
    match nh.addr {
        IpAddr::V4(a) => out.put_slice(&a.octets()),
        IpAddr::V6(a) => {
            out.put_slice(&a.octets());
            if let Some(ll) = nh.link_local {
                out.put_slice(&ll.octets());
            }
        }
    }
    out.put_u8(0);
    5 + next_hop_len(nh)
}

fn check_nlri_family(nlri: &[crate::types::Nlri], family: Family) -> Result<(), EncodeError> {
    match nlri.iter().find(|n| !matches_afi(&n.prefix, family.afi)) {
        Some(n) => Err(EncodeError::Unrepresentable(format!(
            "prefix {} in a {family} NLRI",
            n.prefix
        ))),
        None => Ok(()),
    }
}

/// Appends an MP_REACH_NLRI attribute.
pub fn encode_mp_reach(r: &MpReach, ctx: &CodecCtx, out: &mut BytesMut) -> Result<(), EncodeError> {
    check_next_hop(r.family, &r.next_hop, ctx)?;
    check_nlri_family(&r.nlri, r.family)?;
    let ap = ctx.add_path_tx.contains(&r.family);
    let len = 5 + next_hop_len(&r.next_hop) + r.nlri.iter().map(|n| nlri_len(n, ap)).sum::<usize>();
    put_attr_header(out, flags::OPTIONAL, code::MP_REACH_NLRI, len)?;
    put_mp_reach_head(out, r.family, &r.next_hop);
    for n in &r.nlri {
        put_nlri(out, n, ap);
    }
    Ok(())
}

/// Appends an MP_UNREACH_NLRI attribute.
pub fn encode_mp_unreach(
    u: &MpUnreach,
    ctx: &CodecCtx,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_nlri_family(&u.withdrawn, u.family)?;
    let ap = ctx.add_path_tx.contains(&u.family);
    let len = 3 + u.withdrawn.iter().map(|n| nlri_len(n, ap)).sum::<usize>();
    put_attr_header(out, flags::OPTIONAL, code::MP_UNREACH_NLRI, len)?;
    out.put_u16(u.family.afi.0);
    out.put_u8(u.family.safi.0);
    for n in &u.withdrawn {
        put_nlri(out, n, ap);
    }
    Ok(())
}
