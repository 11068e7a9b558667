//! The receiving half of the engine: poll events (connects completing,
//! replies arriving), what each reply means for its request (including
//! Redis Cluster redirects), failing connections, and the deadlines.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::Events;

use super::{Engine, GIVE_UP_AFTER, MAX_REDIRECTS};
use crate::bench::cluster::SlotMap;
use crate::bench::codec::Outcome;
use crate::bench::conn::{InFlight, ReadResult, State};
use crate::bench::record::ErrKind;

impl Engine<'_> {
    /// Handles a poll's events; true if any reply arrived.
    pub(super) fn handle_events(&mut self, events: &Events) -> bool {
        let mut replied = false;
        for ev in events.iter() {
            if ev.token() == super::TIMER {
                if let Some(t) = &self.timer {
                    t.clear();
                }
                continue;
            }
            let ci = ev.token().0;
            let Some(c) = self.conns.get_mut(ci) else { continue };
            let now = Instant::now();
            match c.state {
                State::Down => {}
                State::Connecting => match c.check_connected(self.poll.registry(), now) {
                    Some(Ok(())) => {
                        let li = c.lane;
                        self.mark(li);
                        self.flush(ci, now);
                    }
                    Some(Err(_)) => self.rec.error(ErrKind::Connect, 1),
                    None => {}
                },
                State::Up => {
                    if ev.is_writable() {
                        self.flush(ci, now);
                    }
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        replied |= self.read(ci);
                    }
                }
            }
        }
        replied
    }

    /// Reads and settles replies on `ci`; true if any arrived.
    pub(super) fn read(&mut self, ci: usize) -> bool {
        let res = self.conns[ci].read(&mut self.scratch);
        let now = Instant::now();
        let (n, closed) = match res {
            ReadResult::Data(n) => (n, None),
            ReadResult::Eof(n) => (n, Some(ErrKind::Closed)),
            ReadResult::Failed(_) => (0, Some(ErrKind::Closed)),
        };
        self.rec.counts.bytes_in += n as u64;
        let mut any = false;
        loop {
            let c = &mut self.conns[ci];
            let Some(head) = c.inflight.front().copied() else {
                if !c.rbuf.is_empty() {
                    // Bytes nobody asked for: the stream is out of step.
                    self.fail_conn(ci, ErrKind::Protocol, now);
                    return any;
                }
                break;
            };
            match c.dec.decode(&self.spec.wire, &mut c.rbuf, &head.op, head.req_id) {
                Ok(Some(outcome)) => {
                    c.inflight.pop_front();
                    any = true;
                    self.settle(ci, head, outcome, now);
                }
                Ok(None) => break,
                Err(_) => {
                    self.fail_conn(ci, ErrKind::Protocol, now);
                    return any;
                }
            }
        }
        if let Some(kind) = closed {
            self.fail_conn(ci, kind, now);
        }
        any
    }

    /// Records what the reply to `req` on `ci` meant.
    pub(super) fn settle(&mut self, ci: usize, req: InFlight, outcome: Outcome, now: Instant) {
        let li = self.conns[ci].lane;
        if !req.measured {
            return;
        }
        let redirect = match outcome {
            Outcome::Moved { slot, addr } => Some((slot, addr, false)),
            Outcome::Ask { slot, addr } => Some((slot, addr, true)),
            _ => None,
        };
        if let Some((slot, addr, ask)) = redirect {
            if req.redirects >= MAX_REDIRECTS {
                self.rec.error(ErrKind::Redirect, 1);
            } else {
                let node = if ask {
                    self.rec.counts.ask += 1;
                    self.map.node_index(addr)
                } else {
                    self.rec.counts.moved += 1;
                    let node = self.map.patch(slot, addr);
                    self.refresh(addr, now);
                    node
                };
                self.lanes[li].redo.push((InFlight { redirects: req.redirects + 1, ..req }, node, ask));
                self.mark(li);
                return;
            }
        } else {
            match outcome {
                Outcome::Ok | Outcome::Hit | Outcome::Miss => {
                    let ns = |from: Instant| now.saturating_duration_since(from).as_nanos() as u64;
                    self.rec.reply(ns(req.intended), ns(req.sent));
                    self.rec.counts.hits += u64::from(outcome == Outcome::Hit);
                    self.rec.counts.misses += u64::from(outcome == Outcome::Miss);
                }
                Outcome::Mismatch => self.rec.error(ErrKind::Mismatch, 1),
                _ => self.rec.error(ErrKind::Server, 1),
            }
        }
        self.lanes[li].lane.done();
        self.mark(li);
    }

    /// After a MOVED: re-reads the whole slot map from the node it named,
    /// at most every 100 ms (one MOVED usually means many slots moved).
    pub(super) fn refresh(&mut self, addr: SocketAddr, now: Instant) {
        if self.last_refresh.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(100)) {
            return;
        }
        self.last_refresh = Some(now);
        if let Ok(fresh) = SlotMap::fetch(addr, self.spec.timeout.min(Duration::from_secs(1))) {
            self.map.refresh(&fresh);
        }
    }

    /// Ends everything in flight on `ci` with `kind` and closes it; it
    /// reconnects on the next housekeeping pass.
    pub(super) fn fail_conn(&mut self, ci: usize, kind: ErrKind, now: Instant) {
        let c = &mut self.conns[ci];
        if c.state == State::Down && c.inflight.is_empty() {
            return;
        }
        let li = c.lane;
        let lost = c.inflight.drain(..).filter(|r| r.measured).count();
        c.close(self.poll.registry());
        c.retry_at = now;
        self.rec.error(kind, lost as u64);
        for _ in 0..lost {
            self.lanes[li].lane.done();
        }
        self.mark(li);
    }

    /// Deadlines: connect and request timeouts, reconnects. Returns why the
    /// run must give up, if every connection keeps failing to connect.
    pub(super) fn housekeeping(&mut self, now: Instant, stopping: bool) -> Option<String> {
        let timeout = self.spec.timeout;
        for ci in 0..self.conns.len() {
            let c = &mut self.conns[ci];
            match c.state {
                State::Connecting if now.saturating_duration_since(c.since) >= timeout => {
                    c.connect_failed(self.poll.registry(), now, format!("connect timed out after {timeout:?}"));
                    self.rec.error(ErrKind::Connect, 1);
                }
                State::Up if c.inflight.front().is_some_and(|r| now.saturating_duration_since(r.sent) >= timeout) => {
                    self.fail_conn(ci, ErrKind::Timeout, now);
                }
                State::Down if !stopping && now >= c.retry_at => self.reconnect(ci, now),
                _ => {}
            }
        }
        let hopeless =
            !self.conns.is_empty() && self.conns.iter().all(|c| c.state != State::Up && c.failures >= GIVE_UP_AFTER);
        hopeless.then(|| {
            let c = &self.conns[0];
            format!(
                "{}: every connection failed to connect {GIVE_UP_AFTER} times ({})",
                c.addr,
                c.last_error.as_deref().unwrap_or("unknown error")
            )
        })
    }
}
