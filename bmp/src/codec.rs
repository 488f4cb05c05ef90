//! The wire form of BMP messages (RFC 7854 §4): [`Message::encode`],
//! [`decode`] and [`frame_len`] for a byte stream.
//!
//! No input makes the decoder panic: it reads through a cursor that fails
//! with [`DecodeError::Truncated`] instead of indexing past the end.

use bytes::{BufMut, Bytes, BytesMut};
use tabby_bgp::message::{HEADER_LEN as BGP_HEADER_LEN, kind as bgp_kind};
use tabby_bgp::{Afi, Family, Safi};

use crate::message::{
    COMMON_HEADER_LEN, InfoTlv, Message, PER_PEER_HEADER_LEN, PeerDown, PeerDownReason, PeerHeader,
    PeerType, PeerUp, RouteMonitoring, Stat, StatLayout, StatValue, StatsReport, Timestamp,
    VERSION, down, kind, stat_layout,
};

/// Why octets are not a BMP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message truncated: {0}")]
    Truncated(&'static str),
    #[error("unsupported BMP version {0}")]
    Version(u8),
    #[error("message length {0} is shorter than the common header")]
    Length(u32),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// Reads big-endian fields off the front of a slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// The length of the message at the front of `buf`, once its common header
/// is there (`Ok(None)` until then). The caller waits for that many octets.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < COMMON_HEADER_LEN {
        return Ok(None);
    }
    let mut c = Cursor(buf);
    let version = c.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let len = c.u32("length")?;
    if (len as usize) < COMMON_HEADER_LEN {
        return Err(DecodeError::Length(len));
    }
    Ok(Some(len as usize))
}

/// Decodes the one whole message `buf` holds (common header included);
/// octets beyond its length are an error.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let Some(len) = frame_len(buf)? else {
        return Err(DecodeError::Truncated("common header"));
    };
    if len != buf.len() {
        return Err(if len > buf.len() {
            DecodeError::Truncated("message shorter than its length")
        } else {
            DecodeError::Malformed("octets after the message's length")
        });
    }
    let ty = buf[5];
    let mut c = Cursor(&buf[COMMON_HEADER_LEN..]);
    let msg = match ty {
        kind::ROUTE_MONITORING => {
            let peer = peer_header(&mut c)?;
            let update = bgp_pdu(&mut c, bgp_kind::UPDATE, "route monitoring UPDATE")?;
            if !c.is_empty() {
                return Err(DecodeError::Malformed("octets after the UPDATE"));
            }
            Message::RouteMonitoring(RouteMonitoring { peer, update })
        }
        kind::STATISTICS_REPORT => {
            let peer = peer_header(&mut c)?;
            let count = c.u32("stats count")?;
            let mut stats = Vec::new();
            for _ in 0..count {
                let kind = c.u16("stat type")?;
                let len = c.u16("stat length")?;
                let v = c.take(len as usize, "stat value")?;
                stats.push(Stat {
                    kind,
                    value: stat_value(kind, v),
                });
            }
            if !c.is_empty() {
                return Err(DecodeError::Malformed("octets after the last statistic"));
            }
            Message::StatisticsReport(StatsReport { peer, stats })
        }
        kind::PEER_DOWN => {
            let peer = peer_header(&mut c)?;
            let code = c.u8("peer down reason")?;
            let data = c.rest();
            let reason = down_reason(code, data)?;
            Message::PeerDown(PeerDown { peer, reason })
        }
        kind::PEER_UP => {
            let peer = peer_header(&mut c)?;
            let local_address = c.array::<16>("local address")?;
            let local_port = c.u16("local port")?;
            let remote_port = c.u16("remote port")?;
            let sent_open = bgp_pdu(&mut c, bgp_kind::OPEN, "sent OPEN")?;
            let received_open = bgp_pdu(&mut c, bgp_kind::OPEN, "received OPEN")?;
            let information = tlvs(&mut c)?;
            Message::PeerUp(PeerUp {
                peer,
                local_address,
                local_port,
                remote_port,
                sent_open,
                received_open,
                information,
            })
        }
        kind::INITIATION => Message::Initiation(tlvs(&mut c)?),
        kind::TERMINATION => Message::Termination(tlvs(&mut c)?),
        kind::ROUTE_MIRRORING => {
            let peer = peer_header(&mut c)?;
            Message::RouteMirroring {
                peer,
                tlvs: tlvs(&mut c)?,
            }
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    Ok(msg)
}

fn peer_header(c: &mut Cursor<'_>) -> Result<PeerHeader, DecodeError> {
    let mut h = Cursor(c.take(PER_PEER_HEADER_LEN, "per-peer header")?);
    Ok(PeerHeader {
        peer_type: PeerType::from_code(h.u8("peer type")?),
        flags: h.u8("peer flags")?,
        distinguisher: h.u64("peer distinguisher")?,
        address: h.array::<16>("peer address")?,
        asn: h.u32("peer AS")?,
        bgp_id: h.array::<4>("peer BGP ID")?.into(),
        timestamp: Timestamp {
            secs: h.u32("timestamp")?,
            micros: h.u32("timestamp")?,
        },
    })
}

/// One whole BGP message of type `ty`, framed by its own length field
/// (RFC 4271 §4.1); the marker is not checked, as a station would not.
fn bgp_pdu(c: &mut Cursor<'_>, ty: u8, what: &'static str) -> Result<Bytes, DecodeError> {
    let Some(head) = c.0.get(..BGP_HEADER_LEN) else {
        return Err(DecodeError::Truncated(what));
    };
    let len = u16::from_be_bytes([head[16], head[17]]) as usize;
    if len < BGP_HEADER_LEN || head[18] != ty {
        return Err(DecodeError::Malformed(what));
    }
    Ok(Bytes::copy_from_slice(c.take(len, what)?))
}

/// TLVs to the end of the message (2-octet type and length).
fn tlvs(c: &mut Cursor<'_>) -> Result<Vec<InfoTlv>, DecodeError> {
    let mut out = Vec::new();
    while !c.is_empty() {
        let kind = c.u16("TLV type")?;
        let len = c.u16("TLV length")?;
        let value = Bytes::copy_from_slice(c.take(len as usize, "TLV value")?);
        out.push(InfoTlv { kind, value });
    }
    Ok(out)
}

fn stat_value(kind: u16, v: &[u8]) -> StatValue {
    match (stat_layout(kind), v.len()) {
        (StatLayout::Counter, 4) => {
            StatValue::Counter(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
        }
        (StatLayout::Gauge, 8) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(v);
            StatValue::Gauge(u64::from_be_bytes(a))
        }
        (StatLayout::FamilyGauge, 11) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&v[3..]);
            let family = Family::new(Afi(u16::from_be_bytes([v[0], v[1]])), Safi(v[2]));
            StatValue::FamilyGauge(family, u64::from_be_bytes(a))
        }
        _ => StatValue::Raw(Bytes::copy_from_slice(v)),
    }
}

fn down_reason(code: u8, data: &[u8]) -> Result<PeerDownReason, DecodeError> {
    let other = || PeerDownReason::Other {
        code,
        data: Bytes::copy_from_slice(data),
    };
    Ok(match code {
        down::LOCAL_NOTIFICATION | down::REMOTE_NOTIFICATION => {
            let mut c = Cursor(data);
            let n = bgp_pdu(&mut c, bgp_kind::NOTIFICATION, "peer down NOTIFICATION")?;
            if !c.is_empty() {
                return Err(DecodeError::Malformed("octets after the NOTIFICATION"));
            }
            if code == down::LOCAL_NOTIFICATION {
                PeerDownReason::LocalNotification(n)
            } else {
                PeerDownReason::RemoteNotification(n)
            }
        }
        down::LOCAL_NO_NOTIFICATION if data.len() == 2 => {
            PeerDownReason::LocalNoNotification(u16::from_be_bytes([data[0], data[1]]))
        }
        down::REMOTE_NO_DATA if data.is_empty() => PeerDownReason::RemoteNoData,
        down::DECONFIGURED if data.is_empty() => PeerDownReason::Deconfigured,
        down::LOCAL_TLV => PeerDownReason::LocalTlv(tlvs(&mut Cursor(data))?),
        _ => other(),
    })
}

impl Message {
    /// Appends the message, common header included, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u8(VERSION);
        out.put_u32(0); // length, set below
        out.put_u8(self.kind());
        match self {
            Message::RouteMonitoring(m) => {
                put_peer_header(&m.peer, out);
                out.put_slice(&m.update);
            }
            Message::StatisticsReport(m) => {
                put_peer_header(&m.peer, out);
                out.put_u32(m.stats.len() as u32);
                for s in &m.stats {
                    out.put_u16(s.kind);
                    match &s.value {
                        StatValue::Counter(v) => {
                            out.put_u16(4);
                            out.put_u32(*v);
                        }
                        StatValue::Gauge(v) => {
                            out.put_u16(8);
                            out.put_u64(*v);
                        }
                        StatValue::FamilyGauge(f, v) => {
                            out.put_u16(11);
                            out.put_u16(f.afi.0);
                            out.put_u8(f.safi.0);
                            out.put_u64(*v);
                        }
                        StatValue::Raw(b) => {
                            out.put_u16(b.len() as u16);
                            out.put_slice(b);
                        }
                    }
                }
            }
            Message::PeerDown(m) => {
                put_peer_header(&m.peer, out);
                out.put_u8(m.reason.code());
                match &m.reason {
                    PeerDownReason::LocalNotification(n)
                    | PeerDownReason::RemoteNotification(n) => {
                        out.put_slice(n);
                    }
                    PeerDownReason::LocalNoNotification(ev) => out.put_u16(*ev),
                    PeerDownReason::RemoteNoData | PeerDownReason::Deconfigured => {}
                    PeerDownReason::LocalTlv(t) => put_tlvs(t, out),
                    PeerDownReason::Other { data, .. } => out.put_slice(data),
                }
            }
            Message::PeerUp(m) => {
                put_peer_header(&m.peer, out);
                out.put_slice(&m.local_address);
                out.put_u16(m.local_port);
                out.put_u16(m.remote_port);
                out.put_slice(&m.sent_open);
                out.put_slice(&m.received_open);
                put_tlvs(&m.information, out);
            }
            Message::Initiation(t) | Message::Termination(t) => put_tlvs(t, out),
            Message::RouteMirroring { peer, tlvs } => {
                put_peer_header(peer, out);
                put_tlvs(tlvs, out);
            }
        }
        let len = (out.len() - start) as u32;
        out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    }

    /// The message's octets.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

fn put_peer_header(h: &PeerHeader, out: &mut BytesMut) {
    out.put_u8(h.peer_type.code());
    out.put_u8(h.flags);
    out.put_u64(h.distinguisher);
    out.put_slice(&h.address);
    out.put_u32(h.asn);
    out.put_slice(&h.bgp_id.octets());
    out.put_u32(h.timestamp.secs);
    out.put_u32(h.timestamp.micros);
}

fn put_tlvs(tlvs: &[InfoTlv], out: &mut BytesMut) {
    for t in tlvs {
        // A value longer than the length field can say is cut, never
        // written with a wrong length.
        let v = &t.value[..t.value.len().min(u16::MAX as usize)];
        out.put_u16(t.kind);
        out.put_u16(v.len() as u16);
        out.put_slice(v);
    }
}
