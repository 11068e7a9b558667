//! The slow log: a bounded ring of requests slower than their pool's
//! `slow_op_threshold`, one ring per pool per core.
//!
//! This is the one lock of `obs`, and it is off the normal path: only the
//! owning worker locks its ring, and only when a request *was* slow (rare
//! by definition); readers (admin's `GET /slowlog`, a client's `SLOWLOG
//! GET` on any core) lock it briefly to copy entries out. Invariants: a
//! ring never holds more than its `max_len` entries (the oldest go first);
//! ids are unique per pool and core and grow, so merged views sort by
//! `(unix_us, id)` newest first.
//!
//! How an entry keeps its key (`KeyRule`, `KeyNote`) lives in
//! `slowlog_key` and is re-exported here.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;

pub use super::slowlog_key::{key_hash, KeyNote, KeyRule, SHORT};

/// Redis truncates a slow log entry to 32 arguments...
pub const MAX_ARGS: usize = 32;
/// ...and each argument to 128 bytes.
pub const MAX_ARG_BYTES: usize = 128;

/// One slow request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    /// When it completed, microseconds since the Unix epoch.
    pub unix_us: u64,
    pub duration_us: u64,
    /// The command label (from the bounded list: "other" for unknown).
    pub command: &'static str,
    /// Arguments as Redis's SLOWLOG shows them: the command, the first key
    /// (under `slowlog_keys`), then `... (N more arguments)` for the rest,
    /// at most `MAX_ARGS`, each at most `MAX_ARG_BYTES`.
    pub args: Vec<Vec<u8>>,
    /// The backend that answered (address), empty when none (answered by
    /// Puerta, or several).
    pub backend: String,
    /// The client's address, empty when unknown.
    pub client: String,
}

/// The args an entry shows for `command` with first key `key` and `argc`
/// arguments in all (the name counted).
pub fn entry_args(command: &str, key: &KeyNote, argc: usize) -> Vec<Vec<u8>> {
    let mut args = vec![command.as_bytes().to_vec()];
    let mut shown = 1;
    if let Some(k) = key.render() {
        args.push(k);
        shown += 1;
    }
    if argc > shown {
        args.push(format!("... ({} more arguments)", argc - shown).into_bytes());
    }
    args.truncate(MAX_ARGS);
    for a in &mut args {
        a.truncate(MAX_ARG_BYTES);
    }
    args
}

/// One pool's ring on one core.
#[derive(Debug, Default)]
pub struct Ring {
    inner: Mutex<RingInner>,
}

/// A data-plane request that was slow, as the worker notes it: plain
/// values, no formatting and (for a short key) no allocation, so a burst
/// of slow requests (a stalled backend) costs the worker little. It
/// becomes an `Entry` when read (`Raw::entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    pub unix_us: u64,
    pub duration_us: u64,
    pub command: &'static str,
    pub key: KeyNote,
    /// Arguments in all, the name counted.
    pub argc: u16,
    /// The backend slot that answered, `None` when none or several.
    pub server: Option<u16>,
    pub client: Option<SocketAddr>,
}

impl Raw {
    /// The entry it reads as; `names` are the pool's backend slot names.
    pub fn entry(&self, id: u64, names: &[String]) -> Entry {
        Entry {
            id,
            unix_us: self.unix_us,
            duration_us: self.duration_us,
            command: self.command,
            args: entry_args(self.command, &self.key, usize::from(self.argc)),
            backend: self.server.and_then(|s| names.get(usize::from(s)).cloned()).unwrap_or_default(),
            client: self.client.map(|a| a.to_string()).unwrap_or_default(),
        }
    }
}

/// What a ring holds: an entry made whole (mongos pools), or a `Raw` one.
#[derive(Debug)]
enum Noted {
    Entry(Entry),
    Raw(u64, Raw),
}

#[derive(Debug, Default)]
struct RingInner {
    next_id: u64,
    entries: VecDeque<Noted>,
}

impl RingInner {
    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        id
    }

    fn push(&mut self, n: Noted, max_len: usize) {
        self.entries.push_back(n);
        while self.entries.len() > max_len {
            self.entries.pop_front();
        }
    }
}

impl Ring {
    /// Adds an entry (its id is assigned here), dropping the oldest past
    /// `max_len`. Only the owning worker calls this.
    pub fn push(&self, mut e: Entry, max_len: usize) {
        let Ok(mut r) = self.inner.lock() else { return };
        e.id = r.take_id();
        r.push(Noted::Entry(e), max_len);
    }

    /// Adds a raw entry, as `push` does.
    pub fn push_raw(&self, e: Raw, max_len: usize) {
        let Ok(mut r) = self.inner.lock() else { return };
        let id = r.take_id();
        r.push(Noted::Raw(id, e), max_len);
    }

    /// Copies the entries out, oldest first; `names` name the backend
    /// slots of raw ones.
    pub fn entries(&self, names: &[String]) -> Vec<Entry> {
        let Ok(r) = self.inner.lock() else { return Vec::new() };
        r.entries
            .iter()
            .map(|n| match n {
                Noted::Entry(e) => e.clone(),
                Noted::Raw(id, raw) => raw.entry(*id, names),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |r| r.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        if let Ok(mut r) = self.inner.lock() {
            r.entries.clear();
        }
    }
}

/// Merges several rings' entries newest first, at most `n`.
pub fn merge_newest(mut all: Vec<Entry>, n: usize) -> Vec<Entry> {
    all.sort_by_key(|e| std::cmp::Reverse((e.unix_us, e.id)));
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(unix_us: u64) -> Entry {
        Entry {
            id: 0,
            unix_us,
            duration_us: 1,
            command: "GET",
            args: vec![],
            backend: String::new(),
            client: String::new(),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_max_len_entries() {
        let r = Ring::default();
        for t in 0..10 {
            r.push(entry(t), 4);
        }
        let e = r.entries(&[]);
        assert_eq!(e.len(), 4);
        assert_eq!(e.iter().map(|e| (e.id, e.unix_us)).collect::<Vec<_>>(), [(6, 6), (7, 7), (8, 8), (9, 9)]);
        let merged = merge_newest([e, vec![entry(8), entry(100)]].concat(), 3);
        assert_eq!(merged.iter().map(|e| e.unix_us).collect::<Vec<_>>(), [100, 9, 8]);
        r.reset();
        assert!(r.is_empty());
    }

    #[test]
    fn args_are_truncated_as_redis_does_and_keys_follow_the_rule() {
        let long = vec![b'k'; 300];
        let a = entry_args("SET", &KeyNote::new(KeyRule::Shown, &long), 3);
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].len(), MAX_ARG_BYTES);
        assert_eq!(a[2], b"... (1 more arguments)");
        let h = entry_args("GET", &KeyNote::new(KeyRule::Hashed, b"user:1"), 2);
        assert!(h[1].starts_with(b"#") && h[1].len() == 17 && h[1] != b"user:1");
        assert_eq!(h, entry_args("GET", &KeyNote::new(KeyRule::Hashed, b"user:1"), 2), "stable");
        // Keys up to SHORT bytes are kept as words; at every length around
        // the edges they read back whole, and hash as hashing them would.
        let long_key = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut seen = std::collections::HashSet::new();
        for n in 0..long_key.len() {
            let k = &long_key[..n];
            assert_eq!(KeyNote::new(KeyRule::Shown, k).render().unwrap(), k, "{n} bytes");
            assert_eq!(matches!(KeyNote::new(KeyRule::Shown, k), KeyNote::Words { .. }), n <= SHORT);
            let hashed = format!("#{:016x}", key_hash(k)).into_bytes();
            assert_eq!(KeyNote::new(KeyRule::Hashed, k).render().unwrap(), hashed, "{n} bytes");
            assert!(seen.insert(key_hash(k)), "prefixes hash apart ({n} bytes)");
        }
        for n in 0..=SHORT {
            let k: Vec<u8> = (0..n).map(|i| (i * 37 + 200) as u8).collect();
            assert_eq!(KeyNote::new(KeyRule::Shown, &k).render().unwrap(), k, "binary, {n} bytes");
        }
        // Every byte of a key moves its hash, and so does its length.
        let k = b"user:0000000000000000000000000001".to_vec();
        for i in 0..k.len() {
            let mut m = k.clone();
            m[i] ^= 1;
            assert_ne!(key_hash(&m), key_hash(&k), "byte {i}");
        }
        assert_ne!(key_hash(b"ab\0"), key_hash(b"ab"));
        assert_ne!(key_hash(b""), key_hash(b"\0"));
        assert_eq!(std::mem::size_of::<KeyNote>(), 24);
        assert_eq!(
            entry_args("GET", &KeyNote::new(KeyRule::Hidden, b"user:1"), 2),
            [b"GET".to_vec(), b"... (1 more arguments)".to_vec()]
        );
    }
}
