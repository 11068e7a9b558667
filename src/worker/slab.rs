//! The one table every driver keeps its records in (tcp relays, sockets of
//! multiplexed pools): slots with a generation each and a free list.
//!
//! Owner: one worker per slab. Invariants:
//! - a slot's generation changes every time the slot is freed, so a
//!   (slot, generation) key names one record for its whole life and never
//!   a later occupant of the same slot: a late completion (io_uring) or a
//!   stale readiness event (epoll) for a freed record is recognised by
//!   `get_gen` and ignored;
//! - the record carries its own generation (`Generational`), set by
//!   `insert`, so a driver building a key needs no second lookup;
//! - `next_key` is the key the next `insert` returns, so a socket can be
//!   registered under its key before its record exists.

/// A record a `Slab` can hold: it carries the generation of its slot.
pub trait Generational {
    fn gen(&self) -> u16;
    fn set_gen(&mut self, gen: u16);
}

/// Records in generation-checked slots.
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    gens: Vec<u16>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { slots: Vec::new(), gens: Vec::new(), free: Vec::new(), len: 0 }
    }
}

impl<T: Generational> Slab<T> {
    /// The (slot, generation) the next `insert` returns.
    pub fn next_key(&self) -> (u32, u16) {
        match self.free.last() {
            Some(&s) => (s, self.gens[s as usize]),
            None => (self.slots.len() as u32, 0),
        }
    }

    pub fn insert(&mut self, mut c: T) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        c.set_gen(self.gens[slot as usize]);
        self.slots[slot as usize] = Some(c);
        self.len += 1;
        slot
    }

    #[inline]
    pub fn get(&self, slot: u32) -> Option<&T> {
        self.slots.get(slot as usize).and_then(|c| c.as_ref())
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize).and_then(|c| c.as_mut())
    }

    /// The record in `slot` only if it is still generation `gen`.
    #[inline]
    pub fn get_gen(&mut self, slot: u32, gen: u16) -> Option<&mut T> {
        self.get_mut(slot).filter(|c| c.gen() == gen)
    }

    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let c = self.slots.get_mut(slot as usize)?.take()?;
        self.gens[slot as usize] = self.gens[slot as usize].wrapping_add(1);
        self.free.push(slot);
        self.len -= 1;
        Some(c)
    }

    /// Occupied slot numbers (a copy, so callers may mutate while iterating).
    pub fn slots(&self) -> Vec<u32> {
        (0..self.slots.len() as u32).filter(|&i| self.slots[i as usize].is_some()).collect()
    }

    /// One past the highest slot ever used: `0..capacity()` covers every
    /// record without the copy `slots` makes.
    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every occupied slot's value.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten()
    }

    /// Every occupied slot with its value.
    pub fn iter_slots_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, v)| Some((i as u32, v.as_mut()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R(u16, &'static str);
    impl Generational for R {
        fn gen(&self) -> u16 {
            self.0
        }
        fn set_gen(&mut self, gen: u16) {
            self.0 = gen;
        }
    }

    #[test]
    fn a_freed_slot_is_reused_under_a_new_generation_and_old_keys_miss() {
        let mut s: Slab<R> = Slab::default();
        assert!(s.is_empty());
        assert_eq!(s.next_key(), (0, 0));
        let a = s.insert(R(9, "a"));
        assert_eq!((a, s.get(a).map(|r| r.0)), (0, Some(0)), "insert sets the generation");
        assert!(s.get_gen(a, 0).is_some());
        assert!(s.remove(a).is_some());
        assert!(s.remove(a).is_none(), "removing an empty slot is a no-op");
        assert!(s.is_empty());
        assert_eq!(s.next_key(), (0, 1));
        let b = s.insert(R(0, "b"));
        assert_eq!(b, a);
        assert!(s.get_gen(a, 0).is_none(), "the old key no longer reaches the slot");
        assert_eq!(s.get_gen(b, 1).map(|r| r.1), Some("b"));
        assert_eq!(s.next_key(), (1, 0));
        let c = s.insert(R(0, "c"));
        assert_eq!((c, s.capacity(), s.slots()), (1, 2, vec![0, 1]));
    }

    #[test]
    fn generations_wrap_instead_of_overflowing() {
        let mut s: Slab<R> = Slab::default();
        for _ in 0..=u16::MAX as u32 + 1 {
            let k = s.insert(R(0, ""));
            s.remove(k);
        }
        assert_eq!(s.next_key(), (0, 1));
    }
}
