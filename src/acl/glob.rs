//! Redis's glob matcher, `stringmatchlen` (util.c, Redis 7.0), ported
//! for ACL key and channel patterns: `*`, `?`, `[abc]`, `[^a-z]`, and `\`
//! escapes, byte for byte, case-sensitive, with Redis's quirks kept (an
//! unterminated `[` class ends at the pattern's end; a range may be written
//! high to low; bytes compare as C's signed `char`; `*` never matches an
//! empty string on its own).
//!
//! Invariants (patterns come from the config, strings from clients):
//! - recursion happens only at a `*`, and at most `MAX_NESTING` deep (the
//!   same cap as Redis's CVE-2022-36021 fix): deeper, the answer is "no
//!   match", so a hostile pattern cannot exhaust the stack;
//! - the `skip_longer` flag (Redis's `skipLongerMatches`) stops a `*`
//!   from retrying longer tails once a deeper `*` has tried them all, so
//!   the work is bounded by pattern length times string length, never
//!   exponential (a unit test times `a*a*a*...b` on a long string);
//! - no index ever leaves its slice: everything goes through `get`.

/// How deep `*` may nest before the match gives up (Redis's own limit).
pub const MAX_NESTING: usize = 1000;

/// A pattern's shape, worked out once when a rule is compiled so a check
/// does not re-scan the pattern: most ACL patterns are a literal or
/// `prefix*` (`prefix:*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No glob bytes at all: equality.
    Literal,
    /// A literal body of `len` bytes, then only stars: any non-empty
    /// string starting with the body (a lone `*` run never matches an
    /// empty string). A body of at most 8 bytes is also kept as a
    /// little-endian `word` under `mask`, so a string of 8 bytes or more
    /// is compared with one load, not a `memcmp` call.
    Prefix { len: usize, word: u64, mask: u64 },
    /// Anything else (`?`, `[`, `\`, an inner `*`): the general matcher.
    General,
}

/// The shape of `pattern` (see `Shape`).
pub fn shape(pattern: &[u8]) -> Shape {
    let body = pattern.iter().rposition(|&b| b != b'*').map_or(0, |i| i.saturating_add(1));
    let head = pattern.get(..body).unwrap_or_default();
    if head.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\')) {
        Shape::General
    } else if body == pattern.len() {
        Shape::Literal
    } else {
        let (word, mask) = if body <= 8 {
            let mut w = [0u8; 8];
            let mut m = [0u8; 8];
            for (i, &b) in head.iter().enumerate() {
                w[i] = b;
                m[i] = 0xff;
            }
            (u64::from_le_bytes(w), u64::from_le_bytes(m))
        } else {
            (0, 0)
        };
        Shape::Prefix { len: body, word, mask }
    }
}

/// The first 8 bytes of `s` as a little-endian word (`None`: shorter).
#[inline]
fn first_word(s: &[u8]) -> Option<u64> {
    let head: [u8; 8] = s.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

/// `matches` for a pattern whose `shape` is already known.
#[inline(always)]
pub fn matches_shaped(pattern: &[u8], shape: Shape, s: &[u8]) -> bool {
    match shape {
        Shape::Literal => pattern == s,
        Shape::Prefix { len, word, mask } => {
            if len <= 8 {
                if let Some(w) = first_word(s) {
                    return w & mask == word;
                }
            }
            !s.is_empty() && pattern.get(..len).is_some_and(|body| s.starts_with(body))
        }
        Shape::General => match_general(pattern, s),
    }
}

/// Whether `pattern` matches all of `s`, as Redis's `stringmatchlen(...,
/// nocase = 0)` answers. The shapes most ACL patterns have, a literal or
/// `prefix:*`, are answered without the general matcher (the same
/// answers: a trailing run of stars matches any rest, the empty one too,
/// but a lone `*` run never matches an empty string).
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    matches_shaped(pattern, shape(pattern), s)
}

/// `matches` without the fast paths (the port of `stringmatchlen`).
pub fn match_general(pattern: &[u8], s: &[u8]) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, s, &mut skip_longer, 0)
}

/// C's `char` on x86: bytes past 127 are negative in class ranges.
fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

fn match_impl(mut p: &[u8], mut s: &[u8], skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while let (Some(&pc), Some(&sc)) = (p.first(), s.first()) {
        match pc {
            b'*' => {
                // Collapse a run of stars; a trailing star matches the rest.
                while p.get(1) == Some(&b'*') {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                let rest = &p[1..];
                while !s.is_empty() {
                    if match_impl(rest, s, skip_longer, nesting.saturating_add(1)) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                let (matched, after) = class(&p[1..], sc);
                if !matched {
                    return false;
                }
                s = &s[1..];
                // `after` is the class's closing `]` (or the last byte of
                // an unterminated class): the step below moves past it.
                p = after;
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if p.first() != Some(&sc) {
                    return false;
                }
                s = &s[1..];
            }
            _ => {
                if pc != sc {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = p.get(1..).unwrap_or_default();
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

/// A `[...]` class (after its `[`) against `c`: whether it matched, and
/// the pattern from the class's last byte on.
fn class(mut p: &[u8], c: u8) -> (bool, &[u8]) {
    let not = p.first() == Some(&b'^');
    if not {
        p = &p[1..];
    }
    let mut matched = false;
    let mut last = p;
    loop {
        match p {
            [b'\\', e, ..] => {
                matched |= *e == c;
                p = &p[1..];
            }
            [b']', ..] => break,
            [] => {
                // Unterminated: Redis steps back onto the last byte.
                p = last;
                break;
            }
            [lo, b'-', hi, ..] => {
                let (mut a, mut b) = (signed(*lo), signed(*hi));
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                matched |= (a..=b).contains(&signed(c));
                p = &p[2..];
            }
            [x, ..] => matched |= *x == c,
        }
        last = p;
        p = p.get(1..).unwrap_or_default();
    }
    (matched != not, p)
}

/// Why a configured pattern is refused (`puerta check`): Redis accepts
/// these, but each is almost surely a typo, and the bounds keep the
/// matcher's work small on every key.
pub fn lint(pattern: &[u8]) -> Result<(), String> {
    const MAX_LEN: usize = 1024;
    const MAX_STARS: usize = 64;
    if pattern.len() > MAX_LEN {
        return Err(format!("pattern longer than {MAX_LEN} bytes"));
    }
    if pattern.iter().filter(|&&b| b == b'*').count() > MAX_STARS {
        return Err(format!("more than {MAX_STARS} '*' in one pattern"));
    }
    let mut i = 0usize;
    while let Some(&b) = pattern.get(i) {
        match b {
            b'\\' if i.saturating_add(1) == pattern.len() => return Err("pattern ends with a lone '\\'".into()),
            b'\\' => i = i.saturating_add(1),
            b'[' => {
                let mut j = i.saturating_add(1);
                loop {
                    match pattern.get(j) {
                        None => return Err("unterminated '[' class".into()),
                        Some(b'\\') => j = j.saturating_add(1),
                        Some(b']') => break,
                        Some(_) => {}
                    }
                    j = j.saturating_add(1);
                }
                i = j;
            }
            _ => {}
        }
        i = i.saturating_add(1);
    }
    Ok(())
}

#[cfg(test)]
#[path = "glob_tests.rs"]
mod tests;
