//! How a slow log entry keeps the first key of its request
//! (`slowlog_keys`): not at all, as a hash, or the key itself (truncated
//! like any argument). Invariants: noting a key of at most `SHORT` bytes
//! costs two loads (no hashing, no allocation on the worker's path), and
//! its hash and bytes are rebuilt from them only when an entry is read;
//! `key_hash` has fixed constants, so equal keys hash alike on every core
//! and in every run.

use super::slowlog::MAX_ARG_BYTES;

/// How the first key of a request is kept (`slowlog_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyRule {
    /// Not at all.
    Hidden,
    /// As a 64-bit hash (`key_hash`), shown as `#<16 hex digits>`: equal keys
    /// match across entries, the name is not stored. A pseudonym, not a
    /// secret: short keys can be guessed by hashing candidates.
    #[default]
    Hashed,
    /// The key itself (truncated to 128 bytes).
    Shown,
}

impl KeyRule {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRule::Hidden => "hidden",
            KeyRule::Hashed => "hashed",
            KeyRule::Shown => "shown",
        }
    }
}

/// What a request carries for the slow log, noted when it is decoded
/// (its bytes are gone by the time its reply is complete).
///
/// Cheap for the common case, because every timed request notes one and
/// few turn out slow: a key of at most 16 bytes is kept as two words
/// (`Words`: two loads, no hashing, no allocation), from which both its
/// hash and its bytes can be rebuilt when an entry is read. A longer key is
/// hashed up front or, shown, copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyNote {
    #[default]
    None,
    Hash(u64),
    /// A key of `n <= 16` bytes as `key_words` reads it; `hashed`: shown
    /// as its hash.
    Words {
        a: u64,
        c: u64,
        n: u8,
        hashed: bool,
    },
    Shown(Box<[u8]>),
}

/// The longest key `KeyNote` keeps as words.
pub const SHORT: usize = 16;

/// A key of at most `SHORT` bytes as two words that hold all its bytes:
/// from 8 bytes up the first and the last 8 (overlapping below 16), from
/// 4 the first and last 4, below that bytes 0, n/2 and n-1 packed.
#[inline]
fn key_words(b: &[u8]) -> (u64, u64) {
    let w8 = |i: usize| {
        b.get(i..i.saturating_add(8)).and_then(|s| <[u8; 8]>::try_from(s).ok()).map_or(0, u64::from_le_bytes)
    };
    let w4 = |i: usize| {
        b.get(i..i.saturating_add(4))
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map_or(0, |x| u64::from(u32::from_le_bytes(x)))
    };
    let n = b.len();
    if n >= 8 {
        (w8(0), w8(n - 8))
    } else if n >= 4 {
        (w4(0), w4(n - 4))
    } else if n > 0 {
        ((u64::from(b[0]) << 16) | (u64::from(b[n / 2]) << 8) | u64::from(b[n - 1]), 0)
    } else {
        (0, 0)
    }
}

/// The key `key_words` read as (`a`, `c`), `n` bytes long.
fn unwords(a: u64, c: u64, n: usize) -> Vec<u8> {
    let mut k = vec![0u8; n];
    let (a8, c8) = (a.to_le_bytes(), c.to_le_bytes());
    if (8..=SHORT).contains(&n) {
        k[n - 8..].copy_from_slice(&c8);
        k[..8].copy_from_slice(&a8);
    } else if (4..8).contains(&n) {
        k[n - 4..].copy_from_slice(&c8[..4]);
        k[..4].copy_from_slice(&a8[..4]);
    } else if (1..4).contains(&n) {
        k[n - 1] = a8[0];
        k[n / 2] = a8[1];
        k[0] = a8[2];
    }
    k
}

impl KeyNote {
    #[inline]
    pub fn new(rule: KeyRule, key: &[u8]) -> KeyNote {
        if rule == KeyRule::Hidden {
            return KeyNote::None;
        }
        if key.len() <= SHORT {
            let (a, c) = key_words(key);
            return KeyNote::Words { a, c, n: key.len() as u8, hashed: rule == KeyRule::Hashed };
        }
        match rule {
            KeyRule::Shown => KeyNote::Shown(key[..key.len().min(MAX_ARG_BYTES)].into()),
            _ => KeyNote::Hash(key_hash(key)),
        }
    }

    /// The key as an entry shows it (`None`: no key, or hidden).
    pub fn render(&self) -> Option<Vec<u8>> {
        let hashed = |h: u64| format!("#{h:016x}").into_bytes();
        match self {
            KeyNote::None => None,
            KeyNote::Hash(h) => Some(hashed(*h)),
            KeyNote::Words { a, c, n, hashed: true } => Some(hashed(mix_short(*a, *c, usize::from(*n)))),
            KeyNote::Words { a, c, n, hashed: false } => Some(unwords(*a, *c, usize::from(*n))),
            KeyNote::Shown(k) => Some(k.to_vec()),
        }
    }
}

/// The 128-bit product of `a` and `b`, its halves folded by xor.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// `key_hash` of a key of `n <= SHORT` bytes from its `key_words`.
#[inline]
fn mix_short(a: u64, c: u64, n: usize) -> u64 {
    fold_mul(a ^ P1 ^ (n as u64).rotate_left(32), c ^ P2).wrapping_add(P0 ^ n as u64)
}

/// A key's 64-bit pseudonym for the slow log and hot keys: a
/// word-at-a-time hash built from folded multiplies (wyhash's scheme), a
/// handful of instructions for a short key where a byte loop (FNV) costs
/// several per byte. Stable across runs and cores; not keyed, so not
/// secret (see `KeyRule::Hashed`).
#[inline]
pub fn key_hash(b: &[u8]) -> u64 {
    let n = b.len();
    if n <= SHORT {
        let (a, c) = key_words(b);
        return mix_short(a, c, n);
    }
    let w8 = |i: usize| {
        b.get(i..i.saturating_add(8)).and_then(|s| <[u8; 8]>::try_from(s).ok()).map_or(0, u64::from_le_bytes)
    };
    let mut seed = P0 ^ n as u64;
    let mut i = 0;
    while n - i > 16 {
        seed = fold_mul(w8(i) ^ P1, w8(i + 8) ^ seed);
        i += 16;
    }
    let p = u128::from(w8(n - 16) ^ P1) * u128::from(w8(n - 8) ^ seed);
    fold_mul((p as u64) ^ P2 ^ n as u64, ((p >> 64) as u64) ^ P1)
}
