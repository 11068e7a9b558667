//! Recording: per-thread counters and HdrHistograms (3 significant
//! digits, nanoseconds), the per-second interval the progress line, JSON
//! series and HDR log are made from, and merging across threads.
//!
//! Two latencies are kept for every reply:
//! - `latency`: completion minus the request's *intended* send time. In the
//!   open loop that is the coordinated-omission-corrected latency: a stall
//!   counts against every request it delayed, sent or not yet sent.
//! - `service`: completion minus the actual send time (what a closed-loop
//!   tool reports). In the closed loop the two are the same.
//!
//! Single writer: a `Recorder` belongs to one load thread; results are
//! merged by the coordinating thread after (or, per second, while) it runs.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency recorded exactly: one hour in ns; longer saturates.
const HIGHEST_NS: u64 = 3_600_000_000_000;

pub fn histogram() -> Histogram<u64> {
    // Fixed, valid bounds: construction cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// Why a request (or a connection) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// A connect was refused, unreachable or timed out (per attempt; no
    /// request was sent).
    Connect,
    /// No reply within `--timeout`.
    Timeout,
    /// The server closed the connection with the request outstanding.
    Closed,
    /// The reply stream did not parse (the connection is then closed).
    Protocol,
    /// An error reply (`-ERR`, `SERVER_ERROR`, MongoDB `ok: 0`).
    Server,
    /// A read returned a value no write of that key stored.
    Mismatch,
    /// Open loop: the intended send time passed by more than `--timeout`
    /// before any connection could take the request (it was never sent).
    Dropped,
    /// Redis Cluster: more redirects than allowed, or an unusable address.
    Redirect,
}

pub const ERR_KINDS: [ErrKind; 8] = [
    ErrKind::Connect,
    ErrKind::Timeout,
    ErrKind::Closed,
    ErrKind::Protocol,
    ErrKind::Server,
    ErrKind::Mismatch,
    ErrKind::Dropped,
    ErrKind::Redirect,
];

impl ErrKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrKind::Connect => "connect",
            ErrKind::Timeout => "timeout",
            ErrKind::Closed => "closed",
            ErrKind::Protocol => "protocol",
            ErrKind::Server => "server",
            ErrKind::Mismatch => "mismatch",
            ErrKind::Dropped => "dropped",
            ErrKind::Redirect => "redirect",
        }
    }

    /// Whether the error ends a request that was sent (so `sent = ok +
    /// errors of these kinds` once a run has drained).
    pub fn is_of_sent(self) -> bool {
        !matches!(self, ErrKind::Connect | ErrKind::Dropped)
    }
}

/// Plain counters; summed over threads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Requests written to a connection (redirected re-sends not counted).
    pub sent: u64,
    /// Requests answered without error.
    pub ok: u64,
    pub hits: u64,
    pub misses: u64,
    #[serde(skip)]
    pub errors: [u64; 8],
    /// Redis Cluster redirects followed.
    pub moved: u64,
    pub ask: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.hits += o.hits;
        self.misses += o.misses;
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        self.moved += o.moved;
        self.ask += o.ask;
        self.bytes_out += o.bytes_out;
        self.bytes_in += o.bytes_in;
    }

    pub fn error(&self, k: ErrKind) -> u64 {
        self.errors[k as usize]
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Errors that ended sent requests.
    pub fn request_errors(&self) -> u64 {
        ERR_KINDS.iter().filter(|k| k.is_of_sent()).map(|&k| self.error(k)).sum()
    }

    /// `(name, count)` of every non-zero error kind.
    pub fn error_list(&self) -> Vec<(&'static str, u64)> {
        ERR_KINDS.iter().map(|&k| (k.name(), self.error(k))).filter(|&(_, n)| n > 0).collect()
    }
}

/// One thread's second: sent to the coordinator as it ends.
#[derive(Debug, Clone)]
pub struct Tick {
    pub second: u32,
    /// Latency (from intended time) of replies completed in this second.
    pub hist: Histogram<u64>,
    pub ops: u64,
    pub errors: u64,
}

/// A load thread's recording.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub counts: Counts,
    interval: Histogram<u64>,
    interval_ops: u64,
    interval_errors: u64,
    /// Off during warm-up and prefill: counters still count, nothing else.
    pub histograms: bool,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            latency: histogram(),
            service: histogram(),
            counts: Counts::default(),
            interval: histogram(),
            interval_ops: 0,
            interval_errors: 0,
            histograms: true,
        }
    }
}

impl Recorder {
    /// A reply completed: `latency_ns` from the intended send time,
    /// `service_ns` from the actual one.
    pub fn reply(&mut self, latency_ns: u64, service_ns: u64) {
        self.counts.ok += 1;
        self.interval_ops += 1;
        if self.histograms {
            self.latency.saturating_record(latency_ns.max(1));
            self.service.saturating_record(service_ns.max(1));
            self.interval.saturating_record(latency_ns.max(1));
        }
    }

    pub fn error(&mut self, kind: ErrKind, n: u64) {
        self.counts.errors[kind as usize] += n;
        self.interval_errors += n;
    }

    /// Ends second `second`: returns its tick and starts the next one.
    pub fn tick(&mut self, second: u32) -> Tick {
        let hist = self.interval.clone();
        self.interval.reset();
        let t = Tick { second, hist, ops: self.interval_ops, errors: self.interval_errors };
        self.interval_ops = 0;
        self.interval_errors = 0;
        t
    }

    pub fn merge(&mut self, o: &Recorder) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.service.add(&o.service);
        self.counts.add(&o.counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ticks_add_up() {
        let mut r = Recorder::default();
        r.counts.sent = 5;
        for i in 1..=3 {
            r.reply(i * 1_000_000, i * 1_000);
        }
        r.error(ErrKind::Timeout, 1);
        r.error(ErrKind::Connect, 4);
        r.error(ErrKind::Server, 1);
        let t = r.tick(0);
        assert_eq!((t.second, t.ops, t.errors, t.hist.len()), (0, 3, 6, 3));
        assert_eq!(r.tick(1).hist.len(), 0, "each tick starts empty");
        assert_eq!(r.counts.sent, r.counts.ok + r.counts.request_errors());
        assert_eq!(r.counts.errors_total(), 6);
        assert_eq!(r.counts.error_list(), [("connect", 4), ("timeout", 1), ("server", 1)]);
        let mut m = Recorder::default();
        m.merge(&r);
        m.merge(&r);
        assert_eq!((m.latency.len(), m.counts.ok, m.counts.error(ErrKind::Connect)), (6, 6, 8));
        assert_eq!(m.latency.max(), r.latency.max());
        assert!(m.latency.max() >= 3_000_000 && m.service.max() < 4_000);
    }

    #[test]
    fn three_significant_digits() {
        let mut r = Recorder::default();
        r.reply(123_456_789, 1);
        let v = r.latency.max();
        assert!((123_400_000..=123_600_000).contains(&v), "{v}");
        r.reply(HIGHEST_NS * 10, 1);
        assert!(r.latency.max() >= HIGHEST_NS, "saturates instead of failing");
    }
}
