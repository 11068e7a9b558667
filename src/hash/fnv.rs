//! The four FNV variants, with nutcracker's quirks: the 64-bit ones return
//! the low 32 bits, `fnv1a_64` runs entirely in 32 bits (offset basis and
//! prime truncated), and every byte goes through a signed `char`.

use super::signed_u32;

const FNV_64_INIT: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_32_INIT: u32 = 2_166_136_261;
const FNV_32_PRIME: u32 = 16_777_619;

pub fn fnv1_64(key: &[u8]) -> u32 {
    let mut hash = FNV_64_INIT;
    for &b in key {
        hash = hash.wrapping_mul(FNV_64_PRIME);
        // `(uint64_t)key[x]`: sign-extended to 64 bits.
        hash ^= b as i8 as i64 as u64;
    }
    hash as u32
}

pub fn fnv1a_64(key: &[u8]) -> u32 {
    let mut hash = FNV_64_INIT as u32;
    for &b in key {
        hash ^= signed_u32(b);
        hash = hash.wrapping_mul(FNV_64_PRIME as u32);
    }
    hash
}

pub fn fnv1_32(key: &[u8]) -> u32 {
    let mut hash = FNV_32_INIT;
    for &b in key {
        hash = hash.wrapping_mul(FNV_32_PRIME);
        hash ^= signed_u32(b);
    }
    hash
}

pub fn fnv1a_32(key: &[u8]) -> u32 {
    let mut hash = FNV_32_INIT;
    for &b in key {
        hash ^= signed_u32(b);
        hash = hash.wrapping_mul(FNV_32_PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_matches_the_reference_fnv_vectors() {
        // Reference FNV values (for ASCII the sign quirk is invisible).
        assert_eq!(fnv1_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
        // 64-bit FNV-1 of "a" is 0xaf63bd4c8601b7be; the low half is kept.
        assert_eq!(fnv1_64(b"a"), 0x8601_b7be);
        // fnv1a_64 in 32 bits: basis 0x84222325, prime 0x1b3.
        assert_eq!(fnv1a_64(b""), 0x8422_2325);
        assert_eq!(fnv1a_64(b"a"), (0x8422_2325u32 ^ 0x61).wrapping_mul(0x1b3));
    }

    #[test]
    fn high_bytes_are_sign_extended() {
        let plain = (FNV_32_INIT ^ 0x80).wrapping_mul(FNV_32_PRIME);
        let signed = (FNV_32_INIT ^ 0xFFFF_FF80).wrapping_mul(FNV_32_PRIME);
        assert_ne!(plain, signed);
        assert_eq!(fnv1a_32(&[0x80]), signed);
    }
}
