//! The cluster command table: for each command, how Puerta handles it in a
//! `redis_cluster` pool (routed by its keys' slot, split and merged, run on
//! a pinned connection, or answered locally), where its keys are, and
//! whether a replica may serve it.
//!
//! Key positions follow Redis 7's key specs. Commands not in the table are
//! routed as keyless (to a master); a keyed command Puerta does not know
//! still works, because the node answers MOVED and the session follows it.
//! Invariant: names are unique and uppercase (a unit test checks), and
//! fewer than 1023 (the name index's limit).

use std::sync::OnceLock;

use crate::protocol::resp::command::Merge;
use crate::protocol::resp::names::NameIndex;

/// Where a command's keys are, counting the command name as argument 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    None,
    /// Arguments `first`, `first + step`, ... through `last`; a negative
    /// `last` counts from the end (-1 is the last argument).
    Range {
        first: u8,
        last: i8,
        step: u8,
    },
    /// A key count at `at`, then that many keys (EVAL, ZUNION, LMPOP...).
    NumKeys {
        at: u8,
    },
    /// A destination key at 1, a key count at 2, then the keys
    /// (ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE).
    DestNumKeys,
    /// XREAD / XREADGROUP: the first half of the arguments after STREAMS.
    Streams,
}

/// Commands Puerta answers (or orchestrates) itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    Ping,
    Echo,
    Quit,
    Select,
    Auth,
    Hello,
    Reset,
    Client,
    /// READONLY / READWRITE: Puerta decides replica reads by config.
    ReadMode,
    Dbsize,
    Scan,
    KeysCmd,
    Info,
    Cluster,
    Flush,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    /// SUBSCRIBE / PSUBSCRIBE
    Subscribe,
    SSubscribe,
    /// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE
    Unsubscribe,
    Wait,
    /// SCRIPT / FUNCTION: every master or any one, by subcommand
    /// (`protocol::resp::scripts`).
    Scripts,
    /// Node administration that makes no sense through a proxy.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Sent to the master (or replica) of its keys' slot; keyless ones go
    /// to any master.
    Route,
    /// Split per slot and merged in the client's key order.
    Split(Merge),
    /// Blocks the connection: runs on a pinned connection.
    Blocking,
    /// Blocks only with a `BLOCK` option (XREAD, XREADGROUP).
    BlockOption,
    Local(Local),
}

#[derive(Debug, PartialEq, Eq)]
pub struct CmdSpec {
    pub name: &'static str,
    pub family: Family,
    pub keys: Keys,
    /// A replica with READONLY may serve it.
    pub readonly: bool,
}

/// What an unknown command is treated as.
pub static UNKNOWN: CmdSpec = CmdSpec { name: "", family: Family::Route, keys: Keys::None, readonly: false };

const NONE: Keys = Keys::None;
const K1: Keys = Keys::Range { first: 1, last: 1, step: 1 };
const K2: Keys = Keys::Range { first: 1, last: 2, step: 1 };
const ALL: Keys = Keys::Range { first: 1, last: -1, step: 1 };
const PAIRS: Keys = Keys::Range { first: 1, last: -1, step: 2 };
/// BLPOP k1 k2 timeout: all but the last argument.
const BUT_LAST: Keys = Keys::Range { first: 1, last: -2, step: 1 };
/// A subcommand, then the key (OBJECT ENCODING k, XINFO STREAM k).
const SUB: Keys = Keys::Range { first: 2, last: 2, step: 1 };
const NK1: Keys = Keys::NumKeys { at: 1 };
const NK2: Keys = Keys::NumKeys { at: 2 };

use Family::{BlockOption, Blocking, Local as L, Route, Split};

macro_rules! table {
    ($($name:literal $family:expr, $keys:expr, $ro:literal;)*) => {
        &[$(CmdSpec { name: $name, family: $family, keys: $keys, readonly: $ro }),*]
    };
}

static TABLE: &[CmdSpec] = table! {
    // Strings.
    "GET" Route, K1, true; "SET" Route, K1, false; "SETNX" Route, K1, false; "SETEX" Route, K1, false;
    "PSETEX" Route, K1, false; "GETSET" Route, K1, false; "GETDEL" Route, K1, false; "GETEX" Route, K1, false;
    "APPEND" Route, K1, false; "STRLEN" Route, K1, true; "GETRANGE" Route, K1, true; "SUBSTR" Route, K1, true;
    "SETRANGE" Route, K1, false; "INCR" Route, K1, false; "DECR" Route, K1, false; "INCRBY" Route, K1, false;
    "DECRBY" Route, K1, false; "INCRBYFLOAT" Route, K1, false; "MSETNX" Route, PAIRS, false; "LCS" Route, K2, true;
    "GETBIT" Route, K1, true; "SETBIT" Route, K1, false; "BITCOUNT" Route, K1, true; "BITPOS" Route, K1, true;
    "BITFIELD" Route, K1, false; "BITFIELD_RO" Route, K1, true;
    "BITOP" Route, Keys::Range { first: 2, last: -1, step: 1 }, false;
    "MGET" Split(Merge::Array), ALL, true; "MSET" Split(Merge::AllOk), PAIRS, false;
    // Generic keyspace.
    "DEL" Split(Merge::Sum), ALL, false; "UNLINK" Split(Merge::Sum), ALL, false;
    "EXISTS" Split(Merge::Sum), ALL, true; "TOUCH" Split(Merge::Sum), ALL, true;
    "TYPE" Route, K1, true; "TTL" Route, K1, true; "PTTL" Route, K1, true; "EXPIRETIME" Route, K1, true;
    "PEXPIRETIME" Route, K1, true; "EXPIRE" Route, K1, false; "PEXPIRE" Route, K1, false;
    "EXPIREAT" Route, K1, false; "PEXPIREAT" Route, K1, false; "PERSIST" Route, K1, false;
    "RENAME" Route, K2, false; "RENAMENX" Route, K2, false; "COPY" Route, K2, false; "DUMP" Route, K1, true;
    "RESTORE" Route, K1, false; "OBJECT" Route, SUB, true; "MEMORY" Route, SUB, true; "SORT" Route, K1, false;
    "SORT_RO" Route, K1, true; "RANDOMKEY" Route, NONE, true; "MOVE" Route, K1, false;
    // Hashes.
    "HGET" Route, K1, true; "HMGET" Route, K1, true; "HGETALL" Route, K1, true; "HKEYS" Route, K1, true;
    "HVALS" Route, K1, true; "HLEN" Route, K1, true; "HEXISTS" Route, K1, true; "HSTRLEN" Route, K1, true;
    "HRANDFIELD" Route, K1, true; "HSCAN" Route, K1, true; "HTTL" Route, K1, true; "HPTTL" Route, K1, true;
    "HEXPIRETIME" Route, K1, true; "HPEXPIRETIME" Route, K1, true; "HSET" Route, K1, false;
    "HSETNX" Route, K1, false; "HMSET" Route, K1, false; "HDEL" Route, K1, false; "HINCRBY" Route, K1, false;
    "HINCRBYFLOAT" Route, K1, false; "HEXPIRE" Route, K1, false; "HPEXPIRE" Route, K1, false;
    "HEXPIREAT" Route, K1, false; "HPEXPIREAT" Route, K1, false; "HPERSIST" Route, K1, false;
    "HGETDEL" Route, K1, false; "HGETEX" Route, K1, false; "HSETEX" Route, K1, false;
    // Lists.
    "LLEN" Route, K1, true; "LRANGE" Route, K1, true; "LINDEX" Route, K1, true; "LPOS" Route, K1, true;
    "LPUSH" Route, K1, false; "LPUSHX" Route, K1, false; "RPUSH" Route, K1, false; "RPUSHX" Route, K1, false;
    "LPOP" Route, K1, false; "RPOP" Route, K1, false; "LSET" Route, K1, false; "LREM" Route, K1, false;
    "LTRIM" Route, K1, false; "LINSERT" Route, K1, false; "RPOPLPUSH" Route, K2, false; "LMOVE" Route, K2, false;
    "LMPOP" Route, NK1, false; "BLPOP" Blocking, BUT_LAST, false; "BRPOP" Blocking, BUT_LAST, false;
    "BRPOPLPUSH" Blocking, K2, false; "BLMOVE" Blocking, K2, false; "BLMPOP" Blocking, NK2, false;
    // Sets.
    "SCARD" Route, K1, true; "SMEMBERS" Route, K1, true; "SISMEMBER" Route, K1, true;
    "SMISMEMBER" Route, K1, true; "SRANDMEMBER" Route, K1, true; "SSCAN" Route, K1, true;
    "SDIFF" Route, ALL, true; "SINTER" Route, ALL, true; "SUNION" Route, ALL, true; "SINTERCARD" Route, NK1, true;
    "SADD" Route, K1, false; "SREM" Route, K1, false; "SPOP" Route, K1, false; "SMOVE" Route, K2, false;
    "SDIFFSTORE" Route, ALL, false; "SINTERSTORE" Route, ALL, false; "SUNIONSTORE" Route, ALL, false;
    // Sorted sets.
    "ZCARD" Route, K1, true; "ZCOUNT" Route, K1, true; "ZLEXCOUNT" Route, K1, true; "ZRANGE" Route, K1, true;
    "ZRANGEBYSCORE" Route, K1, true; "ZRANGEBYLEX" Route, K1, true; "ZREVRANGE" Route, K1, true;
    "ZREVRANGEBYSCORE" Route, K1, true; "ZREVRANGEBYLEX" Route, K1, true; "ZRANK" Route, K1, true;
    "ZREVRANK" Route, K1, true; "ZSCORE" Route, K1, true; "ZMSCORE" Route, K1, true; "ZSCAN" Route, K1, true;
    "ZRANDMEMBER" Route, K1, true; "ZUNION" Route, NK1, true; "ZINTER" Route, NK1, true;
    "ZDIFF" Route, NK1, true; "ZINTERCARD" Route, NK1, true; "ZADD" Route, K1, false; "ZINCRBY" Route, K1, false;
    "ZREM" Route, K1, false; "ZREMRANGEBYLEX" Route, K1, false; "ZREMRANGEBYRANK" Route, K1, false;
    "ZREMRANGEBYSCORE" Route, K1, false; "ZPOPMIN" Route, K1, false; "ZPOPMAX" Route, K1, false;
    "ZRANGESTORE" Route, K2, false; "ZUNIONSTORE" Route, Keys::DestNumKeys, false;
    "ZINTERSTORE" Route, Keys::DestNumKeys, false; "ZDIFFSTORE" Route, Keys::DestNumKeys, false;
    "ZMPOP" Route, NK1, false; "BZPOPMIN" Blocking, BUT_LAST, false; "BZPOPMAX" Blocking, BUT_LAST, false;
    "BZMPOP" Blocking, NK2, false;
    // HyperLogLog and geo.
    "PFADD" Route, K1, false; "PFCOUNT" Route, ALL, true; "PFMERGE" Route, ALL, false;
    "GEOADD" Route, K1, false; "GEODIST" Route, K1, true; "GEOHASH" Route, K1, true; "GEOPOS" Route, K1, true;
    "GEORADIUS_RO" Route, K1, true; "GEORADIUSBYMEMBER_RO" Route, K1, true; "GEOSEARCH" Route, K1, true;
    "GEORADIUS" Route, K1, false; "GEORADIUSBYMEMBER" Route, K1, false; "GEOSEARCHSTORE" Route, K2, false;
    // Streams.
    "XADD" Route, K1, false; "XTRIM" Route, K1, false; "XDEL" Route, K1, false; "XACK" Route, K1, false;
    "XCLAIM" Route, K1, false; "XAUTOCLAIM" Route, K1, false; "XSETID" Route, K1, false;
    "XLEN" Route, K1, true; "XRANGE" Route, K1, true; "XREVRANGE" Route, K1, true; "XPENDING" Route, K1, true;
    "XINFO" Route, SUB, true; "XGROUP" Route, SUB, false;
    "XREAD" BlockOption, Keys::Streams, true; "XREADGROUP" BlockOption, Keys::Streams, false;
    // Scripts and functions: routed by their keys (numkeys 0: any master).
    "EVAL" Route, NK2, false; "EVALSHA" Route, NK2, false; "FCALL" Route, NK2, false;
    "EVAL_RO" Route, NK2, true; "EVALSHA_RO" Route, NK2, true; "FCALL_RO" Route, NK2, true;
    // Pub/sub: PUBLISH reaches every node from any node, but its count is
    // the publishing node's subscribers: routed by the channel's slot, it
    // reaches the node where Puerta subscribes that channel (`txn.rs`).
    // SPUBLISH is by slot anyway.
    "PUBLISH" Route, K1, false; "SPUBLISH" Route, K1, false; "PUBSUB" Route, NONE, false;
    "SUBSCRIBE" L(Local::Subscribe), NONE, false; "PSUBSCRIBE" L(Local::Subscribe), NONE, false;
    "SSUBSCRIBE" L(Local::SSubscribe), ALL, false; "UNSUBSCRIBE" L(Local::Unsubscribe), NONE, false;
    "PUNSUBSCRIBE" L(Local::Unsubscribe), NONE, false; "SUNSUBSCRIBE" L(Local::Unsubscribe), NONE, false;
    // Transactions.
    "MULTI" L(Local::Multi), NONE, false; "EXEC" L(Local::Exec), NONE, false;
    "DISCARD" L(Local::Discard), NONE, false; "WATCH" L(Local::Watch), ALL, false;
    "UNWATCH" L(Local::Unwatch), NONE, false;
    // Connection.
    "PING" L(Local::Ping), NONE, true; "ECHO" L(Local::Echo), NONE, true; "QUIT" L(Local::Quit), NONE, true;
    "SELECT" L(Local::Select), NONE, true; "AUTH" L(Local::Auth), NONE, true; "HELLO" L(Local::Hello), NONE, true;
    "RESET" L(Local::Reset), NONE, true; "CLIENT" L(Local::Client), NONE, true;
    "READONLY" L(Local::ReadMode), NONE, true; "READWRITE" L(Local::ReadMode), NONE, true;
    // Whole-keyspace commands, over every master.
    "DBSIZE" L(Local::Dbsize), NONE, true; "SCAN" L(Local::Scan), NONE, true; "KEYS" L(Local::KeysCmd), NONE, true;
    "INFO" L(Local::Info), NONE, true; "CLUSTER" L(Local::Cluster), NONE, true;
    "FLUSHALL" L(Local::Flush), NONE, false; "FLUSHDB" L(Local::Flush), NONE, false;
    "WAIT" L(Local::Wait), NONE, false; "COMMAND" Route, NONE, true; "TIME" Route, NONE, true;
    "LOLWUT" Route, NONE, true; "SCRIPT" L(Local::Scripts), NONE, false;
    "FUNCTION" L(Local::Scripts), NONE, false;
    // Per-node administration.
    "CONFIG" L(Local::Refused), NONE, false; "DEBUG" L(Local::Refused), NONE, false;
    "SHUTDOWN" L(Local::Refused), NONE, false; "MONITOR" L(Local::Refused), NONE, false;
    "SYNC" L(Local::Refused), NONE, false; "PSYNC" L(Local::Refused), NONE, false;
    "REPLCONF" L(Local::Refused), NONE, false; "REPLICAOF" L(Local::Refused), NONE, false;
    "SLAVEOF" L(Local::Refused), NONE, false; "FAILOVER" L(Local::Refused), NONE, false;
    "SAVE" L(Local::Refused), NONE, false; "BGSAVE" L(Local::Refused), NONE, false;
    "BGREWRITEAOF" L(Local::Refused), NONE, false; "LASTSAVE" L(Local::Refused), NONE, false;
    "ACL" L(Local::Refused), NONE, false; "MODULE" L(Local::Refused), NONE, false;
    "SWAPDB" L(Local::Refused), NONE, false; "MIGRATE" L(Local::Refused), NONE, false;
    "SLOWLOG" L(Local::Refused), NONE, false; "LATENCY" L(Local::Refused), NONE, false;
    "WAITAOF" L(Local::Refused), NONE, false; "ASKING" L(Local::Refused), NONE, false;
};

fn index() -> &'static NameIndex {
    static INDEX: OnceLock<NameIndex> = OnceLock::new();
    INDEX.get_or_init(|| NameIndex::build(TABLE.iter().map(|s| s.name)))
}

/// The spec of a command name in any case; `UNKNOWN` if not in the table.
pub fn lookup(name: &[u8]) -> &'static CmdSpec {
    index().find(name, |i| TABLE.get(i).map(|s| s.name)).and_then(|i| TABLE.get(i)).unwrap_or(&UNKNOWN)
}

/// Script and function calls: EVAL, EVALSHA, FCALL and their `_RO`
/// forms. They run user code, so their error replies carry any text it
/// chooses (a forged `-MOVED` included).
const SCRIPT_CALLS: [&str; 6] = ["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"];

/// True for a script or function call (`SCRIPT_CALLS`), in any case.
pub fn runs_script(name: &[u8]) -> bool {
    SCRIPT_CALLS.iter().any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

/// True for what `allow_scripts = false` refuses: the calls, plus SCRIPT
/// and FUNCTION, which load, flush and kill scripts and functions.
pub fn is_script_command(name: &[u8]) -> bool {
    runs_script(name) || name.eq_ignore_ascii_case(b"SCRIPT") || name.eq_ignore_ascii_case(b"FUNCTION")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_uppercase_and_found() {
        let mut names: Vec<&str> = TABLE.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.windows(2).for_each(|w| assert_ne!(w[0], w[1], "duplicate"));
        assert!(TABLE.len() < 1023);
        for s in TABLE {
            assert_eq!(s.name, s.name.to_ascii_uppercase());
            assert!(std::ptr::eq(lookup(s.name.to_ascii_lowercase().as_bytes()), s), "{}", s.name);
        }
        assert!(std::ptr::eq(lookup(b"NOSUCHCOMMAND"), &UNKNOWN));
        assert_eq!(lookup(b"mget").family, Family::Split(Merge::Array));
        assert_eq!(lookup(b"BLPOP").family, Family::Blocking);
        assert!(lookup(b"get").readonly && !lookup(b"set").readonly);
    }

    #[test]
    fn script_commands() {
        for n in ["eval", "EVALSHA", "Eval_Ro", "evalsha_ro", "FCALL", "fcall_ro"] {
            assert!(runs_script(n.as_bytes()) && is_script_command(n.as_bytes()), "{n}");
            assert_eq!(lookup(n.as_bytes()).family, Family::Route, "{n} is in the table");
        }
        for n in ["script", "FUNCTION"] {
            assert!(!runs_script(n.as_bytes()) && is_script_command(n.as_bytes()), "{n}");
        }
        for n in ["EVALX", "GET", "SCRIPTS", ""] {
            assert!(!is_script_command(n.as_bytes()), "{n}");
        }
    }
}
