//! UPDATEs encoded once and sent by many sessions.

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::{Bytes, BytesMut};

use crate::sockopt;

/// Whole UPDATE messages encoded once for every member of an update group,
/// in order, packed into a few large chunks. Each member skips the spans
/// that came from itself (split horizon) by taking zero-copy slices around
/// them, so a member's share is a handful of buffers however many source
/// peers the batch holds. Members are named by their address.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SharedUpdates {
    chunks: Vec<Bytes>,
    open: BytesMut,
    /// Per member, the spans it must not send: (chunk, start, end), in order.
    skips: HashMap<IpAddr, Vec<(usize, usize, usize)>>,
}

impl SharedUpdates {
    /// Chunks close near this size; one append never straddles two.
    pub const CHUNK: usize = 64 * 1024;

    /// Appends whole encoded messages; `except` is the member they came
    /// from, which must not get them back.
    pub fn push(&mut self, except: Option<IpAddr>, data: &[u8]) {
        if !self.open.is_empty() && self.open.len() + data.len() > Self::CHUNK {
            self.seal();
        }
        let start = self.open.len();
        self.open.extend_from_slice(data);
        if let Some(p) = except {
            let span = (self.chunks.len(), start, self.open.len());
            self.skips
                .entry(sockopt::canonical(p))
                .or_default()
                .push(span);
        }
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

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the member at `peer` is to send, in order (sealed chunks only).
    pub fn for_peer(&self, peer: IpAddr) -> Vec<Bytes> {
        let skips = self
            .skips
            .get(&sockopt::canonical(peer))
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

    fn a(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    fn joined(v: Vec<Bytes>) -> Vec<u8> {
        v.concat()
    }

    /// Each member gets every span but those naming it, in order.
    #[test]
    fn members_skip_their_own_routes() {
        let mut batch = SharedUpdates::default();
        batch.push(None, b"all-");
        batch.push(Some(a(1)), b"from-1-");
        batch.push(Some(a(2)), b"from-2-");
        batch.push(Some(a(1)), b"again-1-");
        batch.push(None, b"tail");
        batch.seal();
        assert_eq!(joined(batch.for_peer(a(1))), b"all-from-2-tail");
        assert_eq!(joined(batch.for_peer(a(2))), b"all-from-1-again-1-tail");
        assert_eq!(
            joined(batch.for_peer(a(3))),
            b"all-from-1-from-2-again-1-tail"
        );
        // One chunk, shared: a member's share is slices of it, not copies.
        assert_eq!(batch.for_peer(a(3)).len(), 1);
        assert_eq!(batch.for_peer(a(1)).len(), 3);
        // A v4-mapped address names the same member.
        let mapped: IpAddr = "::ffff:198.18.0.1".parse().unwrap();
        assert_eq!(joined(batch.for_peer(mapped)), b"all-from-2-tail");
    }

    /// Spans land in whole chunks: large batches split between appends,
    /// and skipping works across chunk boundaries.
    #[test]
    fn batches_split_into_chunks_between_appends() {
        let mut batch = SharedUpdates::default();
        let big = vec![7u8; SharedUpdates::CHUNK - 10];
        batch.push(None, &big);
        batch.push(Some(a(1)), b"0123456789abcdef");
        batch.push(None, b"end");
        batch.seal();
        assert_eq!(batch.chunks.len(), 2);
        assert_eq!(batch.len(), big.len() + 19);
        let mut want = big.clone();
        want.extend_from_slice(b"end");
        assert_eq!(joined(batch.for_peer(a(1))), want);
        let mut all = big;
        all.extend_from_slice(b"0123456789abcdefend");
        assert_eq!(joined(batch.for_peer(a(2))), all);
        // A skip at a chunk's start leaves only its tail of that chunk.
        assert_eq!(batch.for_peer(a(1)).len(), 2);
        // Nothing to send is an empty list.
        let mut only = SharedUpdates::default();
        only.push(Some(a(4)), b"x");
        only.seal();
        assert!(only.for_peer(a(4)).is_empty());
    }
}
