//! Layer 2 for how a worker waits for events (issue 14, pipeline-1
//! wakeups): `[server] wait_batch`, `wait_batch_us` and `busy_poll_us` ->
//! `WaitPolicy` (and `wait_batch_after`).
//!
//! Owns their defaults and ranges. The defaults (`wait_batch = 64`,
//! `wait_batch_us = 50`, `wait_batch_after = 16`, no busy poll) measured
//! best across issue 14's targets (docs/profile-pipeline1.md, "Wakeups"):
//! a busy worker batches, a lightly loaded one waits for one event as
//! before; `wait_batch = 1` restores the old wait. `wait_batch` > 1 needs a `wait_batch_us` bound: a
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
    /// io_uring: batch only after a loop pass that handled at least this
    /// many completions (0: always), so a lightly loaded worker, whose
    /// passes see one or two, waits for one as before.
    pub batch_after: u32,
    /// Both drivers: poll for events without sleeping for this many
    /// microseconds after the last batch before a blocking wait (0: off).
    pub busy_poll_us: u32,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy { batch: 64, batch_us: 50, batch_after: 16, busy_poll_us: 0 }
    }
}

impl WaitPolicy {
    /// Whether the io_uring wait asks for more than one completion.
    pub fn batched(&self) -> bool {
        self.batch > 1 && self.batch_us > 0
    }
}

/// The keys `[server]` `wait_batch`, `wait_batch_us`, `wait_batch_after`,
/// `busy_poll_us`, checked together (`wait_batch` > 1 needs a bound).
pub(crate) fn policy(p: &mut Problems, f: &super::file::ServerFile) -> Option<WaitPolicy> {
    let (batch, batch_us, busy_poll_us) = (f.wait_batch, f.wait_batch_us, f.busy_poll_us);
    let key = |k: &str| KeyPath::root().key(k);
    let b = p.check(key("wait_batch"), int_in(batch, 1, MAX_BATCH));
    let us = p.check(key("wait_batch_us"), int_in(batch_us, 0, MAX_US));
    let poll = p.check(key("busy_poll_us"), int_in(busy_poll_us, 0, MAX_US));
    let after = p.check(key("wait_batch_after"), int_in(f.wait_batch_after, 0, MAX_BATCH));
    let (b, us, poll, after) = (b?, us?, poll?, after?);
    if b > 1 && us == 0 {
        let err: Result<(), String> = Err(format!(
            "wait_batch = {b} needs wait_batch_us > 0 (how long to wait for the batch before one event is enough)"
        ));
        p.check(key("wait_batch"), err)?;
    }
    // In range by the checks above.
    let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
    Some(WaitPolicy { batch: n(b), batch_us: n(us), batch_after: n(after), busy_poll_us: n(poll) })
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
    fn defaults_batch_busy_workers_without_polling() {
        let c = load(POOL).unwrap();
        assert_eq!(c.server.wait, WaitPolicy { batch: 64, batch_us: 50, batch_after: 16, busy_poll_us: 0 });
        assert_eq!(c.server.wait, WaitPolicy::default());
        assert!(c.server.wait.batched());
        let c = load(&format!("[server]\nwait_batch = 1\n{POOL}")).unwrap();
        assert!(!c.server.wait.batched(), "wait_batch = 1 turns batching off");
    }

    #[test]
    fn the_keys_parse() {
        let c = load(&format!(
            "[server]\nwait_batch = 16\nwait_batch_us = 20\nwait_batch_after = 8\nbusy_poll_us = 50\n{POOL}"
        ))
        .unwrap();
        assert_eq!(c.server.wait, WaitPolicy { batch: 16, batch_us: 20, batch_after: 8, busy_poll_us: 50 });
        assert!(c.server.wait.batched());
    }

    #[test]
    fn a_batch_without_a_bound_and_out_of_range_values_are_refused() {
        let e = load(&format!("[server]\nwait_batch = 8\nwait_batch_us = 0\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.wait_batch: wait_batch = 8 needs wait_batch_us > 0"), "{e}");
        let e = load(&format!("[server]\nwait_batch = 0\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.wait_batch: expected an integer >= 1"), "{e}");
        let e = load(&format!("[server]\nbusy_poll_us = 10001\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.busy_poll_us: expected an integer <= 10000"), "{e}");
        let e = load(&format!("[server]\nwait_batch_after = 1025\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.wait_batch_after: expected an integer <= 1024"), "{e}");
        let e = load(&format!("[server]\nwait_batch_us = -1\n{POOL}")).unwrap_err();
        assert!(e.starts_with("t.toml:2: server.wait_batch_us: expected an integer >= 0"), "{e}");
    }
}
