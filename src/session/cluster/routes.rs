//! A client's outstanding keyed units, for the order gate (`order.rs`):
//! which reply part each fills, its hash slot and the node it went to.
//!
//! Owner: one `CClient`. Invariants:
//! - routes are kept in send order; only the oldest is ever removed;
//! - a client with few routes (the common case) is searched by a scan of
//!   them, which allocates nothing; past `LINEAR` routes a per-slot index
//!   is built, so checking a unit looks only at its own slot's routes. A
//!   100k-key MGET split over 16k slots then costs linear time, not one
//!   scan of every earlier part per part. The index goes once the client
//!   has no routes left.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Routes scanned before the per-slot index is built.
const LINEAR: usize = 32;

/// One outstanding keyed unit of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Route {
    pub seq: u64,
    pub frag: u32,
    pub slot: u16,
    pub node: u32,
}

/// Hashes a slot number by one multiply: slots are small integers the
/// client cannot choose freely (at most 16384 of them), not strings.
#[derive(Default)]
pub(super) struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type SlotIndex = HashMap<u16, VecDeque<u64>, BuildHasherDefault<SlotHasher>>;

#[derive(Default)]
pub(super) struct Routes {
    fifo: VecDeque<Route>,
    /// Absolute number of `fifo[0]` (every route pushed gets the next).
    base: u64,
    /// slot -> absolute numbers of its routes, in order; `None` while the
    /// client has at most `LINEAR` routes.
    index: Option<SlotIndex>,
}

impl Routes {
    pub fn push(&mut self, r: Route) {
        let abs = self.base.wrapping_add(self.fifo.len() as u64);
        self.fifo.push_back(r);
        match &mut self.index {
            Some(ix) => ix.entry(r.slot).or_default().push_back(abs),
            None if self.fifo.len() > LINEAR => {
                let mut ix = SlotIndex::default();
                for (i, r) in self.fifo.iter().enumerate() {
                    ix.entry(r.slot).or_default().push_back(self.base.wrapping_add(i as u64));
                }
                self.index = Some(ix);
            }
            None => {}
        }
    }

    pub fn front(&self) -> Option<&Route> {
        self.fifo.front()
    }

    /// Forgets the oldest route.
    pub fn pop_front(&mut self) {
        let Some(r) = self.fifo.pop_front() else { return };
        if let Some(q) = self.index.as_mut().and_then(|ix| ix.get_mut(&r.slot)) {
            // The oldest route overall is the oldest of its slot.
            q.pop_front();
            if q.is_empty() {
                self.index.as_mut().map(|ix| ix.remove(&r.slot));
            }
        }
        self.base = self.base.wrapping_add(1);
        if self.fifo.is_empty() {
            self.index = None;
        }
    }

    /// The routes of `slot`, oldest first.
    pub fn of_slot(&self, slot: u16) -> impl Iterator<Item = &Route> {
        let (scan, indexed) = match &self.index {
            None => (Some(self.fifo.iter().filter(move |r| r.slot == slot)), None),
            Some(ix) => (None, Some(ix.get(&slot).into_iter().flatten().filter_map(|&abs| self.at(abs)))),
        };
        scan.into_iter().flatten().chain(indexed.into_iter().flatten())
    }

    /// The route filling part `frag` of reply slot `seq`; `slot` is where
    /// to look first (a unit's target may have changed since).
    pub fn find_mut(&mut self, seq: u64, frag: u32, slot: Option<u16>) -> Option<&mut Route> {
        let hit = |r: &Route| r.seq == seq && r.frag == frag;
        let at = match (&self.index, slot) {
            (Some(ix), Some(s)) => ix.get(&s).into_iter().flatten().copied().find(|&abs| self.at(abs).is_some_and(hit)),
            _ => None,
        };
        match at {
            Some(abs) => self.fifo.get_mut(usize::try_from(abs.wrapping_sub(self.base)).ok()?),
            None => self.fifo.iter_mut().find(|r| hit(r)),
        }
    }

    /// Every route, oldest first, for rewriting fields other than `slot`
    /// (the index is keyed by slot, so a slot must never change here).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Route> {
        self.fifo.iter_mut()
    }

    fn at(&self, abs: u64) -> Option<&Route> {
        self.fifo.get(usize::try_from(abs.wrapping_sub(self.base)).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(seq: u64, slot: u16) -> Route {
        Route { seq, frag: 0, slot, node: 1 }
    }

    /// The same answers below and above the index threshold, and after the
    /// index is dropped.
    #[test]
    fn scan_and_index_agree() {
        for n in [3u64, LINEAR as u64 + 5, 500] {
            let mut rs = Routes::default();
            for seq in 0..n {
                rs.push(r(seq, (seq % 7) as u16));
            }
            assert_eq!(rs.index.is_some(), n as usize > LINEAR);
            let seqs: Vec<u64> = rs.of_slot(3).map(|r| r.seq).collect();
            assert_eq!(seqs, (0..n).filter(|s| s % 7 == 3).collect::<Vec<_>>());
            rs.find_mut(n - 1, 0, Some(((n - 1) % 7) as u16)).unwrap().node = 9;
            rs.find_mut(0, 0, Some(5)).unwrap().node = 8; // wrong hint: found anyway
            assert_eq!(rs.of_slot(((n - 1) % 7) as u16).last().unwrap().node, 9);
            assert_eq!(rs.front().unwrap().node, 8);
            for _ in 0..n / 2 {
                rs.pop_front();
            }
            let seqs: Vec<u64> = rs.of_slot(3).map(|r| r.seq).collect();
            assert_eq!(seqs, (n / 2..n).filter(|s| s % 7 == 3).collect::<Vec<_>>());
            while rs.front().is_some() {
                rs.pop_front();
            }
            assert!(rs.index.is_none() && rs.of_slot(3).next().is_none());
            rs.push(r(n, 3));
            assert_eq!(rs.of_slot(3).count(), 1);
        }
    }
}
