//! Per-IP and per-user rate limits inside a multiplexing session (mux and
//! cluster sessions alike): the session's `RateGate` holds this core's
//! table of per-IP buckets for its pool, the process-wide `UserLimits`
//! (whose slots for this worker only this worker writes) and the clients
//! waiting for tokens; each client carries a `ClientRate` (its key,
//! cached table slot, wait).
//!
//! A request must find tokens in its address's buckets and in its user's
//! (the client's user when the request is decoded: a client's AUTH is
//! charged to the user it was before). The pool's `on_limit` applies to
//! both. Every request of a user that goes ahead is counted for the
//! user's metrics (requests, inbound bytes), limited or not; without
//! limits, per read batch (`flush_counts`).
//!
//! Owner: one session (one pool on one worker). Nothing here reads a
//! clock or does I/O; the only shared writes are the worker's own demand
//! counters in `PoolLimits` and its own slots in `UserLimits` (relaxed,
//! single writer).
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
use crate::acl::User;
use crate::limit::{
    Admit, ConnGuard, IpKey, IpTable, Limiter, OnLimit, PoolLimits, RateSpec, UserLimits, DEFAULT_TABLE_ENTRIES,
};

/// What a session needs to enforce its pool's per-IP rates and its
/// users' limits.
#[derive(Debug, Clone)]
pub struct RateCtx {
    /// The pool's per-IP state and rates (`None`: no per-IP rate).
    pub ip: Option<(Arc<PoolLimits>, RateSpec)>,
    /// Every user's limits and counters (`None`: the pool has no users).
    pub users: Option<Arc<UserLimits>>,
    pub on_limit: OnLimit,
    /// This worker's index (its share column in `pool`, its user slots).
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

    /// Where its bucket was last found, and its share slot (mongos relays
    /// keep their table in the worker, `worker::ip_limits`).
    pub fn hint(&self) -> u32 {
        self.hint
    }
    pub fn set_hint(&mut self, hint: u32) {
        self.hint = hint;
    }
    pub fn share(&self) -> u32 {
        self.share
    }

    /// The user id a request of this client is charged to: the client's
    /// user (its AUTH or certificate user, or its `source` user in
    /// memcache pools, `session::mux::identity`).
    #[inline]
    pub fn user_id(&self, user: Option<&Arc<User>>) -> u32 {
        user.map_or(crate::acl::NO_ID, |u| u.id)
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
    /// Requests delayed, refused or closed for lack of tokens in their
    /// address's buckets.
    pub limited: u64,
    /// ... in any bucket (address or user), each request counted once.
    pub limited_any: u64,
    /// Some bucket can refuse (a per-IP rate, or a user with limits);
    /// without, requests are only counted for their users.
    admits: bool,
    /// Requests counted for a user but not yet added to its counters.
    tally: Tally,
}

/// One user's requests and inbound bytes since the last `flush_counts`:
/// a read batch's requests, usually all of one client, are summed here
/// and added to the user's shared counters once.
#[derive(Debug, Default)]
struct Tally {
    user: u32,
    requests: u64,
    bytes: u64,
}

impl RateGate {
    /// The pool's rates (`None`: not limited). A changed per-IP rate
    /// starts every address's bucket over (users' buckets live in
    /// `UserLimits`, which a reload replaces only when they changed).
    pub fn set(&mut self, ctx: Option<RateCtx>) {
        // Counted under the old users' numbering.
        self.flush_counts();
        let ip = |c: &Option<RateCtx>| c.as_ref().and_then(|c| c.ip.clone()).filter(|(_, s)| s.is_limited());
        let same = match (ip(&self.ctx), ip(&ctx)) {
            (Some(a), Some(b)) => a.1 == b.1 && Arc::ptr_eq(&a.0, &b.0),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.table = ip(&ctx).map(|_| IpTable::new(DEFAULT_TABLE_ENTRIES));
        }
        self.ctx = ctx
            .map(|mut c| {
                c.ip = c.ip.filter(|(_, s)| s.is_limited());
                c
            })
            .filter(|c| c.ip.is_some() || c.users.is_some());
        self.admits =
            self.ctx.as_ref().is_some_and(|c| c.ip.is_some() || c.users.as_ref().is_some_and(|u| u.any_limited()));
    }

    /// What the pool does past its rate (`None`: no rate is limited).
    pub fn on_limit(&self) -> Option<OnLimit> {
        self.ctx.as_ref().map(|c| c.on_limit)
    }

    /// A client's limit state, made when the pool has users and the
    /// client none yet (its waits live there); `None` when nothing limits
    /// or counts this client.
    #[inline]
    pub fn client<'a>(&self, slot: &'a mut Option<Box<ClientRate>>) -> Option<&'a mut ClientRate> {
        if slot.is_none() && self.ctx.as_ref().is_some_and(|c| c.users.is_some()) {
            *slot = Some(Box::default());
        }
        slot.as_deref_mut()
    }

    /// Counts a request of user `user` (`acl::User::id`) refused by its
    /// ACL (NOPERM).
    #[inline]
    pub fn note_denied(&self, user: Option<u32>) {
        if let (Some(ctx), Some(u)) = (&self.ctx, user) {
            if let Some(l) = &ctx.users {
                l.note_denied(ctx.worker, u);
            }
        }
    }

    /// Whether a request of a client (of user `user`) may go now. In delay
    /// mode a refusal sets `c.wait` and lists the client.
    #[inline]
    fn admit(&mut self, id: ClientId, c: &mut ClientRate, user: u32, now: Instant) -> Gate {
        let Some(ctx) = &self.ctx else { return Gate::Go };
        let worker = ctx.worker;
        let mut wait = None;
        if let (Some((pool, spec)), Some(table), Some(key)) = (&ctx.ip, &mut self.table, c.key) {
            let fresh = || Limiter::new(spec, pool.share(worker, c.share), now);
            let (hint, share, lim) = table.get(key, c.hint, c.share, fresh);
            c.hint = hint;
            pool.note_demand(worker, share);
            if let Admit::Wait(at) = lim.admit(spec, pool.share(worker, share), now) {
                self.limited += 1;
                wait = Some(at);
            }
        }
        // The user's bucket only when the address let it through, so a
        // user's refusals count only what the user's limit refused.
        if let (None, Some(users)) = (wait, &ctx.users) {
            if let Admit::Wait(at) = users.admit(worker, user, now) {
                wait = Some(at);
            }
        }
        let Some(at) = wait else { return Gate::Go };
        self.limited_any += 1;
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

    /// Charges an admitted request of `bytes` inbound bytes to its address
    /// and its user (and counts it for the user).
    #[inline]
    fn charge(&mut self, c: &mut ClientRate, user: u32, bytes: usize, now: Instant) {
        let Some(ctx) = &self.ctx else { return };
        if let (Some((pool, spec)), Some(table), Some(key)) = (&ctx.ip, &mut self.table, c.key) {
            let share = pool.share(ctx.worker, c.share);
            let (hint, _, lim) = table.get(key, c.hint, c.share, || Limiter::new(spec, share, now));
            c.hint = hint;
            lim.charge(spec, bytes);
        }
        if let Some(users) = &ctx.users {
            users.charge(ctx.worker, user, bytes, now);
        }
    }

    /// Before decoding: false when the client must not be decoded now (it
    /// waits for tokens; in delay mode, with bytes `buffered`, this is
    /// where it starts to).
    #[inline]
    pub fn before_decode(
        &mut self,
        id: ClientId,
        c: Option<&mut ClientRate>,
        user: Option<&Arc<User>>,
        buffered: bool,
        now: Instant,
    ) -> bool {
        let Some(c) = c else { return true };
        if c.wait.is_some() {
            return false;
        }
        if !buffered || !self.admits || self.on_limit() != Some(OnLimit::Delay) {
            return true;
        }
        let user = c.user_id(user);
        self.admit(id, c, user, now) != Gate::Wait
    }

    /// A request of `bytes` inbound bytes was decoded: in error and close
    /// modes it is judged now; one that goes is charged. When nothing can
    /// refuse (no per-IP rate, no user with limits: the common case with
    /// users) it is only counted for its user, in the session's tally
    /// until `flush_counts`, which the session calls before it hands
    /// control back to its driver.
    #[inline(always)]
    pub fn decoded(
        &mut self,
        id: ClientId,
        c: Option<&mut ClientRate>,
        user: Option<&Arc<User>>,
        bytes: usize,
        now: Instant,
    ) -> Gate {
        let Some(c) = c else { return Gate::Go };
        let user = c.user_id(user);
        if !self.admits {
            let t = &mut self.tally;
            if t.user == user {
                t.requests = t.requests.wrapping_add(1);
                t.bytes = t.bytes.wrapping_add(bytes as u64);
            } else {
                self.tally_switch(user, bytes);
            }
            return Gate::Go;
        }
        self.decoded_limited(id, c, user, bytes, now)
    }

    /// A request of another user than the tally's: the tally is flushed
    /// and starts over with it.
    #[cold]
    #[inline(never)]
    fn tally_switch(&mut self, user: u32, bytes: usize) {
        self.flush_counts();
        self.tally = Tally { user, requests: 1, bytes: bytes as u64 };
    }

    /// Adds the tally to its user's counters (`UserLimits`, read by the
    /// metrics), and empties it. Sessions call it at the end of each read
    /// batch, so the counters are exact whenever the driver runs.
    #[inline]
    pub fn flush_counts(&mut self) {
        if self.tally.requests == 0 {
            return;
        }
        if let Some((users, worker)) = self.ctx.as_ref().and_then(|x| Some((x.users.as_ref()?, x.worker))) {
            users.count(worker, self.tally.user, self.tally.requests, self.tally.bytes);
        }
        self.tally.requests = 0;
        self.tally.bytes = 0;
    }

    /// `decoded` when some bucket can refuse.
    #[inline(never)]
    fn decoded_limited(&mut self, id: ClientId, c: &mut ClientRate, user: u32, bytes: usize, now: Instant) -> Gate {
        let gate = match self.on_limit() {
            None => return Gate::Go,
            Some(_) if !self.admits => Gate::Go,
            Some(OnLimit::Delay) => Gate::Go,
            Some(_) => self.admit(id, c, user, now),
        };
        if gate == Gate::Go {
            self.charge(c, user, bytes, now);
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
