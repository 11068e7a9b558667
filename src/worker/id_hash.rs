//! A hasher for the driver's small integer-keyed maps (backend id to
//! socket handle), looked up once per dirty backend per flush: SipHash's
//! flood resistance buys nothing for keys the worker makes itself, and
//! cost about 40 instructions per request at pipeline 1.
//!
//! Invariant: only for keys that no peer chooses (`BackendId`: server
//! index and connection number from the pool's own config).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::session::mux::BackendId;

/// Backend connection to driver socket handle.
pub type BackendSocks = HashMap<BackendId, u32, BuildHasherDefault<IdHasher>>;

/// Multiply-rotate mixing of the integers written (the Fx scheme).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }
    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.add(u64::from(x));
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.add(x);
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.add(x as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_ids_land_apart_and_are_found() {
        let mut m = BackendSocks::default();
        for server in 0..64 {
            for conn in 0..4 {
                m.insert(BackendId { server, conn }, server * 4 + conn);
            }
        }
        assert_eq!(m.len(), 256);
        assert_eq!(m.get(&BackendId { server: 63, conn: 3 }), Some(&255));
        assert_eq!(m.remove(&BackendId { server: 5, conn: 1 }), Some(21));
        assert_eq!(m.get(&BackendId { server: 5, conn: 1 }), None);
    }
}
