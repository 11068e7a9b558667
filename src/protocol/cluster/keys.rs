//! Finding a request's keys for cluster routing, by its row's `Keys`:
//! Redis's key specs (`protocol::command::for_each_key`) for nearly every
//! row, or the row's own override. No allocation: the request path calls
//! this for every command (`route::keyslot::slot_of` turns the keys into
//! their shared slot).
//!
//! A key count that is not a number or exceeds the arguments yields no
//! keys: such a request is sent to a master unchanged and the node answers
//! with Redis's own error.

use super::commands::Keys;
use crate::protocol::command;
use crate::protocol::resp::Request;

/// Redis's own error for keys in different slots.
pub const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";

/// Calls `f` with the argument index of each of `req`'s keys under `keys`
/// and returns how many there were.
pub fn for_each_key(req: &Request, keys: Keys, mut f: impl FnMut(usize)) -> usize {
    match keys {
        Keys::None => 0,
        Keys::Spec => match command::resolve(req) {
            Some(cmd) => command::for_each_key(cmd, req, |i, _| f(i)).unwrap_or(0),
            None => 0,
        },
        Keys::Range { first, last, step } => {
            let argc = req.argc();
            let signed_argc = isize::try_from(argc).unwrap_or(isize::MAX);
            let last = if last < 0 { signed_argc.saturating_add(isize::from(last)) } else { isize::from(last) };
            let end = usize::try_from(last.saturating_add(1)).unwrap_or(0).min(argc);
            let mut n = 0usize;
            for i in (usize::from(first)..end).step_by(usize::from(step.max(1))) {
                f(i);
                n = n.saturating_add(1);
            }
            n
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
        let mut out = Vec::new();
        let n = for_each_key(&r, lookup(r.name()).keys, |i| out.push(String::from_utf8_lossy(r.arg(i)).into_owned()));
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn key_positions_per_row() {
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
        assert_eq!(keys(&["OBJECT", "ENCODING", "k"]), ["k"]);
        assert_eq!(keys(&["OBJECT", "HELP"]), Vec::<String>::new());
        assert_eq!(keys(&["PUBLISH", "ch", "msg"]), ["ch"], "the row's override");
        assert_eq!(keys(&["SSUBSCRIBE", "a", "b"]), ["a", "b"], "shard channels route like keys");
        assert_eq!(keys(&["HEXPIRE", "h", "1", "FIELDS", "1", "f"]), ["h"], "not a row: Redis's specs");
        assert_eq!(keys(&["NOSUCH", "k"]), Vec::<String>::new());
    }

    #[test]
    fn block_option() {
        assert!(has_block_option(&req(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"])));
        assert!(has_block_option(&req(&["xreadgroup", "GROUP", "g", "c", "block", "10", "STREAMS", "s", ">"])));
        assert!(!has_block_option(&req(&["XREAD", "STREAMS", "block", "0"])));
    }
}
