//! `crc32` (libmemcached's variant: bits 16..31 of the CRC, masked to 15
//! bits) and `crc32a` (the standard CRC-32, as zlib computes it). Both use
//! the reflected polynomial 0xEDB88320 table.

const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            bit += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
}

fn raw(key: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in key {
        crc = (crc >> 8) ^ TABLE[((crc ^ u32::from(b)) & 0xFF) as usize];
    }
    !crc
}

/// libmemcached-compatible: "does not return CRC-32 as per spec".
pub fn crc32(key: &[u8]) -> u32 {
    (raw(key) >> 16) & 0x7FFF
}

/// The standard CRC-32.
pub fn crc32a(key: &[u8]) -> u32 {
    raw(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_value_and_libmemcached_truncation() {
        assert_eq!(TABLE[1], 0x7707_3096);
        assert_eq!(crc32a(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"123456789"), (0xCBF4_3926 >> 16) & 0x7FFF);
        assert_eq!(crc32a(b""), 0);
    }
}
