//! `md5`: the first four bytes of the MD5 digest read little-endian (the
//! digest itself comes from the `md-5` crate). Ketama also needs the whole
//! digest, to cut four ring points out of each one.

use md5::{Digest, Md5};

/// The 16-byte MD5 digest of `key`.
pub fn md5_digest(key: &[u8]) -> [u8; 16] {
    Md5::digest(key).into()
}

pub fn md5(key: &[u8]) -> u32 {
    let d = md5_digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_truncation() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(md5_digest(b"")[..4], [0xd4, 0x1d, 0x8c, 0xd9]);
        assert_eq!(md5(b""), 0xd98c_1dd4);
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(md5(b"a"), 0xb975_c10c);
    }
}
