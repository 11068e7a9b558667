//! Finding a request's keys from its command's key specs, as Redis's
//! `getKeysUsingKeySpecs` (db.c) does, without allocating: both pool modes
//! call this for every keyed request.
//!
//! Rules taken from Redis, in its order:
//! - a spec whose keyword is absent contributes nothing;
//! - an `Unknown` spec (SORT's STORE, found only by the command's own code)
//!   contributes nothing here;
//! - a key count that is not a number, is negative, or reaches past the
//!   arguments, or a range that starts or ends outside them, makes the
//!   whole request keyless (`KeyError::Invalid`): Redis then lets the
//!   command itself answer its syntax error, and so does the caller by
//!   forwarding the request unchanged.
//!
//! Invariant: every index handed to the callback is below `argc`. The
//! arithmetic is in i64 on values bounded by argc (at most 1M) and i16
//! spec fields, so it cannot overflow; it is still checked.

use super::{Begin, Command, Find, KeySpec};
use crate::protocol::num::parse_i64;
use crate::protocol::resp::Request;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key count or key range does not fit the arguments.
    #[error("key positions do not fit the arguments")]
    Invalid,
}

/// Keys `first, first + step, ...` through `last` (inclusive).
#[derive(Clone, Copy)]
struct Span {
    first: i64,
    last: i64,
    step: i64,
}

/// Where `spec`'s keys are in `req`: `Ok(None)` when it names none.
fn span(spec: &KeySpec, req: &Request) -> Result<Option<Span>, KeyError> {
    let argc = i64::try_from(req.argc()).unwrap_or(i64::MAX);
    let first = match spec.begin {
        Begin::Index(pos) => i64::from(pos),
        Begin::Keyword { keyword, start } => match find_keyword(req, argc, keyword, i64::from(start)) {
            Some(at) => at.saturating_add(1),
            None => return Ok(None),
        },
        Begin::Unknown => return Ok(None),
    };
    let (first, last, step) = match spec.find {
        Find::Range { last, step, limit } => {
            let last = i64::from(last);
            let end = if last >= 0 {
                first.saturating_add(last)
            } else if limit == 0 {
                argc.saturating_add(last)
            } else {
                // Redis: first + ((argc - first) / limit + lastkey).
                let rest = argc.saturating_sub(first).checked_div(i64::from(limit)).unwrap_or(0);
                first.saturating_add(rest.saturating_add(last))
            };
            (first, end, i64::from(step))
        }
        Find::Keynum { index, first: from, step } => {
            let at = first.saturating_add(i64::from(index));
            if at < 0 || at >= argc {
                return Err(KeyError::Invalid);
            }
            let n = parse_i64(req.arg(usize::try_from(at).unwrap_or(usize::MAX))).ok_or(KeyError::Invalid)?;
            if n < 0 {
                return Err(KeyError::Invalid);
            }
            let first = first.saturating_add(i64::from(from));
            (first, first.saturating_add(n).saturating_sub(1), i64::from(step))
        }
        Find::Unknown => return Ok(None),
    };
    if last >= argc || last < first || first >= argc || first < 0 {
        return Err(KeyError::Invalid);
    }
    Ok(Some(Span { first, last, step: step.max(1) }))
}

/// Redis's keyword search: forwards from `start` to the last argument
/// (exclusive), or backwards from `argc + start` down to 1.
fn find_keyword(req: &Request, argc: i64, keyword: &str, start: i64) -> Option<i64> {
    let (from, to) = if start > 0 { (start, argc.saturating_sub(1)) } else { (argc.saturating_add(start), 0) };
    let forward = from <= to;
    let mut i = from;
    while i != to {
        if i >= argc || i < 0 {
            return None;
        }
        if req.arg(usize::try_from(i).ok()?).eq_ignore_ascii_case(keyword.as_bytes()) {
            return Some(i);
        }
        i = if forward { i.saturating_add(1) } else { i.saturating_sub(1) };
    }
    None
}

/// The fast path, most commands (GET, SET, HSET...): the index of the one
/// key when `cmd` has exactly one, at a fixed index. Where it is below
/// argc, the same answer as `for_each_key` gives, without its general steps.
pub fn single_key(cmd: &Command) -> Option<usize> {
    match cmd.keys {
        [KeySpec { begin: Begin::Index(pos), find: Find::Range { last: 0, .. }, .. }] => usize::try_from(*pos).ok(),
        _ => None,
    }
}

/// Calls `f(index, spec flags)` for each key of `req` under `cmd`, in spec
/// order, and returns how many there were. On `Err` `f` was not called.
pub fn for_each_key(cmd: &Command, req: &Request, mut f: impl FnMut(usize, u32)) -> Result<usize, KeyError> {
    if let Some(pos) = single_key(cmd) {
        if pos >= req.argc() {
            return Err(KeyError::Invalid);
        }
        f(pos, cmd.keys.first().map_or(0, |k| k.flags));
        return Ok(1);
    }
    // First pass: any invalid spec makes the request keyless (Redis resets
    // the result), so nothing may be reported before all are checked. The
    // common single-spec command takes the second pass only.
    if cmd.keys.len() > 1 {
        for spec in cmd.keys {
            span(spec, req)?;
        }
    }
    let mut n = 0usize;
    for spec in cmd.keys {
        let Some(s) = span(spec, req)? else { continue };
        let mut i = s.first;
        while i <= s.last {
            f(usize::try_from(i).unwrap_or(usize::MAX), spec.flags);
            n = n.saturating_add(1);
            i = i.saturating_add(s.step);
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::resolve;
    use super::*;

    fn keys(args: &[&str]) -> Result<Vec<String>, KeyError> {
        let r = Request::from_args(args.iter().map(|a| a.as_bytes()));
        let cmd = resolve(&r).expect("known command");
        let mut out = Vec::new();
        for_each_key(cmd, &r, |i, _| out.push(String::from_utf8_lossy(r.arg(i)).into_owned()))?;
        Ok(out)
    }

    fn ok(args: &[&str]) -> Vec<String> {
        keys(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn ranges() {
        assert_eq!(ok(&["GET", "a"]), ["a"]);
        assert_eq!(ok(&["EXPIRE", "a", "100", "NX"]), ["a"]);
        assert_eq!(ok(&["MSET", "a", "1", "b", "2"]), ["a", "b"]);
        assert_eq!(ok(&["BLPOP", "a", "b", "0"]), ["a", "b"]);
        assert_eq!(ok(&["BITOP", "AND", "d", "s1", "s2"]), ["d", "s1", "s2"]);
        assert_eq!(ok(&["RENAME", "a", "b"]), ["a", "b"]);
        assert_eq!(ok(&["LCS", "a", "b", "LEN"]), ["a", "b"]);
        assert_eq!(ok(&["OBJECT", "ENCODING", "k"]), ["k"]);
        assert_eq!(ok(&["MEMORY", "USAGE", "k", "SAMPLES", "5"]), ["k"]);
        assert_eq!(ok(&["XGROUP", "CREATE", "s", "g", "$"]), ["s"]);
        assert_eq!(ok(&["OBJECT", "HELP"]), Vec::<String>::new());
        assert_eq!(ok(&["PING"]), Vec::<String>::new());
        assert_eq!(ok(&["HEXPIRE", "h", "10", "FIELDS", "1", "f"]), ["h"]);
    }

    #[test]
    fn key_counts() {
        assert_eq!(ok(&["EVAL", "return 1", "2", "k1", "k2", "arg"]), ["k1", "k2"]);
        assert_eq!(ok(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]), ["d", "a", "b"]);
        assert_eq!(ok(&["ZINTERCARD", "2", "a", "b", "LIMIT", "1"]), ["a", "b"]);
        assert_eq!(ok(&["SINTERCARD", "1", "a"]), ["a"]);
        assert_eq!(ok(&["LMPOP", "2", "a", "b", "LEFT"]), ["a", "b"]);
        assert_eq!(ok(&["BLMPOP", "0", "2", "a", "b", "LEFT"]), ["a", "b"]);
        assert_eq!(ok(&["ZMPOP", "1", "z", "MIN"]), ["z"]);
        // Out of range or not a number: keyless, the server answers.
        assert_eq!(keys(&["EVAL", "s", "9", "k1"]), Err(KeyError::Invalid));
        assert_eq!(keys(&["EVAL", "s", "x", "k1"]), Err(KeyError::Invalid));
        assert_eq!(keys(&["EVAL", "s", "-1", "k1"]), Err(KeyError::Invalid));
        assert_eq!(keys(&["EVAL", "s", "0"]), Err(KeyError::Invalid), "no keys: Redis's range check");
        // One invalid spec drops the valid one too, as in Redis.
        assert_eq!(keys(&["ZUNIONSTORE", "d", "5", "a"]), Err(KeyError::Invalid));
    }

    #[test]
    fn keywords() {
        assert_eq!(ok(&["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"]), ["s1", "s2"]);
        assert_eq!(ok(&["XREADGROUP", "GROUP", "g", "streams", "STREAMS", "s1", ">"]), ["s1"]);
        assert_eq!(ok(&["XREAD", "STREAMS", "s1", "s2", "0"]), ["s1"], "Redis: (argc - first) / 2");
        assert_eq!(ok(&["GEORADIUS", "g", "0", "0", "1", "km", "STORE", "d"]), ["g", "d"]);
        assert_eq!(ok(&["GEORADIUS", "g", "0", "0", "1", "km"]), ["g"]);
        assert_eq!(ok(&["MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b"]), ["", "a", "b"]);
        assert_eq!(ok(&["SORT", "k", "STORE", "d"]), ["k"], "STORE is an Unknown spec");
    }

    /// Every command and subcommand, with arguments that are counts,
    /// keywords, huge or negative numbers in every order: no panic, every
    /// index inside the arguments, and the count returned is the count seen.
    #[test]
    fn any_arguments_stay_in_bounds() {
        use super::super::COMMANDS;
        let words = ["0", "1", "2", "3", "-1", "x", "STREAMS", "KEYS", "STORE", "9223372036854775807", ""];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let all = COMMANDS.iter().flat_map(|c| std::iter::once(c).chain(c.subcommands));
        for cmd in all {
            for argc in 1..10 {
                for _ in 0..40 {
                    let mut args = vec![cmd.name.to_string()];
                    for _ in 1..argc {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        args.push(words[(seed % words.len() as u64) as usize].to_string());
                    }
                    let r = Request::from_args(args.iter().map(|a| a.as_bytes()));
                    let mut seen = 0;
                    if let Ok(n) = for_each_key(cmd, &r, |i, _| {
                        assert!(i > 0 && i < argc, "{args:?}: key at {i}");
                        seen += 1;
                    }) {
                        assert_eq!(n, seen, "{args:?}");
                    }
                }
            }
        }
    }
}
