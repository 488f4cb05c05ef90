//! NLRI prefixes (RFC 4271 §4.3, RFC 4760 §5) with optional ADD-PATH path
//! identifiers (RFC 7911 §3).
//!
//! This is the hot path of both directions, so it is a hand-written loop
//! over slices rather than a combinator chain; it still never indexes wire
//! data.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::types::{Afi, Nlri};

/// Why an NLRI field could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlriError(pub String);

/// Decodes a run of prefixes of `afi` (IPv4 or IPv6) into `out`. Host bits
/// past the prefix length are cleared (RFC 4271 §4.3: they are irrelevant).
pub fn decode_prefixes(
    buf: &[u8],
    afi: Afi,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), NlriError> {
    // One monomorphised loop per shape keeps the per-prefix work minimal.
    match (afi == Afi::IPV6, add_path) {
        (false, false) => decode_loop::<false, false>(buf, out),
        (false, true) => decode_loop::<false, true>(buf, out),
        (true, false) => decode_loop::<true, false>(buf, out),
        (true, true) => decode_loop::<true, true>(buf, out),
    }
}

#[inline(always)]
fn decode_loop<const V6: bool, const ADD_PATH: bool>(
    mut buf: &[u8],
    out: &mut Vec<Nlri>,
) -> Result<(), NlriError> {
    let max_len: u8 = if V6 { 128 } else { 32 };
    while !buf.is_empty() {
        let path_id = if ADD_PATH {
            let Some((id, rest)) = buf.split_first_chunk::<4>() else {
                return Err(NlriError(format!(
                    "{} octets left, too few for an ADD-PATH path identifier",
                    buf.len()
                )));
            };
            buf = rest;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let Some((&len, rest)) = buf.split_first() else {
            return Err(NlriError("path identifier without a prefix".into()));
        };
        if len > max_len {
            return Err(NlriError(format!("prefix length {len} exceeds {max_len}")));
        }
        let n = (len as usize).div_ceil(8);
        if rest.len() < n {
            return Err(NlriError(format!(
                "prefix /{len} needs {n} octets, {} left",
                rest.len()
            )));
        }
        let prefix = if V6 {
            // Load a whole address when the buffer allows and mask off what
            // belongs to the next entry; copy only near the end.
            let raw = match rest.first_chunk::<16>() {
                Some(a) => u128::from_be_bytes(*a),
                None => u128::from_be_bytes(padded(rest)),
            };
            let bits = raw & mask128(len);
            Ipv6Net::new(Ipv6Addr::from(bits), len).map(IpNet::V6)
        } else {
            let raw = match rest.first_chunk::<4>() {
                Some(a) => u32::from_be_bytes(*a),
                None => u32::from_be_bytes(padded(rest)),
            };
            let bits = raw & mask32(len);
            Ipv4Net::new(Ipv4Addr::from(bits), len).map(IpNet::V4)
        };
        buf = rest.get(n..).unwrap_or_default();
        let Ok(prefix) = prefix else {
            return Err(NlriError(format!("prefix length {len} is invalid")));
        };
        out.push(Nlri { prefix, path_id });
    }
    Ok(())
}

/// The first octets of `b` in a zero-padded array.
#[inline]
fn padded<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    a
}

#[inline]
fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - len as u32).unwrap_or(0)
}

#[inline]
fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - len as u32).unwrap_or(0)
}

/// Encoded size of one NLRI entry.
#[inline]
pub fn nlri_len(n: &Nlri, add_path: bool) -> usize {
    1 + (n.prefix.prefix_len() as usize).div_ceil(8) + if add_path { 4 } else { 0 }
}

/// Appends one NLRI entry. With `add_path`, a missing path identifier is
/// sent as 0; without it, a present one is not sent.
#[inline]
pub fn put_nlri(out: &mut BytesMut, n: &Nlri, add_path: bool) {
    if add_path {
        out.put_u32(n.path_id.unwrap_or(0));
    }
    let len = n.prefix.prefix_len();
    let k = (len as usize).div_ceil(8);
    // Write a fixed-size word (length octet + whole address) and trim the
    // unused tail: cheaper than a variable-length copy per prefix.
    match n.prefix {
        IpNet::V4(p) => {
            let bits = u32::from(p.addr()) & mask32(len);
            out.put_u64(((len as u64) << 56) | ((bits as u64) << 24));
            out.truncate(out.len() - (7 - k));
        }
        IpNet::V6(p) => {
            let bits = u128::from(p.addr()) & mask128(len);
            // Length octet + first 7 address octets, then the rest only
            // for prefixes longer than /56.
            out.put_u64(((len as u64) << 56) | (bits >> 72) as u64);
            let written = if k > 7 {
                out.put_u64((bits >> 8) as u64);
                if k > 15 {
                    out.put_u8(bits as u8);
                    17
                } else {
                    16
                }
            } else {
                8
            };
            out.truncate(out.len() - (written - 1 - k));
        }
    }
}

/// True when `prefix` belongs to `afi`.
#[inline]
pub fn matches_afi(prefix: &IpNet, afi: Afi) -> bool {
    matches!(
        (prefix, afi),
        (IpNet::V4(_), Afi::IPV4) | (IpNet::V6(_), Afi::IPV6)
    )
}
