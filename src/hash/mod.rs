//! nutcracker's (twemproxy 0.5.0) twelve key hash functions, bit-exact.
//!
//! Pure functions of the key bytes, one small module per family. Each
//! reproduces the C code in `src/hashkit/` including its quirks, because
//! placement must match a running nutcracker key for key:
//! - several functions read the key through a signed `char *`, so bytes
//!   >= 0x80 are sign-extended before mixing (x86-64 `char` is signed);
//! - `fnv1_64` and `fnv1a_64` return only the low 32 bits, and `fnv1a_64`
//!   even runs its loop in 32 bits;
//! - `crc32` is libmemcached's 15-bit variant, `crc32a` the standard CRC-32;
//! - `crc16` uses the XMODEM table but never masks its running value to 16
//!   bits, so results are wider than a CRC-16 (not Redis Cluster's slot
//!   hash, which is masked);
//! - `md5` is the first four digest bytes read little-endian.
//!
//! `tests/placement.rs` checks all twelve against the real nutcracker.
//!
//! Invariant: no function here allocates, panics or depends on the
//! platform; results are fixed by the test vectors in each module.

mod crc16;
mod crc32;
mod fnv;
mod hsieh;
mod jenkins;
mod md5;
mod murmur;
mod one_at_a_time;

pub use crc16::crc16;
pub use crc32::{crc32, crc32a};
pub use fnv::{fnv1_32, fnv1_64, fnv1a_32, fnv1a_64};
pub use hsieh::hsieh;
pub use jenkins::jenkins;
pub use md5::{md5, md5_digest};
pub use murmur::murmur;
pub use one_at_a_time::one_at_a_time;

/// A nutcracker `hash:` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    OneAtATime,
    Md5,
    Crc16,
    Crc32,
    Crc32a,
    Fnv1_64,
    Fnv1a64,
    Fnv1_32,
    Fnv1a32,
    Hsieh,
    Murmur,
    Jenkins,
}

impl HashKind {
    /// Every kind, in nutcracker's documentation order.
    pub const ALL: [HashKind; 12] = [
        HashKind::OneAtATime,
        HashKind::Md5,
        HashKind::Crc16,
        HashKind::Crc32,
        HashKind::Crc32a,
        HashKind::Fnv1_64,
        HashKind::Fnv1a64,
        HashKind::Fnv1_32,
        HashKind::Fnv1a32,
        HashKind::Hsieh,
        HashKind::Murmur,
        HashKind::Jenkins,
    ];

    /// The name as written in a config file (`hash: fnv1a_64`).
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::OneAtATime => "one_at_a_time",
            HashKind::Md5 => "md5",
            HashKind::Crc16 => "crc16",
            HashKind::Crc32 => "crc32",
            HashKind::Crc32a => "crc32a",
            HashKind::Fnv1_64 => "fnv1_64",
            HashKind::Fnv1a64 => "fnv1a_64",
            HashKind::Fnv1_32 => "fnv1_32",
            HashKind::Fnv1a32 => "fnv1a_32",
            HashKind::Hsieh => "hsieh",
            HashKind::Murmur => "murmur",
            HashKind::Jenkins => "jenkins",
        }
    }

    /// Parses a config name; `None` for anything nutcracker would reject.
    pub fn from_name(name: &str) -> Option<HashKind> {
        HashKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Hashes `key` with this function.
    #[inline]
    pub fn hash(self, key: &[u8]) -> u32 {
        match self {
            HashKind::OneAtATime => one_at_a_time(key),
            HashKind::Md5 => md5(key),
            HashKind::Crc16 => crc16(key),
            HashKind::Crc32 => crc32(key),
            HashKind::Crc32a => crc32a(key),
            HashKind::Fnv1_64 => fnv1_64(key),
            HashKind::Fnv1a64 => fnv1a_64(key),
            HashKind::Fnv1_32 => fnv1_32(key),
            HashKind::Fnv1a32 => fnv1a_32(key),
            HashKind::Hsieh => hsieh(key),
            HashKind::Murmur => murmur(key),
            HashKind::Jenkins => jenkins(key),
        }
    }
}

/// A byte read through C's signed `char` and widened to 32 bits, as
/// nutcracker's `(uint32_t)key[x]` does on x86-64.
#[inline]
pub(crate) fn signed_u32(b: u8) -> u32 {
    b as i8 as i32 as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_rejected() {
        for k in HashKind::ALL {
            assert_eq!(HashKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(HashKind::from_name("fnv1a-64"), None);
        assert_eq!(HashKind::from_name(""), None);
    }

    #[test]
    fn signed_char_widening_matches_c() {
        assert_eq!(signed_u32(0x41), 0x41);
        assert_eq!(signed_u32(0x80), 0xFFFF_FF80);
        assert_eq!(signed_u32(0xFF), 0xFFFF_FFFF);
    }
}
