//! Accept outcomes, the same for both drivers: a success resets the
//! backoff (and runs the debug-only failpoint), a failure for lack of
//! descriptors or memory pauses every listener of the worker
//! (`accept_backoff`), counted in `accept_exhausted` and logged at most
//! once a second with the number of refusals.
//!
//! Owner: one worker thread (an `impl` block of its `WorkerCore`). What a
//! driver must do: after `handle_accept_error` returned true, arm or try no
//! accept until `poll_accept_resume` returned true, and wake by
//! `accept_resume_at` at the latest.

use std::io;
use std::time::{Duration, Instant};

use super::accept_backoff::is_exhaustion;
use super::core::WorkerCore;
use super::failpoint;

impl WorkerCore {
    /// A client was accepted.
    pub fn handle_accepted(&mut self) {
        self.accept.handle_accepted();
        if let Err(e) = failpoint::on_accept() {
            self.fatal.get_or_insert(e);
        }
    }

    /// An accept on `pool`'s listener failed with `errno`. Returns true when
    /// the cause was exhaustion: accepting is paused.
    pub fn handle_accept_error(&mut self, pool: &str, errno: i32, now: Instant) -> bool {
        if is_exhaustion(errno) {
            self.stats.accept_exhausted.incr();
            self.accept.handle_exhausted(errno, now);
            self.log_refusals(now);
            return true;
        }
        // Anything else (a connection reset before it was accepted) costs
        // only the one queued connection; still, at most a line a second.
        if self.last_accept_err_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            self.last_accept_err_log = Some(now);
            tracing::warn!(pool, worker = self.id, err = %io::Error::from_raw_os_error(errno), "accept failed");
        }
        false
    }

    /// True while accepts are paused.
    pub fn accept_paused(&self, now: Instant) -> bool {
        self.accept.is_paused(now)
    }

    /// When a pause ends, if one is running.
    pub fn accept_resume_at(&self) -> Option<Instant> {
        self.accept.resume_at()
    }

    /// True once a pause has ended: re-arm every listener.
    pub fn poll_accept_resume(&mut self, now: Instant) -> bool {
        let resumed = self.accept.poll_resume(now);
        if resumed {
            self.log_refusals(now);
        }
        resumed
    }

    fn log_refusals(&mut self, now: Instant) {
        let Some(r) = self.accept.poll_report(now) else { return };
        let (open, limit) = (self.shared.clients.open(), self.shared.clients.limit());
        tracing::warn!(
            worker = self.id,
            refused = r.count,
            pause_ms = r.pause.as_millis() as u64,
            clients = open,
            client_limit = limit,
            "accept failed: {}; accepting paused (retried with backoff up to 1s)",
            io::Error::from_raw_os_error(r.errno)
        );
    }
}
