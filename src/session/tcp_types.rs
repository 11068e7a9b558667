//! The vocabulary of a layer-4 relay session (`session::tcp`): which side
//! of the pair, why a session ended, what it asks the driver to do, and
//! its fixed limits. Plain data shared by the session, the drivers and
//! the stats; no behaviour beyond `Side::other`.

use std::time::Duration;

use crate::protocol::mongo::FrameError;

/// Which socket of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Backend = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Backend,
            Side::Backend => Side::Client,
        }
    }
}

/// Why a session ended; used for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both directions finished cleanly.
    Done,
    /// The backend closed; pending bytes were flushed to the client first.
    BackendClosed,
    /// An I/O error (errno) on one side.
    Error(Side, i32),
    /// The backend could not be reached and no retry is left.
    ConnectFailed(i32),
    ConnectTimeout,
    IdleTimeout,
    /// The worker is shutting down past its drain deadline.
    Shutdown,
    /// A mongos stream could not be framed (short or oversized header).
    Protocol(Side, FrameError),
    /// Closed at a message boundary because its backend left the healthy
    /// set, was removed by a reload, or the worker is draining.
    Retired,
    /// A mongos client past its `per_ip` rate with `on_limit` "error" or
    /// "close" (a mongos pool has no error reply to send).
    RateLimited,
}

/// A decision for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Half-close: no more bytes will be written to this side.
    ShutdownWrite(Side),
    /// Tear down both sockets.
    Close(CloseReason),
}

/// Tunables fixed for the session's life.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// Stop reading a side once this many bytes wait to go the other way.
    pub high_water: usize,
}
