//! One load thread's event loop: mio (epoll), nonblocking sockets, many
//! pipelined connections per thread.
//!
//! Each pass: settle deadlines (connect and request timeouts, reconnects),
//! let every lane send what its window and pacer allow, flush, then poll
//! until the next thing is due and decode whatever replies arrived. Time
//! is read once per pass and once per ready connection (all replies read
//! together complete at the same instant).
//!
//! Invariants:
//! - every request ends exactly once: a reply, an error reply, a timeout or
//!   a closed connection; so after the drain `sent = ok + request errors`;
//! - nothing blocks except `poll` (bounded by the next deadline) and the
//!   rate-limited CLUSTER SLOTS refresh after a MOVED;
//! - the loop ends: at the run's end (or request budget) it stops sending
//!   and waits at most `timeout` for what is in flight, and it gives up on
//!   a target whose every connection failed to connect three times.

use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::{Events, Poll, Token};

use super::cluster::SlotMap;
use super::codec::Wire;
use super::conn::{Conn, InFlight, State};
use super::lane::Lane;
use super::record::{ErrKind, Recorder, Tick};
use super::shape::Shape;
use super::timer::WakeTimer;
use super::workload::{Op, OpGen, Workload};

mod recv;
mod send;

/// What every thread of one run shares.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub map: SlotMap,
    pub cluster: bool,
    pub wire: Wire,
    pub workload: Workload,
    pub shape: Option<Shape>,
    pub pipeline: u32,
    /// Lanes (connections) over all threads.
    pub lanes_total: usize,
    pub threads: usize,
    pub timeout: Duration,
    pub duration: Option<Duration>,
    /// Request budget of the whole run (all threads).
    pub requests: Option<u64>,
    pub seed: u64,
    /// Histograms and per-second ticks (off for warm-up and prefill).
    pub record: bool,
}

/// Messages from load threads to the coordinator.
#[derive(Debug)]
pub enum Msg {
    Tick(Tick),
}

/// What a thread hands back.
#[derive(Debug)]
pub struct ThreadOut {
    pub rec: Recorder,
    /// From the start of the load to the last reply.
    pub elapsed: Duration,
    pub aborted: Option<String>,
}

/// Redirects one request may follow before it counts as an error.
const MAX_REDIRECTS: u8 = 5;
/// Gives up on a target after this many failed connects on every connection.
const GIVE_UP_AFTER: u32 = 3;
const HOUSEKEEPING: Duration = Duration::from_millis(10);
const NO_CONN: usize = usize::MAX;
/// The open loop's wake-up timer (connections are tokens 0..n).
const TIMER: Token = Token(usize::MAX - 1);

struct LaneState {
    lane: Lane,
    /// Connection index per node.
    conns: Vec<usize>,
    /// A drawn op that waits for its connection (with its intended time).
    pending: Option<(Op, Instant)>,
    /// Redirected requests to re-send: (request, node, with ASKING).
    redo: Vec<(InFlight, usize, bool)>,
}

pub struct Engine<'a> {
    spec: &'a RunSpec,
    poll: Poll,
    /// Open loop only: wakes the poll at the next intended send time.
    timer: Option<WakeTimer>,
    conns: Vec<Conn>,
    lanes: Vec<LaneState>,
    map: SlotMap,
    gen: OpGen,
    rec: Recorder,
    scratch: Vec<u8>,
    key: Vec<u8>,
    dirty: Vec<usize>,
    is_dirty: Vec<bool>,
    touched: Vec<usize>,
    budget: Option<u64>,
    attempted: u64,
    last_refresh: Option<Instant>,
}

impl<'a> Engine<'a> {
    /// Thread `thread`, driving lanes `lanes` (global indices).
    pub fn new(spec: &'a RunSpec, thread: usize, lanes: std::ops::Range<usize>) -> std::io::Result<Engine<'a>> {
        let budget = spec.requests.map(|n| {
            let (per, extra) = (n / spec.threads as u64, n % spec.threads as u64);
            per + u64::from((thread as u64) < extra)
        });
        let mut rec = Recorder::default();
        rec.histograms = spec.record;
        let lanes: Vec<LaneState> = lanes
            .map(|i| LaneState {
                lane: match &spec.shape {
                    Some(s) => Lane::open(s, i, spec.lanes_total, spec.pipeline),
                    None => Lane::closed(spec.pipeline),
                },
                conns: Vec::new(),
                pending: None,
                redo: Vec::new(),
            })
            .collect();
        let n = lanes.len();
        let poll = Poll::new()?;
        let timer = spec.shape.as_ref().map(|_| WakeTimer::new(poll.registry(), TIMER)).transpose()?;
        Ok(Engine {
            spec,
            poll,
            timer,
            conns: Vec::new(),
            lanes,
            map: spec.map.clone(),
            gen: OpGen::new(&spec.workload, spec.seed, thread, spec.threads),
            rec,
            scratch: vec![0; 64 << 10],
            key: Vec::with_capacity(64),
            dirty: Vec::new(),
            is_dirty: vec![false; n],
            touched: Vec::new(),
            budget,
            attempted: 0,
            last_refresh: None,
        })
    }

    /// Connects every lane to every known node, waits (up to the timeout)
    /// until each is up or failed, then waits on `barrier` and runs.
    pub fn run(mut self, barrier: &Barrier, started: &OnceLock<Instant>, tx: Option<&Sender<Msg>>) -> ThreadOut {
        let now = Instant::now();
        for li in 0..self.lanes.len() {
            for node in 0..self.map.nodes.len() {
                self.conn_for(li, node, now);
            }
        }
        let mut events = Events::with_capacity(1024);
        let deadline = now + self.spec.timeout;
        while Instant::now() < deadline && self.conns.iter().any(|c| c.state == State::Connecting) {
            let _ = self.poll.poll(&mut events, Some(HOUSEKEEPING));
            self.handle_events(&events);
        }
        barrier.wait();
        // One start for all threads: their seconds line up.
        let start = *started.get_or_init(Instant::now);
        self.load(start, &mut events, tx)
    }

    fn load(&mut self, start: Instant, events: &mut Events, tx: Option<&Sender<Msg>>) -> ThreadOut {
        let end = self.spec.duration.map(|d| start + d);
        let mut second = 0u32;
        let mut stopping = false;
        let mut stopped_at = start;
        let mut last_reply = start;
        let mut aborted = None;
        let mut next_housekeeping = start;
        for li in 0..self.lanes.len() {
            self.mark(li);
        }
        loop {
            let now = Instant::now();
            while self.spec.record && now >= start + Duration::from_secs(u64::from(second) + 1) {
                if end.is_none_or(|e| start + Duration::from_secs(u64::from(second) + 1) <= e) {
                    if let Some(tx) = tx {
                        let _ = tx.send(Msg::Tick(self.rec.tick(second)));
                    }
                }
                second += 1;
            }
            if !stopping && (end.is_some_and(|e| now >= e) || self.budget.is_some_and(|b| self.attempted >= b)) {
                stopping = true;
                stopped_at = now;
            }
            let in_flight: usize = self.conns.iter().map(|c| c.inflight.len()).sum();
            let redo: usize = self.lanes.iter().map(|l| l.redo.len()).sum();
            if stopping && (in_flight + redo == 0 || now >= stopped_at + self.spec.timeout) {
                break;
            }
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING;
                if let Some(why) = self.housekeeping(now, stopping) {
                    aborted = Some(why);
                    stopped_at = now;
                    break;
                }
            }
            if !stopping || redo > 0 {
                self.pump(start, now, stopping);
            }
            let mut wake = next_housekeeping;
            if let Some(e) = end.filter(|_| !stopping) {
                wake = wake.min(e);
            }
            if let (Some(timer), false) = (&self.timer, stopping) {
                // The next intended send, to the nanosecond (poll's own
                // timeout is whole milliseconds).
                let due = self.lanes.iter().filter_map(|l| l.lane.wake_at(start)).min();
                if let Some(due) = due.filter(|&d| d < wake) {
                    timer.arm(due.saturating_duration_since(Instant::now()));
                }
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    aborted = Some(format!("poll failed: {e}"));
                    stopped_at = now;
                    break;
                }
            }
            if self.handle_events(events) {
                last_reply = Instant::now();
            }
        }
        // Whatever is still unanswered after the drain timed out.
        let now = Instant::now();
        for ci in 0..self.conns.len() {
            self.fail_conn(ci, ErrKind::Timeout, now);
        }
        for li in 0..self.lanes.len() {
            let redo = std::mem::take(&mut self.lanes[li].redo);
            self.rec.error(ErrKind::Timeout, redo.len() as u64);
        }
        let elapsed = last_reply.max(stopped_at).saturating_duration_since(start);
        ThreadOut { rec: std::mem::take(&mut self.rec), elapsed, aborted }
    }
}
