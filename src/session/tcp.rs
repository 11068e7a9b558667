//! The sans-IO state machine of one layer-4 relay: a client connection
//! paired with one backend connection.
//!
//! Owner: the worker that accepted the client. The machine never touches a
//! socket or reads the clock: drivers feed it events (`handle_*`, with `now`
//! passed in) and then ask what to do (`poll_transmit`, `poll_intent`,
//! `wants_read`). Invariants:
//! - bytes leave in the order they arrived, per direction;
//! - data a client sends before the backend connects is buffered, so a
//!   failed connect can be retried on another backend without loss;
//! - once `Close` is emitted, no further intents or sends are produced.
//!
//! Its vocabulary (`Side`, `CloseReason`, `Intent`, `Limits`) lives in
//! `tcp_types` and is re-exported here.

use std::time::Instant;

use super::mongo::MongoTracker;
use super::outbuf::OutBuf;
pub use super::tcp_types::{CloseReason, Intent, Limits, Side};
use crate::protocol::mongo::HelloMeta;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    Closed,
}

#[derive(Debug)]
pub struct TcpSession {
    state: State,
    limits: Limits,
    /// `out[side]` holds bytes to be written *to* that side.
    out: [OutBuf; 2],
    /// Read EOF seen from that side.
    eof: [bool; 2],
    /// Write half already shut down (or shutdown requested).
    shut: [bool; 2],
    connect_deadline: Instant,
    last_active: Instant,
    closing: Option<CloseReason>,
    close_emitted: bool,
    /// Message tracking, for mongos pools only (tcp pools pay one branch).
    mongo: Option<Box<MongoTracker>>,
    /// Close at the next message boundary, or at the deadline at the latest.
    retire: Option<(CloseReason, Instant)>,
    /// The backend is chosen only after the first request (affinity "app").
    deferred: bool,
    /// Per-IP limit state of a mongos client (`worker::ip_limits`): while
    /// it waits for tokens the client is not read.
    rate: Option<Box<super::ratelimit::ClientRate>>,
    /// The driver still holds bytes for that side past this session's
    /// buffer (a TLS record queue): a side counts as flushed, for closes
    /// and half-closes, only once these went out too.
    held: [bool; 2],
}

impl TcpSession {
    /// A session whose backend connect starts at `now`.
    pub fn new(limits: Limits, now: Instant) -> Self {
        TcpSession {
            state: State::Connecting,
            limits,
            out: [OutBuf::default(), OutBuf::default()],
            eof: [false; 2],
            shut: [false; 2],
            connect_deadline: now + limits.connect_timeout,
            last_active: now,
            closing: None,
            close_emitted: false,
            mongo: None,
            retire: None,
            deferred: false,
            rate: None,
            held: [false; 2],
        }
    }

    /// Adds mongos message tracking. With `defer_route`, the driver must not
    /// connect until `take_route` returns the handshake (the connect
    /// deadline then bounds the wait for it).
    pub fn with_mongo(mut self, tracker: MongoTracker, defer_route: bool) -> Self {
        self.mongo = Some(Box::new(tracker));
        self.deferred = defer_route;
        self
    }

    /// Queues bytes for the backend ahead of anything the client sends (the
    /// PROXY protocol header). Call before any `handle_data`.
    /// The client's per-IP limit state (its connection count is given
    /// back when the session drops).
    pub fn set_rate(&mut self, rate: super::ratelimit::ClientRate) {
        self.rate = Some(Box::new(rate));
    }

    pub fn rate_mut(&mut self) -> Option<&mut super::ratelimit::ClientRate> {
        self.rate.as_deref_mut()
    }

    pub fn prepend_backend(&mut self, bytes: &[u8]) {
        self.out[Side::Backend as usize].push(bytes);
    }

    pub fn mongo_mut(&mut self) -> Option<&mut MongoTracker> {
        self.mongo.as_deref_mut()
    }

    pub fn is_mongo(&self) -> bool {
        self.mongo.is_some()
    }

    /// Whether the driver must wait for `take_route` before connecting.
    pub fn awaiting_route(&self) -> bool {
        self.deferred
    }

    /// Once the first request arrived whole on a deferred session: the
    /// handshake's metadata (`None` inside when it was not a hello). The
    /// driver then picks the backend and connects. Returns `Some` once.
    pub fn take_route(&mut self) -> Option<Option<HelloMeta>> {
        let m = self.mongo.as_deref().filter(|m| self.deferred && m.handshake_seen())?;
        let meta = m.hello().cloned();
        self.deferred = false;
        Some(meta)
    }

    /// Closes at the next message boundary (between a reply and the next
    /// request), or at `deadline` if none comes. Sessions without message
    /// tracking have no boundaries and close at once.
    pub fn retire(&mut self, reason: CloseReason, deadline: Instant) {
        if self.mongo.is_none() {
            return self.close(reason);
        }
        if self.retire.is_none() {
            self.retire = Some((reason, deadline));
        }
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed || self.closing.is_some()
    }

    /// Restarts the connect clock for a retry on another backend.
    pub fn handle_reconnect(&mut self, now: Instant) {
        if self.state == State::Connecting {
            self.connect_deadline = now + self.limits.connect_timeout;
        }
    }

    pub fn handle_connected(&mut self, now: Instant) {
        if self.state == State::Connecting {
            self.state = State::Open;
            self.last_active = now;
        }
    }

    /// A connect attempt failed; `retry` says whether the driver will try
    /// another backend (then the session stays in `Connecting`).
    pub fn handle_connect_failed(&mut self, errno: i32, retry: bool) {
        if self.state == State::Connecting && !retry {
            self.close(CloseReason::ConnectFailed(errno));
        }
    }

    /// Bytes read from `from`, to be relayed to the other side.
    pub fn handle_data(&mut self, from: Side, data: &[u8], now: Instant) {
        if self.is_closed() || data.is_empty() {
            return;
        }
        self.last_active = now;
        if let Some(m) = self.mongo.as_deref_mut() {
            // Checked before forwarding: a bad header is never passed on.
            if let Err(e) = m.handle_data(from, data, now) {
                return self.close(CloseReason::Protocol(from, e));
            }
        }
        self.out[from.other() as usize].push(data);
    }

    /// Read EOF from `from`.
    pub fn handle_eof(&mut self, from: Side) {
        if self.is_closed() {
            return;
        }
        // A client EOF while connecting keeps connecting: the buffered
        // request may still deserve an answer (`printf 'PING\r\n' | nc`).
        self.eof[from as usize] = true;
    }

    pub fn handle_error(&mut self, side: Side, errno: i32) {
        self.close(CloseReason::Error(side, errno));
    }

    /// `n` bytes of the in-flight send to `to` were written.
    pub fn handle_sent(&mut self, to: Side, n: usize, now: Instant) {
        if self.out[to as usize].in_flight() {
            self.out[to as usize].complete(n);
        }
        if n > 0 {
            self.last_active = now;
        }
    }

    /// Checks deadlines. Call on every timer tick.
    pub fn handle_tick(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if let Some(r) = self.rate.as_deref_mut().filter(|r| r.wait.is_some_and(|at| at <= now)) {
            r.wait = None;
        }
        if let Some((reason, deadline)) = self.retire {
            if now >= deadline {
                return self.close(reason);
            }
        }
        if self.state == State::Connecting && now >= self.connect_deadline {
            self.close(CloseReason::ConnectTimeout);
        } else if let Some(idle) = self.limits.idle_timeout {
            if now.duration_since(self.last_active) >= idle {
                self.close(CloseReason::IdleTimeout);
            }
        }
    }

    /// Forced close (shutdown deadline, backend removed...).
    pub fn close(&mut self, reason: CloseReason) {
        if self.closing.is_none() {
            self.closing = Some(reason);
        }
    }

    /// Bytes to write to `to` now, pinned until `handle_sent`. Nothing is sent
    /// to the backend before it is connected.
    pub fn poll_transmit(&mut self, to: Side) -> Option<&[u8]> {
        if self.is_closed() || self.shut[to as usize] {
            return None;
        }
        if to == Side::Backend && self.state != State::Open {
            return None;
        }
        self.out[to as usize].start_send_slice()
    }

    /// Whether the driver should keep reading from `side`: false after EOF,
    /// after close, or while the other direction is backed up.
    pub fn wants_read(&self, side: Side) -> bool {
        !self.is_closed()
            && !self.eof[side as usize]
            && (side == Side::Client || self.state == State::Open)
            && self.out[side.other() as usize].len() < self.limits.high_water
            && !(side == Side::Client && (self.retiring_at_client_boundary() || self.rate_waiting()))
    }

    fn rate_waiting(&self) -> bool {
        self.rate.as_deref().is_some_and(|r| r.wait.is_some())
    }

    /// Retiring, and the client is between requests: take no new request.
    fn retiring_at_client_boundary(&self) -> bool {
        self.retire.is_some() && self.mongo.as_deref().is_some_and(|m| m.client_at_boundary())
    }

    /// The driver holds (`true`) or no longer holds bytes for `side` beyond
    /// what `poll_transmit` gave it: ciphertext of a TLS socket not yet
    /// written. Closes and half-closes wait for them like for the
    /// session's own buffer.
    pub fn set_held(&mut self, side: Side, held: bool) {
        self.held[side as usize] = held;
    }

    /// Whether a send to `side` is in flight (the driver must wait for it).
    pub fn sending(&self, side: Side) -> bool {
        self.out[side as usize].in_flight()
    }

    /// The next decision, if any. Call until `None` after each event.
    pub fn poll_intent(&mut self) -> Option<Intent> {
        if self.close_emitted {
            return None;
        }
        if let Some(reason) = self.closing {
            self.close_emitted = true;
            self.state = State::Closed;
            return Some(Intent::Close(reason));
        }
        let flushed = |s: &Self, side: Side| s.out[side as usize].is_empty() && !s.held[side as usize];
        if let Some((reason, _)) = self.retire {
            let quiet = self.mongo.as_deref().is_none_or(|m| m.at_boundary());
            if quiet && flushed(self, Side::Client) && flushed(self, Side::Backend) {
                self.closing = Some(reason);
                return self.poll_intent();
            }
        }
        // A client that leaves before its handshake chose a backend.
        if self.deferred && self.eof[Side::Client as usize] {
            self.closing = Some(CloseReason::Done);
            return self.poll_intent();
        }
        // Backend gone: flush what it sent, then close the client.
        if self.eof[Side::Backend as usize] && flushed(self, Side::Client) {
            self.closing =
                Some(if self.eof[Side::Client as usize] { CloseReason::Done } else { CloseReason::BackendClosed });
            return self.poll_intent();
        }
        // Client done sending: half-close the backend once its bytes are out,
        // and keep relaying the backend's answer until it closes.
        if self.state == State::Open
            && self.eof[Side::Client as usize]
            && !self.shut[Side::Backend as usize]
            && flushed(self, Side::Backend)
        {
            self.shut[Side::Backend as usize] = true;
            return Some(Intent::ShutdownWrite(Side::Backend));
        }
        None
    }

    /// Whether a connect is still pending at or past its deadline. A driver
    /// that times connects on its own clock (epoll's tick) calls this to
    /// fail the attempt, and so retry elsewhere, before `handle_tick` would
    /// close the session for it.
    pub fn connect_expired(&self, now: Instant) -> bool {
        !self.is_closed() && self.state == State::Connecting && now >= self.connect_deadline
    }

    /// The earliest instant at which `handle_tick` could change something:
    /// the connect deadline, the idle deadline, or a retiring session's
    /// deadline. With `connect_timed` the driver bounds the in-flight
    /// connect itself (io_uring links a timeout to it, and a timed-out
    /// attempt is retried on another backend), so the connect deadline is
    /// left out. Drivers arm one timer per session at this instant and
    /// call `handle_tick` when it fires; activity only moves the deadline
    /// later, so a timer that fires early is simply re-armed.
    pub fn next_deadline(&self, connect_timed: bool) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let own = match self.state {
            State::Connecting if connect_timed => None,
            State::Connecting => Some(self.connect_deadline),
            State::Open => self.limits.idle_timeout.map(|d| self.last_active + d),
            State::Closed => None,
        };
        let retire = self.retire.map(|(_, d)| d);
        let wait = self.rate.as_deref().and_then(|r| r.wait);
        [own, retire, wait].into_iter().flatten().min()
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
