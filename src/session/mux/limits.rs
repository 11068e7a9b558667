//! Byte bounds on what one client makes Puerta hold, shared by the mux
//! and cluster sessions (both keep their clients in `client::Client`).
//!
//! Two bounds, after DESIGN §5 ("bytes, not counts, bound memory"):
//! - **toward backends** (`client_queue_limit`): request bytes a client has
//!   queued or in flight. Once at or past the limit, the session decodes
//!   nothing more from that client and the driver stops reading it; reads
//!   resume as bytes drain (a reply leaves for the client, a `noreply`
//!   request is written to its server). The check runs *before* each
//!   request is decoded, so a client with nothing queued can always send
//!   one request, however large (up to `max_request_bytes`): a request
//!   larger than the limit is served alone, never deadlocked.
//! - **toward the client** (`client_output_limit`, Redis's
//!   `client-output-buffer-limit`): reply bytes buffered for a client,
//!   unsent or waiting behind an earlier reply. A backend connection is
//!   shared, so it is never stalled for one slow reader; the bound ends in
//!   closing that client: at once at `hard`, or once it has stayed at or
//!   past `soft` for `soft_for` without a break (the timer restarts when
//!   the buffer drops below `soft`, as Redis's does).
//!
//! `Budget` keeps a session's running total of buffered reply bytes (for
//! the process-wide `max_buffered_bytes`) and the few clients whose soft
//! timer runs (for `next_deadline`). Invariant: `total` equals the sum of
//! `Client::buffered()` over the session's live clients, because every
//! change to a client's buffered bytes goes through `settle` (with the
//! value before the change) and every close through `forget`.
//! Nothing here reads a clock: `now` is passed in.
//!
//! `rate_refusal` turns a per-IP rate limit's verdict (`session::ratelimit`)
//! into the session's answer, for the mux and cluster sessions.

use std::time::Instant;

use bytes::Bytes;

use super::client::Client;
use super::dispatch::Plan;
use super::types::{ClientClose, ClientId, Protocol};
pub use crate::config::{OutputLimit, DEFAULT_CLIENT_QUEUE_LIMIT};
use crate::session::ratelimit::{ClientRate, Gate, RateGate};

/// One session's reply-byte accounting.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// Reply bytes buffered for every live client (`Client::buffered`).
    total: usize,
    /// Clients whose soft timer runs (`Client::soft_since` is set).
    soft: Vec<ClientId>,
}

impl Budget {
    pub fn total(&self) -> usize {
        self.total
    }

    /// Clients whose soft timer runs.
    #[cfg(test)]
    pub fn soft_clients(&self) -> &[ClientId] {
        &self.soft
    }

    /// Accounts a change of `c`'s buffered bytes from `before` and judges
    /// it; true when the client must be closed (past `hard`, or past
    /// `soft` for `soft_for`). `now` is `None` only before the session saw
    /// any time; a soft timer then starts at the next judged change.
    #[inline(always)]
    pub fn settle(
        &mut self,
        lim: &OutputLimit,
        id: ClientId,
        c: &mut Client,
        before: usize,
        now: Option<Instant>,
    ) -> bool {
        let after = c.buffered();
        // `before` was counted in `total`, so this cannot underflow.
        self.total = self.total - before + after;
        // The common case: below every limit with no soft timer running.
        if after < lim.floor() && c.soft_since.is_none() {
            return false;
        }
        if lim.hard > 0 && after >= lim.hard {
            return true;
        }
        if lim.soft > 0 && after >= lim.soft {
            match (c.soft_since, now) {
                (Some(t), Some(now)) => return now.saturating_duration_since(t) >= lim.soft_for,
                (None, Some(now)) => {
                    c.soft_since = Some(now);
                    self.soft.push(id);
                    return lim.soft_for.is_zero();
                }
                (_, None) => {}
            }
        } else if c.soft_since.take().is_some() {
            self.soft.retain(|&x| x != id);
        }
        false
    }

    /// Drops a closing client's bytes and timer.
    pub fn forget(&mut self, id: ClientId, c: &Client) {
        self.total -= c.buffered();
        if c.soft_since.is_some() {
            self.soft.retain(|&x| x != id);
        }
    }
}

impl Budget {
    /// The clients whose soft timer ran out by `now`; `since` looks up a
    /// live client's `soft_since` (the mux and cluster sessions keep their
    /// clients differently).
    pub fn soft_due(
        &self,
        lim: &OutputLimit,
        now: Instant,
        since: impl Fn(ClientId) -> Option<Instant>,
    ) -> Vec<ClientId> {
        let due = |id: &&ClientId| since(**id).is_some_and(|t| t + lim.soft_for <= now);
        self.soft.iter().filter(due).copied().collect()
    }

    /// The earliest instant a soft timer runs out, for `next_deadline`.
    pub fn next_soft_deadline(
        &self,
        lim: &OutputLimit,
        since: impl Fn(ClientId) -> Option<Instant>,
    ) -> Option<Instant> {
        self.soft.iter().filter_map(|&id| since(id)).min().map(|t| t + lim.soft_for)
    }
}

/// The answer to a decoded request refused by a rate limit (`None`: it
/// goes): `on_limit = "error"` answers Redis's and memcached's usual error
/// shapes (memcached's own errors ignore `noreply`, so these do too),
/// `"close"` closes.
pub(super) fn rate_refusal(
    rate: &mut RateGate,
    id: ClientId,
    c: Option<&mut ClientRate>,
    user: Option<&std::sync::Arc<crate::acl::User>>,
    size: usize,
    now: Instant,
    protocol: Protocol,
) -> Option<Plan> {
    match rate.decoded(id, c, user, size, now) {
        Gate::Go | Gate::Wait => None,
        Gate::Error => Some(Plan::Reply(Bytes::from_static(match protocol {
            Protocol::Redis => RATE_ERROR_REDIS,
            Protocol::Memcache => b"SERVER_ERROR rate limit exceeded\r\n",
        }))),
        Gate::Close => Some(Plan::Close(ClientClose::RateLimited, None)),
    }
}

/// `on_limit = "error"` in Redis pools (cluster ones too).
pub(crate) const RATE_ERROR_REDIS: &[u8] = b"-ERR rate limit exceeded\r\n";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::session::mux::Protocol;

    fn client() -> (ClientId, Client) {
        (ClientId { idx: 0, gen: 0 }, Client::new(0, Protocol::Redis, 1 << 20, 1 << 20))
    }

    #[test]
    fn hard_closes_at_once_and_soft_only_after_its_time() {
        let lim = OutputLimit { hard: 100, soft: 50, soft_for: Duration::from_secs(30) };
        let (id, mut c) = client();
        let mut b = Budget::default();
        let t0 = Instant::now();
        c.out.push(&[0; 60]);
        assert!(!b.settle(&lim, id, &mut c, 0, Some(t0)), "past soft: the timer starts");
        assert_eq!((b.total(), b.soft_clients()), (60, &[id][..]));
        assert!(!b.settle(&lim, id, &mut c, 60, Some(t0 + Duration::from_secs(29))));
        assert!(b.settle(&lim, id, &mut c, 60, Some(t0 + Duration::from_secs(30))));
        c.out.push(&[0; 40]);
        assert!(b.settle(&lim, id, &mut c, 60, Some(t0)), "hard");
        b.forget(id, &c);
        assert_eq!((b.total(), b.soft_clients().len()), (0, 0));
    }

    #[test]
    fn dropping_below_soft_restarts_the_timer() {
        let lim = OutputLimit { hard: 0, soft: 50, soft_for: Duration::from_secs(30) };
        let (id, mut c) = client();
        let mut b = Budget::default();
        let t0 = Instant::now();
        c.out.push(&[0; 60]);
        b.settle(&lim, id, &mut c, 0, Some(t0));
        c.out.start_send();
        c.out.complete(20);
        assert!(!b.settle(&lim, id, &mut c, 60, Some(t0 + Duration::from_secs(20))));
        assert_eq!(c.soft_since, None, "below soft: reset");
        c.out.push(&[0; 20]);
        assert!(!b.settle(&lim, id, &mut c, 40, Some(t0 + Duration::from_secs(40))));
        assert_eq!(c.soft_since, Some(t0 + Duration::from_secs(40)), "a new timer, not the old one");
    }
}
