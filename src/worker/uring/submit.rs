//! Getting an SQE into the ring when the submission queue is full.
//!
//! Owner: the worker's `UringDriver` (`push`, an `impl` block of it).
//! Before, `push` retried `submit` in a loop until the entry fit, logging
//! each failure: when the kernel would not take submissions (EBUSY: the
//! completion queue is full and must be reaped first; EAGAIN: no memory)
//! that loop spun forever, flooding the log, with the CQEs that would have
//! unblocked it never read. Now each round that makes no room reaps the
//! completions already posted (they are dispatched first in the next loop
//! pass, in order), and after `MAX_STALLS` rounds without any progress the
//! entry is dropped and the worker fails (`WorkerCore::fatal`): a worker
//! that cannot submit cannot serve, and `main` then exits non-zero. The
//! driver's wait (`Stalls`) follows the same rule.

use std::io;
use std::time::Duration;

use io_uring::{squeue, IoUring};

use super::UringDriver;

/// Rounds without progress (no entry taken by the kernel, no completion
/// reaped) before giving up; with `STALL_PAUSE` between them, about 1 s.
pub(super) const MAX_STALLS: u32 = 1000;
const STALL_PAUSE: Duration = Duration::from_millis(1);

impl UringDriver {
    /// Queues `e`, submitting (and reaping) to make room when the SQ is full.
    pub(super) fn push(&mut self, e: squeue::Entry) {
        let mut q = RingQueue { ring: &mut self.ring, reaped: &mut self.reaped, entry: &e };
        if let Err(err) = push_making_room(&mut q) {
            tracing::error!(worker = self.core.id, %err, "io_uring: the kernel takes no submission; the worker stops");
            self.core.fatal.get_or_insert(err);
        }
    }
}

/// Consecutive failed waits in the driver's loop (EBUSY, EAGAIN) with no
/// completion between them: retried with a pause, up to
/// `MAX_STALLS`, then the loop fails rather than spin.
#[derive(Default)]
pub(super) struct Stalls(u32);

impl Stalls {
    /// A wait failed with `e`; `Err(e)` once there were too many in a row.
    pub(super) fn stalled(&mut self, e: io::Error) -> io::Result<()> {
        self.0 += 1;
        if self.0 >= MAX_STALLS {
            return Err(e);
        }
        if self.0 > 1 {
            std::thread::sleep(STALL_PAUSE);
        }
        Ok(())
    }

    /// A completion arrived.
    pub(super) fn progressed(&mut self) {
        self.0 = 0;
    }
}

/// What `push_making_room` needs from a ring (a trait so tests can play a
/// kernel that refuses).
pub(super) trait SubmitQueue {
    /// Tries to queue the entry; false when the SQ is full.
    fn try_push(&mut self) -> bool;
    /// Hands queued entries to the kernel; how many it took.
    fn submit(&mut self) -> io::Result<usize>;
    /// Moves posted completions aside for later dispatch; how many.
    fn reap(&mut self) -> usize;
    fn pause(&mut self);
}

struct RingQueue<'a> {
    ring: &'a mut IoUring,
    reaped: &'a mut Vec<(u64, i32, u32)>,
    entry: &'a squeue::Entry,
}

impl SubmitQueue for RingQueue<'_> {
    fn try_push(&mut self) -> bool {
        // SAFETY: every pointer in the entry refers to memory that outlives
        // the op (see the module invariants of `uring`).
        unsafe { self.ring.submission().push(self.entry).is_ok() }
    }
    fn submit(&mut self) -> io::Result<usize> {
        self.ring.submit()
    }
    fn reap(&mut self) -> usize {
        let before = self.reaped.len();
        self.reaped.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        self.reaped.len() - before
    }
    fn pause(&mut self) {
        std::thread::sleep(STALL_PAUSE);
    }
}

/// Pushes until the entry fits. Each failed try submits; a round in which
/// the kernel took nothing also reaps completions (what EBUSY asks for).
/// Gives up with the last error after `MAX_STALLS` rounds in a row in which
/// neither moved, pausing between them.
pub(super) fn push_making_room(q: &mut impl SubmitQueue) -> io::Result<()> {
    let mut stalls = 0;
    while !q.try_push() {
        let res = q.submit();
        let submitted = matches!(res, Ok(n) if n > 0);
        let reaped = q.reap();
        if submitted || reaped > 0 {
            stalls = 0;
            continue;
        }
        stalls += 1;
        if stalls >= MAX_STALLS {
            return Err(res.err().unwrap_or_else(|| io::Error::other("the submission queue stays full")));
        }
        q.pause();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel that takes entries only once `cq` completions were reaped
    /// (EBUSY until then), or never (`takes: false`).
    struct Fake {
        sq_full: bool,
        cq: usize,
        takes: bool,
        tries: u32,
        pauses: u32,
    }

    impl SubmitQueue for Fake {
        fn try_push(&mut self) -> bool {
            self.tries += 1;
            !self.sq_full
        }
        fn submit(&mut self) -> io::Result<usize> {
            if self.cq > 0 || !self.takes {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            self.sq_full = false;
            Ok(16)
        }
        fn reap(&mut self) -> usize {
            let n = self.cq.min(1);
            self.cq -= n;
            n
        }
        fn pause(&mut self) {
            self.pauses += 1;
        }
    }

    fn fake(cq: usize, takes: bool) -> Fake {
        Fake { sq_full: true, cq, takes, tries: 0, pauses: 0 }
    }

    #[test]
    fn a_full_queue_is_emptied_by_submitting() {
        let mut q = fake(0, true);
        assert!(push_making_room(&mut q).is_ok());
        assert_eq!((q.tries, q.pauses), (2, 0));
    }

    #[test]
    fn ebusy_is_answered_by_reaping_completions_until_the_kernel_takes_entries() {
        let mut q = fake(5, true);
        assert!(push_making_room(&mut q).is_ok());
        // Five rounds reap one completion each, the sixth submits.
        assert_eq!((q.tries, q.pauses, q.cq), (7, 0, 0));
    }

    #[test]
    fn failed_waits_are_retried_only_so_long_without_a_completion() {
        let mut s = Stalls::default();
        let ebusy = || io::Error::from_raw_os_error(libc::EBUSY);
        for _ in 0..MAX_STALLS - 1 {
            assert!(s.stalled(ebusy()).is_ok());
        }
        s.progressed();
        for _ in 0..MAX_STALLS - 1 {
            assert!(s.stalled(ebusy()).is_ok(), "a completion resets the count");
        }
        assert_eq!(s.stalled(ebusy()).unwrap_err().raw_os_error(), Some(libc::EBUSY));
    }

    #[test]
    fn a_kernel_that_never_takes_anything_ends_in_an_error_not_a_spin() {
        let mut q = fake(0, false);
        let err = push_making_room(&mut q).expect_err("gives up");
        assert_eq!(err.raw_os_error(), Some(libc::EBUSY));
        assert_eq!(q.pauses, MAX_STALLS - 1, "bounded, and it paused between rounds");
    }
}
