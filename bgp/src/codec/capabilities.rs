//! Capabilities (RFC 5492) inside the OPEN Capabilities optional parameter.

use bytes::{BufMut, BytesMut};

use crate::capability::{
    AddPathFamily, AddPathMode, Capability, ExtendedNextHop, GrFamily, GracefulRestart, LlgrFamily,
    Role, code,
};
use crate::error::DecodeError;
use crate::notification::OpenMessageError;
use crate::types::{Afi, Asn, Family, Safi};

use super::EncodeError;
use super::wire::{self, PResult};

/// RFC 4271 §6.2: a recognised but malformed optional parameter is 2/0.
fn malformed(what: impl Into<String>) -> DecodeError {
    DecodeError::new(OpenMessageError::Unspecific, what)
}

/// Decodes the value of one Capabilities optional parameter: a sequence of
/// (code, length, value) triples.
pub fn decode_capabilities(mut buf: &[u8]) -> Result<Vec<Capability>, DecodeError> {
    let mut caps = Vec::new();
    while !buf.is_empty() {
        let (rest, (cap_code, value)) =
            cap_tlv(buf).map_err(|_| malformed("capability overruns its optional parameter"))?;
        caps.push(decode_capability(cap_code, value)?);
        buf = rest;
    }
    Ok(caps)
}

fn cap_tlv(i: &[u8]) -> PResult<'_, (u8, &[u8])> {
    let (i, c) = wire::u8(i)?;
    let (i, len) = wire::u8(i)?;
    let (i, v) = wire::take(i, len as usize)?;
    Ok((i, (c, v)))
}

fn family(i: &[u8]) -> PResult<'_, Family> {
    let (i, afi) = wire::u16(i)?;
    let (i, safi) = wire::u8(i)?;
    Ok((i, Family::new(Afi(afi), Safi(safi))))
}

/// Parses a value made of fixed-size entries, failing on a remainder.
fn entries<'a, T>(
    mut v: &'a [u8],
    size: usize,
    mut f: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> Option<Vec<T>> {
    if !v.len().is_multiple_of(size) {
        return None;
    }
    let mut out = Vec::with_capacity(v.len() / size);
    while !v.is_empty() {
        let (rest, e) = f(v).ok()?;
        out.push(e);
        v = rest;
    }
    Some(out)
}

/// Decodes one capability. Known codes with a malformed value are a 2/0
/// error; values this speaker cannot represent (an unassigned role, an
/// ADD-PATH mode outside 1-3) keep the capability as `Unknown`, which RFC
/// 7911 §4 and RFC 9234 §4.1 say to treat as not understood.
pub fn decode_capability(cap_code: u8, v: &[u8]) -> Result<Capability, DecodeError> {
    let bad = |name: &str| malformed(format!("malformed {name} capability ({} octets)", v.len()));
    let unknown = || Capability::Unknown {
        code: cap_code,
        value: v.to_vec(),
    };
    Ok(match cap_code {
        code::MULTIPROTOCOL => {
            // RFC 4760 §8: AFI(2) reserved(1) SAFI(1).
            let [a1, a2, _, s] = v else {
                return Err(bad("multiprotocol"));
            };
            Capability::Multiprotocol(Family::new(Afi(u16::from_be_bytes([*a1, *a2])), Safi(*s)))
        }
        code::ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
        code::ROUTE_REFRESH => return Err(bad("route refresh")),
        code::ENHANCED_ROUTE_REFRESH if v.is_empty() => Capability::EnhancedRouteRefresh,
        code::ENHANCED_ROUTE_REFRESH => return Err(bad("enhanced route refresh")),
        code::EXTENDED_MESSAGE if v.is_empty() => Capability::ExtendedMessage,
        code::EXTENDED_MESSAGE => return Err(bad("extended message")),
        code::FOUR_OCTET_AS => {
            let [a, b, c, d] = v else {
                return Err(bad("4-octet AS"));
            };
            Capability::FourOctetAs(Asn(u32::from_be_bytes([*a, *b, *c, *d])))
        }
        code::ROLE => {
            let [r] = v else {
                return Err(bad("BGP role"));
            };
            match Role::from_u8(*r) {
                Some(role) => Capability::Role(role),
                None => unknown(),
            }
        }
        code::GRACEFUL_RESTART => {
            // RFC 4724 §3: flags(4 bits) + restart time(12 bits), then
            // AFI(2) SAFI(1) flags(1) per family.
            let (rest, head) = wire::u16(v).map_err(|_| bad("graceful restart"))?;
            let families = entries(rest, 4, |i| {
                let (i, family) = family(i)?;
                let (i, flags) = wire::u8(i)?;
                Ok((
                    i,
                    GrFamily {
                        family,
                        forwarding_preserved: flags & 0x80 != 0,
                    },
                ))
            })
            .ok_or_else(|| bad("graceful restart"))?;
            Capability::GracefulRestart(GracefulRestart {
                restart_state: head & 0x8000 != 0,
                notification: head & 0x4000 != 0,
                restart_time: head & 0x0FFF,
                families,
            })
        }
        code::LONG_LIVED_GR => {
            // RFC 9494 §3: AFI(2) SAFI(1) flags(1) stale time(3).
            let families = entries(v, 7, |i| {
                let (i, family) = family(i)?;
                let (i, flags) = wire::u8(i)?;
                let (i, stale_time) = wire::u24(i)?;
                Ok((
                    i,
                    LlgrFamily {
                        family,
                        forwarding_preserved: flags & 0x80 != 0,
                        stale_time,
                    },
                ))
            })
            .ok_or_else(|| bad("long-lived graceful restart"))?;
            Capability::LongLivedGracefulRestart(families)
        }
        code::ADD_PATH => {
            // RFC 7911 §4: AFI(2) SAFI(1) send/receive(1).
            let families = entries(v, 4, |i| {
                let (i, family) = family(i)?;
                let (i, mode) = wire::u8(i)?;
                Ok((i, (family, mode)))
            })
            .ok_or_else(|| bad("ADD-PATH"))?;
            let mut out = Vec::with_capacity(families.len());
            for (family, mode) in families {
                let mode = match mode {
                    1 => AddPathMode::Receive,
                    2 => AddPathMode::Send,
                    3 => AddPathMode::Both,
                    _ => return Ok(unknown()),
                };
                out.push(AddPathFamily { family, mode });
            }
            Capability::AddPath(out)
        }
        code::EXTENDED_NEXT_HOP => {
            // RFC 8950 §3: NLRI AFI(2) NLRI SAFI(2) next-hop AFI(2).
            let tuples = entries(v, 6, |i| {
                let (i, afi) = wire::u16(i)?;
                let (i, safi) = wire::u16(i)?;
                let (i, nh) = wire::u16(i)?;
                Ok((i, (afi, safi, nh)))
            })
            .ok_or_else(|| bad("extended next hop"))?;
            let mut out = Vec::with_capacity(tuples.len());
            for (afi, safi, nh) in tuples {
                let Ok(safi) = u8::try_from(safi) else {
                    return Ok(unknown());
                };
                out.push(ExtendedNextHop {
                    family: Family::new(Afi(afi), Safi(safi)),
                    next_hop_afi: Afi(nh),
                });
            }
            Capability::ExtendedNextHop(out)
        }
        _ => unknown(),
    })
}

/// Appends one capability TLV.
pub fn encode_capability(cap: &Capability, out: &mut BytesMut) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_u8(cap.code());
    out.put_u8(0);
    match cap {
        Capability::Multiprotocol(f) => {
            out.put_u16(f.afi.0);
            out.put_u8(0);
            out.put_u8(f.safi.0);
        }
        Capability::RouteRefresh
        | Capability::EnhancedRouteRefresh
        | Capability::ExtendedMessage => {}
        Capability::FourOctetAs(asn) => out.put_u32(asn.0),
        Capability::Role(r) => out.put_u8(*r as u8),
        Capability::GracefulRestart(gr) => {
            let mut head = gr.restart_time & 0x0FFF;
            if gr.restart_state {
                head |= 0x8000;
            }
            if gr.notification {
                head |= 0x4000;
            }
            out.put_u16(head);
            for f in &gr.families {
                out.put_u16(f.family.afi.0);
                out.put_u8(f.family.safi.0);
                out.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
            }
        }
        Capability::LongLivedGracefulRestart(fams) => {
            for f in fams {
                out.put_u16(f.family.afi.0);
                out.put_u8(f.family.safi.0);
                out.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
                let t = f.stale_time.min(0x00FF_FFFF);
                out.put_u8((t >> 16) as u8);
                out.put_u16(t as u16);
            }
        }
        Capability::AddPath(fams) => {
            for f in fams {
                out.put_u16(f.family.afi.0);
                out.put_u8(f.family.safi.0);
                out.put_u8(f.mode as u8);
            }
        }
        Capability::ExtendedNextHop(entries) => {
            for e in entries {
                out.put_u16(e.family.afi.0);
                out.put_u16(e.family.safi.0 as u16);
                out.put_u16(e.next_hop_afi.0);
            }
        }
        Capability::Unknown { value, .. } => out.put_slice(value),
    }
    let len = out.len() - start - 2;
    let Ok(len) = u8::try_from(len) else {
        out.truncate(start);
        return Err(EncodeError::Unrepresentable(format!(
            "capability {} value of {len} octets exceeds 255",
            cap.code()
        )));
    };
    if let Some(b) = out.get_mut(start + 1) {
        *b = len;
    }
    Ok(())
}

/// The OPEN error for a capability this speaker requires but the peer did
/// not send (RFC 5492 §3), for the FSM's use.
pub fn unsupported_capability(cap: &Capability) -> DecodeError {
    let mut data = BytesMut::new();
    // A capability we built ourselves always fits.
    let _ = encode_capability(cap, &mut data);
    DecodeError::new(
        OpenMessageError::UnsupportedCapability(data.to_vec()),
        format!("peer lacks required capability {}", cap.code()),
    )
}
