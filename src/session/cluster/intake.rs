//! A cluster session's intake: bytes read from a client are buffered,
//! decoded and dispatched request by request (`process_client`), and
//! clients paused by a limit or a held transaction resume here
//! (`run_resumes`).
//!
//! Invariants: a client is decoded only while it may read (not stopped,
//! not blocked, under `max_pending_per_client` and `client_queue_limit`,
//! checked before each decode so one request always gets through); a
//! resumed client is processed on the same path as fresh bytes.

use std::time::Instant;

use super::*;

impl ClusterSession {
    /// Bytes read from a client.
    pub fn handle_client_data(&mut self, id: ClientId, data: &[u8], now: Instant) {
        self.set_clock(now);
        let Some(c) = self.client_mut(id) else { return };
        if c.base.stop_reading {
            return;
        }
        c.base.inbuf.extend_from_slice(data);
        self.process_client(id, now);
        self.run_resumes(now);
    }

    /// Decodes and dispatches buffered requests until the buffer runs dry,
    /// the client must stop or wait, or it reaches its pending or queue
    /// limit (checked before each decode: one request always gets through).
    /// The batch's requests are then added to their user's counters.
    pub(super) fn process_client(&mut self, id: ClientId, now: Instant) {
        self.decode_client(id, now);
        self.rate.flush_counts();
    }

    fn decode_client(&mut self, id: ClientId, now: Instant) {
        loop {
            let (max_pending, queue_limit) = (self.cfg.max_pending_per_client, self.cfg.client_queue_limit);
            let max_request = self.cfg.max_request_bytes;
            // A field borrow, so `self.rate` stays usable beside it.
            let clients = &mut self.clients;
            let Some(c) =
                clients.get_mut(id.idx as usize).and_then(|c| c.as_deref_mut()).filter(|c| c.base.gen == id.gen)
            else {
                return;
            };
            if c.base.stop_reading || c.blocked || c.base.slots.len() >= max_pending || c.base.queued >= queue_limit {
                break;
            }
            let req = match c.parked.take() {
                Some(r) => r,
                None => {
                    let (rate, user) = (self.rate.client(&mut c.base.rate), c.base.user.as_ref());
                    if !self.rate.before_decode(id, rate, user, !c.base.inbuf.is_empty(), now) {
                        break;
                    }
                    let ClientDecoder::Resp(dec) = &mut c.base.dec else { return };
                    // A partial request past the limit can never be valid.
                    let decoded = match dec.decode(&mut c.base.inbuf) {
                        Ok(None) if c.base.inbuf.len() > max_request => {
                            Err(crate::protocol::ProtoError::TooLarge { max: max_request })
                        }
                        d => d,
                    };
                    match decoded {
                        Ok(Some(r)) => {
                            use crate::session::ratelimit::Gate;
                            let (rate, user) = (c.base.rate.as_deref_mut(), c.base.user.as_ref());
                            match self.rate.decoded(id, rate, user, r.raw().len(), now) {
                                Gate::Go | Gate::Wait => r,
                                Gate::Error => {
                                    let text = Bytes::from_static(crate::session::mux::RATE_ERROR_REDIS);
                                    self.reply_now(id, text);
                                    continue;
                                }
                                Gate::Close => {
                                    self.close_after(id, ClientClose::RateLimited, Bytes::new());
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let text = crate::protocol::resp::encode::error(&format!("ERR {e}"));
                            self.close_after(id, ClientClose::Protocol, text);
                            self.stats.client_err += 1;
                            break;
                        }
                    }
                }
            };
            if txn::needs_drain(&req) && !c.base.slots.is_empty() {
                // SUBSCRIBE and friends switch the connection to relaying:
                // earlier replies must be out first.
                c.parked = Some(req);
                break;
            }
            // Charged to the slot the request leaves (refunded when that
            // slot's reply moves to the client); none if answered at once.
            let (first_seq, charge) = (c.base.next_seq(), req.raw().len());
            let before = c.last_node;
            self.commands = self.commands.saturating_add(1);
            let mut obs = crate::obs::start_redis(&mut self.obs, &req);
            self.dispatch(id, req, now);
            if let Some(c) = self.client_mut(id) {
                c.base.charge_tail(first_seq, charge);
                if c.last_node != before {
                    obs.server =
                        c.last_node.map_or(crate::obs::rec::NO_SERVER, |n| n.min(u32::from(u16::MAX - 1)) as u16);
                }
                c.base.note_slot(first_seq, obs);
            }
        }
        self.flush_client(id);
    }

    pub(super) fn run_resumes(&mut self, now: Instant) {
        loop {
            if let Some(id) = self.unhold.pop() {
                self.release_held(id, now);
            } else if let Some(id) = self.resume.pop() {
                self.process_client(id, now);
            } else {
                return;
            }
        }
    }
}
