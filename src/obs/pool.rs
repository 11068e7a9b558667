//! Per-core storage: one `PoolObs` per pool a worker serves, made on first
//! use and kept for the process's life (indexed by the pool's stat id, as
//! `stats` is, so a reload keeps history).
//!
//! Owner: the worker writes; admin (and `SLOWLOG` on another core) reads.
//! Invariants: commands index below `NCMD`, classes below `NCLASS`,
//! backend slots below `MAX_POOL_BACKENDS`; a write past them is dropped,
//! never a panic. Backend slots are the session's server indexes; the
//! names the slots show are set by the session (rarely: on creation, a
//! reload, a node learned), under a lock off the request path.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::classes::{Kind, NCLASS, NCMD};
use super::hist::Hist;
use super::slowlog::Ring;
use crate::stats::{Counter, MAX_POOLS};

/// Backend histograms kept per pool per core.
pub const MAX_POOL_BACKENDS: usize = 256;

/// One command's counters on one core.
#[derive(Debug, Default)]
pub struct CmdCounters {
    pub requests: Counter,
    pub request_bytes: Counter,
    pub reply_bytes: Counter,
    pub errors: [Counter; NCLASS],
}

/// One pool on one core.
#[derive(Debug)]
pub struct PoolObs {
    kind: AtomicU8,
    pub cmds: Box<[CmdCounters]>,
    /// Request durations by command.
    pub hist: Box<[Hist]>,
    /// Backend round trips by the session's server index.
    pub backends: Box<[Hist]>,
    backend_names: Mutex<Vec<String>>,
    pub slowlog: Ring,
    /// Entries ever added to `slowlog` (`puerta_slowlog_entries_total`).
    pub slow_total: Counter,
    /// This core's hot keys as last published (`hot_keys = true`).
    hot: Mutex<Vec<super::hotkeys::Hot>>,
}

impl PoolObs {
    pub fn new(kind: Kind) -> PoolObs {
        PoolObs {
            kind: AtomicU8::new(kind as u8),
            cmds: (0..NCMD).map(|_| CmdCounters::default()).collect(),
            hist: (0..NCMD).map(|_| Hist::default()).collect(),
            backends: (0..MAX_POOL_BACKENDS).map(|_| Hist::default()).collect(),
            backend_names: Mutex::new(Vec::new()),
            slowlog: Ring::default(),
            slow_total: Counter::default(),
            hot: Mutex::new(Vec::new()),
        }
    }

    pub fn kind(&self) -> Kind {
        match self.kind.load(Ordering::Relaxed) {
            1 => Kind::Memcache,
            2 => Kind::Mongo,
            _ => Kind::Redis,
        }
    }

    /// The pool's kind as last served (a reload may change a pool's mode;
    /// its history keeps its slots).
    pub fn set_kind(&self, kind: Kind) {
        self.kind.store(kind as u8, Ordering::Relaxed);
    }

    /// Names backend slot `i` (its address). Off the request path.
    pub fn set_backend_name(&self, i: usize, name: &str) {
        if i >= MAX_POOL_BACKENDS {
            return;
        }
        let Ok(mut n) = self.backend_names.lock() else { return };
        if n.len() <= i {
            n.resize(i + 1, String::new());
        }
        if n[i] != name {
            n[i] = name.to_owned();
        }
    }

    /// The names of the backend slots (empty: never named).
    pub fn backend_names(&self) -> Vec<String> {
        self.backend_names.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// Replaces this core's published hot keys (once per stats tick).
    pub fn set_hot(&self, top: Vec<super::hotkeys::Hot>) {
        if let Ok(mut h) = self.hot.lock() {
            *h = top;
        }
    }

    pub fn hot(&self) -> Vec<super::hotkeys::Hot> {
        self.hot.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Adds a slow log entry (the one lock: only for a slow request).
    pub fn add_slow(&self, e: super::slowlog::Entry, max_len: usize) {
        self.slowlog.push(e, max_len);
        self.slow_total.incr();
    }

    /// Adds a slow log entry noted raw by the data plane.
    pub fn add_slow_raw(&self, e: super::slowlog::Raw, max_len: usize) {
        self.slowlog.push_raw(e, max_len);
        self.slow_total.incr();
    }

    /// This core's slow log, oldest first.
    pub fn slow_entries(&self) -> Vec<super::slowlog::Entry> {
        self.slowlog.entries(&self.backend_names())
    }

    pub fn backend_name(&self, i: usize) -> String {
        self.backend_names.lock().ok().and_then(|n| n.get(i).cloned()).unwrap_or_default()
    }
}

/// Everything one worker records, by pool stat id.
#[derive(Debug)]
pub struct CoreObs {
    pools: Box<[OnceLock<Arc<PoolObs>>]>,
}

impl Default for CoreObs {
    fn default() -> Self {
        CoreObs { pools: (0..MAX_POOLS).map(|_| OnceLock::new()).collect() }
    }
}

impl CoreObs {
    /// The block of pool `stat_id`, made on first use (by the owning
    /// worker, when it creates the pool's session). `None` past `MAX_POOLS`.
    pub fn pool(&self, stat_id: usize, kind: Kind) -> Option<Arc<PoolObs>> {
        let p = self.pools.get(stat_id)?.get_or_init(|| Arc::new(PoolObs::new(kind)));
        p.set_kind(kind);
        Some(p.clone())
    }

    /// The block of pool `stat_id` if this core ever served it.
    pub fn get(&self, stat_id: usize) -> Option<&Arc<PoolObs>> {
        self.pools.get(stat_id)?.get()
    }
}
