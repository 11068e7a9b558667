//! `glob::matches` against answers Redis 7.0's `stringmatchlen` gives
//! (checked with `redis-cli KEYS`), and hostile patterns.

use std::time::{Duration, Instant};

use super::{lint, match_general, matches};

#[test]
fn redis_semantics() {
    let yes = [
        ("*", "abc"),
        ("a*", "a"),
        ("a*c", "abbbc"),
        ("a?c", "abc"),
        ("h[ae]llo", "hello"),
        ("h[^e]llo", "hallo"),
        ("h[a-b]llo", "hbllo"),
        ("h[b-a]llo", "hallo"),
        ("cache:*", "cache:user:1"),
        ("a\\*b", "a*b"),
        ("a\\", "a\\"),
        ("x[\\]]y", "x]y"),
        ("[abc", "c"),
        ("[^", "z"),
        ("**a**", "xxa"),
        ("a*b*c", "aXbYc"),
    ];
    for (p, s) in yes {
        assert!(matches(p.as_bytes(), s.as_bytes()), "{p:?} should match {s:?}");
    }
    let no = [
        ("*", ""),
        ("a?c", "ac"),
        ("h[^e]llo", "hello"),
        ("h[a-b]llo", "hcllo"),
        ("cache:*", "cach"),
        ("a\\*b", "aXb"),
        ("[", "["),
        ("abc", "ab"),
        ("ab", "abc"),
        ("a*b", "aXc"),
        ("A*", "a"),
    ];
    for (p, s) in no {
        assert!(!matches(p.as_bytes(), s.as_bytes()), "{p:?} should not match {s:?}");
    }
    assert!(matches(b"", b""));
}

#[test]
fn hostile_patterns_are_bounded() {
    // Exponential for a naive backtracker; here pattern x string at most.
    let p = "a*".repeat(30) + "b";
    let s = vec![b'a'; 100_000];
    let t = Instant::now();
    assert!(!matches(p.as_bytes(), &s));
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    // Deeper than the nesting cap: no match, and no stack overflow.
    let deep = "*a".repeat(5000);
    assert!(!matches(deep.as_bytes(), &vec![b'a'; 6000]));
    // A long class and escapes stay inside the slices.
    assert!(!matches(&[b'['; 4096], b"x"));
    assert!(matches(&[b'\\'; 3], b"\\\\"));
}

#[test]
fn lint_refuses_typos_and_huge_patterns() {
    assert!(lint(b"cache:*").is_ok());
    assert!(lint(b"x[\\]]y").is_ok());
    assert!(lint(b"[abc").is_err());
    assert!(lint(b"abc\\").is_err());
    assert!(lint("*".repeat(65).as_bytes()).is_err());
    assert!(lint(&[b'a'; 2000]).is_err());
}

/// The fast paths (a literal, `prefix*`) answer exactly as the general
/// matcher does, Redis's quirks included (a lone star run never matches
/// the empty string).
#[test]
fn fast_paths_agree_with_the_general_matcher() {
    let patterns = ["", "*", "**", "key", "key:*", "key:**", "k", "k*", "key:*x", "ke?:*", "k\\*", "[k]*"];
    let strings = ["", "k", "ke", "key", "key:", "key:1", "key:1x", "k*", "other", "KEY:1"];
    for p in patterns {
        for s in strings {
            assert_eq!(
                matches(p.as_bytes(), s.as_bytes()),
                match_general(p.as_bytes(), s.as_bytes()),
                "{p:?} against {s:?}"
            );
        }
    }
}
