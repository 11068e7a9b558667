//! Rate and connection limits, sans-IO: token buckets (`bucket`), the
//! bounded per-core table of per-IP buckets (`table`), the client-IP key
//! (`ip`), the process-wide state one pool's workers share (`shares`:
//! per-IP connection counts, per-core demand and per-core shares), the
//! users' buckets and counters (`users`) and the share rebalancing both
//! use (`share_table`; its accuracy with N cores: `accuracy_tests.rs`).
//!
//! Nothing here reads a clock, touches a socket or locks: `now` is passed
//! in, and the shared state is relaxed atomics, written by one side each
//! (a worker writes its demand counters, the control thread its shares;
//! connection counts are changed only at accept and close, never per
//! request).
//!
//! What a bucket counts:
//! - **requests**: one token per request decoded from the client;
//! - **bytes**: the client's inbound request bytes, as decoded (the whole
//!   request, its framing included). Replies do **not** count: a client
//!   cannot know a reply's size before it asks, and Puerta cannot either
//!   before it forwards the request, so charging replies could only punish
//!   the *next* request after the fact, while the bytes that mattered were
//!   already read from the backend and written. Inbound bytes are known
//!   before forwarding, so their limit is enforced before any backend
//!   sees the request. Reply memory is bounded separately, by
//!   `client_output_limit`.
//!
//! Invariants:
//! - a request is admitted only when the request bucket holds at least
//!   one token and the byte bucket holds more than zero; admitting one
//!   takes one request token and its size in byte tokens, so the byte
//!   bucket may go into debt by at most one request (a request larger
//!   than a bucket still passes, then pays for itself by waiting);
//! - a bucket never holds more than its capacity (`burst` x its rate), and
//!   at least one request's worth, so a core with a tiny share still
//!   admits requests at its rate.

mod bucket;
mod ip;
mod share_table;
mod shares;
mod table;
mod users;

#[cfg(test)]
#[path = "accuracy_tests.rs"]
mod accuracy;

pub use bucket::{Admit, Limiter};
pub use ip::IpKey;
pub use share_table::{ShareTable, REBALANCE_EVERY, SHARE_FLOOR_DIVISOR};
pub use shares::{ConnGuard, IpSlot, PoolLimits};
pub use table::{IpTable, DEFAULT_TABLE_ENTRIES};
pub use users::{UserLimits, UserTotals};

/// Limits one bucket enforces: rates per second (`None`: that dimension is
/// unlimited) and the burst factor (capacity = `burst` x rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    pub requests: Option<f64>,
    pub bytes: Option<f64>,
    pub burst: f64,
}

impl RateSpec {
    /// Whether any rate is limited (otherwise no bucket is kept at all).
    pub fn is_limited(&self) -> bool {
        self.requests.is_some() || self.bytes.is_some()
    }
}

/// What happens to a request that finds its bucket empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLimit {
    /// Stop reading the client until tokens return (latency, no errors).
    #[default]
    Delay,
    /// Answer an error (`-ERR rate limit exceeded`, memcached
    /// `SERVER_ERROR rate limit exceeded`) and keep the connection.
    Error,
    /// Close the connection.
    Close,
}

impl OnLimit {
    pub fn as_str(self) -> &'static str {
        match self {
            OnLimit::Delay => "delay",
            OnLimit::Error => "error",
            OnLimit::Close => "close",
        }
    }
}

/// Why a limit refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The client's IP (or /64) already holds `limit` connections to the
    /// pool, across every worker. Fault: the client; it may retry later.
    #[error("too many connections from this address (per_ip.connections = {limit})")]
    Connections { limit: u32 },
}
