//! Duration text: "500ms", "10s", "1.5s", "5m", "1h", or a bare integer
//! meaning milliseconds (nutcracker's `timeout: 400` convention).
//!
//! Pure string functions, no config knowledge beyond the syntax. Invariant:
//! `format` writes text that `parse` reads back to the same `Duration` for
//! every whole number of milliseconds, so `puerta check` output can be
//! pasted back into a file.

use std::time::Duration;

/// What a duration looks like, for "expected ..., got ..." messages.
pub(crate) const EXPECTED: &str = r#"a duration like "500ms", "10s", "5m", "1h" or integer milliseconds"#;

/// Words that switch an optional timeout off, besides any zero duration.
pub(crate) const OFF_WORDS: [&str; 2] = ["off", "none"];

const NANOS_PER_MS: u128 = 1_000_000;
const UNITS: [(&str, u128); 4] =
    [("ms", NANOS_PER_MS), ("s", 1_000 * NANOS_PER_MS), ("m", 60_000 * NANOS_PER_MS), ("h", 3_600_000 * NANOS_PER_MS)];

/// Parses duration text. Returns `None` for anything malformed; the caller
/// knows the key and writes the message.
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim_start());
    if unit.is_empty() {
        // A bare number is milliseconds and must be whole: "1.5" with no
        // unit is more likely a typo for "1.5s" than a sub-ms timeout.
        let ms: u64 = number.parse().ok()?;
        return Some(Duration::from_millis(ms));
    }
    let (_, per_unit) = UNITS.iter().find(|(name, _)| *name == unit)?;
    let nanos = decimal_times(number, *per_unit)?;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    // The remainder is < 1e9, so it always fits.
    Some(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Like `parse`, but "off", "none" and any zero duration mean "never",
/// returned as `Some(None)`.
pub(crate) fn parse_optional(text: &str) -> Option<Option<Duration>> {
    if OFF_WORDS.contains(&text.trim()) {
        return Some(None);
    }
    parse(text).map(|d| (!d.is_zero()).then_some(d))
}

/// Canonical text for `d`: the largest unit that divides it exactly.
pub(crate) fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    for (name, per_unit) in UNITS.iter().rev() {
        if nanos != 0 && nanos.is_multiple_of(*per_unit) {
            return format!("{}{name}", nanos / per_unit);
        }
    }
    if nanos == 0 {
        return "0s".to_owned();
    }
    // Sub-millisecond precision only arises from fractional input such as
    // "0.25ms"; show it exactly rather than rounding it away.
    format!("{}ms", nanos as f64 / NANOS_PER_MS as f64)
}

/// `number * per_unit` for a decimal `number` like "1.25", computed in
/// integers so "0.1s" is exactly 100ms. `None` on malformed or huge input.
fn decimal_times(number: &str, per_unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // 18 fraction digits keep `frac * per_unit` far below u128::MAX.
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || frac.len() > 18 {
        return None;
    }
    if number.ends_with('.') {
        return None;
    }
    let whole = int.parse::<u128>().ok()?.checked_mul(per_unit)?;
    if frac.is_empty() {
        return Some(whole);
    }
    let scale = 10u128.pow(frac.len() as u32);
    let part = frac.parse::<u128>().ok()? * per_unit / scale;
    whole.checked_add(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn parses_units_and_bare_milliseconds() {
        assert_eq!(parse("500ms"), ms(500));
        assert_eq!(parse("10s"), ms(10_000));
        assert_eq!(parse("1.5s"), ms(1_500));
        assert_eq!(parse("0.1s"), ms(100));
        assert_eq!(parse("5m"), ms(300_000));
        assert_eq!(parse("1h"), ms(3_600_000));
        assert_eq!(parse("250"), ms(250));
        assert_eq!(parse(" 2 s "), ms(2_000));
        assert_eq!(parse("0.25ms"), Some(Duration::from_micros(250)));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in
            ["", "s", "10x", "1.5", "-1s", "1..5s", ".5s", "5.s", "10 parsecs", "1s2", "99999999999999999999999h"]
        {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn optional_accepts_off_words_and_zero() {
        assert_eq!(parse_optional("0"), Some(None));
        assert_eq!(parse_optional("0s"), Some(None));
        assert_eq!(parse_optional("off"), Some(None));
        assert_eq!(parse_optional("none"), Some(None));
        assert_eq!(parse_optional("30s"), Some(ms(30_000)));
        assert_eq!(parse_optional("never"), None);
    }

    #[test]
    fn format_round_trips() {
        for text in ["500ms", "10s", "5m", "1h", "1500ms", "90s", "0s"] {
            let d = parse(text).expect("valid test input");
            assert_eq!(format(d), text);
        }
        assert_eq!(format(Duration::from_micros(250)), "0.25ms");
    }
}
