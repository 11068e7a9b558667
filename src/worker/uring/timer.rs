//! Deadlines in the io_uring driver: one timeout op per connection for the
//! session's idle / retire / deferred-route deadline, and one for the
//! worker's drain deadline, and the one deadline timer of the multiplexed
//! sessions (`mux_arm_timer`, `mux_tick`). Connects carry their own linked
//! timeout (`relay::connect`).
//!
//! Owner: the worker's `UringDriver` (a third `impl` block of it).
//! Why not a linked timeout for idle too: a linked timeout bounds the op it
//! is linked to, and the recv here is multishot (armed once, completing
//! many times), so a link would cap the connection's whole life rather than
//! its silence. Instead each connection with a deadline has one plain
//! `IORING_OP_TIMEOUT` armed at `TcpSession::next_deadline`; traffic only
//! moves that deadline later, so nothing is re-armed per request: a timer
//! that fires early finds the session not yet due and is armed again for
//! the remainder. A connection without a deadline (no `idle_timeout`) has
//! no timer at all, and an idle worker sleeps until an event arrives.
//! Invariants: at most one timer per connection is in the kernel; it is
//! counted in `Conn::ops` like every op referencing the conn; closing
//! removes it, and the conn is freed only after its completion arrived.

use std::time::Instant;

use io_uring::{opcode, types};

use super::tag::Tag;
use super::UringDriver;
use crate::worker::mux_drive::MuxIo;
use crate::worker::relay_tls;

impl UringDriver {
    /// Makes the connection's timer match its session's next deadline:
    /// arms one if none is armed, and replaces one armed for a later
    /// instant (a retire deadline can come before the idle one).
    pub(super) fn sync_timer(&mut self, slot: u32, now: Instant) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        // An in-flight connect is bounded by its linked timeout.
        let connect_in_flight = !c.r.session.is_open() && c.fds[1] >= 0;
        let Some(due) = relay_tls::next_deadline(&c.r, connect_in_flight) else { return };
        let gen = c.gen;
        match c.timer_at {
            // Fires no later than needed; re-armed lazily when it does.
            Some(at) if at <= due => {}
            Some(_) if c.timer_removing => {}
            Some(_) => {
                c.timer_removing = true;
                let e = opcode::TimeoutRemove::new(Tag::Timer.ud(slot, gen)).build().user_data(Tag::Cancel.bare());
                self.push(e);
            }
            None => {
                // A relative timeout: the kernel copies the timespec when it
                // takes the SQE, and the box outlives the op (ops > 0).
                *c.timer_ts = types::Timespec::from(due.saturating_duration_since(now));
                let ts = &*c.timer_ts as *const types::Timespec;
                c.timer_at = Some(due);
                c.ops += 1;
                self.push(opcode::Timeout::new(ts).build().user_data(Tag::Timer.ud(slot, gen)));
            }
        }
    }

    /// The connection's timer completed: fired (-ETIME) or removed
    /// (-ECANCELED). Either way the session is checked and a timer armed
    /// again for whatever deadline it now has.
    pub(super) fn on_timer(&mut self, slot: u32, gen: u16, now: Instant) {
        let Some(c) = self.conns.get_gen(slot, gen) else { return };
        c.ops -= 1;
        c.timer_at = None;
        c.timer_removing = false;
        if c.closing.is_some() {
            return self.maybe_finish(slot);
        }
        relay_tls::tick(&mut c.r, now, &*self.core.stats);
        self.pump(slot, now);
    }

    /// On close: takes the connection's timer out of the kernel (its
    /// completion then frees the conn, see `maybe_finish`).
    pub(super) fn remove_timer(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.timer_at.is_some() && !c.timer_removing {
            c.timer_removing = true;
            let e = opcode::TimeoutRemove::new(Tag::Timer.ud(slot, c.gen)).build().user_data(Tag::Cancel.bare());
            self.push(e);
        }
    }

    /// Once draining: one timeout at the drain deadline, so a worker whose
    /// connections stay silent still wakes to force-close them.
    pub(super) fn arm_drain_timer(&mut self, now: Instant) {
        let Some(deadline) = self.core.drain_deadline else { return };
        if self.drain_armed {
            return;
        }
        self.drain_armed = true;
        *self.drain_ts = types::Timespec::from(deadline.saturating_duration_since(now));
        let e = opcode::Timeout::new(&*self.drain_ts).build().user_data(Tag::Drain.bare());
        self.push(e);
    }

    /// Arms a one-shot timeout for the earliest session deadline, unless one
    /// at least as early is armed already.
    pub(super) fn mux_arm_timer(&mut self, now: Instant) {
        let Some(d) = self.mux.next_deadline() else { return };
        if self.mux_timer.is_some_and(|(t, _)| t <= d) {
            return;
        }
        let seq = self.mux_timer.map_or(0, |(_, s)| s.wrapping_add(1));
        self.mux_timer = Some((d, seq));
        let wait = d.saturating_duration_since(now);
        *self.mux_ts = types::Timespec::from(wait);
        let sqe = opcode::Timeout::new(&*self.mux_ts).build().user_data(Tag::MuxTimer.ud(seq, 0));
        self.push(sqe);
    }

    /// The deadline timer (`seq`) or the periodic tick fired: check every
    /// session's deadlines.
    pub(super) fn mux_tick(&mut self, seq: Option<u32>, now: Instant) {
        if let (Some(seq), Some((_, armed))) = (seq, self.mux_timer) {
            if seq == armed {
                self.mux_timer = None;
            }
        }
        if seq.is_none() && self.core.any_tls() {
            self.mux_expire_handshakes(now);
        }
        self.mux_tick_sessions(seq.is_none(), now);
        if seq.is_none() {
            self.mux_free_send_copies();
            self.mux_park_idle_backends();
            if !self.mux_linger.is_empty() {
                self.mux_linger_expire(now);
            }
        }
        self.mux_flush(now);
    }
}
