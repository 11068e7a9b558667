//! From one decoded client request to work: Redis's arity check (its
//! command table, `protocol::command`), the AUTH gate (proxy users and
//! their ACL, `session::acl`, in every state), the pool's
//! command policy (`policy.rs`, the same in every state), pub/sub and
//! MULTI modes, then by command family: routed by slot, split per slot,
//! blocking on a pinned connection, or local (`local.rs`, `fanout.rs`,
//! `txn.rs`).

use std::time::Instant;

use super::reply::{arity, NOAUTH};
use super::unit::{Dest, Target, Unit};
use super::ClusterSession;
use crate::protocol::cluster::commands::{lookup, runs_script, CmdSpec, Family, Local, UNKNOWN};
use crate::protocol::cluster::keys::{for_each_key, has_block_option, CROSSSLOT};
use crate::protocol::command;
use crate::protocol::resp::command::{Kind, Merge};
use crate::protocol::resp::{split, Request};
use crate::route::{keyslot, slot_of, SlotOf};
use crate::session::acl::{self, Gate};
use crate::session::mux::reply::MergePlan;
use crate::session::mux::ClientId;

use bytes::Bytes;

impl ClusterSession {
    pub(super) fn dispatch(&mut self, id: ClientId, req: Request, now: Instant) {
        let spec = lookup(req.name());
        // The request's one lookup in Redis's table: the arity check and
        // the ACL gate share it.
        let top = command::lookup(req.name());
        // Redis checks arity before anything else (`processCommand`), in
        // every state; inside MULTI the error also aborts the transaction.
        if let Some(cmd) = command::resolve_found(top, &req).filter(|c| !c.arity_ok(req.argc())) {
            if let Some(tx) = self.client_mut(id).and_then(|c| c.tx.as_mut()) {
                tx.aborted = true;
            }
            return self.reply_now(id, command::wrong_arity(cmd));
        }
        if let Some(users) = self.cfg.users.as_deref() {
            // Field borrows (not `client_mut`), so `users` is not cloned.
            let clients = &mut self.clients;
            let Some(c) =
                clients.get_mut(id.idx as usize).and_then(|c| c.as_deref_mut()).filter(|c| c.base.gen == id.gen)
            else {
                return;
            };
            // AUTH / HELLO inside MULTI or subscribed: refused below, as before.
            let in_state = c.tx.is_some() || c.subscribed;
            if !(in_state && matches!(spec.family, Family::Local(Local::Auth | Local::Hello))) {
                let mode = crate::session::handshake::Mode::Cluster;
                let cid = id.index() as u64 + 1;
                match acl::gate_found(users, &mut c.base.user, &mut c.base.hs, mode, cid, &req, top) {
                    Gate::Pass => c.base.authed |= c.base.user.is_some(),
                    Gate::Reply(r) => return self.reply_now(id, r),
                    Gate::Denied(r) => {
                        let user = c.base.user.as_ref().map(|u| u.id);
                        // Redis flags the transaction: EXEC answers EXECABORT.
                        if let Some(tx) = c.tx.as_mut() {
                            tx.aborted = true;
                        }
                        self.rate.note_denied(user);
                        return self.reply_now(id, r);
                    }
                }
            }
        }
        let Some(c) = self.client(id) else { return };
        let family = spec.family;
        if !c.base.authed && !matches!(family, Family::Local(Local::Auth | Local::Hello | Local::Quit | Local::Reset)) {
            return self.reply_now(id, Bytes::from_static(NOAUTH));
        }
        if let Some(refused) = self.refusal(&req, spec) {
            if let Some(tx) = self.client_mut(id).and_then(|c| c.tx.as_mut()) {
                tx.aborted = true;
            }
            return self.reply_now(id, refused);
        }
        let Some(c) = self.client(id) else { return };
        if c.subscribed {
            return self.sub_request(id, req, spec, now);
        }
        let queue = !matches!(
            family,
            Family::Local(Local::Exec | Local::Discard | Local::Multi | Local::Watch | Local::Quit | Local::Reset)
        );
        if c.tx.is_some() && queue {
            return self.tx_queue(id, req, spec);
        }
        match family {
            Family::Route => self.route_cmd(id, req, spec, now),
            Family::Split(merge) => self.split_cmd(id, req, spec, merge, now),
            Family::Blocking => self.blocking(id, req, spec, now),
            Family::BlockOption if has_block_option(&req) => self.blocking(id, req, spec, now),
            Family::BlockOption => self.route_cmd(id, req, spec, now),
            Family::Local(l) => self.local(id, req, l, now),
        }
    }

    /// One unit to the slot of the request's keys (or any master).
    pub(super) fn route_cmd(&mut self, id: ClientId, req: Request, spec: &CmdSpec, now: Instant) {
        // Fewer arguments than the limit cannot name too many keys.
        let max = self.cfg.max_keys_per_request;
        if req.argc() > max && for_each_key(&req, spec.keys, |_| {}) > max {
            return self.reply_now(id, self.too_many_keys());
        }
        let target = match slot_of(&req, spec.keys) {
            SlotOf::Cross => return self.reply_now(id, Bytes::from_static(CROSSSLOT)),
            SlotOf::One(slot) => Target::Slot { slot, read: spec.readonly },
            SlotOf::NoKeys => Target::AnyMaster,
        };
        let seq = self.push_slot(id, vec![vec![0]], MergePlan::Pass);
        let mut unit = Unit::new(Dest::Client { id, seq, frag: 0 }, req.raw().clone(), target);
        // User code may write its error replies (see `Unit::scripted`).
        unit.scripted = runs_script(req.name()) || std::ptr::eq(spec, &UNKNOWN);
        self.send(unit, now);
    }

    /// A slot for one reply and a unit to fill it.
    pub(super) fn forward_one(&mut self, id: ClientId, req: Bytes, target: Target, now: Instant) {
        let seq = self.push_slot(id, vec![vec![0]], MergePlan::Pass);
        self.send(Unit::new(Dest::Client { id, seq, frag: 0 }, req, target), now);
    }

    /// MGET / MSET / DEL / UNLINK / EXISTS / TOUCH: one unit per slot, the
    /// replies merged in the client's key order (keys of one slot keep
    /// their order inside the part).
    fn split_cmd(&mut self, id: ClientId, req: Request, spec: &CmdSpec, merge: Merge, now: Instant) {
        let (kind, step) = if merge == Merge::AllOk { (Kind::KeyValues, 2) } else { (Kind::MultiKey(merge), 1) };
        if req.argc() < 1 + step || !(req.argc() - 1).is_multiple_of(step) {
            return self.reply_now(id, arity(req.name()));
        }
        let nkeys = req.argc().saturating_sub(1) / step;
        if nkeys > self.cfg.max_keys_per_request {
            return self.reply_now(id, self.too_many_keys());
        }
        // Grouping by slot is linear in the keys (`resp::fanout::Groups`).
        let Ok(frags) = split(&req, kind, |k| Some(u32::from(keyslot(k)))) else {
            return self.reply_now(id, arity(req.name()));
        };
        let plan = if frags.len() == 1 { MergePlan::Pass } else { MergePlan::Resp { merge, nkeys } };
        if frags.len() > 1 {
            self.stats.fragments += frags.len() as u64;
        }
        let seq = self.push_slot(id, frags.iter().map(|f| f.keys.clone()).collect(), plan);
        for (i, f) in frags.into_iter().enumerate() {
            let target = Target::Slot { slot: f.server as u16, read: spec.readonly };
            self.send(Unit::new(Dest::Client { id, seq, frag: i as u32 }, f.request, target), now);
        }
    }

    /// A request naming more than `max_keys_per_request` keys: an error,
    /// and the connection stays (the request was parsed whole).
    fn too_many_keys(&self) -> Bytes {
        let max = self.cfg.max_keys_per_request;
        crate::protocol::resp::encode::error(&format!("ERR too many keys in request (max_keys_per_request = {max})"))
    }
}
