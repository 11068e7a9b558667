//! `crc16` exactly as nutcracker 0.5.0 computes it: the CCITT/XMODEM table
//! (poly 0x1021, init 0), but with the running value kept in a `uint32_t`
//! that is never masked, so bits shifted past 16 stay in the result; and
//! each byte is read through a signed `char` (masked to 8 bits after the
//! XOR, so the sign does not matter). The low 16 bits always equal
//! CRC-16/XMODEM; from the second byte on, the value is wider.

const TABLE: [u16; 256] = table();

const fn table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
}

pub fn crc16(key: &[u8]) -> u32 {
    let mut crc: u32 = 0;
    for &b in key {
        let idx = ((crc >> 8) ^ super::signed_u32(b)) & 0xFF;
        crc = (crc << 8) ^ u32::from(TABLE[idx as usize]);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Textbook CRC-16/XMODEM, masked to 16 bits each step.
    fn xmodem(key: &[u8]) -> u16 {
        key.iter().fold(0u16, |crc, &b| (crc << 8) ^ TABLE[usize::from(((crc >> 8) as u8) ^ b)])
    }

    #[test]
    fn table_is_xmodem_and_the_value_is_not_masked() {
        assert_eq!((TABLE[1], TABLE[2], TABLE[255]), (0x1021, 0x2042, 0x1EF0));
        assert_eq!(xmodem(b"123456789"), 0x31C3, "the catalogued XMODEM check value");
        // One byte fits in 16 bits; longer keys keep the high bits: same
        // low 16 bits as XMODEM, wider value.
        assert_eq!(crc16(b"a"), u32::from(xmodem(b"a")));
        assert_eq!(crc16(b"ab") & 0xFFFF, u32::from(xmodem(b"ab")));
        let wide = crc16(b"123456789");
        assert_eq!(wide & 0xFFFF, 0x31C3);
        assert!(wide > 0xFFFF, "{wide:#x}");
        assert_eq!(crc16(b""), 0);
    }
}
