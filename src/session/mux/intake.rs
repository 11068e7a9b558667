//! A twemproxy session's intake: bytes read from a client are buffered,
//! decoded request by request, planned (routed, gated, or answered
//! locally) and applied: a local reply or a close is queued in order,
//! a forward goes to its backend.
//!
//! Invariants: a client is decoded only while it may read (limits are
//! checked before each decode, so one request always gets through);
//! replies leave in request order because every plan takes its slot in
//! the client's queue when it is applied.

use std::time::Instant;

use super::*;

impl MuxSession {
    /// Bytes read from a client.
    pub fn handle_client_data(&mut self, id: ClientId, data: &[u8], now: Instant, router: &dyn Router) {
        self.set_clock(now);
        let Some(c) = client_in(&mut self.clients, id) else { return };
        if c.stop_reading {
            return;
        }
        c.inbuf.extend_from_slice(data);
        if !c.trim_listed {
            // Its buffers are released once a tick finds it idle (`idle.rs`).
            c.trim_listed = true;
            self.trim.push(id);
        }
        self.process_client(id, now, router);
        self.run_resumes(now, router);
    }

    /// Decodes and dispatches buffered requests until the buffer runs dry,
    /// the client must stop, or it reaches its pending or queue limit.
    /// The limits are checked before each decode, so a client with nothing
    /// queued always gets one request through, however large. The batch's
    /// requests are then added to their user's counters.
    pub(super) fn process_client(&mut self, id: ClientId, now: Instant, router: &dyn Router) {
        self.decode_client(id, now, router);
        self.rate.flush_counts();
    }

    fn decode_client(&mut self, id: ClientId, now: Instant, router: &dyn Router) {
        let (max_pending, queue_limit) = (self.cfg.max_pending_per_client, self.cfg.client_queue_limit);
        loop {
            let cfg = &self.cfg;
            let Some(c) = client_in(&mut self.clients, id) else { return };
            if c.stop_reading || c.slots.len() >= max_pending || c.queued >= queue_limit {
                break;
            }
            if !self.rate.before_decode(id, self.rate.client(&mut c.rate), c.user.as_ref(), !c.inbuf.is_empty(), now) {
                break;
            }
            let buffered = c.inbuf.len();
            // Whole requests are within `max_request_bytes` (the decoders
            // refuse larger ones), so a partial one past it can never be
            // valid: refuse it rather than buffer more.
            let partial_too_large = |inbuf: &bytes::BytesMut| inbuf.len() > cfg.max_request_bytes;
            let mut obs = crate::obs::ReqObs::default();
            let plan = match &mut c.dec {
                ClientDecoder::Resp(d) => match d.decode(&mut c.inbuf) {
                    Ok(Some(req)) => {
                        obs = crate::obs::start_redis(&mut self.obs, &req);
                        self.commands = self.commands.saturating_add(1);
                        let size = buffered - c.inbuf.len();
                        if let Some(plan) = rate_refusal(
                            &mut self.rate,
                            id,
                            c.rate.as_deref_mut(),
                            c.user.as_ref(),
                            size,
                            now,
                            Protocol::Redis,
                        ) {
                            self.apply(id, plan, obs, now);
                            continue;
                        }
                        let clients = (self.clients.len().saturating_sub(self.free.len())) as u64;
                        let counts = dispatch::Counts {
                            clients: clients.saturating_add(self.peers.0),
                            commands: self.commands.saturating_add(self.peers.1),
                        };
                        let Some(c) = client_in(&mut self.clients, id) else { return };
                        if req.name().eq_ignore_ascii_case(b"SLOWLOG") {
                            // The proxy's own slow log, not a backend's,
                            // behind the same AUTH and ACL gate.
                            match dispatch::gate_local(cfg, &mut c.authed, &mut c.user, &mut c.hs, id, &req, &self.rate)
                            {
                                Some(refused) => refused,
                                None => Plan::Reply(crate::obs::slowlog_reply(&self.obs, &req)),
                            }
                        } else {
                            plan_redis(cfg, &mut c.authed, &mut c.user, &mut c.hs, id, req, router, counts, &self.rate)
                        }
                    }
                    Ok(None) if partial_too_large(&c.inbuf) => resp_error(too_large(cfg)),
                    Ok(None) => break,
                    Err(e) => resp_error(e),
                },
                ClientDecoder::Mc(d) => match d.decode(&mut c.inbuf) {
                    Ok(Some(req)) => {
                        obs = crate::obs::start_memcache(&mut self.obs, &req);
                        let size = buffered - c.inbuf.len();
                        let rate = c.rate.as_deref_mut();
                        match rate_refusal(&mut self.rate, id, rate, c.user.as_ref(), size, now, Protocol::Memcache) {
                            Some(plan) => plan,
                            None => match identity::gate_memcache(cfg, c.user.as_deref(), &req) {
                                Some(refused) => {
                                    // A user's key rules refused it (NOPERM).
                                    if c.user.is_some() {
                                        self.rate.note_denied(c.user.as_ref().map(|u| u.id));
                                    }
                                    refused
                                }
                                None => plan_memcache(cfg, req, router, self.local_stats.as_ref()),
                            },
                        }
                    }
                    Ok(None) if partial_too_large(&c.inbuf) => mc_close(too_large(cfg)),
                    Ok(None) => break,
                    // Never forwarded: memcached might read it differently.
                    Err(e) => mc_close(e),
                },
            };
            self.apply(id, plan, obs, now);
        }
        self.flush_client(id, None);
    }

    pub(super) fn apply(&mut self, id: ClientId, plan: Plan, obs: crate::obs::ReqObs, now: Instant) {
        let Some(c) = self.client_mut(id) else { return };
        match plan {
            Plan::Reply(bytes) => {
                let mut slot = Slot::ready(bytes);
                slot.obs = obs;
                c.slots.push_back(slot);
            }
            Plan::Close(why, reply) => {
                let mut slot = Slot::ready(reply.unwrap_or_default());
                slot.close = Some(why);
                slot.obs = obs;
                c.slots.push_back(slot);
                c.stop_reading = true;
                if why == ClientClose::Protocol {
                    self.stats.client_err += 1;
                }
            }
            Plan::Forward(f) => self.forward(id, f, obs, now),
            Plan::One { server, request, route } => self.forward_one(id, server, request, route, obs, now),
        }
    }
}
