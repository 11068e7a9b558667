//! One core's per-IP buckets of one pool: a table bounded by CLOCK
//! eviction (an LRU approximation that costs one bit per access).
//!
//! Owner: the pool's session on one worker. A client caches the slot its
//! key was last found at; `get` checks the slot still holds that key, so a
//! hit costs no hashing, and a key evicted meanwhile is inserted again
//! with full buckets.
//!
//! Invariants: at most `cap` entries; `map` names exactly the live
//! entries, each at its index in `entries`.
//!
//! Eviction forgets a bucket, debt included: with more than `cap` active
//! addresses on one core, an evicted address starts over full. That bounds
//! memory (each entry is ~64 bytes: 64k entries are ~4 MiB per pool per
//! core) at the price of limiting less exactly past that many addresses.

use std::collections::HashMap;

use super::{IpKey, Limiter};

/// Entries per core per pool, unless configured otherwise.
pub const DEFAULT_TABLE_ENTRIES: usize = 65_536;

struct Entry {
    key: IpKey,
    /// The key's index in the process-wide share table (`PoolLimits`).
    share: u32,
    lim: Limiter,
    /// CLOCK's bit: set on access, cleared as the hand passes.
    referenced: bool,
}

pub struct IpTable {
    map: HashMap<IpKey, u32>,
    entries: Vec<Entry>,
    hand: usize,
    cap: usize,
}

impl IpTable {
    pub fn new(cap: usize) -> IpTable {
        IpTable { map: HashMap::new(), entries: Vec::new(), hand: 0, cap: cap.max(1) }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `key`: at `hint` when it still holds it, else found or
    /// inserted (`fresh` builds its buckets). Returns the slot (to cache as
    /// the next `hint`), the key's share index and its limiter.
    pub fn get(
        &mut self,
        key: IpKey,
        hint: u32,
        share: u32,
        fresh: impl FnOnce() -> Limiter,
    ) -> (u32, u32, &mut Limiter) {
        let at = match self.entries.get(hint as usize) {
            Some(e) if e.key == key => hint,
            _ => match self.map.get(&key) {
                Some(&i) => i,
                None => self.insert(key, share, fresh()),
            },
        };
        let e = &mut self.entries[at as usize];
        e.referenced = true;
        (at, e.share, &mut e.lim)
    }

    fn insert(&mut self, key: IpKey, share: u32, lim: Limiter) -> u32 {
        let entry = Entry { key, share, lim, referenced: true };
        if self.entries.len() < self.cap {
            self.entries.push(entry);
            let i = (self.entries.len() - 1) as u32;
            self.map.insert(key, i);
            return i;
        }
        // CLOCK: clear referenced bits until one is found clear; at most
        // one full turn, after which the starting entry is clear.
        loop {
            let e = &mut self.entries[self.hand];
            if !e.referenced {
                break;
            }
            e.referenced = false;
            self.hand = (self.hand + 1) % self.cap;
        }
        let i = self.hand;
        self.hand = (self.hand + 1) % self.cap;
        self.map.remove(&self.entries[i].key);
        self.entries[i] = entry;
        self.map.insert(key, i as u32);
        i as u32
    }

    /// Forgets every entry (a reload changed the rates).
    pub fn clear(&mut self) {
        self.map.clear();
        self.entries.clear();
        self.hand = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use crate::limit::{Admit, RateSpec};

    fn key(n: u32) -> IpKey {
        IpKey::new(std::net::Ipv4Addr::from(n).into())
    }

    #[test]
    fn bounded_and_evicts_the_least_recently_touched() {
        let spec = RateSpec { requests: Some(1.0), bytes: None, burst: 1.0 };
        let now = Instant::now();
        let fresh = || Limiter::new(&spec, 1.0, now);
        let mut t = IpTable::new(3);
        for n in 0..3 {
            t.get(key(n), u32::MAX, 0, fresh);
        }
        // Drain key 0's bucket; a hit through the hint keeps it.
        let (slot0, _, l) = t.get(key(0), u32::MAX, 0, fresh);
        l.charge(&spec, 1);
        // A full pass clears every bit; key 3 then evicts the hand's entry
        // (key 0, the oldest), touching key 0 first moves eviction on.
        t.get(key(3), u32::MAX, 0, fresh);
        assert_eq!(t.len(), 3);
        assert!(!t.map.contains_key(&key(0)), "the oldest went");
        t.get(key(1), u32::MAX, 0, fresh);
        t.get(key(4), u32::MAX, 0, fresh);
        assert!(t.map.contains_key(&key(1)), "touched since the last pass: kept");
        assert!(!t.map.contains_key(&key(2)), "untouched: evicted");
        assert_eq!(t.len(), 3);
        // Key 0 comes back fresh: its hint now names another key.
        let (_, _, l) = t.get(key(0), slot0, 0, fresh);
        assert_eq!(l.admit(&spec, 1.0, now), Admit::Go, "evicted: starts over full");
        for n in 10..100_000 {
            t.get(key(n), u32::MAX, 0, fresh);
        }
        assert_eq!((t.len(), t.map.len()), (3, 3));
    }

    #[test]
    fn the_hint_finds_the_entry_without_the_map() {
        let spec = RateSpec { requests: Some(1.0), bytes: None, burst: 1.0 };
        let now = Instant::now();
        let mut t = IpTable::new(8);
        let (slot, share, _) = t.get(key(7), u32::MAX, 42, || Limiter::new(&spec, 1.0, now));
        assert_eq!(share, 42);
        let (again, _, l) = t.get(key(7), slot, 0, || panic!("must not insert"));
        assert_eq!(again, slot);
        l.charge(&spec, 1);
        let (_, _, l) = t.get(key(7), slot, 0, || panic!("must not insert"));
        assert!(matches!(l.admit(&spec, 1.0, now), Admit::Wait(_)), "the same bucket");
    }
}
