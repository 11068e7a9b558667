//! Paul Hsieh's SuperFastHash as nutcracker ships it. The three-byte tail
//! reads its last byte through a signed `char` (sign-extended), the
//! one-byte tail through `unsigned char`; an empty key hashes to 0.

use super::signed_u32;

fn get16(b: &[u8]) -> u32 {
    u32::from(b[0]) | (u32::from(b[1]) << 8)
}

pub fn hsieh(key: &[u8]) -> u32 {
    if key.is_empty() {
        return 0;
    }
    let mut hash: u32 = 0;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        hash = hash.wrapping_add(get16(c));
        let tmp = (get16(&c[2..]) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        hash = hash.wrapping_add(hash >> 11);
    }
    let rest = chunks.remainder();
    match rest.len() {
        3 => {
            hash = hash.wrapping_add(get16(rest));
            hash ^= hash << 16;
            hash ^= signed_u32(rest[2]) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        2 => {
            hash = hash.wrapping_add(get16(rest));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        1 => {
            hash = hash.wrapping_add(u32::from(rest[0]));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash = hash.wrapping_add(hash >> 6);
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero_and_tails_differ() {
        assert_eq!(hsieh(b""), 0);
        // Hand-computed with the C code's steps for a one-byte key "a".
        let mut h: u32 = 0x61;
        h ^= h << 10;
        h = h.wrapping_add(h >> 1);
        h ^= h << 3;
        h = h.wrapping_add(h >> 5);
        h ^= h << 4;
        h = h.wrapping_add(h >> 17);
        h ^= h << 25;
        h = h.wrapping_add(h >> 6);
        assert_eq!(hsieh(b"a"), h);
        assert_ne!(hsieh(b"abc"), hsieh(b"abd"));
        // The sign-extended tail byte changes the result vs. unsigned.
        assert_ne!(hsieh(&[1, 2, 0x80]), hsieh(&[1, 2, 0x00]));
    }
}
