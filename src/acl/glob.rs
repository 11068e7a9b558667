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

/// Whether `pattern` matches all of `s`, as Redis's `stringmatchlen(...,
/// nocase = 0)` answers.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    // The shapes most ACL patterns have, a literal or `prefix:*`, answered
    // without the general matcher (the same answers: a trailing run of
    // stars matches any rest, the empty one too, but a lone `*` run never
    // matches an empty string). Anything with `?`, `[`, `\` or an inner
    // `*` goes the general way.
    let body = pattern.iter().rposition(|&b| b != b'*').map_or(&pattern[..0], |i| &pattern[..=i]);
    if !body.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\')) {
        return if body.len() == pattern.len() { pattern == s } else { !s.is_empty() && s.starts_with(body) };
    }
    match_general(pattern, s)
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
