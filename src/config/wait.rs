//! Layer 2 for how a worker waits for events (issue 14, pipeline-1
//! wakeups): `[server] wait_batch`, `wait_batch_us` and `busy_poll_us` ->
//! `WaitPolicy`.
//!
//! Owns their defaults (today's behaviour: wait for one event, no busy
//! poll) and ranges. `wait_batch` > 1 needs a `wait_batch_us` bound: a
//! worker must never wait for more events than may come. Both batching
//! keys apply to the io_uring driver only (epoll has no "at least N
//! events" wait); `busy_poll_us` applies to both drivers.

use super::span::KeyPath;
use super::validate::{int_in, Problems};

/// Upper bounds: a batch larger than this gains nothing, and a bound or a
/// poll longer than 10 ms is a latency bug, not a tuning.
const MAX_BATCH: i64 = 1024;
const MAX_US: i64 = 10_000;

/// How a worker waits when it has nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// io_uring: completions to wait for before waking (1: any).
    pub batch: u32,
    /// io_uring: after this many microseconds of a batched wait, one
    /// completion is enough (`IORING_ENTER_EXT_ARG` `min_wait_usec`,
    /// kernel >= 6.12; older kernels wait for one). 0 with `batch` 1.
    pub batch_us: u32,
    /// Both drivers: poll for events without sleeping for this many
    /// microseconds after the last batch before a blocking wait (0: off).
    pub busy_poll_us: u32,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy { batch: 1, batch_us: 0, busy_poll_us: 0 }
    }
}

impl WaitPolicy {
    /// Whether the io_uring wait asks for more than one completion.
    pub fn batched(&self) -> bool {
        self.batch > 1 && self.batch_us > 0
    }
}

/// The three keys, checked together (`wait_batch` > 1 needs a bound).
pub(crate) fn policy(p: &mut Problems, batch: i64, batch_us: i64, busy_poll_us: i64) -> Option<WaitPolicy> {
    let key = |k: &str| KeyPath::root().key(k);
    let b = p.check(key("wait_batch"), int_in(batch, 1, MAX_BATCH));
    let us = p.check(key("wait_batch_us"), int_in(batch_us, 0, MAX_US));
    let poll = p.check(key("busy_poll_us"), int_in(busy_poll_us, 0, MAX_US));
    let (b, us, poll) = (b?, us?, poll?);
    if b > 1 && us == 0 {
        let err: Result<(), String> = Err(format!(
            "wait_batch = {b} needs wait_batch_us > 0 (how long to wait for the batch before one event is enough)"
        ));
        p.check(key("wait_batch"), err)?;
    }
    // In range by the checks above.
    let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
    Some(WaitPolicy { batch: n(b), batch_us: n(us), busy_poll_us: n(poll) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> Result<crate::config::Config, String> {
        crate::config::parse(src, std::path::Path::new("t.toml")).map_err(|e| e.to_string())
    }

    const POOL: &str =
        "[[pool]]\nname = \"r\"\nlisten = \"127.0.0.1:7000\"\nmode = \"redis\"\nservers = [\"127.0.0.1:6379\"]\n";

    #[test]
    fn defaults_wait_for_one_event_without_polling() {
        let c = load(POOL).unwrap();
        assert_eq!(c.server.wait, WaitPolicy { batch: 1, batch_us: 0, busy_poll_us: 0 });
        assert!(!c.server.wait.batched());
    }

    #[test]
    fn the_keys_parse() {
        let c = load(&format!("[server]\nwait_batch = 16\nwait_batch_us = 20\nbusy_poll_us = 50\n{POOL}")).unwrap();
        assert_eq!(c.server.wait, WaitPolicy { batch: 16, batch_us: 20, busy_poll_us: 50 });
        assert!(c.server.wait.batched());
    }

    #[test]
    fn a_batch_without_a_bound_and_out_of_range_values_are_refused() {
        let e = load(&format!("[server]\nwait_batch = 8\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.wait_batch: wait_batch = 8 needs wait_batch_us > 0"), "{e}");
        let e = load(&format!("[server]\nwait_batch = 0\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.wait_batch: expected an integer >= 1"), "{e}");
        let e = load(&format!("[server]\nbusy_poll_us = 10001\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.busy_poll_us: expected an integer <= 10000"), "{e}");
        let e = load(&format!("[server]\nwait_batch_us = -1\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.wait_batch_us: expected an integer >= 0"), "{e}");
    }
}
