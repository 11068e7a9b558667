//! Per-IP rate limits inside a multiplexing session (mux and cluster
//! sessions alike): the session's `RateGate` holds this core's table of
//! per-IP buckets for its pool and the clients waiting for tokens; each
//! client carries a `ClientRate` (its key, cached table slot, wait).
//!
//! Owner: one session (one pool on one worker). Nothing here reads a
//! clock or does I/O; the only shared write is the worker's own demand
//! counter in `PoolLimits` (relaxed).
//!
//! How a session uses it, per request:
//! - `on_limit = "delay"`: before decoding, `admit`; a client without
//!   tokens gets a `wait` and the session decodes nothing more from it,
//!   and `wants_client_read` says false, so the driver stops reading it
//!   (the same pause as `client_queue_limit`). `due` at the session's
//!   tick hands back the clients whose tokens are back, and the session
//!   decodes them again; `next_deadline` includes the earliest wait, so
//!   the driver's timer fires then.
//! - `"error"` / `"close"`: the request is decoded, then `admit`; without
//!   tokens it is answered with an error (or the client closed) instead of
//!   being forwarded, and nothing is charged.
//! - An admitted request is charged with `charge` (one request, its
//!   inbound bytes).
//!
//! Invariant: a client with `wait` set is listed in `waiting` (stale
//! entries of closed clients are dropped by `due`).

use std::sync::Arc;
use std::time::Instant;

use super::mux::ClientId;
use crate::limit::{Admit, ConnGuard, IpKey, IpTable, Limiter, OnLimit, PoolLimits, RateSpec, DEFAULT_TABLE_ENTRIES};

/// What a session needs to enforce its pool's per-IP rates.
#[derive(Debug, Clone)]
pub struct RateCtx {
    pub pool: Arc<PoolLimits>,
    pub spec: RateSpec,
    pub on_limit: OnLimit,
    /// This worker's index (its share column in `pool`).
    pub worker: usize,
}

/// A client's part: its address key, where its bucket was last found, and
/// whether it waits for tokens.
#[derive(Debug, Default)]
pub struct ClientRate {
    pub key: Option<IpKey>,
    hint: u32,
    share: u32,
    /// Tokens are back then: decode nothing, read nothing until.
    pub wait: Option<Instant>,
    /// The client's place in its address's connection count; dropped (and
    /// given back) with the client.
    pub conn: Option<ConnGuard>,
}

impl ClientRate {
    /// A client from `key`, holding `conn` (when connections are limited).
    pub fn new(key: IpKey, share: u32, conn: Option<ConnGuard>) -> ClientRate {
        ClientRate { key: Some(key), hint: u32::MAX, share, wait: None, conn }
    }
}

/// `admit`'s verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Go,
    /// No tokens: wait (delay mode; `wait` is set).
    Wait,
    /// No tokens: answer an error.
    Error,
    /// No tokens: close the client.
    Close,
}

#[derive(Default)]
pub struct RateGate {
    ctx: Option<RateCtx>,
    table: Option<IpTable>,
    waiting: Vec<(ClientId, Instant)>,
    /// Requests delayed, refused or closed for lack of tokens.
    pub limited: u64,
}

impl RateGate {
    /// The pool's rates (`None`: not limited). A changed rate starts every
    /// bucket over.
    pub fn set(&mut self, ctx: Option<RateCtx>) {
        let same = match (&self.ctx, &ctx) {
            (Some(a), Some(b)) => a.spec == b.spec && Arc::ptr_eq(&a.pool, &b.pool),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.table = ctx.as_ref().map(|_| IpTable::new(DEFAULT_TABLE_ENTRIES));
        }
        self.ctx = ctx.filter(|c| c.spec.is_limited());
    }

    /// What the pool does past its rate (`None`: no rate is limited).
    pub fn on_limit(&self) -> Option<OnLimit> {
        self.ctx.as_ref().map(|c| c.on_limit)
    }

    /// Whether a request of a client may go now. In delay mode a refusal
    /// sets `c.wait` and lists the client.
    #[inline]
    fn admit(&mut self, id: ClientId, c: &mut ClientRate, now: Instant) -> Gate {
        let (Some(ctx), Some(table), Some(key)) = (&self.ctx, &mut self.table, c.key) else { return Gate::Go };
        let pool = &ctx.pool;
        let (spec, worker, share) = (&ctx.spec, ctx.worker, c.share);
        let fresh = || Limiter::new(spec, pool.share(worker, share), now);
        let (hint, share, lim) = table.get(key, c.hint, share, fresh);
        c.hint = hint;
        pool.note_demand(worker, share);
        match lim.admit(spec, pool.share(worker, share), now) {
            Admit::Go => Gate::Go,
            Admit::Wait(at) => {
                self.limited += 1;
                match ctx.on_limit {
                    OnLimit::Delay => {
                        c.wait = Some(at);
                        self.waiting.push((id, at));
                        Gate::Wait
                    }
                    OnLimit::Error => Gate::Error,
                    OnLimit::Close => Gate::Close,
                }
            }
        }
    }

    /// Charges an admitted request of `bytes` inbound bytes.
    #[inline]
    fn charge(&mut self, c: &mut ClientRate, bytes: usize, now: Instant) {
        let (Some(ctx), Some(table), Some(key)) = (&self.ctx, &mut self.table, c.key) else { return };
        let spec = &ctx.spec;
        let share = ctx.pool.share(ctx.worker, c.share);
        let (hint, _, lim) = table.get(key, c.hint, c.share, || Limiter::new(spec, share, now));
        c.hint = hint;
        lim.charge(spec, bytes);
    }

    /// Before decoding: false when the client must not be decoded now (it
    /// waits for tokens; in delay mode, with bytes `buffered`, this is
    /// where it starts to).
    #[inline]
    pub fn before_decode(&mut self, id: ClientId, c: Option<&mut ClientRate>, buffered: bool, now: Instant) -> bool {
        let Some(c) = c else { return true };
        if c.wait.is_some() {
            return false;
        }
        if !buffered || self.on_limit() != Some(OnLimit::Delay) {
            return true;
        }
        self.admit(id, c, now) != Gate::Wait
    }

    /// A request of `bytes` inbound bytes was decoded: in error and close
    /// modes it is judged now; one that goes is charged.
    #[inline]
    pub fn decoded(&mut self, id: ClientId, c: Option<&mut ClientRate>, bytes: usize, now: Instant) -> Gate {
        let Some(c) = c else { return Gate::Go };
        let gate = match self.on_limit() {
            None => return Gate::Go,
            Some(OnLimit::Delay) => Gate::Go,
            Some(_) => self.admit(id, c, now),
        };
        if gate == Gate::Go {
            self.charge(c, bytes, now);
        }
        gate
    }

    /// Clients whose wait ended by `now` (`wait_of` looks a live client's
    /// wait up; stale entries go).
    pub fn due(&mut self, now: Instant, wait_of: impl Fn(ClientId) -> Option<Instant>) -> Vec<ClientId> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        let mut due = Vec::new();
        self.waiting.retain(|&(id, at)| {
            if wait_of(id) != Some(at) {
                return false;
            }
            if at <= now {
                due.push(id);
                return false;
            }
            true
        });
        due
    }

    /// The earliest wait to end.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|&(_, at)| at).min()
    }
}
