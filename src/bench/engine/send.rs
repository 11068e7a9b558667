//! The sending half of the engine: connections per lane and node, slot
//! routing, letting lanes send what their window and pacer allow, and
//! flushing write buffers.

use std::net::SocketAddr;
use std::time::Instant;

use mio::Token;

use super::{Engine, NO_CONN};
use crate::bench::cluster::key_slot;
use crate::bench::codec::Decoder;
use crate::bench::conn::{Conn, InFlight, State};
use crate::bench::keys::put_key;
use crate::bench::record::ErrKind;
use crate::bench::workload::{Op, OpKind};

impl Engine<'_> {
    /// Index of lane `li`'s connection to `node`, created (and connecting)
    /// on first use.
    pub(super) fn conn_for(&mut self, li: usize, node: usize, now: Instant) -> usize {
        let conns = &mut self.lanes[li].conns;
        if conns.len() <= node {
            conns.resize(node + 1, NO_CONN);
        }
        if conns[node] == NO_CONN {
            let ci = self.conns.len();
            conns[node] = ci;
            let addr: SocketAddr = self.map.nodes[node];
            self.conns.push(Conn::new(addr, li, Decoder::new(self.spec.wire.protocol), now));
            self.reconnect(ci, now);
        }
        self.lanes[li].conns[node]
    }

    pub(super) fn reconnect(&mut self, ci: usize, now: Instant) {
        if let Err(_why) = self.conns[ci].connect(self.poll.registry(), Token(ci), now) {
            self.rec.error(ErrKind::Connect, 1);
        }
    }

    /// Node that serves `op`.
    pub(super) fn route(&mut self, op: &Op) -> usize {
        if !self.spec.cluster {
            return 0;
        }
        self.key.clear();
        put_key(&mut self.key, &self.spec.wire.prefix, op.key);
        self.map.node_of(key_slot(&self.key))
    }

    /// Lets lanes send. Closed loop: only lanes whose state changed; open
    /// loop: every lane (its pacer may have come due).
    pub(super) fn pump(&mut self, start: Instant, now: Instant, stopping: bool) {
        let mut lanes = std::mem::take(&mut self.dirty);
        for &li in &lanes {
            self.is_dirty[li] = false;
        }
        if self.spec.shape.is_some() && !stopping {
            lanes.clear();
            lanes.extend(0..self.lanes.len());
        }
        let mut touched = std::mem::take(&mut self.touched);
        for &li in &lanes {
            self.pump_lane(li, start, now, stopping, &mut touched);
        }
        lanes.clear();
        if self.dirty.is_empty() {
            self.dirty = lanes;
        }
        touched.sort_unstable();
        touched.dedup();
        for &ci in &touched {
            self.flush(ci, now);
        }
        touched.clear();
        self.touched = touched;
    }

    /// Queues lane `li` for the next pump (closed loop: only such lanes send).
    pub(super) fn mark(&mut self, li: usize) {
        if !self.is_dirty[li] {
            self.is_dirty[li] = true;
            self.dirty.push(li);
        }
    }

    pub(super) fn pump_lane(
        &mut self,
        li: usize,
        start: Instant,
        now: Instant,
        stopping: bool,
        touched: &mut Vec<usize>,
    ) {
        // Redirected requests already hold a window slot: they go first.
        let mut keep = Vec::new();
        for (req, node, asking) in std::mem::take(&mut self.lanes[li].redo) {
            let ci = self.conn_for(li, node, now);
            if self.conns[ci].state != State::Up {
                keep.push((req, node, asking));
                continue;
            }
            if asking {
                self.write(ci, InFlight { op: Op { kind: OpKind::Asking, key: 0 }, measured: false, ..req }, now);
            }
            self.write(ci, req, now);
            touched.push(ci);
        }
        self.lanes[li].redo = keep;
        while !stopping && self.budget.is_none_or(|b| self.attempted < b) {
            let (op, intended) = match self.lanes[li].pending.take() {
                Some(p) => p,
                None => match self.lanes[li].lane.due(start, now) {
                    Some(t) => (self.gen.next(), t),
                    None => break,
                },
            };
            let node = self.route(&op);
            let ci = self.conn_for(li, node, now);
            if self.conns[ci].state != State::Up {
                if self.lanes[li].lane.is_open() && now.saturating_duration_since(intended) > self.spec.timeout {
                    self.rec.error(ErrKind::Dropped, 1);
                    self.attempted += 1;
                    self.lanes[li].lane.skip(self.spec.shape.as_ref());
                    continue;
                }
                self.lanes[li].pending = Some((op, intended));
                break;
            }
            let intended = if self.lanes[li].lane.is_open() { intended } else { now };
            let req = InFlight { op, intended, sent: now, req_id: 0, redirects: 0, measured: true };
            self.write(ci, req, now);
            self.rec.counts.sent += 1;
            self.attempted += 1;
            self.lanes[li].lane.sent(self.spec.shape.as_ref());
            touched.push(ci);
        }
    }

    /// Encodes `req` onto connection `ci` and queues it as in flight.
    pub(super) fn write(&mut self, ci: usize, mut req: InFlight, now: Instant) {
        let c = &mut self.conns[ci];
        req.req_id = c.next_req_id();
        req.sent = now;
        self.spec.wire.encode(&req.op, req.req_id, &mut c.wbuf);
        c.inflight.push_back(req);
    }

    pub(super) fn flush(&mut self, ci: usize, now: Instant) {
        match self.conns[ci].flush(self.poll.registry(), Token(ci)) {
            Ok(n) => self.rec.counts.bytes_out += n as u64,
            Err(_) => self.fail_conn(ci, ErrKind::Closed, now),
        }
    }
}
