//! The twemproxy command table: which commands a sharded Redis pool accepts,
//! where their keys are, and how many arguments they must have.
//!
//! The nutcracker 0.5.0 rows and arities were read from its source
//! (`redis_argz/arg0/arg1/arg2/arg3/argn/argx/argkvx/argeval/nokey`) and
//! checked against the real `nutcracker` binary: for every command it
//! knows, requests with 0..6 arguments were sent and we recorded which ones
//! it forwards and which close the connection; `Exact`/`AtLeast`/`KeyValues`
//! reproduce that. Deliberate differences, each an improvement a client can
//! only notice when keys live on different servers:
//! - EXISTS fans out and sums (nutcracker sends every key to the first
//!   key's server);
//! - MOVE and SELECT are refused the same way (nutcracker closes for them).
//!
//! Newer single-key commands (marked "newer") forward with `AtLeast(2)` and
//! let Redis check their arity, as nutcracker never knew them.
//!
//! Invariant: names are unique and uppercase ASCII (a unit test checks).

use std::sync::OnceLock;

use super::names::NameIndex;

/// Arity as nutcracker checks it, counting the command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    Exact(u32),
    AtLeast(u32),
    /// MSET: the name plus one or more key/value pairs (odd, >= 3).
    KeyValues,
}

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

/// Where a command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The key is argument 1.
    Single,
    /// Every argument from 1 is a key (MGET, DEL, ...).
    MultiKey(Merge),
    /// Arguments from 1 are key/value pairs (MSET).
    KeyValues,
    /// EVAL-shaped: `numkeys` at argument 2, first key at 3 (routes by it).
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
    pub arity: Arity,
    pub kind: Kind,
}

/// The result of checking a request against the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Ok(&'static Spec),
    /// Not in the table at all.
    Unknown,
    /// Known, but the argument count (or EVAL numkeys) is wrong.
    WrongArity(&'static Spec),
}

use Arity::{AtLeast as Min, Exact as Is};
use Kind::*;

macro_rules! table {
    ($($name:literal $arity:expr, $kind:expr;)*) => {
        &[$(Spec { name: $name, arity: $arity, kind: $kind }),*]
    };
}

static TABLE: &[Spec] = table! {
    // Local and keyless (redis_argz, redis_nokey).
    "PING" Is(1), Ping; "QUIT" Is(1), Quit; "AUTH" Is(2), Auth;
    "COMMAND" Is(1), NoKey; "LOLWUT" Min(1), NoKey;
    // Puerta only: scripts on every server, INFO from proxy and servers.
    "SCRIPT" Min(2), Scripts; "FUNCTION" Min(2), Scripts; "INFO" Min(1), Info;
    "SELECT" Min(1), Unsupported; "MOVE" Min(1), Unsupported;
    // Multi-key fan-out (redis_argx, redis_argkvx) plus EXISTS.
    "MGET" Min(2), MultiKey(Merge::Array); "DEL" Min(2), MultiKey(Merge::Sum);
    "UNLINK" Min(2), MultiKey(Merge::Sum); "TOUCH" Min(2), MultiKey(Merge::Sum);
    "EXISTS" Min(2), MultiKey(Merge::Sum); "MSET" Arity::KeyValues, KeyValues;
    // Scripts (redis_argeval) and newer script/function calls of the same shape.
    "EVAL" Min(4), Eval; "EVALSHA" Min(4), Eval;
    "EVAL_RO" Min(4), Eval; "EVALSHA_RO" Min(4), Eval; "FCALL" Min(4), Eval; "FCALL_RO" Min(4), Eval;
    // redis_arg0: key only.
    "PERSIST" Is(2), Single; "PTTL" Is(2), Single; "TTL" Is(2), Single; "TYPE" Is(2), Single;
    "DUMP" Is(2), Single; "DECR" Is(2), Single; "GET" Is(2), Single; "GETDEL" Is(2), Single;
    "INCR" Is(2), Single; "STRLEN" Is(2), Single; "HGETALL" Is(2), Single; "HKEYS" Is(2), Single;
    "HLEN" Is(2), Single; "HVALS" Is(2), Single; "LLEN" Is(2), Single; "SCARD" Is(2), Single;
    "SMEMBERS" Is(2), Single; "ZCARD" Is(2), Single;
    // redis_arg1: key + 1.
    "EXPIRE" Is(3), Single; "EXPIREAT" Is(3), Single; "PEXPIRE" Is(3), Single;
    "PEXPIREAT" Is(3), Single; "APPEND" Is(3), Single; "DECRBY" Is(3), Single;
    "GETBIT" Is(3), Single; "GETSET" Is(3), Single; "INCRBY" Is(3), Single;
    "INCRBYFLOAT" Is(3), Single; "SETNX" Is(3), Single; "HEXISTS" Is(3), Single;
    "HGET" Is(3), Single; "HSTRLEN" Is(3), Single; "LINDEX" Is(3), Single;
    "RPOPLPUSH" Is(3), Single; "SISMEMBER" Is(3), Single; "ZRANK" Is(3), Single;
    "ZREVRANK" Is(3), Single; "ZSCORE" Is(3), Single;
    // redis_arg2: key + 2.
    "GETRANGE" Is(4), Single; "PSETEX" Is(4), Single; "SETBIT" Is(4), Single;
    "SETEX" Is(4), Single; "SETRANGE" Is(4), Single; "HINCRBY" Is(4), Single;
    "HINCRBYFLOAT" Is(4), Single; "HSETNX" Is(4), Single; "LRANGE" Is(4), Single;
    "LREM" Is(4), Single; "LSET" Is(4), Single; "LTRIM" Is(4), Single; "SMOVE" Is(4), Single;
    "ZCOUNT" Is(4), Single; "ZLEXCOUNT" Is(4), Single; "ZINCRBY" Is(4), Single;
    "ZREMRANGEBYLEX" Is(4), Single; "ZREMRANGEBYRANK" Is(4), Single; "ZREMRANGEBYSCORE" Is(4), Single;
    // redis_arg3: key + 3.
    "LINSERT" Is(5), Single; "LMOVE" Is(5), Single;
    // redis_argn: key + any.
    "SORT" Min(2), Single; "COPY" Min(2), Single; "BITCOUNT" Min(2), Single; "BITPOS" Min(2), Single;
    "BITFIELD" Min(2), Single; "GETEX" Min(2), Single; "SET" Min(2), Single; "HDEL" Min(2), Single;
    "HMGET" Min(2), Single; "HMSET" Min(2), Single; "HSCAN" Min(2), Single; "HSET" Min(2), Single;
    "HRANDFIELD" Min(2), Single; "LPUSH" Min(2), Single; "LPUSHX" Min(2), Single;
    "RPUSH" Min(2), Single; "RPUSHX" Min(2), Single; "LPOP" Min(2), Single; "RPOP" Min(2), Single;
    "LPOS" Min(2), Single; "SADD" Min(2), Single; "SDIFF" Min(2), Single; "SDIFFSTORE" Min(2), Single;
    "SINTER" Min(2), Single; "SINTERSTORE" Min(2), Single; "SREM" Min(2), Single;
    "SUNION" Min(2), Single; "SUNIONSTORE" Min(2), Single; "SRANDMEMBER" Min(2), Single;
    "SSCAN" Min(2), Single; "SPOP" Min(2), Single; "SMISMEMBER" Min(2), Single;
    "PFADD" Min(2), Single; "PFMERGE" Min(2), Single; "PFCOUNT" Min(2), Single;
    "ZADD" Min(2), Single; "ZDIFF" Min(2), Single; "ZDIFFSTORE" Min(2), Single;
    "ZINTER" Min(2), Single; "ZINTERSTORE" Min(2), Single; "ZMSCORE" Min(2), Single;
    "ZPOPMAX" Min(2), Single; "ZPOPMIN" Min(2), Single; "ZRANDMEMBER" Min(2), Single;
    "ZRANGE" Min(2), Single; "ZRANGEBYLEX" Min(2), Single; "ZRANGEBYSCORE" Min(2), Single;
    "ZRANGESTORE" Min(2), Single; "ZREM" Min(2), Single; "ZREVRANGE" Min(2), Single;
    "ZREVRANGEBYLEX" Min(2), Single; "ZREVRANGEBYSCORE" Min(2), Single; "ZSCAN" Min(2), Single;
    "ZUNION" Min(2), Single; "ZUNIONSTORE" Min(2), Single; "GEODIST" Min(2), Single;
    "GEOPOS" Min(2), Single; "GEOHASH" Min(2), Single; "GEOADD" Min(2), Single;
    "GEORADIUS" Min(2), Single; "GEORADIUSBYMEMBER" Min(2), Single; "GEOSEARCH" Min(2), Single;
    "GEOSEARCHSTORE" Min(2), Single; "RESTORE" Min(2), Single;
    // Newer single-key commands (Redis 6.2 .. 8), not in nutcracker 0.5.0.
    "BITFIELD_RO" Min(2), Single; "SORT_RO" Min(2), Single; "SUBSTR" Min(2), Single;
    "EXPIRETIME" Min(2), Single; "PEXPIRETIME" Min(2), Single;
    "GEORADIUS_RO" Min(2), Single; "GEORADIUSBYMEMBER_RO" Min(2), Single;
    "HEXPIRE" Min(2), Single; "HPEXPIRE" Min(2), Single; "HEXPIREAT" Min(2), Single;
    "HPEXPIREAT" Min(2), Single; "HTTL" Min(2), Single; "HPTTL" Min(2), Single;
    "HEXPIRETIME" Min(2), Single; "HPEXPIRETIME" Min(2), Single; "HPERSIST" Min(2), Single;
    "HGETDEL" Min(2), Single; "HGETEX" Min(2), Single; "HSETEX" Min(2), Single;
    "XADD" Min(2), Single; "XLEN" Min(2), Single; "XRANGE" Min(2), Single;
    "XREVRANGE" Min(2), Single; "XDEL" Min(2), Single; "XTRIM" Min(2), Single;
    "XACK" Min(2), Single; "XCLAIM" Min(2), Single; "XAUTOCLAIM" Min(2), Single;
    "XPENDING" Min(2), Single; "XSETID" Min(2), Single;
};

fn index() -> &'static NameIndex {
    static INDEX: OnceLock<NameIndex> = OnceLock::new();
    INDEX.get_or_init(|| NameIndex::build(TABLE.iter().map(|s| s.name)))
}

/// The spec for a command name in any case.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    index().find(name, |i| TABLE.get(i).map(|s| s.name)).and_then(|i| TABLE.get(i))
}

/// Checks a command (`argc` counts the name) and, for EVAL-shaped commands,
/// its numkeys argument: nutcracker closes when numkeys is 0, not a number,
/// or larger than the keys present.
pub fn check(name: &[u8], argc: usize, numkeys: impl FnOnce() -> Option<i64>) -> Check {
    let Some(spec) = lookup(name) else { return Check::Unknown };
    let argc = argc as u32;
    let ok = match spec.arity {
        Arity::Exact(n) => argc == n,
        Arity::AtLeast(n) => argc >= n,
        Arity::KeyValues => argc >= 3 && argc % 2 == 1,
    };
    if !ok {
        return Check::WrongArity(spec);
    }
    if spec.kind == Kind::Eval {
        match numkeys() {
            Some(n) if n >= 1 && n <= i64::from(argc).saturating_sub(3) => {}
            _ => return Check::WrongArity(spec),
        }
    }
    Check::Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_uppercase() {
        let mut names: Vec<&str> = TABLE.iter().map(|s| s.name).collect();
        names.sort_unstable();
        for w in names.windows(2) {
            assert_ne!(w[0], w[1], "duplicate {}", w[0]);
        }
        for s in TABLE {
            assert!(std::ptr::eq(lookup(s.name.as_bytes()).unwrap(), s), "{} found", s.name);
            assert!(std::ptr::eq(lookup(s.name.to_ascii_lowercase().as_bytes()).unwrap(), s));
            assert_eq!(s.name, s.name.to_ascii_uppercase());
            assert!(s.name.len() <= 24);
        }
        // Every command nutcracker 0.5.0 knows (138 types) is in the table.
        assert!(TABLE.len() >= 138);
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"get").unwrap().name, "GET");
        assert_eq!(lookup(b"GeTdEl").unwrap().kind, Kind::Single);
        assert!(lookup(b"CLIENT").is_none());
        assert!(lookup(b"").is_none());
        assert!(lookup(&[b'A'; 40]).is_none());
    }

    fn chk(name: &str, argc: usize) -> Check {
        check(name.as_bytes(), argc, || None)
    }

    #[test]
    fn arity_matches_nutcracker_probe() {
        // Each string: the outcome for 0..=6 arguments after the name, as
        // recorded from nutcracker 0.5.0 (R forwarded, C closed).
        let probe = [
            ("GET", "CRCCCCC"),
            ("EXPIRE", "CCRCCCC"),
            ("SETEX", "CCCRCCC"),
            ("LINSERT", "CCCCRCC"),
            ("SET", "CRRRRRR"),
            ("MGET", "CRRRRRR"),
            ("MSET", "CCRCRCR"),
            ("PING", "RCCCCCC"),
            ("AUTH", "CRCCCCC"),
            ("LOLWUT", "RRRRRRR"),
            ("HSTRLEN", "CCRCCCC"),
            ("LMOVE", "CCCCRCC"),
        ];
        for (name, outcomes) in probe {
            for (n, o) in outcomes.chars().enumerate() {
                let got = matches!(chk(name, n + 1), Check::Ok(_));
                assert_eq!(got, o == 'R', "{name} with {n} args");
            }
        }
        assert_eq!(chk("FOO", 2), Check::Unknown);
        assert!(matches!(chk("SELECT", 2), Check::Ok(Spec { kind: Kind::Unsupported, .. })));
    }

    #[test]
    fn eval_numkeys_rules() {
        let ev = |argc, nk: Option<i64>| check(b"EVAL", argc, || nk);
        assert!(matches!(ev(4, Some(1)), Check::Ok(_)));
        assert!(matches!(ev(6, Some(2)), Check::Ok(_)));
        assert!(matches!(ev(4, Some(0)), Check::WrongArity(_)), "numkeys 0 closes in nutcracker");
        assert!(matches!(ev(4, Some(2)), Check::WrongArity(_)), "more keys than given");
        assert!(matches!(ev(4, None), Check::WrongArity(_)), "numkeys not a number");
        assert!(matches!(ev(3, Some(1)), Check::WrongArity(_)));
    }
}
