//! The end-to-end proof of issue 13: no client or backend can hurt another
//! client, the backends or the process. Every case runs the real `puerta`
//! binary with 2 workers under both I/O drivers, against real memcached,
//! redis-server and a real Redis Cluster (or a scripted fake where the
//! attacker is the backend), and asserts four things:
//!
//! 1. the process is alive with every worker serving (both worker threads
//!    exist, 16 fresh connections are each served);
//! 2. good clients on the same pool, pipelining during and after the
//!    attack, see every reply byte-for-byte correct;
//! 3. backend state that must not change did not (canary keys, `stats`
//!    cmd_flush, CONFIG values, bytes forwarded, no connection to the
//!    attacker's port);
//! 4. RSS stays under the bound the case states.
//!
//! Test names start with the defect they prove (d1..d10 of the issue), or
//! `family_` for the issue's own family of malformed input. The cases live
//! in tests/hostile/, one file per backend; shared checks are in
//! tests/common/hostile.rs and the stand-ins in tests/common/fake.rs.

mod common;
mod mongo_support;

#[path = "hostile/admin.rs"]
mod admin;
#[path = "hostile/cluster.rs"]
mod cluster;
#[path = "hostile/memcache.rs"]
mod memcache;
#[path = "hostile/memcache_family.rs"]
mod memcache_family;
#[path = "hostile/mongo.rs"]
mod mongo;
#[path = "hostile/redis.rs"]
mod redis;
#[path = "hostile/redis_family.rs"]
mod redis_family;

/// RSS bound for a case whose attack carries little data. A debug build
/// of Puerta idles near 30-40 MiB and peaked at 86 MiB in these cases on
/// main; 192 MiB leaves room for buffers and still catches an allocation
/// sized by a length an attacker chose (those reach hundreds of MiB).
pub const RSS_SMALL_MIB: u64 = 192;

/// Keys `prefix:0` .. `prefix:{n-1}`.
pub fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}
