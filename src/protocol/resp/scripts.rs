//! Scripts and functions across shards: which SCRIPT / FUNCTION
//! subcommands must reach every server (twemproxy) or every master
//! (cluster), and how their replies become one.
//!
//! Loading, deleting, flushing and restoring change what a server can run;
//! done on one server only, a later EVALSHA or FCALL fails on the others.
//! So they go everywhere, and the merged reply says whether every server
//! agreed:
//! - any error: the first error, in server order;
//! - every reply equal: that reply (the SHA of SCRIPT LOAD, the library
//!   name of FUNCTION LOAD, `+OK`);
//! - otherwise: `DIFFER`, an error saying the servers hold different
//!   scripts or functions.
//!
//! SCRIPT EXISTS answers per SHA: 1 only where every server has it.
//! Every other subcommand (FUNCTION LIST / DUMP / STATS / KILL, SCRIPT
//! KILL, HELP...) goes to one server, like a keyless command.

use bytes::{BufMut, Bytes, BytesMut};

use super::encode::{self, put_header};
use super::reply::{Reply, ReplyKind};
use super::request::Request;

/// The error for replies that differ between servers.
pub const DIFFER: &str = "ERR servers answered differently; scripts or functions differ between them";

/// Where a SCRIPT or FUNCTION command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every server; replies must agree.
    EverySame,
    /// Every server; integer arrays AND-ed per position (SCRIPT EXISTS).
    EveryAnd,
    /// One server, as a keyless command.
    One,
}

/// The scope of `req` (SCRIPT or FUNCTION; any case).
pub fn scope(req: &Request) -> Scope {
    let sub = req.arg(1);
    let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
    if req.name().eq_ignore_ascii_case(b"SCRIPT") {
        match () {
            _ if is("LOAD") || is("FLUSH") => Scope::EverySame,
            _ if is("EXISTS") => Scope::EveryAnd,
            _ => Scope::One,
        }
    } else if is("LOAD") || is("DELETE") || is("FLUSH") || is("RESTORE") {
        Scope::EverySame
    } else {
        Scope::One
    }
}

/// True for SCRIPT and FUNCTION in any case.
pub fn is_scripts_admin(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"SCRIPT") || name.eq_ignore_ascii_case(b"FUNCTION")
}

/// Merges every server's reply for `EverySame`.
pub fn merge_same<'a>(mut parts: impl Iterator<Item = &'a Reply> + Clone) -> Bytes {
    if let Some(e) = parts.clone().find(|r| r.is_error()) {
        return e.raw.clone();
    }
    let Some(first) = parts.next() else { return encode::error(DIFFER) };
    if parts.all(|r| r.raw == first.raw) {
        first.raw.clone()
    } else {
        encode::error(DIFFER)
    }
}

/// Merges every server's SCRIPT EXISTS reply: 1 where all say 1.
pub fn merge_and<'a>(parts: impl Iterator<Item = &'a Reply> + Clone) -> Bytes {
    if let Some(e) = parts.clone().find(|r| r.is_error()) {
        return e.raw.clone();
    }
    let mut all: Option<Vec<bool>> = None;
    for r in parts {
        let ReplyKind::Array(_) = r.kind else { return encode::error(DIFFER) };
        let got: Vec<bool> = r.elements().iter().map(|e| &e[..] == b":1\r\n").collect();
        all = Some(match all {
            None => got,
            Some(a) if a.len() == got.len() => a.iter().zip(&got).map(|(x, y)| *x && *y).collect(),
            Some(_) => return encode::error(DIFFER),
        });
    }
    let all = all.unwrap_or_default();
    let mut out = BytesMut::new();
    put_header(&mut out, b'*', i64::try_from(all.len()).unwrap_or(i64::MAX));
    for x in all {
        out.put_slice(if x { b":1\r\n" } else { b":0\r\n" });
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::resp::ReplyDecoder;

    fn rep(s: &str) -> Reply {
        ReplyDecoder::default().decode(&mut BytesMut::from(s.as_bytes())).unwrap().unwrap()
    }

    fn req(args: &[&str]) -> Request {
        Request::from_args(args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>().into_iter())
    }

    #[test]
    fn scopes() {
        assert_eq!(scope(&req(&["script", "load", "x"])), Scope::EverySame);
        assert_eq!(scope(&req(&["SCRIPT", "FLUSH"])), Scope::EverySame);
        assert_eq!(scope(&req(&["SCRIPT", "exists", "a"])), Scope::EveryAnd);
        assert_eq!(scope(&req(&["SCRIPT", "KILL"])), Scope::One);
        for s in ["LOAD", "delete", "FLUSH", "restore"] {
            assert_eq!(scope(&req(&["FUNCTION", s, "x"])), Scope::EverySame, "{s}");
        }
        assert_eq!(scope(&req(&["FUNCTION", "LIST"])), Scope::One);
        assert!(is_scripts_admin(b"function") && !is_scripts_admin(b"FCALL"));
    }

    #[test]
    fn same_merge() {
        let (a, b, e) = (rep("$2\r\nab\r\n"), rep("$2\r\nxy\r\n"), rep("-ERR no\r\n"));
        assert_eq!(&merge_same([&a, &a].into_iter())[..], b"$2\r\nab\r\n");
        assert_eq!(&merge_same([&a, &e, &b].into_iter())[..], b"-ERR no\r\n");
        assert_eq!(merge_same([&a, &b].into_iter()), encode::error(DIFFER));
    }

    #[test]
    fn and_merge() {
        let (x, y) = (rep("*3\r\n:1\r\n:1\r\n:0\r\n"), rep("*3\r\n:1\r\n:0\r\n:0\r\n"));
        assert_eq!(&merge_and([&x, &y].into_iter())[..], b"*3\r\n:1\r\n:0\r\n:0\r\n");
        assert_eq!(merge_and([&x, &rep("*1\r\n:1\r\n")].into_iter()), encode::error(DIFFER));
        assert_eq!(&merge_and([&x, &rep("-ERR x\r\n")].into_iter())[..], b"-ERR x\r\n");
    }
}
