//! UPDATE messages encoded once for many sessions: an update group's batch.
//!
//! A batch is a plain value: the codec context it was encoded with, whole
//! messages packed into a few large chunks, and, per member, the spans it
//! must skip (the routes that came from that member: split horizon). A
//! member's share is a handful of zero-copy slices however many source
//! peers the batch holds. Members are named by a number the batch's owner
//! chooses (the RIB uses its peer ids).

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use crate::attr::{NextHop, PathAttributes};
use crate::message::{Message, Update};
use crate::types::{Family, Nlri};

use super::pack::{UpdatePacker, encode_withdrawals};
use super::{CodecCtx, EncodeError, encode_message};

/// A member of the group a batch is for.
pub type Member = u32;

/// Whole UPDATE messages for every member of an update group, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateBatch {
    ctx: CodecCtx,
    chunks: Vec<Bytes>,
    open: BytesMut,
    /// Per member, the spans it must not send: (chunk, start, end), in order.
    skips: HashMap<Member, Vec<(usize, usize, usize)>>,
    messages: u64,
    /// Per member, the messages inside its skipped spans.
    skipped: HashMap<Member, u64>,
}

impl UpdateBatch {
    /// Chunks close once they reach this size; one append never straddles two.
    pub const CHUNK: usize = 64 * 1024;

    /// An empty batch whose messages use `ctx`'s wire format.
    pub fn new(ctx: CodecCtx) -> Self {
        UpdateBatch {
            ctx,
            chunks: Vec::new(),
            open: BytesMut::new(),
            skips: HashMap::new(),
            messages: 0,
            skipped: HashMap::new(),
        }
    }

    /// The wire format of every message in the batch.
    pub fn ctx(&self) -> &CodecCtx {
        &self.ctx
    }

    /// Appends what `write` encodes (whole messages, returning how many);
    /// `except` must not get them back. On an error nothing is appended.
    fn append(
        &mut self,
        except: Option<Member>,
        write: impl FnOnce(&CodecCtx, &mut BytesMut) -> Result<usize, EncodeError>,
    ) -> Result<usize, EncodeError> {
        if self.open.len() >= Self::CHUNK {
            self.seal();
        }
        let start = self.open.len();
        let n = match write(&self.ctx, &mut self.open) {
            Ok(n) => n,
            Err(e) => {
                self.open.truncate(start);
                return Err(e);
            }
        };
        if n == 0 {
            return Ok(0);
        }
        self.messages += n as u64;
        if let Some(m) = except {
            let span = (self.chunks.len(), start, self.open.len());
            self.skips.entry(m).or_default().push(span);
            *self.skipped.entry(m).or_default() += n as u64;
        }
        Ok(n)
    }

    /// Announces `nlri` (one family) with `attrs` and `next_hop`, as many
    /// prefixes per UPDATE as fit. Returns the messages written.
    pub fn announce(
        &mut self,
        except: Option<Member>,
        attrs: &PathAttributes,
        next_hop: NextHop,
        nlri: &[Nlri],
    ) -> Result<usize, EncodeError> {
        let Some(first) = nlri.first() else {
            return Ok(0);
        };
        let family = first.family();
        self.append(except, |ctx, out| {
            UpdatePacker::new(family, attrs, Some(next_hop), ctx)?.pack(nlri, out)
        })
    }

    /// Withdraws `nlri` of `family`, packed. Returns the messages written.
    pub fn withdraw(
        &mut self,
        except: Option<Member>,
        family: Family,
        nlri: &[Nlri],
    ) -> Result<usize, EncodeError> {
        self.append(except, |ctx, out| {
            encode_withdrawals(family, nlri, ctx, out)
        })
    }

    /// Appends the End-of-RIB marker of `family` (RFC 4724 §2).
    pub fn end_of_rib(&mut self, family: Family) -> Result<usize, EncodeError> {
        self.append(None, |ctx, out| {
            encode_message(&Message::Update(Update::end_of_rib(family)), ctx, out).map(|_| 1)
        })
    }

    /// Freezes the chunk being filled; call before sharing the batch.
    pub fn seal(&mut self) {
        if !self.open.is_empty() {
            self.chunks.push(self.open.split().freeze());
        }
    }

    /// Octets in the batch (sealed chunks only).
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// True when no message was appended.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// UPDATE messages in the batch.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// UPDATE messages `member` sends.
    pub fn messages_for(&self, member: Member) -> u64 {
        self.messages - self.skipped.get(&member).copied().unwrap_or(0)
    }

    /// What `member` is to send, in order (sealed chunks only).
    pub fn for_member(&self, member: Member) -> Vec<Bytes> {
        let skips = self
            .skips
            .get(&member)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut skips = skips.iter().peekable();
        let mut out = Vec::with_capacity(self.chunks.len() + 1);
        for (i, chunk) in self.chunks.iter().enumerate() {
            let mut pos = 0;
            while let Some(&&(_, start, end)) = skips.peek().filter(|s| s.0 == i) {
                if start > pos {
                    out.push(chunk.slice(pos..start));
                }
                pos = end;
                skips.next();
            }
            if pos == 0 {
                out.push(chunk.clone());
            } else if pos < chunk.len() {
                out.push(chunk.slice(pos..));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{AsPath, LocalPref, Origin};
    use crate::codec::decode_message;

    fn ctx() -> CodecCtx {
        CodecCtx {
            four_octet_as: true,
            ..CodecCtx::default()
        }
    }

    fn nlri(s: &str) -> Nlri {
        Nlri::new(s.parse().expect("prefix"))
    }

    fn attrs() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: AsPath::default(),
            local_pref: Some(LocalPref::new(100)),
            ..PathAttributes::default()
        }
    }

    fn nh(s: &str) -> NextHop {
        NextHop::new(s.parse().expect("address"))
    }

    /// Every message of a member's share, decoded.
    fn decoded(b: &UpdateBatch, member: Member) -> Vec<Update> {
        let bytes: Vec<u8> = b.for_member(member).concat();
        let mut rest = &bytes[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = u16::from_be_bytes([rest[16], rest[17]]) as usize;
            match decode_message(&rest[..len], b.ctx()).expect("decodes") {
                Message::Update(u) => out.push(u),
                m => panic!("not an UPDATE: {m:?}"),
            }
            rest = &rest[len..];
        }
        out
    }

    /// Each member gets every span but those naming it, in order, and the
    /// message counts agree.
    #[test]
    fn members_skip_their_own_routes() {
        let mut b = UpdateBatch::new(ctx());
        let a = attrs();
        assert_eq!(
            b.announce(None, &a, nh("198.18.0.9"), &[nlri("100.64.0.0/26")]),
            Ok(1)
        );
        assert_eq!(
            b.announce(Some(1), &a, nh("198.18.0.1"), &[nlri("100.64.1.0/26")]),
            Ok(1)
        );
        assert_eq!(
            b.withdraw(Some(2), Family::IPV4_UNICAST, &[nlri("100.64.2.0/26")]),
            Ok(1)
        );
        assert_eq!(b.end_of_rib(Family::IPV6_UNICAST), Ok(1));
        b.seal();
        assert_eq!(b.messages(), 4);
        assert_eq!(b.messages_for(1), 3);
        assert_eq!(b.messages_for(2), 3);
        assert_eq!(b.messages_for(3), 4);
        let to1 = decoded(&b, 1);
        assert_eq!(to1.len(), 3);
        assert_eq!(to1[0].nlri, vec![nlri("100.64.0.0/26")]);
        assert_eq!(to1[1].withdrawn, vec![nlri("100.64.2.0/26")]);
        assert_eq!(to1[2].as_end_of_rib(), Some(Family::IPV6_UNICAST));
        let to2 = decoded(&b, 2);
        assert_eq!(to2[1].nlri, vec![nlri("100.64.1.0/26")]);
        assert_eq!(
            to2[1].attributes.next_hop,
            Some("198.18.0.1".parse().unwrap())
        );
        // One chunk, shared: a member's share is slices of it, not copies.
        assert_eq!(b.for_member(3).len(), 1);
        assert_eq!(b.for_member(1).len(), 2);
    }

    /// IPv6 goes in MP_REACH / MP_UNREACH; prefixes fill each UPDATE up to
    /// the negotiated size.
    #[test]
    fn packs_to_the_message_size() {
        let mut b = UpdateBatch::new(ctx());
        let v6: Vec<Nlri> = (0..2000u32)
            .map(|i| nlri(&format!("2001:db8:{:x}::/48", i)))
            .collect();
        let n = b
            .announce(None, &attrs(), nh("2001:db8::1"), &v6)
            .expect("packs");
        assert!(n > 1, "2,000 /48s do not fit one 4,096-octet UPDATE");
        let w = b.withdraw(None, Family::IPV6_UNICAST, &v6).expect("packs");
        b.seal();
        let all = decoded(&b, 0);
        assert_eq!(all.len(), n + w);
        let announced: Vec<Nlri> = all[..n]
            .iter()
            .flat_map(|u| u.mp_reach.as_ref().expect("MP_REACH").nlri.clone())
            .collect();
        assert_eq!(announced, v6);
        let withdrawn: Vec<Nlri> = all[n..]
            .iter()
            .flat_map(|u| u.mp_unreach.as_ref().expect("MP_UNREACH").withdrawn.clone())
            .collect();
        assert_eq!(withdrawn, v6);
        for c in b.for_member(0) {
            assert!(c.len() <= UpdateBatch::CHUNK + 4096);
        }
    }

    /// A failed append leaves the batch as it was.
    #[test]
    fn failed_append_adds_nothing() {
        let mut b = UpdateBatch::new(ctx());
        b.announce(None, &attrs(), nh("198.18.0.1"), &[nlri("100.64.0.0/26")])
            .expect("packs");
        // An IPv4 prefix in an IPv6 announcement cannot be encoded.
        let mixed = [nlri("2001:db8::/48"), nlri("100.64.1.0/26")];
        assert!(
            b.announce(Some(4), &attrs(), nh("2001:db8::1"), &mixed)
                .is_err()
        );
        // IPv6 next hop for IPv4 without RFC 8950 negotiated.
        assert!(
            b.announce(None, &attrs(), nh("2001:db8::1"), &[nlri("100.64.2.0/26")])
                .is_err()
        );
        b.seal();
        assert_eq!(b.messages(), 1);
        assert_eq!(b.messages_for(4), 1);
        assert_eq!(decoded(&b, 4).len(), 1);
    }

    /// Spans land in whole chunks: large batches split between appends, and
    /// skipping works across chunk boundaries.
    #[test]
    fn chunks_split_between_appends() {
        let mut b = UpdateBatch::new(ctx());
        let many: Vec<Nlri> = (0..20_000u32)
            .map(|i| {
                Nlri::new(ipnet::IpNet::V4(
                    ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0x6440_0000 + (i << 6)), 26)
                        .expect("prefix"),
                ))
            })
            .collect();
        let n = b
            .announce(None, &attrs(), nh("198.18.0.1"), &many)
            .expect("packs");
        b.announce(
            Some(7),
            &attrs(),
            nh("198.18.0.7"),
            &[nlri("100.127.0.0/26")],
        )
        .expect("packs");
        b.end_of_rib(Family::IPV4_UNICAST).expect("encodes");
        b.seal();
        assert_eq!(b.chunks.len(), 2, "the second append opens a new chunk");
        let to7 = decoded(&b, 7);
        assert_eq!(to7.len(), n + 1);
        assert_eq!(to7[n].as_end_of_rib(), Some(Family::IPV4_UNICAST));
        assert_eq!(decoded(&b, 8).len(), n + 2);
        // Nothing to send is an empty list.
        let mut only = UpdateBatch::new(ctx());
        only.withdraw(Some(4), Family::IPV4_UNICAST, &[nlri("100.64.0.0/26")])
            .expect("packs");
        only.seal();
        assert!(only.for_member(4).is_empty());
        assert_eq!(only.messages_for(4), 0);
    }
}
