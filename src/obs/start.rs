//! Noting a decoded request: its command slot, size, argument count and
//! (for the slow log) its first key, per protocol.
//!
//! Cheap by construction: one command-table lookup (the name hashed as
//! sent, nothing copied) and, only when the slow log wants keys, the first
//! key noted (`slowlog::KeyNote`: two word loads for a key of up to 16
//! bytes; a longer one hashed or copied).

use super::classes::{mc_index, redis_index};
use super::rec::{Recorder, ReqObs};
use crate::protocol::command::COMMANDS;
use crate::protocol::memcache::McRequest;
use crate::protocol::resp::Request;

/// A Redis request: the command by Redis's table, its first key where the
/// table's legacy key range says one is.
#[inline]
pub fn start_redis(rec: &mut Recorder, req: &Request) -> ReqObs {
    if rec.pool().is_none() {
        return ReqObs::default();
    }
    let cmd = redis_index(req.name());
    let key = if rec.wants_key() {
        let first = COMMANDS.get(usize::from(cmd)).map_or(0, |c| c.legacy.0);
        usize::try_from(first).ok().filter(|&i| i > 0 && i < req.argc()).map(|i| req.arg(i))
    } else {
        None
    };
    rec.start(cmd, req.raw().len(), req.argc(), key)
}

/// A memcached request: its command word, its first key if any.
#[inline]
pub fn start_memcache(rec: &mut Recorder, req: &McRequest) -> ReqObs {
    if rec.pool().is_none() {
        return ReqObs::default();
    }
    let key = (rec.wants_key() && req.nkeys() > 0).then(|| req.key(0));
    rec.start(mc_index(req.cmd), req.raw().len(), req.nkeys().saturating_add(1), key)
}
