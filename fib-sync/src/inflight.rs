//! Requests sent and not yet acknowledged, indexed by sequence number.
//!
//! Request sequence numbers are handed out consecutively on the request
//! socket, so a ring indexed by `seq - base` replaces a hash map: at a
//! million routes the map's cache misses were a visible share of the CPU.

use std::collections::VecDeque;

#[derive(Debug)]
pub(crate) struct Inflight<T> {
    base: u32,
    slots: VecDeque<Option<T>>,
    live: usize,
}

impl<T> Inflight<T> {
    pub(crate) fn new(first_seq: u32) -> Self {
        Self {
            base: first_seq,
            slots: VecDeque::new(),
            live: 0,
        }
    }

    /// The sequence number the next `push` takes.
    pub(crate) fn next_seq(&self) -> u32 {
        self.base.wrapping_add(self.slots.len() as u32)
    }

    /// Records the request sent with `next_seq()`; returns that number.
    pub(crate) fn push(&mut self, v: T) -> u32 {
        let seq = self.next_seq();
        self.slots.push_back(Some(v));
        self.live += 1;
        seq
    }

    pub(crate) fn remove(&mut self, seq: u32) -> Option<T> {
        let idx = seq.wrapping_sub(self.base) as usize;
        let v = self.slots.get_mut(idx)?.take()?;
        self.live -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base = self.base.wrapping_add(1);
        }
        Some(v)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Empties the ring, returning what was outstanding; numbering goes on.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let next = self.next_seq();
        let out = self.slots.drain(..).flatten().collect();
        self.base = next;
        self.live = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_removal_and_wrap() {
        let mut f = Inflight::new(u32::MAX - 1);
        let a = f.push('a');
        let b = f.push('b');
        let c = f.push('c');
        assert_eq!((a, b, c), (u32::MAX - 1, u32::MAX, 0));
        assert_eq!(f.remove(b), Some('b'));
        assert_eq!(f.remove(b), None);
        assert_eq!(f.len(), 2);
        assert_eq!(f.remove(a), Some('a'));
        assert_eq!(f.remove(7), None);
        assert_eq!(f.drain(), vec!['c']);
        assert!(f.is_empty());
        assert_eq!(f.push('d'), 1);
    }
}
