//! ROUTE-REFRESH (RFC 2918 §3, RFC 7313 §3 subtypes).

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::message::{RefreshSubtype, RouteRefresh};
use crate::notification::RouteRefreshError;
use crate::types::{Afi, Family, Safi};

/// Decodes a ROUTE-REFRESH body. `whole` is the entire message, returned as
/// the NOTIFICATION data on a bad length (RFC 7313 §5: 7/1).
pub fn decode_route_refresh(body: &[u8], whole: &[u8]) -> Result<RouteRefresh, DecodeError> {
    let [a1, a2, subtype, safi] = body else {
        return Err(DecodeError::new(
            RouteRefreshError::InvalidMessageLength(whole.to_vec()),
            format!("ROUTE-REFRESH of {} octets (must be 23)", whole.len()),
        ));
    };
    let subtype = match subtype {
        0 => RefreshSubtype::Request,
        1 => RefreshSubtype::BeginningOfRouteRefresh,
        2 => RefreshSubtype::EndOfRouteRefresh,
        // RFC 7313 §5: other subtypes are ignored by the receiver.
        _ => RefreshSubtype::Reserved,
    };
    Ok(RouteRefresh {
        family: Family::new(Afi(u16::from_be_bytes([*a1, *a2])), Safi(*safi)),
        subtype,
    })
}

/// Appends a ROUTE-REFRESH body.
pub fn encode_route_refresh(rr: &RouteRefresh, out: &mut BytesMut) {
    out.put_u16(rr.family.afi.0);
    out.put_u8(rr.subtype as u8);
    out.put_u8(rr.family.safi.0);
}
