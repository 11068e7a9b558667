//! A lane is one logical client: its window of outstanding requests and,
//! in the open loop, its pacer (intended send times). Sans-IO: time is
//! passed in, and the engine does the socket work.
//!
//! The coordinated-omission correction lives here: in the open loop a
//! request's intended time comes from the pacer, never from when the
//! window happened to open, so a request held back by a slow reply is
//! charged for the wait. In the closed loop there is no schedule and the
//! intended time is the send time.
//!
//! Invariant: `outstanding <= window`; `due` never returns a time later
//! than `now`.

use std::time::{Duration, Instant};

use super::shape::{Pacer, Shape};

#[derive(Debug, Clone)]
pub struct Lane {
    pacer: Option<Pacer>,
    window: u32,
    outstanding: u32,
}

impl Lane {
    /// Closed loop: always `window` requests in flight.
    pub fn closed(window: u32) -> Lane {
        Lane { pacer: None, window: window.max(1), outstanding: 0 }
    }

    /// Open loop: lane `index` of `lanes` takes its share of `shape`, with
    /// at most `window` in flight.
    pub fn open(shape: &Shape, index: usize, lanes: usize, window: u32) -> Lane {
        Lane { pacer: Some(Pacer::new(shape, index, lanes)), window: window.max(1), outstanding: 0 }
    }

    fn intended(&self, start: Instant) -> Option<Instant> {
        let p = self.pacer.as_ref()?;
        let at = p.next();
        // An infinite time (a shape that stopped) is never due.
        (at.is_finite() && at < 1e9).then(|| start + Duration::from_secs_f64(at))
    }

    /// The intended time of the next request if it may be sent at `now`.
    pub fn due(&self, start: Instant, now: Instant) -> Option<Instant> {
        if self.outstanding >= self.window {
            return None;
        }
        match self.pacer {
            None => Some(now),
            Some(_) => self.intended(start).filter(|&t| t <= now),
        }
    }

    /// When the lane will next want to send (open loop, window not full).
    pub fn wake_at(&self, start: Instant) -> Option<Instant> {
        if self.outstanding >= self.window {
            return None;
        }
        self.intended(start)
    }

    /// Whether this lane paces by a schedule.
    pub fn is_open(&self) -> bool {
        self.pacer.is_some()
    }

    /// The request `due` offered went out.
    pub fn sent(&mut self, shape: Option<&Shape>) {
        self.outstanding += 1;
        self.skip(shape);
    }

    /// The request `due` offered will never be sent (dropped).
    pub fn skip(&mut self, shape: Option<&Shape>) {
        if let (Some(p), Some(s)) = (self.pacer.as_mut(), shape) {
            p.advance(s);
        }
    }

    /// A request of this lane completed (reply, error or timeout).
    pub fn done(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }

    #[cfg(test)]
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::bench::record::Recorder;

    const SERVICE: Duration = Duration::from_micros(100);

    /// A server answering one request at a time in `SERVICE`, that stops
    /// working entirely during `[stall_from, stall_to)`.
    struct SimServer {
        queue: VecDeque<(Instant, Instant)>,
        busy_until: Instant,
        stall: (Instant, Instant),
    }

    impl SimServer {
        fn accept(&mut self, intended: Instant, now: Instant) {
            self.queue.push_back((intended, now));
        }

        /// Replies completed by `now`: (intended, sent, done).
        fn poll(&mut self, now: Instant) -> Vec<(Instant, Instant, Instant)> {
            let mut out = Vec::new();
            while let Some(&(intended, sent)) = self.queue.front() {
                let mut begin = self.busy_until.max(sent);
                if begin >= self.stall.0 && begin < self.stall.1 {
                    begin = self.stall.1;
                }
                let done = begin + SERVICE;
                if done > now {
                    break;
                }
                self.busy_until = done;
                self.queue.pop_front();
                out.push((intended, sent, done));
            }
            out
        }
    }

    /// Runs one lane against the simulated server for `secs` of virtual
    /// time in 50 µs steps; the server stalls from 2 s to 3 s.
    fn simulate(mut lane: Lane, shape: Option<&Shape>, secs: u64) -> Recorder {
        let start = Instant::now();
        let stall = (start + Duration::from_secs(2), start + Duration::from_secs(3));
        let mut server = SimServer { queue: VecDeque::new(), busy_until: start, stall };
        let mut rec = Recorder::default();
        let step = Duration::from_micros(50);
        let mut now = start;
        while now < start + Duration::from_secs(secs) {
            for (intended, sent, done) in server.poll(now) {
                rec.reply((done - intended).as_nanos() as u64, (done - sent).as_nanos() as u64);
                lane.done();
            }
            while let Some(intended) = lane.due(start, now) {
                server.accept(intended, now);
                rec.counts.sent += 1;
                lane.sent(shape);
            }
            now += step;
        }
        rec
    }

    fn ms(ns: u64) -> f64 {
        ns as f64 / 1e6
    }

    #[test]
    fn open_loop_charges_a_stall_to_every_request_it_delayed() {
        // 1000 req/s for 10 s: 10,000 requests, 1,000 of them intended
        // during the 1 s stall.
        let shape = Shape::Constant { rate: 1000.0 };
        let rec = simulate(Lane::open(&shape, 0, 1, 1), Some(&shape), 10);
        assert!((9_900..=10_000).contains(&rec.counts.ok), "{} replies", rec.counts.ok);
        let (lat, svc) = (&rec.latency, &rec.service);
        // Corrected: ~10% of requests waited up to 1 s, so p99 is ~900 ms.
        let p99 = ms(lat.value_at_quantile(0.99));
        assert!((800.0..1000.0).contains(&p99), "corrected p99 {p99} ms");
        assert!(ms(lat.value_at_quantile(0.95)) > 400.0, "corrected p95 {}", ms(lat.value_at_quantile(0.95)));
        assert!(ms(lat.max()) > 990.0);
        // Uncorrected: only the one request in flight when the stall began
        // saw it; the rest queued in the client and look fast.
        let sp99 = ms(svc.value_at_quantile(0.99));
        assert!(sp99 < 1.0, "service-time p99 {sp99} ms hides the stall");
        assert!(ms(svc.max()) > 990.0, "the one request that was in flight waited");
        assert_eq!(svc.count_between(500_000_000, u64::MAX), 1);
    }

    #[test]
    fn closed_loop_latency_is_service_time() {
        let rec = simulate(Lane::closed(1), None, 4);
        assert_eq!(rec.latency.value_at_quantile(0.99), rec.service.value_at_quantile(0.99));
        assert_eq!(rec.latency.max(), rec.service.max());
        // Closed loop sends nothing while stalled: one slow sample only.
        assert_eq!(rec.latency.count_between(500_000_000, u64::MAX), 1);
    }

    #[test]
    fn window_bounds_the_requests_in_flight() {
        let shape = Shape::Constant { rate: 1e6 };
        let mut lane = Lane::open(&shape, 0, 1, 3);
        let start = Instant::now();
        let now = start + Duration::from_secs(1);
        let mut n = 0;
        while lane.due(start, now).is_some() {
            lane.sent(Some(&shape));
            n += 1;
        }
        assert_eq!((n, lane.outstanding()), (3, 3));
        assert_eq!(lane.wake_at(start), None, "a full window wakes nothing");
        lane.done();
        let intended = lane.due(start, now).unwrap();
        assert!(intended < start + Duration::from_micros(10), "backlog keeps its intended time");
    }
}
