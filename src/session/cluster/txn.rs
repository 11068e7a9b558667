//! Stateful commands on pinned connections and in local state: MULTI /
//! EXEC / DISCARD / WATCH / UNWATCH, blocking commands, and pub/sub.
//!
//! - MULTI is answered locally and the commands are queued in Puerta (each
//!   answered +QUEUED after its slot check); EXEC sends `MULTI, commands,
//!   EXEC` as one contiguous batch, so nothing of another client can come
//!   between them even on a shared connection, and a MOVED or ASK during
//!   the batch redirects the whole batch. Keys must share one slot, else
//!   -CROSSSLOT and EXEC answers -EXECABORT, as Redis does.
//! - WATCH pins a connection to the watched slot's master until EXEC,
//!   DISCARD or UNWATCH; the batch then runs on that connection.
//! - A blocking command runs on a pinned connection and, as on a real
//!   connection, the client's later requests wait until it returns.
//! - (S/P)SUBSCRIBE pins a connection that relays every frame to the
//!   client until the node reports no subscriptions left; SSUBSCRIBE goes
//!   to the channel slot's master.

use std::time::Instant;

use bytes::Bytes;

use super::conns::Conn;
use super::reply::{arity, array, bulk, OK, QUEUED};
use super::unit::{CEntry, Dest, Done, Entry, Target, Unit};
use super::{ClientId, ClusterSession};
use crate::protocol::cluster::commands::{CmdSpec, Family, Local};
use crate::protocol::cluster::keys::CROSSSLOT;
use crate::protocol::resp::{encode, Request};
use crate::route::{keyslot, slot_of, SlotOf};

/// A MULTI in progress.
#[derive(Debug, Default)]
pub(super) struct Tx {
    pub cmds: Vec<Bytes>,
    pub slot: Option<u16>,
    /// A queued command was refused: EXEC answers EXECABORT.
    pub aborted: bool,
}

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";
const UNWATCH: &[u8] = b"*1\r\n$7\r\nUNWATCH\r\n";

/// Requests that switch a client to pub/sub: earlier replies go first.
pub(super) fn needs_drain(req: &Request) -> bool {
    let n = req.name();
    n.eq_ignore_ascii_case(b"SUBSCRIBE")
        || n.eq_ignore_ascii_case(b"PSUBSCRIBE")
        || n.eq_ignore_ascii_case(b"SSUBSCRIBE")
}

impl ClusterSession {
    pub(super) fn multi(&mut self, id: ClientId) {
        let Some(c) = self.client_mut(id) else { return };
        let reply = if c.tx.is_some() {
            encode::error("ERR MULTI calls can not be nested")
        } else {
            c.tx = Some(Tx::default());
            Bytes::from_static(OK)
        };
        self.reply_now(id, reply);
    }

    /// A command inside MULTI: checked (`policy::queueable`, slot) and
    /// queued; a command that cannot be queued aborts the transaction.
    pub(super) fn tx_queue(&mut self, id: ClientId, req: Request, spec: &CmdSpec) {
        let max = self.cfg.max_tx_commands;
        let Some(c) = self.client_mut(id) else { return };
        let watch_slot = c.watch_slot;
        let Some(tx) = c.tx.as_mut() else { return };
        if !super::policy::queueable(spec.family) {
            tx.aborted = true;
            return self.reply_now(id, super::policy::not_in_multi(&req));
        }
        let slot = match slot_of(&req, spec.keys) {
            SlotOf::Cross => None,
            SlotOf::One(s) => Some(Some(s)),
            SlotOf::NoKeys => Some(None),
        };
        let fits = |s: u16| tx.slot.is_none_or(|t| t == s) && watch_slot.is_none_or(|w| w == s);
        let reply = match slot {
            Some(Some(s)) if !fits(s) => None,
            None => None,
            _ if tx.cmds.len() >= max => {
                tx.aborted = true;
                return self.reply_now(id, encode::error(&format!("ERR more than {max} commands in one MULTI")));
            }
            Some(s) => {
                tx.slot = tx.slot.or(s);
                tx.cmds.push(req.raw().clone());
                Some(Bytes::from_static(QUEUED))
            }
        };
        let reply = reply.unwrap_or_else(|| {
            tx.aborted = true;
            Bytes::from_static(CROSSSLOT)
        });
        self.reply_now(id, reply);
    }

    pub(super) fn exec(&mut self, id: ClientId, now: Instant) {
        let Some(c) = self.client_mut(id) else { return };
        let Some(tx) = c.tx.take() else {
            return self.reply_now(id, encode::error("ERR EXEC without MULTI"));
        };
        let watching = std::mem::take(&mut c.watching);
        let watch_slot = c.watch_slot.take();
        if tx.aborted || (watching && c.pin.is_none()) {
            // A lost WATCH connection reads as "a watched key changed".
            let reply = if tx.aborted { encode::error(EXECABORT) } else { Bytes::from_static(b"*-1\r\n") };
            if watching {
                self.drop_pin(id);
            }
            return self.reply_now(id, reply);
        }
        let slot = tx.slot.or(watch_slot);
        let target = match (watching, slot) {
            (true, _) => Target::Pinned { slot },
            (false, Some(slot)) => Target::Slot { slot, read: false },
            (false, None) => Target::AnyMaster,
        };
        let seq = self.push_slot(id, vec![vec![0]], crate::session::mux::reply::MergePlan::Pass);
        let mut unit = Unit::new(Dest::Client { id, seq, frag: 0 }, Bytes::from_static(EXEC), target);
        unit.pre = std::iter::once(Bytes::from_static(MULTI)).chain(tx.cmds).collect();
        if watching {
            unit.done = Done::EndWatch;
        }
        self.send(unit, now);
    }

    pub(super) fn discard(&mut self, id: ClientId, now: Instant) {
        let Some(c) = self.client_mut(id) else { return };
        if c.tx.take().is_none() {
            return self.reply_now(id, encode::error("ERR DISCARD without MULTI"));
        }
        if c.watching {
            // DISCARD also unwatches; UNWATCH's +OK answers the DISCARD.
            return self.unwatch(id, now);
        }
        self.reply_now(id, Bytes::from_static(OK));
    }

    pub(super) fn watch(&mut self, id: ClientId, req: Request, spec: &CmdSpec, now: Instant) {
        let Some(c) = self.client_mut(id) else { return };
        if c.tx.is_some() {
            return self.reply_now(id, encode::error("ERR WATCH inside MULTI is not allowed"));
        }
        if req.argc() < 2 {
            return self.reply_now(id, arity(req.name()));
        }
        let slot = match slot_of(&req, spec.keys) {
            SlotOf::One(s) if c.watch_slot.is_none_or(|w| w == s) => s,
            _ => return self.reply_now(id, Bytes::from_static(CROSSSLOT)),
        };
        c.watching = true;
        c.watch_slot = Some(slot);
        self.forward_one(id, req.raw().clone(), Target::Pinned { slot: Some(slot) }, now);
    }

    pub(super) fn unwatch(&mut self, id: ClientId, now: Instant) {
        let Some(c) = self.client_mut(id) else { return };
        if !c.watching || c.pin.is_none() {
            c.watching = false;
            c.watch_slot = None;
            return self.reply_now(id, Bytes::from_static(OK));
        }
        let slot = c.watch_slot;
        let seq = self.push_slot(id, vec![vec![0]], crate::session::mux::reply::MergePlan::Pass);
        let mut unit =
            Unit::new(Dest::Client { id, seq, frag: 0 }, Bytes::from_static(UNWATCH), Target::Pinned { slot });
        unit.done = Done::EndWatch;
        self.send(unit, now);
    }

    /// EXEC / UNWATCH completed: the WATCH is over.
    pub(super) fn end_watch(&mut self, dest: Dest) {
        let Dest::Client { id, .. } = dest else { return };
        let Some(c) = self.client_mut(id) else { return };
        c.watching = false;
        c.watch_slot = None;
        if !c.blocked && !c.subscribed {
            if let Some(b) = c.pin.take() {
                self.release_pinned(b);
            }
        }
    }

    /// Closes the client's pinned connection (its state is unknown).
    pub(super) fn drop_pin(&mut self, id: ClientId) {
        if let Some(b) = self.client_mut(id).and_then(|c| c.pin.take()) {
            self.close_conn(b);
        }
    }

    /// BLPOP, XREAD BLOCK, WAIT...: a pinned connection for its duration.
    pub(super) fn blocking(&mut self, id: ClientId, req: Request, spec: &CmdSpec, now: Instant) {
        let slot = match slot_of(&req, spec.keys) {
            SlotOf::Cross => return self.reply_now(id, Bytes::from_static(CROSSSLOT)),
            SlotOf::One(s) => Some(s),
            SlotOf::NoKeys => None,
        };
        let Some(c) = self.client_mut(id) else { return };
        c.blocked = true;
        let seq = self.push_slot(id, vec![vec![0]], crate::session::mux::reply::MergePlan::Pass);
        let mut unit = Unit::new(Dest::Client { id, seq, frag: 0 }, req.raw().clone(), Target::Pinned { slot });
        unit.blocking = true;
        unit.done = Done::Unblock;
        self.send(unit, now);
    }

    /// A blocking command returned: the client reads again.
    pub(super) fn unblock(&mut self, dest: Dest) {
        let Dest::Client { id, .. } = dest else { return };
        let Some(c) = self.client_mut(id) else { return };
        c.blocked = false;
        if !c.watching && !c.subscribed {
            if let Some(b) = c.pin.take() {
                self.release_pinned(b);
            }
        }
        self.resume.push(id);
    }

    /// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE.
    pub(super) fn subscribe(&mut self, id: ClientId, req: Request, shard: bool, now: Instant) {
        if req.argc() < 2 {
            return self.reply_now(id, arity(req.name()));
        }
        let slot = if shard {
            let spec = crate::protocol::cluster::commands::lookup(req.name());
            match slot_of(&req, spec.keys) {
                SlotOf::One(s) => s,
                _ => return self.reply_now(id, Bytes::from_static(CROSSSLOT)),
            }
        } else {
            // Classic pub/sub reaches every node: spread by the channel.
            keyslot(req.arg(1))
        };
        let Some(c) = self.client(id) else { return };
        let pin = match (c.subscribed, c.pin) {
            (true, Some(b)) => {
                let here = self.conn(b).map(|c| c.node);
                if shard && here != self.nodes.route(slot, false, crate::config::ReadFrom::Master).ok() {
                    return self.reply_now(id, Bytes::from_static(CROSSSLOT));
                }
                b
            }
            (false, Some(_)) => {
                return self.reply_now(id, encode::error("ERR SUBSCRIBE while WATCH or a blocking command is active"))
            }
            (_, None) => {
                let node = match self.nodes.route(slot, false, crate::config::ReadFrom::Master) {
                    Ok(n) => n,
                    Err(_) => return self.reply_now(id, encode::error("CLUSTERDOWN Hash slot not served")),
                };
                let Some(b) = self.acquire_pinned(node, id, now) else {
                    return self.reply_now(id, encode::error("ERR too many pinned connections to this node"));
                };
                if let Some(c) = self.client_mut(id) {
                    c.pin = Some(b);
                    c.subscribed = true;
                }
                if let Some(conn) = self.conn_mut(b) {
                    conn.relay = Some(id);
                }
                b
            }
        };
        self.push_raw(pin, req.raw().clone());
    }

    /// A request from a subscribed client: QUIT and RESET are local, new
    /// subscriptions are checked, (P|S)UNSUBSCRIBE and PING go to the node
    /// as they are (its answer comes back through the relay), and anything
    /// else gets Redis's error for that context and never reaches the
    /// node: the pinned connection may not be subscribed there (a SUBSCRIBE
    /// the node refused, or an UNSUBSCRIBE it has not answered yet), and
    /// would run it. That error is written at once, so it can come before
    /// the relayed answer of an earlier PING or UNSUBSCRIBE.
    pub(super) fn sub_request(&mut self, id: ClientId, req: Request, spec: &CmdSpec, now: Instant) {
        if !super::policy::allowed_subscribed(spec.family) {
            self.reply_now(id, super::policy::not_subscribed(&req));
            return self.flush_client(id);
        }
        match spec.family {
            Family::Local(Local::Quit) => {
                self.close_after(id, crate::session::mux::ClientClose::Quit, Bytes::from_static(OK))
            }
            Family::Local(Local::Reset) => self.reset(id),
            Family::Local(Local::Subscribe) => self.subscribe(id, req, false, now),
            Family::Local(Local::SSubscribe) => self.subscribe(id, req, true, now),
            _ => match self.client(id).and_then(|c| c.pin) {
                Some(b) => self.push_raw(b, req.raw().clone()),
                None => self.reply_now(id, encode::error("ERR subscription connection lost")),
            },
        }
        self.flush_client(id);
    }

    /// UNSUBSCRIBE & co. from a client that is not subscribed: Redis's
    /// answer, one frame per channel (or one with a nil channel).
    pub(super) fn unsubscribe_idle(&mut self, id: ClientId, req: &Request) {
        let kind = req.name().to_ascii_lowercase();
        // RESP3 clients get Redis's push frames and null.
        let resp3 = self.client(id).is_some_and(|c| c.base.hs.resp3);
        let frame = |ch: Option<&[u8]>| {
            let name = bulk(&kind);
            let nil = if resp3 { &b"_\r\n"[..] } else { b"$-1\r\n" };
            let ch = ch.map_or(Bytes::from_static(nil), bulk);
            let f = array([&name[..], &ch[..], &b":0\r\n"[..]].into_iter());
            if resp3 {
                let mut p = f.to_vec();
                p[0] = b'>';
                Bytes::from(p)
            } else {
                f
            }
        };
        let out: Vec<u8> = if req.argc() < 2 {
            frame(None).to_vec()
        } else {
            (1..req.argc()).flat_map(|i| frame(Some(req.arg(i))).to_vec()).collect()
        };
        self.reply_now(id, Bytes::from(out));
    }

    /// RESET: back to a fresh connection's state.
    pub(super) fn reset(&mut self, id: ClientId) {
        let needs_auth = self.cfg.users.is_some();
        self.drop_pin(id);
        let Some(c) = self.client_mut(id) else { return };
        c.tx = None;
        c.watching = false;
        c.watch_slot = None;
        c.subscribed = false;
        c.base.hs = Default::default();
        c.base.authed = !needs_auth;
        c.base.user = None;
        self.reply_now(id, Bytes::from_static(b"+RESET\r\n"));
    }

    /// Writes bytes on a pinned connection with no reply expected (the
    /// relay delivers whatever comes back).
    fn push_raw(&mut self, b: crate::session::cluster::BackendId, wire: Bytes) {
        let Some(c): Option<&mut Conn> = self.conn_mut(b) else { return };
        c.base.push(CEntry { wire, start: 0, deadline: None, what: Entry::Hidden { note: false }, sent_us: 0 }, false);
        self.dirty_backends.push(b);
    }
}
