//! The bounded label sets of the per-command families: command names by
//! pool kind, and error classes.
//!
//! Clients choose command names and can make a backend say any error text
//! (a script's `redis.error_reply`), so no label value is ever taken from
//! the wire: a name or class not in these fixed lists counts as "other".
//! Invariant: every list's index space is below `NCMD` / `NCLASS`, so a
//! pool whose kind changes on reload still indexes within its tables.

use crate::protocol::command::COMMANDS;
use crate::protocol::memcache::McCmd;

/// Command slots per pool: Redis's top-level commands plus "other", the
/// largest of the kinds' lists.
pub const NCMD: usize = COMMANDS.len() + 1;

/// Which command list a pool's labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Memcache,
    Mongo,
}

/// memcached's commands, by `mc_index`.
pub const MC_COMMANDS: [&str; 17] = [
    "get",
    "gets",
    "set",
    "add",
    "replace",
    "append",
    "prepend",
    "cas",
    "delete",
    "incr",
    "decr",
    "touch",
    "quit",
    "version",
    "stats",
    "flush_all",
    "other",
];

/// The slot of a memcached command.
pub fn mc_index(c: McCmd) -> u16 {
    c as u16
}

/// The "other" slot of `kind`.
pub fn other(kind: Kind) -> u16 {
    match kind {
        Kind::Redis => COMMANDS.len() as u16,
        Kind::Memcache => (MC_COMMANDS.len() - 1) as u16,
        // `protocol::mongo::COMMANDS[0]` is "other".
        Kind::Mongo => 0,
    }
}

/// The slot of a Redis command name as sent (any case).
#[inline]
pub fn redis_index(name: &[u8]) -> u16 {
    crate::protocol::command::lookup(name).map_or(COMMANDS.len() as u16, |(i, _)| i as u16)
}

/// The label of slot `i` for `kind`, `None` past its list.
pub fn command_name(kind: Kind, i: usize) -> Option<&'static str> {
    match kind {
        Kind::Redis if i == COMMANDS.len() => Some("other"),
        Kind::Redis => COMMANDS.get(i).map(|c| c.name),
        Kind::Memcache => MC_COMMANDS.get(i).copied(),
        Kind::Mongo => crate::protocol::mongo::COMMANDS.get(i).copied(),
    }
}

/// Error classes: Redis's error codes Puerta tells apart, memcached's
/// three error replies, common mongos `codeName`s, then "other" (any error
/// not listed).
pub const CLASSES: [&str; 32] = [
    "MOVED",
    "ASK",
    "ERR",
    "WRONGTYPE",
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
    "BUSY",
    "LOADING",
    "READONLY",
    "CROSSSLOT",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "OOM",
    "NOSCRIPT",
    "EXECABORT",
    "ERROR",
    "CLIENT_ERROR",
    "SERVER_ERROR",
    "MASTERDOWN",
    // mongos replies with `ok: 0`, by `codeName` (`MONGO_FIRST` on).
    "DuplicateKey",
    "Unauthorized",
    "AuthenticationFailed",
    "NamespaceNotFound",
    "CommandNotFound",
    "CursorNotFound",
    "BadValue",
    "WriteConflict",
    "MaxTimeMSExpired",
    "NotWritablePrimary",
    "StaleConfig",
    "other",
];
/// Where the mongos code names start in `CLASSES` (32 classes in all:
/// the most a derived `Default` array takes).
const MONGO_FIRST: usize = 20;
pub const NCLASS: usize = CLASSES.len();
/// The "other" class.
pub const OTHER_CLASS: usize = NCLASS - 1;

/// The error class of a complete reply, `None` when it is no error. RESP:
/// a `-` simple error or a `!` blob error (RESP3), classed by its first
/// word; memcached: `ERROR`, `CLIENT_ERROR`, `SERVER_ERROR` lines.
#[inline]
pub fn classify(kind: Kind, reply: &[u8]) -> Option<usize> {
    match (kind, reply.first()) {
        (Kind::Redis, Some(b'-')) => Some(class_of(first_word(&reply[1..]))),
        (Kind::Redis, Some(b'!')) => {
            // `!<len>\r\n<code> ...`
            let body = reply.iter().position(|&b| b == b'\n').map_or(&[][..], |i| &reply[i + 1..]);
            Some(class_of(first_word(body)))
        }
        (Kind::Memcache, Some(b'E' | b'C' | b'S')) => {
            let w = first_word(reply);
            matches!(w, b"ERROR" | b"CLIENT_ERROR" | b"SERVER_ERROR").then(|| class_of(w))
        }
        _ => None,
    }
}

/// The class of a mongos reply with `ok: 0` and this `codeName`: a listed
/// name, else "other" (a reply can carry any text there).
pub fn mongo_class(code_name: Option<&str>) -> usize {
    code_name
        .and_then(|n| CLASSES[MONGO_FIRST..OTHER_CLASS].iter().position(|c| *c == n))
        .map_or(OTHER_CLASS, |i| MONGO_FIRST + i)
}

fn first_word(s: &[u8]) -> &[u8] {
    let end = s.iter().position(|&b| b == b' ' || b == b'\r' || b == b'\n').unwrap_or(s.len());
    &s[..end]
}

fn class_of(word: &[u8]) -> usize {
    CLASSES[..OTHER_CLASS].iter().position(|c| c.as_bytes() == word).unwrap_or(OTHER_CLASS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_class_by_their_first_word_and_forged_ones_are_other() {
        let c = |k, s: &[u8]| classify(k, s).map(|i| CLASSES[i]);
        assert_eq!(c(Kind::Redis, b"-WRONGTYPE Operation against a key\r\n"), Some("WRONGTYPE"));
        assert_eq!(c(Kind::Redis, b"-MOVED 3999 127.0.0.1:6381\r\n"), Some("MOVED"));
        assert_eq!(c(Kind::Redis, b"-ERR unknown\r\n"), Some("ERR"));
        assert_eq!(c(Kind::Redis, b"-MYFORGEDCODE x\r\n"), Some("other"));
        assert_eq!(c(Kind::Redis, b"!9\r\nNOPERM no\r\n"), Some("NOPERM"));
        assert_eq!(c(Kind::Redis, b"+OK\r\n"), None);
        assert_eq!(c(Kind::Redis, b"$3\r\n-ER\r\n"), None);
        assert_eq!(c(Kind::Memcache, b"SERVER_ERROR out of memory\r\n"), Some("SERVER_ERROR"));
        assert_eq!(c(Kind::Memcache, b"ERROR\r\n"), Some("ERROR"));
        assert_eq!(c(Kind::Memcache, b"STORED\r\n"), None);
        assert_eq!(c(Kind::Memcache, b"END\r\n"), None);
        assert_eq!(CLASSES[MONGO_FIRST - 1], "MASTERDOWN");
        assert_eq!(CLASSES[mongo_class(Some("DuplicateKey"))], "DuplicateKey");
        assert_eq!(CLASSES[mongo_class(Some("StaleConfig"))], "StaleConfig");
        assert_eq!(CLASSES[mongo_class(Some("MyForgedName"))], "other");
        assert_eq!(CLASSES[mongo_class(Some("ERR"))], "other", "Redis classes are not mongos names");
        assert_eq!(CLASSES[mongo_class(None)], "other");
    }

    #[test]
    fn command_slots_are_bounded() {
        assert_eq!(command_name(Kind::Redis, redis_index(b"get") as usize), Some("GET"));
        assert_eq!(command_name(Kind::Redis, redis_index(b"nosuchcmd") as usize), Some("other"));
        assert_eq!(command_name(Kind::Memcache, mc_index(McCmd::FlushAll) as usize), Some("flush_all"));
        assert_eq!(command_name(Kind::Memcache, other(Kind::Memcache) as usize), Some("other"));
        assert_eq!(command_name(Kind::Mongo, 0), Some("other"));
        assert!(MC_COMMANDS.len() <= NCMD && crate::protocol::mongo::COMMANDS.len() <= NCMD);
    }
}
