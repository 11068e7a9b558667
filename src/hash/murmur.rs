//! MurmurHash2 as nutcracker uses it: the seed is `0xdeadbeef * len`, and
//! 4-byte blocks are read little-endian (the C code casts to `unsigned
//! int *` on x86-64).

const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

fn murmur2(key: &[u8], seed: u32) -> u32 {
    let len = key.len() as u32;
    let mut h = seed ^ len;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

pub fn murmur(key: &[u8]) -> u32 {
    murmur2(key, 0xdead_beefu32.wrapping_mul(key.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_key_and_hand_computed_one_byte() {
        // len 0: seed 0, h = 0, and the final mix of 0 is 0.
        assert_eq!(murmur(b""), 0);
        // "a": seed 0xdeadbeef, h = seed ^ 1, then tail and final mix.
        let mut h = 0xdead_beefu32 ^ 1;
        h ^= 0x61;
        h = h.wrapping_mul(M);
        h ^= h >> 13;
        h = h.wrapping_mul(M);
        h ^= h >> 15;
        assert_eq!(murmur(b"a"), h);
        assert_ne!(murmur(b"abcd"), murmur(b"abce"));
    }
}
