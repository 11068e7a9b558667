//! `Run`: equal durations recorded once with a count.
//!
//! Within one event batch every duration is `now - t0` with the batch's
//! one `now`, so consecutive records of the same series (one backend's
//! round trips) with the same `t0` are the same value: one backend read
//! holding the 16 replies of one send is 16 equal round trips. A `Run` counts such a streak and the histogram takes
//! it in one record (`Hist::record_n`): one bucket lookup and two counter
//! stores per streak, not per request. Used for backend round trips, where
//! one read carries many replies of one send; request durations are
//! recorded one by one (`Client::flush_ready` mostly sees short streaks,
//! where the bookkeeping cost more than it saved).
//!
//! Owner: a local of the one call that reads a backend's replies (the mux
//! and cluster sessions' `handle_backend_data`). Invariant: whoever
//! feeds a `Run` flushes it before that call returns, so a scrape never
//! misses a round trip whose reply was read; the recorded counts and
//! values are exactly those of recording each duration alone.

/// A streak of equal durations not yet recorded: series `key`, started
/// at offset `t0`, `n` of them (`n == 0`: empty).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    key: u32,
    t0: u32,
    n: u32,
}

impl Run {
    /// Adds one duration of series `key` begun at `t0`. Returns the
    /// streak it ends (to record now), if any.
    #[inline]
    pub fn push(&mut self, key: u32, t0: u32) -> Option<(u32, u32, u32)> {
        if self.n != 0 && self.key == key && self.t0 == t0 && self.n != u32::MAX {
            self.n += 1;
            return None;
        }
        let done = self.take();
        *self = Run { key, t0, n: 1 };
        done
    }

    /// Empties the run: its streak (`key`, `t0`, `n`), if any.
    #[inline]
    pub fn take(&mut self) -> Option<(u32, u32, u32)> {
        let r = std::mem::take(self);
        (r.n != 0).then_some((r.key, r.t0, r.n))
    }
}

#[cfg(test)]
mod tests {
    use super::Run;

    #[test]
    fn streaks_of_equal_series_and_start_are_counted_together() {
        let mut r = Run::default();
        assert_eq!(r.push(3, 100), None);
        assert_eq!(r.push(3, 100), None);
        assert_eq!(r.push(3, 101), Some((3, 100, 2)));
        assert_eq!(r.push(4, 101), Some((3, 101, 1)));
        assert_eq!(r.take(), Some((4, 101, 1)));
        assert_eq!(r.take(), None);
    }

    #[test]
    fn a_full_streak_is_recorded_and_a_new_one_begins() {
        let mut r = Run { key: 7, t0: 5, n: u32::MAX };
        assert_eq!(r.push(7, 5), Some((7, 5, u32::MAX)));
        assert_eq!(r.take(), Some((7, 5, 1)));
    }
}
