//! A raw BGP peer for crafted and malformed messages (the conformance rows):
//! it speaks just enough BGP-4 (RFC 4271 §4) to reach Established, then
//! sends whatever bytes a test builds and reports what comes back. It is
//! written independently of Tabby's codec so it can judge it.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ipnet::Ipv4Net;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::lab::{Lab, Ns};

/// RFC 4271 §4.1 message types.
pub const OPEN: u8 = 1;
pub const UPDATE: u8 = 2;
pub const NOTIFICATION: u8 = 3;
pub const KEEPALIVE: u8 = 4;
pub const ROUTE_REFRESH: u8 = 5;

/// Path attribute flags (RFC 4271 §4.3).
pub const OPTIONAL: u8 = 0x80;
pub const TRANSITIVE: u8 = 0x40;
pub const PARTIAL: u8 = 0x20;
pub const EXTENDED_LENGTH: u8 = 0x10;

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMsg {
    pub kind: u8,
    pub body: Vec<u8>,
}

impl RawMsg {
    /// `(code, subcode, data)` of a NOTIFICATION.
    pub fn notification(&self) -> Option<(u8, u8, &[u8])> {
        if self.kind != NOTIFICATION || self.body.len() < 2 {
            return None;
        }
        Some((self.body[0], self.body[1], &self.body[2..]))
    }

    /// The sender's 2-octet My AS field of an OPEN.
    pub fn open_my_as(&self) -> Option<u16> {
        if self.kind != OPEN {
            return None;
        }
        let b = self.body.get(1..3)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// A whole message: marker, length, type, body (RFC 4271 §4.1).
pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = (19 + body.len()) as u16;
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&len.to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// Multiprotocol capability (RFC 4760 §8).
pub fn cap_multiprotocol(afi: u16, safi: u8) -> Vec<u8> {
    let a = afi.to_be_bytes();
    vec![1, 4, a[0], a[1], 0, safi]
}

/// Four-octet AS capability (RFC 6793).
pub fn cap_as4(asn: u32) -> Vec<u8> {
    let mut c = vec![65, 4];
    c.extend_from_slice(&asn.to_be_bytes());
    c
}

/// An OPEN body with the given capabilities in one optional parameter.
pub fn open_body(asn: u32, hold: u16, id: Ipv4Addr, caps: &[Vec<u8>]) -> Vec<u8> {
    // RFC 6793 §4.1: AS_TRANS in the 2-octet field for large ASNs.
    let my_as = u16::try_from(asn).unwrap_or(23456);
    let mut b = vec![4];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id.octets());
    let caps: Vec<u8> = caps.concat();
    if caps.is_empty() {
        b.push(0);
    } else {
        b.push((caps.len() + 2) as u8);
        b.push(2);
        b.push(caps.len() as u8);
        b.extend_from_slice(&caps);
    }
    b
}

/// One path attribute; the extended-length flag is set when needed.
pub fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(value.len() + 4);
    if value.len() > 255 || flags & EXTENDED_LENGTH != 0 {
        a.push(flags | EXTENDED_LENGTH);
        a.push(code);
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(flags);
        a.push(code);
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

/// An IPv4 prefix in NLRI encoding (RFC 4271 §4.3).
pub fn prefix_bytes(p: Ipv4Net) -> Vec<u8> {
    let n = usize::from(p.prefix_len()).div_ceil(8);
    let mut b = vec![p.prefix_len()];
    b.extend_from_slice(&p.network().octets()[..n]);
    b
}

/// An UPDATE body from withdrawn routes, encoded attributes and NLRI.
pub fn update_body(withdrawn: &[Ipv4Net], attrs: &[u8], nlri: &[Ipv4Net]) -> Vec<u8> {
    let w: Vec<u8> = withdrawn.iter().flat_map(|p| prefix_bytes(*p)).collect();
    let mut b = Vec::new();
    b.extend_from_slice(&(w.len() as u16).to_be_bytes());
    b.extend_from_slice(&w);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    for p in nlri {
        b.extend_from_slice(&prefix_bytes(*p));
    }
    b
}

/// ORIGIN IGP, an AS_SEQUENCE of 4-octet ASNs and NEXT_HOP.
pub fn basic_attrs(as_path: &[u32], next_hop: Ipv4Addr) -> Vec<u8> {
    let mut path = Vec::new();
    if !as_path.is_empty() {
        path.push(2); // AS_SEQUENCE
        path.push(as_path.len() as u8);
        for a in as_path {
            path.extend_from_slice(&a.to_be_bytes());
        }
    }
    let mut v = attr(TRANSITIVE, 1, &[0]);
    v.extend(attr(TRANSITIVE, 2, &path));
    v.extend(attr(TRANSITIVE, 3, &next_hop.octets()));
    v
}

/// A TCP connection speaking raw BGP.
#[derive(Debug)]
pub struct RawBgp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawBgp {
    /// Connects from `ns` (from `local` when given) to `peer`.
    pub fn connect(
        lab: &Lab,
        ns: &Ns,
        local: Option<IpAddr>,
        peer: SocketAddr,
        timeout: Duration,
    ) -> Result<RawBgp> {
        let stream = lab.in_ns(ns, || -> Result<TcpStream> {
            let s = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))?;
            if let Some(l) = local {
                s.bind(&SockAddr::from(SocketAddr::new(l, 0)))
                    .with_context(|| format!("cannot bind {l}"))?;
            }
            s.connect_timeout(&SockAddr::from(peer), timeout)
                .with_context(|| format!("cannot connect to {peer} from {ns}"))?;
            Ok(s.into())
        })??;
        stream.set_nodelay(true)?;
        Ok(RawBgp {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .context("the peer closed the connection")
    }

    /// Frames and sends one message.
    pub fn send_msg(&mut self, kind: u8, body: &[u8]) -> Result<()> {
        self.send(&frame(kind, body))
    }

    pub fn keepalive(&mut self) -> Result<()> {
        self.send_msg(KEEPALIVE, &[])
    }

    /// The next message, or `None` if none arrives within `timeout`. An error
    /// when the peer closes the connection.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<RawMsg>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 19 {
                let len = usize::from(u16::from_be_bytes([self.buf[16], self.buf[17]]));
                if len < 19 {
                    bail!("peer sent a message with length {len}");
                }
                if self.buf.len() >= len {
                    let msg: Vec<u8> = self.buf.drain(..len).collect();
                    return Ok(Some(RawMsg {
                        kind: msg[18],
                        body: msg[19..].to_vec(),
                    }));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => bail!("the peer closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) => return Err(e).context("reading from the peer"),
            }
        }
    }

    /// Waits for a message of `kind`, skipping others; errors on timeout.
    pub fn expect(&mut self, kind: u8, timeout: Duration) -> Result<RawMsg> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Some(m) if m.kind == kind => return Ok(m),
                Some(m) if m.kind == NOTIFICATION && kind != NOTIFICATION => {
                    let (c, s, _) = m.notification().unwrap_or((0, 0, &[]));
                    bail!("peer sent NOTIFICATION {c}/{s} while we waited for type {kind}");
                }
                Some(_) => continue,
                None => bail!("no message of type {kind} within {timeout:?}"),
            }
        }
    }

    /// OPEN (IPv4 unicast, 4-octet AS), then KEEPALIVEs both ways: the
    /// session is Established on return. Returns the peer's OPEN.
    pub fn establish(&mut self, asn: u32, id: Ipv4Addr, hold: u16) -> Result<RawMsg> {
        let caps = [cap_multiprotocol(1, 1), cap_as4(asn)];
        self.send_msg(OPEN, &open_body(asn, hold, id, &caps))?;
        let open = self
            .expect(OPEN, Duration::from_secs(10))
            .context("waiting for the peer's OPEN")?;
        self.keepalive()?;
        self.expect(KEEPALIVE, Duration::from_secs(10))
            .context("waiting for the peer's KEEPALIVE")?;
        Ok(open)
    }

    /// Waits for a NOTIFICATION; returns `(code, subcode, data)`.
    pub fn expect_notification(&mut self, timeout: Duration) -> Result<(u8, u8, Vec<u8>)> {
        let m = self.expect(NOTIFICATION, timeout)?;
        let (c, s, d) = m
            .notification()
            .ok_or_else(|| anyhow!("short NOTIFICATION {:?}", m.body))?;
        Ok((c, s, d.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_open_and_update() {
        let o = open_body(65099, 90, Ipv4Addr::new(198, 18, 1, 2), &[cap_as4(65099)]);
        // version, AS, hold, id, opt len 8, param 2 len 6, cap 65 len 4 ASN
        assert_eq!(
            o,
            [
                4, 0xfe, 0x4b, 0, 90, 198, 18, 1, 2, 8, 2, 6, 65, 4, 0, 0, 0xfe, 0x4b
            ]
        );
        let big = open_body(4_200_000_000, 90, Ipv4Addr::new(198, 18, 1, 2), &[]);
        assert_eq!(&big[1..3], &23456u16.to_be_bytes());
        let f = frame(KEEPALIVE, &[]);
        assert_eq!(f.len(), 19);
        assert_eq!(&f[16..], &[0, 19, 4]);
        let u = update_body(
            &[],
            &basic_attrs(&[65099], Ipv4Addr::new(198, 18, 1, 2)),
            &[
                "100.64.20.0/24".parse().unwrap(),
                "100.64.0.0/10".parse().unwrap(),
            ],
        );
        assert_eq!(&u[..2], &[0, 0]);
        assert_eq!(&u[u.len() - 7..], &[24, 100, 64, 20, 10, 100, 64]);
        let long = attr(OPTIONAL, 99, &[0; 300]);
        assert_eq!(long[0], OPTIONAL | EXTENDED_LENGTH);
        assert_eq!(&long[2..4], &300u16.to_be_bytes());
    }

    #[test]
    fn reads_notification_fields() {
        let m = RawMsg {
            kind: NOTIFICATION,
            body: vec![3, 1, 0xaa],
        };
        assert_eq!(m.notification(), Some((3, 1, &[0xaa][..])));
        assert_eq!(
            RawMsg {
                kind: NOTIFICATION,
                body: vec![6]
            }
            .notification(),
            None
        );
    }
}
