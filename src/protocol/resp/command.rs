//! The twemproxy pool's command policy: which commands a sharded Redis
//! pool accepts and how it handles each (one row per command). The facts
//! about a command, its arity and where its keys are, come from Redis's
//! own table (`protocol::command`); this file says only what the mode does.
//!
//! Rows started from nutcracker 0.5.0's list (`redis_arg0/1/2/3/n/x/kvx`,
//! `argeval`, `nokey`); its arity checks are now Redis's own (`EXPIRE k
//! 100 NX` works), plus the few rules nutcracker adds, kept in `extra_ok`:
//! MSET needs whole key/value pairs, EVAL-shaped calls at least one key
//! inside the arguments, AUTH exactly one password, PING and COMMAND no
//! argument (nutcracker closes for `PING msg` and `COMMAND COUNT`).
//! Deliberate differences from nutcracker, each only visible when keys
//! live on different servers:
//! - EXISTS fans out and sums (nutcracker sends every key to the first
//!   key's server);
//! - a `Keyed` command with several keys (SINTER, RENAME, LCS, SINTERCARD,
//!   ZUNIONSTORE...) is forwarded only when every key maps to one server;
//!   otherwise the client gets `-ERR '<command>' keys map to different
//!   servers` (nutcracker sends it to the first key's server, which answers
//!   wrongly). `Eval` keeps nutcracker's rule, the first key's server, as
//!   scripts written for nutcracker rely on it;
//! - MOVE and SELECT are refused the same way (nutcracker closes for them).
//!
//! Row format, to add a command: `"NAME" Kind;` with the top-level name as
//! Redis spells it; the name must be in `protocol::command::COMMANDS` (a
//! unit test checks). Invariant: names are unique and uppercase ASCII.

use std::sync::OnceLock;

use crate::protocol::command::{self, Command};
use crate::protocol::num::parse_i64;
use crate::protocol::resp::Request;

/// How a multi-key command's replies are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// MGET: one array, elements in the client's key order.
    Array,
    /// DEL, UNLINK, EXISTS, TOUCH: integers summed.
    Sum,
    /// MSET: `+OK` when every part said OK.
    AllOk,
    /// SCRIPT LOAD / FLUSH, FUNCTION LOAD / DELETE / FLUSH / RESTORE on
    /// every server: the common reply, or an error (`scripts.rs`).
    Same,
    /// SCRIPT EXISTS on every server: 1 where every server says 1.
    And,
}

/// What the pool does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Routed by its keys (Redis's key specs): forwarded when they all map
    /// to one server, answered with an error naming it otherwise.
    Keyed,
    /// Every argument from 1 is a key (MGET, DEL, ...): split per server.
    MultiKey(Merge),
    /// Arguments from 1 are key/value pairs (MSET): split per server.
    KeyValues,
    /// EVAL-shaped (`numkeys` at argument 2): to the first key's server
    /// (nutcracker's rule), gated by `allow_scripts`, needing a key.
    Eval,
    /// No key: forwarded to the server of the empty key, as nutcracker does.
    NoKey,
    /// SCRIPT / FUNCTION: every server or one, by subcommand (`scripts.rs`).
    Scripts,
    /// INFO: answered from the proxy and the servers (`session::mux`).
    Info,
    /// Answered by the proxy.
    Ping,
    Quit,
    Auth,
    /// Known but refused (closes, or `-ERR unsupported` by config).
    Unsupported,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
}

/// The result of checking a request against the policy and Redis's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The pool's row, and the command (or subcommand) Redis would run.
    Ok(&'static Spec, &'static Command),
    /// Not in the pool's policy (or not a Redis command at all).
    Unknown,
    /// Known, but the argument count (or EVAL numkeys) is wrong.
    WrongArity(&'static Command),
}

use Kind::*;

macro_rules! table {
    ($($name:literal $kind:expr;)*) => {
        &[$(Spec { name: $name, kind: $kind }),*]
    };
}

static TABLE: &[Spec] = table! {
    // Local and keyless (redis_argz, redis_nokey).
    "PING" Ping; "QUIT" Quit; "AUTH" Auth; "COMMAND" NoKey; "LOLWUT" NoKey;
    "SELECT" Unsupported; "MOVE" Unsupported;
    // Puerta only: scripts on every server, INFO from proxy and servers.
    "SCRIPT" Scripts; "FUNCTION" Scripts; "INFO" Info;
    // Multi-key fan-out (redis_argx, redis_argkvx) plus EXISTS.
    "MGET" MultiKey(Merge::Array); "DEL" MultiKey(Merge::Sum); "UNLINK" MultiKey(Merge::Sum);
    "TOUCH" MultiKey(Merge::Sum); "EXISTS" MultiKey(Merge::Sum); "MSET" KeyValues;
    // Scripts (redis_argeval) and newer script/function calls of the same shape.
    "EVAL" Eval; "EVALSHA" Eval; "EVAL_RO" Eval; "EVALSHA_RO" Eval; "FCALL" Eval; "FCALL_RO" Eval;
    // Strings and bits.
    "GET" Keyed; "SET" Keyed; "SETNX" Keyed; "SETEX" Keyed; "PSETEX" Keyed; "GETSET" Keyed; "GETDEL" Keyed;
    "GETEX" Keyed; "APPEND" Keyed; "STRLEN" Keyed; "GETRANGE" Keyed; "SUBSTR" Keyed; "SETRANGE" Keyed;
    "INCR" Keyed; "DECR" Keyed; "INCRBY" Keyed; "DECRBY" Keyed; "INCRBYFLOAT" Keyed; "LCS" Keyed;
    "MSETNX" Keyed; "GETBIT" Keyed; "SETBIT" Keyed; "BITCOUNT" Keyed; "BITPOS" Keyed; "BITFIELD" Keyed;
    "BITFIELD_RO" Keyed; "BITOP" Keyed;
    // Generic keyspace.
    "PERSIST" Keyed; "PTTL" Keyed; "TTL" Keyed; "TYPE" Keyed; "DUMP" Keyed; "RESTORE" Keyed;
    "EXPIRE" Keyed; "EXPIREAT" Keyed; "PEXPIRE" Keyed; "PEXPIREAT" Keyed; "EXPIRETIME" Keyed;
    "PEXPIRETIME" Keyed; "SORT" Keyed; "SORT_RO" Keyed; "COPY" Keyed; "RENAME" Keyed; "RENAMENX" Keyed;
    "OBJECT" Keyed; "MEMORY" Keyed;
    // Hashes.
    "HGET" Keyed; "HSET" Keyed; "HSETNX" Keyed; "HMGET" Keyed; "HMSET" Keyed; "HDEL" Keyed; "HLEN" Keyed;
    "HKEYS" Keyed; "HVALS" Keyed; "HGETALL" Keyed; "HEXISTS" Keyed; "HSTRLEN" Keyed; "HINCRBY" Keyed;
    "HINCRBYFLOAT" Keyed; "HSCAN" Keyed; "HRANDFIELD" Keyed; "HEXPIRE" Keyed; "HPEXPIRE" Keyed;
    "HEXPIREAT" Keyed; "HPEXPIREAT" Keyed; "HTTL" Keyed; "HPTTL" Keyed; "HEXPIRETIME" Keyed;
    "HPEXPIRETIME" Keyed; "HPERSIST" Keyed; "HGETDEL" Keyed; "HGETEX" Keyed; "HSETEX" Keyed;
    // Lists (the blocking ones stay refused: a shared connection cannot block).
    "LLEN" Keyed; "LINDEX" Keyed; "LRANGE" Keyed; "LREM" Keyed; "LSET" Keyed; "LTRIM" Keyed; "LINSERT" Keyed;
    "LPUSH" Keyed; "LPUSHX" Keyed; "RPUSH" Keyed; "RPUSHX" Keyed; "LPOP" Keyed; "RPOP" Keyed; "LPOS" Keyed;
    "RPOPLPUSH" Keyed; "LMOVE" Keyed; "LMPOP" Keyed;
    // Sets.
    "SADD" Keyed; "SREM" Keyed; "SCARD" Keyed; "SMEMBERS" Keyed; "SISMEMBER" Keyed; "SMISMEMBER" Keyed;
    "SRANDMEMBER" Keyed; "SPOP" Keyed; "SSCAN" Keyed; "SMOVE" Keyed; "SDIFF" Keyed; "SDIFFSTORE" Keyed;
    "SINTER" Keyed; "SINTERSTORE" Keyed; "SINTERCARD" Keyed; "SUNION" Keyed; "SUNIONSTORE" Keyed;
    // Sorted sets.
    "ZADD" Keyed; "ZCARD" Keyed; "ZCOUNT" Keyed; "ZLEXCOUNT" Keyed; "ZINCRBY" Keyed; "ZRANK" Keyed;
    "ZREVRANK" Keyed; "ZSCORE" Keyed; "ZMSCORE" Keyed; "ZREM" Keyed; "ZREMRANGEBYLEX" Keyed;
    "ZREMRANGEBYRANK" Keyed; "ZREMRANGEBYSCORE" Keyed; "ZPOPMAX" Keyed; "ZPOPMIN" Keyed; "ZRANDMEMBER" Keyed;
    "ZRANGE" Keyed; "ZRANGEBYLEX" Keyed; "ZRANGEBYSCORE" Keyed; "ZRANGESTORE" Keyed; "ZREVRANGE" Keyed;
    "ZREVRANGEBYLEX" Keyed; "ZREVRANGEBYSCORE" Keyed; "ZSCAN" Keyed; "ZDIFF" Keyed; "ZDIFFSTORE" Keyed;
    "ZINTER" Keyed; "ZINTERSTORE" Keyed; "ZINTERCARD" Keyed; "ZUNION" Keyed; "ZUNIONSTORE" Keyed;
    "ZMPOP" Keyed;
    // HyperLogLog and geo.
    "PFADD" Keyed; "PFCOUNT" Keyed; "PFMERGE" Keyed; "GEOADD" Keyed; "GEODIST" Keyed; "GEOHASH" Keyed;
    "GEOPOS" Keyed; "GEORADIUS" Keyed; "GEORADIUSBYMEMBER" Keyed; "GEORADIUS_RO" Keyed;
    "GEORADIUSBYMEMBER_RO" Keyed; "GEOSEARCH" Keyed; "GEOSEARCHSTORE" Keyed;
    // Streams (XREAD and XREADGROUP may block: refused).
    "XADD" Keyed; "XLEN" Keyed; "XRANGE" Keyed; "XREVRANGE" Keyed; "XDEL" Keyed; "XTRIM" Keyed; "XACK" Keyed;
    "XCLAIM" Keyed; "XAUTOCLAIM" Keyed; "XPENDING" Keyed; "XSETID" Keyed; "XGROUP" Keyed; "XINFO" Keyed;
};

/// The policy row of each command of `command::COMMANDS`, by its index.
fn rows() -> &'static [Option<&'static Spec>] {
    static ROWS: OnceLock<Box<[Option<&'static Spec>]>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let mut rows = vec![None; command::COMMANDS.len()];
        for spec in TABLE {
            if let Some((i, _)) = command::lookup(spec.name.as_bytes()) {
                if let Some(r) = rows.get_mut(i) {
                    *r = Some(spec);
                }
            }
        }
        rows.into_boxed_slice()
    })
}

/// The pool's row for a command name in any case.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let (i, _) = command::lookup(name)?;
    rows().get(i).copied().flatten()
}

/// The rules the pool adds to Redis's arity (see the module doc).
fn extra_ok(spec: &Spec, req: &Request) -> bool {
    let argc = req.argc();
    match spec.kind {
        KeyValues => argc >= 3 && argc % 2 == 1,
        Eval => {
            matches!(parse_i64(req.arg(2)), Some(n) if n >= 1 && n <= i64::try_from(argc).unwrap_or(i64::MAX).saturating_sub(3))
        }
        Auth => argc == 2,
        // nutcracker closes for `PING msg` and `COMMAND COUNT` (its
        // redis_argz); clients that probe with them expect that here too.
        Ping => argc == 1,
        NoKey if spec.name == "COMMAND" => argc == 1,
        _ => true,
    }
}

/// Checks a request against the pool's policy and Redis's arity (of the
/// subcommand, for containers such as OBJECT and XGROUP).
pub fn check(req: &Request) -> Check {
    check_found(req, command::lookup(req.name()))
}

/// `check` for a request whose top-level command the caller already
/// looked up (`command::lookup(req.name())`).
pub fn check_found(req: &Request, found: Option<(usize, &'static command::Command)>) -> Check {
    let Some((i, top)) = found else { return Check::Unknown };
    let Some(spec) = rows().get(i).copied().flatten() else { return Check::Unknown };
    let cmd =
        if top.subcommands.is_empty() || req.argc() < 2 { top } else { top.subcommand(req.arg(1)).unwrap_or(top) };
    if !cmd.arity_ok(req.argc()) || !extra_ok(spec, req) {
        return Check::WrongArity(cmd);
    }
    Check::Ok(spec, cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &[&str]) -> Request {
        Request::from_args(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn names_are_unique_uppercase_and_redis_commands() {
        let mut names: Vec<&str> = TABLE.iter().map(|s| s.name).collect();
        names.sort_unstable();
        for w in names.windows(2) {
            assert_ne!(w[0], w[1], "duplicate {}", w[0]);
        }
        for s in TABLE {
            assert!(command::lookup(s.name.as_bytes()).is_some(), "{} is not a Redis command", s.name);
            assert!(std::ptr::eq(lookup(s.name.to_ascii_lowercase().as_bytes()).unwrap(), s), "{} found", s.name);
            assert_eq!(s.name, s.name.to_ascii_uppercase());
        }
        // Every command nutcracker 0.5.0 knows (138 types) is in the table.
        assert!(TABLE.len() >= 138);
        assert!(lookup(b"CLIENT").is_none() && lookup(b"BLPOP").is_none() && lookup(b"").is_none());
    }

    fn ok(args: &[&str]) -> bool {
        matches!(check(&req(args)), Check::Ok(..))
    }

    #[test]
    fn arity_is_redis_plus_the_pool_rules() {
        assert!(ok(&["GET", "k"]) && !ok(&["GET"]) && !ok(&["GET", "k", "x"]));
        assert!(ok(&["EXPIRE", "k", "100", "NX"]), "Redis 7 arity");
        assert!(!ok(&["SET", "k"]), "Redis's arity, stricter than nutcracker's");
        assert!(ok(&["MSET", "a", "1"]) && !ok(&["MSET", "a", "1", "b"]) && !ok(&["MSET", "a"]));
        assert!(ok(&["PING"]) && !ok(&["PING", "x"]) && !ok(&["COMMAND", "COUNT"]) && ok(&["LOLWUT", "1"]));
        assert!(ok(&["AUTH", "pw"]) && !ok(&["AUTH", "u", "pw"]));
        assert!(ok(&["OBJECT", "ENCODING", "k"]) && !ok(&["OBJECT", "ENCODING"]));
        assert!(ok(&["OBJECT", "NOSUCH"]), "the server answers an unknown subcommand");
        match check(&req(&["memory", "usage"])) {
            Check::WrongArity(c) => assert_eq!(c.fullname, "memory|usage"),
            other => panic!("{other:?}"),
        }
        assert_eq!(check(&req(&["FOO", "k"])), Check::Unknown);
        assert_eq!(check(&req(&["CONFIG", "GET", "x"])), Check::Unknown, "a Redis command outside the policy");
        assert!(matches!(check(&req(&["SELECT", "1"])), Check::Ok(Spec { kind: Kind::Unsupported, .. }, _)));
    }

    #[test]
    fn eval_numkeys_rules() {
        let ev = |args: &[&str]| ok(&[&["EVAL", "s"][..], args].concat());
        assert!(ev(&["1", "k"]) && ev(&["2", "a", "b"]) && ev(&["1", "k", "arg"]));
        assert!(!ev(&["0"]), "numkeys 0 closes in nutcracker");
        assert!(!ev(&["2", "k"]), "more keys than given");
        assert!(!ev(&["x", "k"]), "numkeys not a number");
    }
}
