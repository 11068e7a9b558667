//! TLS counters of one worker: handshakes started and finished, failures
//! by reason (the fixed list `tls::FailReason::ALL`), and connections
//! established by protocol version.
//!
//! Owner: the worker (single writer, like every `WorkerStats` block); the
//! admin thread sums the workers' blocks for /metrics.

use super::Counter;
use crate::tls::FailReason;

#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes begun (TLS clients accepted, TLS backend connects).
    pub handshakes: Counter,
    /// Failed handshakes, indexed like `FailReason::ALL`.
    pub failures: [Counter; FailReason::ALL.len()],
    /// Established connections, TLS 1.2.
    pub established_12: Counter,
    /// Established connections, TLS 1.3.
    pub established_13: Counter,
}

impl TlsStats {
    pub fn failed(&self, reason: FailReason) {
        if let Some(i) = FailReason::ALL.iter().position(|r| *r == reason) {
            self.failures[i].incr();
        }
    }

    pub fn established(&self, version: Option<&str>) {
        match version {
            Some("1.2") => self.established_12.incr(),
            _ => self.established_13.incr(),
        }
    }
}
