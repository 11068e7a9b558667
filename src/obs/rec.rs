//! `Recorder`: what a session holds to record its requests, and `ReqObs`,
//! what each request carries from decode to reply.
//!
//! Owner: one session (one pool on one worker). The session passes in the
//! batch's `now` (`set_now`); the recorder reads no clock. With
//! `metrics_detail = "basic"` (`Settings::timing` false) it does no clock
//! arithmetic, records no histogram and keeps no slow log: only the
//! per-command counters (requests, bytes, error classes) remain.
//!
//! Invariant: a `ReqObs` is small (its time is a `u32` offset, not an
//! `Instant`), and one that was never started (`cmd == UNNOTED`) records
//! nothing when finished, so a request that bypassed `start` cannot skew a
//! histogram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::classes::{classify, command_name, Kind, NCMD};
use super::hotkeys::HotKeys;
use super::pool::{PoolObs, MAX_POOL_BACKENDS};
use super::slowlog::{Entry, KeyNote, KeyRule, Raw};

/// What a pool records, from `[server] metrics_detail` and the pool's
/// `slow_op_threshold`, `slowlog_max_len`, `slowlog_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `metrics_detail = "full"`: time requests and backend round trips.
    pub timing: bool,
    /// Requests at least this slow go to the slow log (`None`: off).
    pub slow: Option<Duration>,
    pub slowlog_max_len: usize,
    pub keys: KeyRule,
    /// Track the hottest keys (`hotkeys`).
    pub hot_keys: bool,
}

/// The slow log threshold when a pool sets none: Redis's own
/// `slowlog-log-slower-than` default.
pub const DEFAULT_SLOW: Duration = Duration::from_millis(10);
pub const DEFAULT_SLOWLOG_MAX_LEN: usize = 128;

impl Settings {
    /// A pool's settings under `[server] metrics_detail`.
    pub fn from_config(detail: crate::config::MetricsDetail, pool: &crate::config::ObsConfig) -> Settings {
        Settings {
            timing: detail == crate::config::MetricsDetail::Full,
            slow: pool.slow_op_threshold,
            slowlog_max_len: pool.slowlog_max_len,
            keys: pool.slowlog_keys,
            hot_keys: pool.hot_keys,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timing: true,
            slow: Some(DEFAULT_SLOW),
            slowlog_max_len: DEFAULT_SLOWLOG_MAX_LEN,
            keys: KeyRule::Hashed,
            hot_keys: false,
        }
    }
}

/// "Not started": records nothing.
pub const UNNOTED: u16 = u16::MAX;
/// No single backend (answered locally, or fanned out).
pub const NO_SERVER: u16 = u16::MAX;

/// What one request carries from decode to reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqObs {
    /// Microseconds since the recorder's epoch when it was decoded.
    pub t0: u32,
    pub cmd: u16,
    /// The server index it went to, or `NO_SERVER`.
    pub server: u16,
    /// Its argument count (the name counted), saturated.
    pub argc: u16,
    /// Its first key, for the slow log only.
    pub key: KeyNote,
}

impl Default for ReqObs {
    fn default() -> Self {
        ReqObs { t0: 0, cmd: UNNOTED, server: NO_SERVER, argc: 0, key: KeyNote::None }
    }
}

/// The slow log threshold in µs; `u64::MAX` when off (or timing is off).
fn slow_us(set: &Settings) -> u64 {
    match (set.timing, set.slow) {
        (true, Some(d)) if !d.is_zero() => u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

/// Whether requests note their first key for the slow log.
fn note_key(set: &Settings) -> bool {
    slow_us(set) != u64::MAX && set.keys != KeyRule::Hidden
}

pub struct Recorder {
    pool: Option<Arc<PoolObs>>,
    kind: Kind,
    set: Settings,
    slow_us: u64,
    /// The slow log is on and keeps keys: requests note their first key.
    note_key: bool,
    epoch: Instant,
    epoch_unix_us: u64,
    now: Instant,
    now_us: u32,
    /// Every core's blocks and this pool's stat id, for what reads all
    /// cores (`SLOWLOG GET` on any of them).
    peers: Option<(Arc<crate::shared::Shared>, usize)>,
    /// Client addresses by client slot index, for slow log entries (kept
    /// only while the slow log is on).
    clients: Vec<Option<SocketAddr>>,
    /// The pool's hot keys on this worker (`hot_keys = true`).
    hot: Option<Box<HotKeys>>,
}

impl Recorder {
    /// `now` becomes the epoch of its offsets.
    pub fn new(pool: Option<Arc<PoolObs>>, kind: Kind, set: Settings, now: Instant) -> Recorder {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let pool_set = pool.is_some();
        Recorder {
            pool,
            kind,
            set,
            slow_us: slow_us(&set),
            note_key: note_key(&set),
            epoch: now,
            epoch_unix_us: u64::try_from(unix.as_micros()).unwrap_or(0),
            now,
            now_us: 0,
            peers: None,
            clients: Vec::new(),
            hot: (set.hot_keys && pool_set).then(|| Box::new(HotKeys::new(set.keys))),
        }
    }

    /// Publishes this worker's hot keys to its `PoolObs` (on the stats
    /// tick: one lock per tick, none per request).
    pub fn publish_hot(&mut self) {
        if let (Some(h), Some(p)) = (&mut self.hot, &self.pool) {
            p.set_hot(h.publish());
        }
    }

    /// Whether entries would name clients (the slow log is on).
    pub fn wants_peers(&self) -> bool {
        self.pool.is_some() && self.slow_us != u64::MAX
    }

    /// The address of the client in slot `idx` (a new client replaces the
    /// slot's previous one).
    pub fn set_peer(&mut self, idx: usize, peer: Option<SocketAddr>) {
        if self.clients.len() <= idx {
            self.clients.resize(idx + 1, None);
        }
        self.clients[idx] = peer;
    }

    /// Lets the session read every core's slow log of pool `stat_id`.
    pub fn with_peers(mut self, shared: Arc<crate::shared::Shared>, stat_id: usize) -> Recorder {
        self.peers = Some((shared, stat_id));
        self
    }

    /// The pool's slow log over every core, newest first, at most `n`
    /// (this core's alone without peers).
    pub fn slowlog_get(&self, n: usize) -> Vec<Entry> {
        match &self.peers {
            Some((s, id)) => super::snapshot::slowlog_entries(&s.workers, *id, n),
            None => self.pool.as_ref().map(|p| super::slowlog::merge_newest(p.slow_entries(), n)).unwrap_or_default(),
        }
    }

    pub fn slowlog_len(&self) -> usize {
        match &self.peers {
            Some((s, id)) => super::snapshot::slowlog_len(&s.workers, *id),
            None => self.pool.as_ref().map_or(0, |p| p.slowlog.len()),
        }
    }

    pub fn slowlog_reset(&self) {
        match &self.peers {
            Some((s, id)) => super::snapshot::slowlog_reset(&s.workers, *id),
            None => {
                if let Some(p) = &self.pool {
                    p.slowlog.reset();
                }
            }
        }
    }

    /// Records nothing (unit tests of sessions).
    pub fn off(kind: Kind) -> Recorder {
        Recorder::new(None, kind, Settings::default(), Instant::now())
    }

    pub fn settings(&self) -> &Settings {
        &self.set
    }

    /// New settings (a reload), keeping the epoch: requests in flight
    /// keep valid offsets.
    pub fn set_settings(&mut self, set: Settings) {
        if !set.hot_keys || set.keys != self.set.keys {
            self.hot = None;
        }
        if set.hot_keys && self.hot.is_none() && self.pool.is_some() {
            self.hot = Some(Box::new(HotKeys::new(set.keys)));
        }
        self.set = set;
        self.slow_us = slow_us(&set);
        self.note_key = note_key(&set);
    }

    pub fn pool(&self) -> Option<&Arc<PoolObs>> {
        self.pool.as_ref()
    }

    /// The batch's clock. Called at every event that carries `now`.
    #[inline]
    pub fn set_now(&mut self, now: Instant) {
        // Every event of a batch carries the batch's one clock reading:
        // only the first converts it.
        if self.set.timing && now != self.now {
            self.now = now;
            let d = now.saturating_duration_since(self.epoch);
            // `as_micros() as u32` without the 128-bit arithmetic: the
            // same value modulo 2^32.
            self.now_us = (d.as_secs() as u32).wrapping_mul(1_000_000).wrapping_add(d.subsec_micros());
        }
    }

    /// The batch's offset, for stamping backend sends.
    #[inline]
    pub fn now_us(&self) -> u32 {
        self.now_us
    }

    /// Whether the slow log or the hot keys want first keys.
    #[inline]
    pub fn wants_key(&self) -> bool {
        self.note_key || self.hot.is_some()
    }

    /// A request was decoded: counts it and returns what it carries.
    #[inline]
    pub fn start(&mut self, cmd: u16, bytes: usize, argc: usize, key: Option<&[u8]>) -> ReqObs {
        if let (Some(h), Some(k)) = (&mut self.hot, key) {
            h.record(k);
        }
        let Some(p) = &self.pool else { return ReqObs::default() };
        let cmd = cmd.min(NCMD as u16 - 1);
        let c = &p.cmds[cmd as usize];
        c.requests.incr();
        c.request_bytes.add(bytes as u64);
        let key = match key {
            Some(k) if self.note_key => KeyNote::new(self.set.keys, k),
            _ => KeyNote::None,
        };
        ReqObs { t0: self.now_us, cmd, server: NO_SERVER, argc: argc.min(u16::MAX as usize) as u16, key }
    }

    /// A request's reply is complete and queued to its client.
    #[inline]
    pub fn finish(&self, r: &ReqObs, reply: &[u8], client: usize) {
        let Some(p) = &self.pool else { return };
        if r.cmd == UNNOTED {
            return;
        }
        let c = &p.cmds[usize::from(r.cmd)];
        c.reply_bytes.add(reply.len() as u64);
        if let Some(class) = classify(self.kind, reply) {
            c.errors[class].incr();
        }
        if self.set.timing {
            let us = u64::from(self.now_us.wrapping_sub(r.t0));
            p.hist[usize::from(r.cmd)].record_us(us);
            if us >= self.slow_us {
                self.slow(p, r, us, self.clients.get(client).copied().flatten());
            }
        }
    }

    /// A backend round trip of server `server` that began at `t0`.
    #[inline]
    pub fn backend_rtt(&self, server: u32, t0: u32) {
        if !self.set.timing {
            return;
        }
        if let Some(h) = self.pool.as_ref().and_then(|p| p.backends.get(server as usize)) {
            h.record_us(u64::from(self.now_us.wrapping_sub(t0)));
        }
    }

    /// Names backend slot `server` (its address), for labels and entries.
    pub fn set_backend_name(&self, server: u32, name: &str) {
        if let Some(p) = &self.pool {
            if (server as usize) < MAX_POOL_BACKENDS {
                p.set_backend_name(server as usize, name);
            }
        }
    }

    /// Notes a slow request: plain values only (`slowlog::Raw`), turned
    /// into text when the log is read.
    #[cold]
    #[inline(never)]
    fn slow(&self, p: &PoolObs, r: &ReqObs, us: u64, client: Option<SocketAddr>) {
        let since = self.now.saturating_duration_since(self.epoch).as_micros();
        let e = Raw {
            unix_us: self.epoch_unix_us.saturating_add(u64::try_from(since).unwrap_or(0)),
            duration_us: us,
            command: command_name(self.kind, usize::from(r.cmd)).unwrap_or("other"),
            key: r.key.clone(),
            argc: r.argc,
            server: (r.server != NO_SERVER).then_some(r.server),
            client,
        };
        p.add_slow_raw(e, self.set.slowlog_max_len);
    }
}
