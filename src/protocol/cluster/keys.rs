//! Finding a request's keys by its `commands::Keys` spec, without
//! allocating: the request path calls this for every command
//! (`route::keyslot::slot_of` turns the keys into their shared slot).
//!
//! A key count that is not a number or exceeds the arguments yields no
//! keys: such a request is sent to a master unchanged and the node answers
//! with Redis's own error.

use super::commands::Keys;
use crate::protocol::num::parse_i64;
use crate::protocol::resp::Request;

/// Redis's own error for keys in different slots.
pub const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";

/// Argument indices of the keys: `first, first + step, ...` below `end`,
/// after an optional lone index (the destination of ZUNIONSTORE).
#[derive(Debug, Clone)]
pub struct KeyIndices {
    lone: Option<usize>,
    next: usize,
    end: usize,
    step: usize,
}

impl Iterator for KeyIndices {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if let Some(i) = self.lone.take() {
            return Some(i);
        }
        if self.next >= self.end {
            return None;
        }
        let i = self.next;
        // Past `end` (at most argc) the iterator is done either way.
        self.next = self.next.saturating_add(self.step);
        Some(i)
    }
}

const EMPTY: KeyIndices = KeyIndices { lone: None, next: 0, end: 0, step: 1 };

/// The argument indices of `req`'s keys under `spec`.
pub fn key_indices(req: &Request, spec: Keys) -> KeyIndices {
    let argc = req.argc();
    let counted = |at: usize| -> Option<(usize, usize)> {
        let n = usize::try_from(parse_i64(req.arg(at))?).ok()?;
        // The count is the client's: checked, it must end inside argv.
        let first = at.checked_add(1)?;
        let end = first.checked_add(n)?;
        (n > 0 && end <= argc).then_some((first, end))
    };
    match spec {
        Keys::None => EMPTY,
        Keys::Range { first, last, step } => {
            let signed_argc = isize::try_from(argc).unwrap_or(isize::MAX);
            let last = if last < 0 { signed_argc.saturating_add(isize::from(last)) } else { isize::from(last) };
            let end = usize::try_from(last.saturating_add(1)).unwrap_or(0).min(argc);
            KeyIndices { lone: None, next: usize::from(first), end, step: usize::from(step.max(1)) }
        }
        Keys::NumKeys { at } => match counted(usize::from(at)) {
            Some((next, end)) => KeyIndices { lone: None, next, end, step: 1 },
            None => EMPTY,
        },
        Keys::DestNumKeys => match counted(2) {
            Some((next, end)) => KeyIndices { lone: Some(1), next, end, step: 1 },
            None => EMPTY,
        },
        Keys::Streams => {
            // XREADGROUP GROUP g c ... STREAMS: the group and consumer names
            // are skipped so that one named "streams" is not the marker.
            let from = if req.name().eq_ignore_ascii_case(b"XREADGROUP") { 4 } else { 1 };
            match (from..argc).find(|&i| req.arg(i).eq_ignore_ascii_case(b"STREAMS")) {
                Some(at) => {
                    // `at < argc`: the arguments after STREAMS, keys then ids.
                    let next = at.saturating_add(1);
                    let rest = argc.saturating_sub(next);
                    if rest == 0 || !rest.is_multiple_of(2) {
                        return EMPTY;
                    }
                    KeyIndices { lone: None, next, end: next.saturating_add(rest / 2), step: 1 }
                }
                _ => EMPTY,
            }
        }
    }
}

/// XREAD / XREADGROUP with a `BLOCK` option (before STREAMS).
pub fn has_block_option(req: &Request) -> bool {
    (1..req.argc())
        .take_while(|&i| !req.arg(i).eq_ignore_ascii_case(b"STREAMS"))
        .any(|i| req.arg(i).eq_ignore_ascii_case(b"BLOCK"))
}

#[cfg(test)]
mod tests {
    use super::super::commands::lookup;
    use super::*;

    fn req(args: &[&str]) -> Request {
        Request::from_args(args.iter().map(|a| a.as_bytes()))
    }

    fn keys(args: &[&str]) -> Vec<String> {
        let r = req(args);
        key_indices(&r, lookup(r.name()).keys).map(|i| String::from_utf8_lossy(r.arg(i)).into_owned()).collect()
    }

    #[test]
    fn key_positions_per_spec() {
        assert_eq!(keys(&["GET", "a"]), ["a"]);
        assert_eq!(keys(&["GET"]), Vec::<String>::new());
        assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), ["a", "b"]);
        assert_eq!(keys(&["BLPOP", "a", "b", "0"]), ["a", "b"]);
        assert_eq!(keys(&["BITOP", "AND", "d", "s1", "s2"]), ["d", "s1", "s2"]);
        assert_eq!(keys(&["EVAL", "return 1", "2", "k1", "k2", "arg"]), ["k1", "k2"]);
        assert_eq!(keys(&["EVAL", "return 1", "0"]), Vec::<String>::new());
        assert_eq!(keys(&["EVAL", "s", "9", "k1"]), Vec::<String>::new(), "numkeys past the end: none");
        assert_eq!(keys(&["EVAL", "s", "x", "k1"]), Vec::<String>::new());
        assert_eq!(keys(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]), ["d", "a", "b"]);
        assert_eq!(keys(&["ZUNION", "2", "a", "b", "WITHSCORES"]), ["a", "b"]);
        assert_eq!(keys(&["BLMPOP", "0", "2", "a", "b", "LEFT"]), ["a", "b"]);
        assert_eq!(keys(&["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"]), ["s1", "s2"]);
        assert_eq!(keys(&["XREADGROUP", "GROUP", "g", "streams", "STREAMS", "s1", ">"]), ["s1"]);
        assert_eq!(keys(&["XREAD", "STREAMS", "s1"]), Vec::<String>::new(), "odd count");
        assert_eq!(keys(&["OBJECT", "ENCODING", "k"]), ["k"]);
        assert_eq!(keys(&["OBJECT", "HELP"]), Vec::<String>::new());
        assert_eq!(keys(&["NOSUCH", "k"]), Vec::<String>::new());
    }

    #[test]
    fn block_option() {
        assert!(has_block_option(&req(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"])));
        assert!(has_block_option(&req(&["xreadgroup", "GROUP", "g", "c", "block", "10", "STREAMS", "s", ">"])));
        assert!(!has_block_option(&req(&["XREAD", "STREAMS", "block", "0"])));
    }
}
