//! The cluster command table: for each command, how Puerta handles it in a
//! `redis_cluster` pool (routed by its keys' slot, split and merged, run on
//! a pinned connection, or answered locally), where its keys are, and
//! whether a replica may serve it.
//!
//! This is the mode's policy; the facts come from Redis's table
//! (`protocol::command`): arity, and key positions for rows with `KEYS`.
//! A command not in these rows is routed by Redis's key specs too (to a
//! master when keyless), so a newer keyed command works; an unknown one
//! goes to a master, and the node answers MOVED if it has keys elsewhere.
//!
//! Row format, to add a command: `"NAME" Family, Keys, readonly;` where
//! `Keys` is `KEYS` (Redis's key specs), `NONE`, or a `Keys::Range`
//! override, and `readonly` says a replica may serve it. Invariant: names
//! are unique and uppercase (a unit test checks), and fewer than 1023 (the
//! name index's limit).

use std::sync::OnceLock;

use crate::protocol::resp::command::Merge;
use crate::protocol::resp::names::NameIndex;

/// Where a command's keys are, counting the command name as argument 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Redis's own key specs (`protocol::command`), subcommands included:
    /// what nearly every row uses.
    Spec,
    /// No key, whatever Redis says.
    None,
    /// An override: arguments `first`, `first + step`, ... through `last`;
    /// a negative `last` counts from the end (-1 is the last argument).
    Range { first: u8, last: i8, step: u8 },
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
    /// SLOWLOG: the proxy's own slow log (`obs`).
    Slowlog,
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
pub static UNKNOWN: CmdSpec = CmdSpec { name: "", family: Family::Route, keys: Keys::Spec, readonly: false };

const NONE: Keys = Keys::None;
const KEYS: Keys = Keys::Spec;
/// The first argument, read as a key (PUBLISH's channel, see below).
const K1: Keys = Keys::Range { first: 1, last: 1, step: 1 };

use Family::{BlockOption, Blocking, Local as L, Route, Split};

macro_rules! table {
    ($($name:literal $family:expr, $keys:expr, $ro:literal;)*) => {
        &[$(CmdSpec { name: $name, family: $family, keys: $keys, readonly: $ro }),*]
    };
}

static TABLE: &[CmdSpec] = table! {
    // Strings.
    "GET" Route, KEYS, true; "SET" Route, KEYS, false; "SETNX" Route, KEYS, false; "SETEX" Route, KEYS, false;
    "PSETEX" Route, KEYS, false; "GETSET" Route, KEYS, false; "GETDEL" Route, KEYS, false; "GETEX" Route, KEYS, false;
    "APPEND" Route, KEYS, false; "STRLEN" Route, KEYS, true; "GETRANGE" Route, KEYS, true; "SUBSTR" Route, KEYS, true;
    "SETRANGE" Route, KEYS, false; "INCR" Route, KEYS, false; "DECR" Route, KEYS, false; "INCRBY" Route, KEYS, false;
    "DECRBY" Route, KEYS, false; "INCRBYFLOAT" Route, KEYS, false; "MSETNX" Route, KEYS, false; "LCS" Route, KEYS, true;
    "GETBIT" Route, KEYS, true; "SETBIT" Route, KEYS, false; "BITCOUNT" Route, KEYS, true; "BITPOS" Route, KEYS, true;
    "BITFIELD" Route, KEYS, false; "BITFIELD_RO" Route, KEYS, true;
    "BITOP" Route, KEYS, false;
    "MGET" Split(Merge::Array), KEYS, true; "MSET" Split(Merge::AllOk), KEYS, false;
    // Generic keyspace.
    "DEL" Split(Merge::Sum), KEYS, false; "UNLINK" Split(Merge::Sum), KEYS, false;
    "EXISTS" Split(Merge::Sum), KEYS, true; "TOUCH" Split(Merge::Sum), KEYS, true;
    "TYPE" Route, KEYS, true; "TTL" Route, KEYS, true; "PTTL" Route, KEYS, true; "EXPIRETIME" Route, KEYS, true;
    "PEXPIRETIME" Route, KEYS, true; "EXPIRE" Route, KEYS, false; "PEXPIRE" Route, KEYS, false;
    "EXPIREAT" Route, KEYS, false; "PEXPIREAT" Route, KEYS, false; "PERSIST" Route, KEYS, false;
    "RENAME" Route, KEYS, false; "RENAMENX" Route, KEYS, false; "COPY" Route, KEYS, false; "DUMP" Route, KEYS, true;
    "RESTORE" Route, KEYS, false; "OBJECT" Route, KEYS, true; "MEMORY" Route, KEYS, true; "SORT" Route, KEYS, false;
    "SORT_RO" Route, KEYS, true; "RANDOMKEY" Route, NONE, true; "MOVE" Route, KEYS, false;
    // Hashes.
    "HGET" Route, KEYS, true; "HMGET" Route, KEYS, true; "HGETALL" Route, KEYS, true; "HKEYS" Route, KEYS, true;
    "HVALS" Route, KEYS, true; "HLEN" Route, KEYS, true; "HEXISTS" Route, KEYS, true; "HSTRLEN" Route, KEYS, true;
    "HRANDFIELD" Route, KEYS, true; "HSCAN" Route, KEYS, true; "HTTL" Route, KEYS, true; "HPTTL" Route, KEYS, true;
    "HEXPIRETIME" Route, KEYS, true; "HPEXPIRETIME" Route, KEYS, true; "HSET" Route, KEYS, false;
    "HSETNX" Route, KEYS, false; "HMSET" Route, KEYS, false; "HDEL" Route, KEYS, false; "HINCRBY" Route, KEYS, false;
    "HINCRBYFLOAT" Route, KEYS, false; "HEXPIRE" Route, KEYS, false; "HPEXPIRE" Route, KEYS, false;
    "HEXPIREAT" Route, KEYS, false; "HPEXPIREAT" Route, KEYS, false; "HPERSIST" Route, KEYS, false;
    "HGETDEL" Route, KEYS, false; "HGETEX" Route, KEYS, false; "HSETEX" Route, KEYS, false;
    // Lists.
    "LLEN" Route, KEYS, true; "LRANGE" Route, KEYS, true; "LINDEX" Route, KEYS, true; "LPOS" Route, KEYS, true;
    "LPUSH" Route, KEYS, false; "LPUSHX" Route, KEYS, false; "RPUSH" Route, KEYS, false; "RPUSHX" Route, KEYS, false;
    "LPOP" Route, KEYS, false; "RPOP" Route, KEYS, false; "LSET" Route, KEYS, false; "LREM" Route, KEYS, false;
    "LTRIM" Route, KEYS, false; "LINSERT" Route, KEYS, false; "RPOPLPUSH" Route, KEYS, false; "LMOVE" Route, KEYS, false;
    "LMPOP" Route, KEYS, false; "BLPOP" Blocking, KEYS, false; "BRPOP" Blocking, KEYS, false;
    "BRPOPLPUSH" Blocking, KEYS, false; "BLMOVE" Blocking, KEYS, false; "BLMPOP" Blocking, KEYS, false;
    // Sets.
    "SCARD" Route, KEYS, true; "SMEMBERS" Route, KEYS, true; "SISMEMBER" Route, KEYS, true;
    "SMISMEMBER" Route, KEYS, true; "SRANDMEMBER" Route, KEYS, true; "SSCAN" Route, KEYS, true;
    "SDIFF" Route, KEYS, true; "SINTER" Route, KEYS, true; "SUNION" Route, KEYS, true; "SINTERCARD" Route, KEYS, true;
    "SADD" Route, KEYS, false; "SREM" Route, KEYS, false; "SPOP" Route, KEYS, false; "SMOVE" Route, KEYS, false;
    "SDIFFSTORE" Route, KEYS, false; "SINTERSTORE" Route, KEYS, false; "SUNIONSTORE" Route, KEYS, false;
    // Sorted sets.
    "ZCARD" Route, KEYS, true; "ZCOUNT" Route, KEYS, true; "ZLEXCOUNT" Route, KEYS, true; "ZRANGE" Route, KEYS, true;
    "ZRANGEBYSCORE" Route, KEYS, true; "ZRANGEBYLEX" Route, KEYS, true; "ZREVRANGE" Route, KEYS, true;
    "ZREVRANGEBYSCORE" Route, KEYS, true; "ZREVRANGEBYLEX" Route, KEYS, true; "ZRANK" Route, KEYS, true;
    "ZREVRANK" Route, KEYS, true; "ZSCORE" Route, KEYS, true; "ZMSCORE" Route, KEYS, true; "ZSCAN" Route, KEYS, true;
    "ZRANDMEMBER" Route, KEYS, true; "ZUNION" Route, KEYS, true; "ZINTER" Route, KEYS, true;
    "ZDIFF" Route, KEYS, true; "ZINTERCARD" Route, KEYS, true; "ZADD" Route, KEYS, false; "ZINCRBY" Route, KEYS, false;
    "ZREM" Route, KEYS, false; "ZREMRANGEBYLEX" Route, KEYS, false; "ZREMRANGEBYRANK" Route, KEYS, false;
    "ZREMRANGEBYSCORE" Route, KEYS, false; "ZPOPMIN" Route, KEYS, false; "ZPOPMAX" Route, KEYS, false;
    "ZRANGESTORE" Route, KEYS, false; "ZUNIONSTORE" Route, KEYS, false;
    "ZINTERSTORE" Route, KEYS, false; "ZDIFFSTORE" Route, KEYS, false;
    "ZMPOP" Route, KEYS, false; "BZPOPMIN" Blocking, KEYS, false; "BZPOPMAX" Blocking, KEYS, false;
    "BZMPOP" Blocking, KEYS, false;
    // HyperLogLog and geo.
    "PFADD" Route, KEYS, false; "PFCOUNT" Route, KEYS, true; "PFMERGE" Route, KEYS, false;
    "GEOADD" Route, KEYS, false; "GEODIST" Route, KEYS, true; "GEOHASH" Route, KEYS, true; "GEOPOS" Route, KEYS, true;
    "GEORADIUS_RO" Route, KEYS, true; "GEORADIUSBYMEMBER_RO" Route, KEYS, true; "GEOSEARCH" Route, KEYS, true;
    "GEORADIUS" Route, KEYS, false; "GEORADIUSBYMEMBER" Route, KEYS, false; "GEOSEARCHSTORE" Route, KEYS, false;
    // Streams.
    "XADD" Route, KEYS, false; "XTRIM" Route, KEYS, false; "XDEL" Route, KEYS, false; "XACK" Route, KEYS, false;
    "XCLAIM" Route, KEYS, false; "XAUTOCLAIM" Route, KEYS, false; "XSETID" Route, KEYS, false;
    "XLEN" Route, KEYS, true; "XRANGE" Route, KEYS, true; "XREVRANGE" Route, KEYS, true; "XPENDING" Route, KEYS, true;
    "XINFO" Route, KEYS, true; "XGROUP" Route, KEYS, false;
    "XREAD" BlockOption, KEYS, true; "XREADGROUP" BlockOption, KEYS, false;
    // Scripts and functions: routed by their keys (numkeys 0: any master).
    "EVAL" Route, KEYS, false; "EVALSHA" Route, KEYS, false; "FCALL" Route, KEYS, false;
    "EVAL_RO" Route, KEYS, true; "EVALSHA_RO" Route, KEYS, true; "FCALL_RO" Route, KEYS, true;
    // Pub/sub: PUBLISH reaches every node from any node, but its count is
    // the publishing node's subscribers: routed by the channel's slot, it
    // reaches the node where Puerta subscribes that channel (`txn.rs`).
    // SPUBLISH is by slot anyway.
    "PUBLISH" Route, K1, false; "SPUBLISH" Route, KEYS, false; "PUBSUB" Route, NONE, false;
    "SUBSCRIBE" L(Local::Subscribe), NONE, false; "PSUBSCRIBE" L(Local::Subscribe), NONE, false;
    "SSUBSCRIBE" L(Local::SSubscribe), KEYS, false; "UNSUBSCRIBE" L(Local::Unsubscribe), NONE, false;
    "PUNSUBSCRIBE" L(Local::Unsubscribe), NONE, false; "SUNSUBSCRIBE" L(Local::Unsubscribe), NONE, false;
    // Transactions.
    "MULTI" L(Local::Multi), NONE, false; "EXEC" L(Local::Exec), NONE, false;
    "DISCARD" L(Local::Discard), NONE, false; "WATCH" L(Local::Watch), KEYS, false;
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
    "SLOWLOG" L(Local::Slowlog), NONE, false; "LATENCY" L(Local::Refused), NONE, false;
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
