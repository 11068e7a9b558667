//! How the io_uring driver waits for completions (`[server]` `wait_batch`,
//! `wait_batch_us`, `wait_batch_after`, `busy_poll_us`; `config::WaitPolicy`,
//! issue 14).
//!
//! Owner: the worker's `UringDriver` (`wait_for_events`, an `impl` block of
//! it). `wait_batch = 1`: submit and wait for one completion. Batched:
//! wait for up to `batch` completions, but after `batch_us` one is enough
//! (`IORING_ENTER_EXT_ARG` with `min_wait_usec`, kernel >= 6.12), with a
//! 1 s general timeout so an idle worker never wakes more often than that
//! (without one, the kernel returns `ETIME` at every `min_wait_usec`). A
//! kernel without the feature (not advertised, or `EINVAL`) waits for one,
//! logged once. With `batch_after`, only after a loop pass that handled
//! that many completions (`last_pass`): light load waits for one. Busy
//! poll: before a blocking wait, reap completions without sleeping for up
//! to `busy_poll_us`. A pass in which clients sent requests ends with
//! `flush_replies_then_reap`: replies out first, then a non-waiting reap,
//! then one send per backend for everything queued. Invariants: the
//! caller's `want` 0 (completions already in hand) never waits; every path
//! submits the SQ; a hold on backend sends lasts only inside
//! `flush_replies_then_reap`, and the caller's `mux_flush` follows it.

use std::io;
use std::time::{Duration, Instant};

use io_uring::types;

use super::UringDriver;

/// `IORING_ENTER_GETEVENTS`: run task work and flush completions.
const ENTER_GETEVENTS: u32 = 1;
/// The batched wait's general timeout: how often an idle worker wakes.
pub(super) const IDLE_WAKE: Duration = Duration::from_secs(1);

impl UringDriver {
    /// Submits and, when `want` is 1, waits as `WaitPolicy` says.
    pub(super) fn wait_for_events(&mut self, want: usize) -> io::Result<usize> {
        let w = self.wait;
        if want == 0 {
            return self.ring.submit_and_wait(0);
        }
        if w.busy_poll_us > 0 && self.busy_poll(w.busy_poll_us)? {
            return Ok(0);
        }
        if w.batched() && self.min_wait_ok && self.last_pass >= w.batch_after as usize {
            let args = types::SubmitArgs::new().min_wait_usec(w.batch_us).timespec(&self.idle_ts);
            match self.ring.submitter().submit_with_args(w.batch as usize, &args) {
                // The general timeout passed with nothing to do.
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => return Ok(0),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.min_wait_ok = false;
                    tracing::warn!(
                        worker = self.core.id,
                        "io_uring: the kernel refuses min_wait_usec; wait_batch is off"
                    );
                }
                r => return r,
            }
        }
        self.ring.submit_and_wait(1)
    }

    /// Submits, then reaps without sleeping until a completion is posted
    /// (true) or `us` microseconds passed (false).
    fn busy_poll(&mut self, us: u32) -> io::Result<bool> {
        self.ring.submit()?;
        let end = Instant::now() + Duration::from_micros(u64::from(us));
        loop {
            if !self.ring.completion().is_empty() {
                return Ok(true);
            }
            // SAFETY: nothing to submit and no argument: the call only runs
            // this ring's task work (DEFER_TASKRUN) and posts completions.
            match unsafe { self.ring.submitter().enter::<libc::sigset_t>(0, 0, ENTER_GETEVENTS, None) } {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
            if !self.ring.completion().is_empty() {
                return Ok(true);
            }
            if Instant::now() >= end {
                return Ok(false);
            }
            std::hint::spin_loop();
        }
    }

    /// Ends a pass in which clients sent requests: sends the replies
    /// (and any other client output) first, holding the requests queued
    /// for the backends; submits with `GETEVENTS` but does not wait, so
    /// requests that arrived meanwhile complete now; handles those
    /// completions; the caller's `mux_flush` then sends each backend
    /// everything queued for it in one send. Measured at pipeline 1 (issue
    /// 14): backend sends per request 0.89 -> 0.76, against nutcracker's
    /// 0.41, whose writes wait for the next `epoll_wait` pass. Returns the
    /// completions handled.
    pub(super) fn flush_replies_then_reap(&mut self, now: Instant) -> usize {
        self.hold_backends = true;
        self.mux_flush(now);
        self.hold_backends = false;
        self.bufs.publish();
        let pending = self.ring.submission().len() as u32;
        // SAFETY: no argument: submits what is queued and runs this ring's
        // task work (DEFER_TASKRUN), posting completions without waiting.
        match unsafe { self.ring.submitter().enter::<libc::sigset_t>(pending, 0, ENTER_GETEVENTS, None) } {
            Ok(_) => {}
            // Nothing lost: what was not submitted goes with the next wait.
            Err(e) => tracing::trace!(worker = self.core.id, err = %e, "io_uring: reap between flushes"),
        }
        self.cqes.clear();
        self.cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        self.dispatch_cqes(now);
        // What the reap handled goes out with the caller's flush: the next
        // pass reaps again only if it reads requests of its own.
        self.pass_requests = false;
        self.cqes.len()
    }
}
