//! Strict ASCII integer parsing and fast decimal formatting shared by the
//! RESP and memcached codecs.
//!
//! Each parser accepts a subset of what the server it stands for accepts,
//! with the same value wherever both accept (Puerta must never read a
//! length differently from the server behind it):
//! - `parse_i64` is Redis's `string2ll` exactly: `0`, or an optional `-`
//!   then a digit 1-9 and more digits, under 21 bytes, within i64;
//! - `parse_u64`, `parse_u32` and `parse_i32` stand for memcached's
//!   `safe_strtoull`/`safe_strtoul`/`safe_strtol`, which accept far more
//!   (`+`, leading whitespace, values wrapped into 32 bits); Puerta takes
//!   plain digits (and `-` for signed), at most 20 bytes, within the type.
//!
//! No parser overflows: every step is checked.

use bytes::{BufMut, BytesMut};

/// Redis's `LONG_STR_SIZE`: a length line of 21 bytes or more is invalid.
pub const REDIS_LONG_STR_SIZE: usize = 21;

/// Parses a signed decimal integer exactly as Redis's `string2ll`: no sign
/// but a leading `-`, no leading zero, no `-0`; `None` otherwise.
#[inline]
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    // Fast path for the one- and two-digit lengths of almost every request
    // (`*3`, `$3`, `$16`): the same rules, without the general loop.
    match *s {
        // The patterns bound every byte to a digit: nothing can wrap.
        [d @ b'0'..=b'9'] => return Some(i64::from(d.wrapping_sub(b'0'))),
        [d @ b'1'..=b'9', e @ b'0'..=b'9'] => {
            return Some(i64::from(d.wrapping_sub(b'0').wrapping_mul(10).wrapping_add(e.wrapping_sub(b'0'))))
        }
        _ => {}
    }
    if s.is_empty() || s.len() >= REDIS_LONG_STR_SIZE {
        return None;
    }
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    // The first digit is 1-9: this refuses "", "-", "-0", "01" and "+1".
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let v = digits_u64(digits)?;
    if neg {
        // -(i64::MIN) does not fit an i64, so negate in u64 space.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses an unsigned decimal integer: plain digits (leading zeros allowed,
/// as memcached allows them), at most 20 bytes, within u64.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.len() > 20 {
        return None;
    }
    digits_u64(s)
}

/// memcached's 32-bit unsigned fields (flags).
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// memcached's 32-bit signed fields (exptime, the data length): an
/// optional `-` and plain digits, within i32.
pub fn parse_i32(s: &[u8]) -> Option<i32> {
    match s.split_first() {
        Some((b'-', rest)) => i32::try_from(0i64.checked_sub_unsigned(parse_u64(rest)?)?).ok(),
        _ => i32::try_from(parse_u64(s)?).ok(),
    }
}

/// One or more ASCII digits as a u64; `None` for anything else or overflow.
fn digits_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        let d = c.checked_sub(b'0').filter(|&d| d <= 9)?;
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Appends the decimal text of `n`.
pub fn put_i64(out: &mut BytesMut, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    // At most 20 digits fill the 20-byte buffer; `v % 10 < 10` fits a u8.
    #[allow(clippy::arithmetic_side_effects)]
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&buf[i..]);
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// string2ll as Redis writes it, for the exhaustive check below.
    fn string2ll(s: &[u8]) -> Option<i64> {
        if s.is_empty() || s.len() >= REDIS_LONG_STR_SIZE {
            return None;
        }
        if s == b"0" {
            return Some(0);
        }
        let (neg, d) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
        if !matches!(d.first(), Some(b'1'..=b'9')) || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v: i128 = std::str::from_utf8(d).ok()?.parse().ok()?;
        i64::try_from(if neg { -v } else { v }).ok()
    }

    #[test]
    fn the_short_fast_path_agrees_with_string2ll_on_every_input() {
        for a in 0..=255u8 {
            assert_eq!(parse_i64(&[a]), string2ll(&[a]), "{a}");
            for b in 0..=255u8 {
                assert_eq!(parse_i64(&[a, b]), string2ll(&[a, b]), "{a} {b}");
            }
        }
    }

    #[test]
    fn parses_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"10"), Some(10));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"--1",
            b"-0",
            b"00",
            b"01",
            b"-01",
            b"03",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
            b"000000000000000000001",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn memcached_fields() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"007"), Some(7), "memcached reads leading zeros as the same number");
        for bad in [&b""[..], b"-1", b"+1", b"1 ", b" 1", b"0x1", b"000000000000000000001"] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_i32(b"2147483647"), Some(i32::MAX));
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"-2147483647"), Some(-i32::MAX));
        assert_eq!(parse_i32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32(b"-2147483649"), None);
        assert_eq!(parse_i32(b"-0"), Some(0));
        assert_eq!(parse_i32(b"-"), None);
        assert_eq!(parse_i32(b"--1"), None);
        assert_eq!(parse_i32(b"10000000000000000000"), None);
    }

    #[test]
    fn formats_like_display() {
        for n in [0i64, 7, -7, 10, 1234567890, i64::MAX, i64::MIN] {
            let mut b = BytesMut::new();
            put_i64(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
        }
    }
}
