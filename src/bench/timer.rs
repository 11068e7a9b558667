//! A nanosecond-resolution wake-up for the open loop: a Linux timerfd
//! registered with the thread's mio poll.
//!
//! Why: epoll's timeout is in whole milliseconds (mio rounds up), so a
//! loop that sleeps until the next intended send time would send up to
//! 1 ms late, and that lateness would show up as latency (the very error
//! the coordinated-omission correction exists to avoid). The timerfd is
//! re-armed each pass for the next intended time; poll's own timeout is
//! only used for coarse housekeeping.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

pub struct WakeTimer {
    fd: OwnedFd,
}

impl WakeTimer {
    pub fn new(reg: &Registry, token: Token) -> std::io::Result<WakeTimer> {
        // SAFETY: timerfd_create takes no pointers; a negative result is an error.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        reg.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(WakeTimer { fd })
    }

    /// Fires once, `after` from now (at least 1 ns: zero would disarm it).
    pub fn arm(&self, after: Duration) {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    /// Clears the expiry count after it fired.
    pub fn clear(&self) {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer.
        unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::Instant;

    #[test]
    fn wakes_with_sub_millisecond_precision() {
        let mut poll = Poll::new().unwrap();
        let t = WakeTimer::new(poll.registry(), Token(7)).unwrap();
        let mut events = Events::with_capacity(4);
        let mut late = Vec::new();
        for _ in 0..20 {
            let start = Instant::now();
            t.arm(Duration::from_micros(300));
            poll.poll(&mut events, Some(Duration::from_secs(2))).unwrap();
            assert!(events.iter().any(|e| e.token() == Token(7)), "the timer woke the poll");
            t.clear();
            late.push(start.elapsed());
        }
        late.sort();
        // Never early, and (unlike an epoll timeout, which rounds up to
        // whole milliseconds) able to wake in under 1 ms; a loaded machine
        // may delay any single wake-up, so only the best of 20 is checked.
        assert!(late[0] >= Duration::from_micros(300), "{late:?}");
        assert!(late[0] < Duration::from_millis(1), "{late:?}");
    }
}
