//! Observability of the data plane: per-request timing, latency
//! histograms, per-command counters and the slow log.
//!
//! What is measured, and where:
//! - a request's duration runs from the event batch in which its last byte
//!   was parsed to the batch in which its reply was complete and queued to
//!   the client (`Recorder::start` at decode, `Recorder::finish` when its
//!   slot moves to the client's output); a backend round trip runs from the
//!   batch that queued a request on an open backend connection to the batch
//!   that read its reply (`Recorder::backend_rtt`). Both drivers read the
//!   monotonic clock (`Instant::now`, vDSO `CLOCK_MONOTONIC`) once per event
//!   batch and pass it in, so a duration is exact to the microsecond between
//!   batches but has the batch as its resolution: a request answered within
//!   one batch (a local reply) measures 0, one answered a batch later
//!   measures the time between the two wakeups;
//! - `Recorder` keeps the offset of `now` from its own epoch as a `u32` of
//!   microseconds (wrapping every 71 minutes: durations are differences,
//!   so only a request outstanding longer than that would read wrong);
//! - tcp pools have no request boundaries and get none of this; mongos
//!   pools are timed by their message tracker (`session::mongo`) and
//!   recorded here by the worker (`record_mongo`).
//!
//! Ownership and invariants: every `PoolObs` belongs to one worker (one per
//! pool per core, in `CoreObs`), which alone writes it with relaxed
//! load-plus-store counters (`stats::Counter`): no lock and no
//! read-modify-write atomic on the request path. Admin reads and merges
//! the cores on scrape. The one lock is the slow log ring
//! (`slowlog::Ring`), taken by the worker only for a request that was
//! slow. Every label value comes from a fixed list (`classes`), never from
//! the wire.
//!
//! API for the status page (`snapshot`): [`pool_latency`] gives, per pool,
//! the request histogram merged over commands and cores (per-bucket counts,
//! sum, count; `HistSnap::cumulative` gives the `le` form); diff two of
//! them with `HistSnap::since` and estimate p50/p99/p99.9 over that window
//! with `HistSnap::quantile` (or [`hist::quantile`] on cumulative counts).
//! [`slowlog_entries`] gives a pool's merged slow log, newest first.

pub mod classes;
pub mod hist;
pub mod hotkeys;
mod pool;
pub mod rec;
mod reply;
mod run;
pub mod slowlog;
mod slowlog_key;
mod snapshot;
mod start;

pub use classes::{Kind, CLASSES, NCLASS, NCMD};
pub use hist::{quantile, Hist, HistSnap, BOUNDS_US, NBUCKETS};
pub use pool::{CoreObs, PoolObs, MAX_POOL_BACKENDS};
pub use rec::{Recorder, ReqObs, Settings};
pub use reply::slowlog_reply;
pub use run::Run;
pub use slowlog::{Entry, KeyNote, KeyRule};
pub use snapshot::{pool_latency, pool_requests, slowlog_entries, slowlog_len, slowlog_reset, PoolLatency};
pub use start::{start_memcache, start_redis};
