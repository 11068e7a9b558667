//! One client connection inside the session: its input buffer and decoder,
//! its ordered queue of pending reply slots, and its outbound bytes.
//!
//! Invariants:
//! - `slots[i]` answers the request with sequence `head_seq + i`; replies
//!   leave strictly in that order, whatever order the backends answer in;
//! - a slot is ready once every fragment it waits for has a reply, and only
//!   ready slots at the head move to `out`;
//! - after a slot that closes the client, nothing more is read;
//! - `queued` is the sum of the `charge` of the client's slots plus its
//!   unwritten `noreply` requests (refunded by the session when written);
//!   `parked_bytes` is the sum of the `held` reply bytes of its slots;
//!   both feed the byte bounds of `limits.rs`.
//!
//! The cluster session (`session::cluster`) reuses `Client` and `Slot` for
//! its own per-client ordering.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::reply::{AnyReply, MergePlan};
use super::types::{ClientClose, Protocol};
use crate::obs::{Recorder, ReqObs};
use crate::protocol::memcache::McRequestDecoder;
use crate::protocol::resp::RequestDecoder;
use crate::session::outbuf::OutBuf;

pub(crate) enum ClientDecoder {
    Resp(RequestDecoder),
    /// Boxed: it is half again the size of the RESP decoder, and the enum
    /// sits in every client of either protocol.
    Mc(Box<McRequestDecoder>),
}

/// The reply owed for one request.
pub(crate) struct Slot {
    /// The bytes to send once ready (`None` while fragments are pending).
    pub ready: Option<Bytes>,
    pub parts: Vec<Option<AnyReply>>,
    /// Key positions per fragment, for merging.
    pub keys: Vec<Vec<u32>>,
    /// Fragments still without a reply.
    pub left: u32,
    pub merge: MergePlan,
    /// Close the client once this slot's reply is out.
    pub close: Option<ClientClose>,
    /// Request bytes charged to the client's queue for this slot, refunded
    /// when the slot leaves (`client_queue_limit`).
    pub charge: usize,
    /// Reply bytes from backends held in this slot (parts, then the merged
    /// reply) until it moves to `out` (`client_output_limit`).
    pub held: usize,
    /// Its timing and labels, recorded when it moves to `out`.
    pub obs: ReqObs,
}

impl Slot {
    /// Whether part `frag` has its reply (or is no part of this slot).
    pub fn answered(&self, frag: u32) -> bool {
        if self.ready.is_some() {
            return true;
        }
        if self.parts.is_empty() {
            // The single passed-through part (`waiting`): frag 0 until delivered.
            return frag != 0 || self.left == 0;
        }
        self.parts.get(frag as usize).is_none_or(|p| p.is_some())
    }

    pub fn ready(bytes: Bytes) -> Slot {
        Slot::waiting(Vec::new(), MergePlan::Pass, Some(bytes))
    }

    /// A slot awaiting one reply per entry of `keys` (at least one).
    pub fn pending(keys: Vec<Vec<u32>>, merge: MergePlan) -> Slot {
        Slot::waiting(keys, merge, None)
    }

    fn waiting(keys: Vec<Vec<u32>>, merge: MergePlan, ready: Option<Bytes>) -> Slot {
        let n = if ready.is_some() { 0 } else { keys.len().max(1) };
        // A single passed-through reply goes straight to `ready` in
        // `Client::deliver`: no parts vector for it (one allocation less
        // per request on the GET path).
        let parts = if n == 1 && matches!(merge, MergePlan::Pass) { Vec::new() } else { vec![None; n] };
        Slot { ready, parts, keys, left: n as u32, merge, close: None, charge: 0, held: 0, obs: ReqObs::default() }
    }
}

pub(crate) struct Client {
    pub gen: u32,
    pub inbuf: BytesMut,
    pub dec: ClientDecoder,
    pub slots: VecDeque<Slot>,
    pub head_seq: u64,
    pub out: OutBuf,
    pub authed: bool,
    /// The proxy user this client authenticated as (`session::acl`); in
    /// memcache pools, the user its address is (`source`, set at accept).
    pub user: Option<std::sync::Arc<crate::acl::User>>,
    /// The client half-closed: close once every reply is out.
    pub eof: bool,
    /// A closing slot was queued: read nothing more.
    pub stop_reading: bool,
    /// Set when the closing slot reached `out`.
    pub closing: Option<ClientClose>,
    /// Request bytes queued or in flight toward backends.
    pub queued: usize,
    /// Reply bytes received but still in `slots` (behind an earlier reply,
    /// or fragments awaiting the rest).
    pub parked_bytes: usize,
    /// Since when the buffered reply bytes are at or past the soft limit.
    pub soft_since: Option<Instant>,
    /// HELLO / CLIENT state (`session::handshake`); `hs.resp3` picks the
    /// backend connections that negotiated RESP3.
    pub hs: crate::session::handshake::Hs,
    /// Listed in the session's `trim` (`idle.rs`).
    pub trim_listed: bool,
    /// Per-IP limit state (`session::ratelimit`); boxed, and only for
    /// clients of a pool with `per_ip`, so other clients pay one pointer.
    pub rate: Option<Box<crate::session::ratelimit::ClientRate>>,
}

impl Client {
    /// Until when the client waits for rate-limit tokens, if it does.
    #[inline]
    pub fn rate_wait(&self) -> Option<Instant> {
        self.rate.as_ref()?.wait
    }

    /// `max_item_bytes` bounds a memcached data block (unused for Redis).
    pub fn new(gen: u32, proto: Protocol, max_request_bytes: usize, max_item_bytes: usize) -> Client {
        let dec = match proto {
            Protocol::Redis => ClientDecoder::Resp(RequestDecoder::nutcracker(max_request_bytes)),
            Protocol::Memcache => ClientDecoder::Mc(Box::new(McRequestDecoder::new(max_request_bytes, max_item_bytes))),
        };
        Client {
            gen,
            inbuf: BytesMut::new(),
            dec,
            slots: VecDeque::new(),
            head_seq: 0,
            out: OutBuf::default(),
            authed: false,
            user: None,
            eof: false,
            stop_reading: false,
            closing: None,
            queued: 0,
            parked_bytes: 0,
            soft_since: None,
            hs: Default::default(),
            trim_listed: false,
            rate: None,
        }
    }

    /// Reply bytes Puerta holds for this client: unsent plus parked.
    #[inline]
    pub fn buffered(&self) -> usize {
        self.out.len() + self.parked_bytes
    }

    /// Charges `n` request bytes to the slot just pushed (if it is still
    /// queued: a slot answered at once is gone already).
    pub fn charge_tail(&mut self, first_seq: u64, n: usize) {
        if self.next_seq() > first_seq.max(self.head_seq) {
            if let Some(slot) = self.slots.back_mut() {
                slot.charge += n;
                self.queued += n;
            }
        }
    }

    /// Gives the slot of request `seq` what it carries for `obs` (if it is
    /// still queued: a slot answered at once may be out already).
    pub fn note_slot(&mut self, seq: u64, obs: ReqObs) {
        let Some(i) = seq.checked_sub(self.head_seq) else { return };
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.obs = obs;
        }
    }

    /// The sequence number the next pushed slot gets.
    pub fn next_seq(&self) -> u64 {
        self.head_seq + self.slots.len() as u64
    }

    /// Records fragment `frag`'s reply for request `seq`; returns false if
    /// that slot no longer exists.
    pub fn deliver(&mut self, seq: u64, frag: u32, reply: AnyReply) -> bool {
        let Some(i) = seq.checked_sub(self.head_seq) else { return false };
        let Some(slot) = self.slots.get_mut(i as usize) else { return false };
        if slot.parts.is_empty() && slot.left == 1 && frag == 0 {
            // One reply passed through (`Slot::waiting`): what
            // `MergePlan::Pass` would make of it, without holding parts.
            let bytes = reply.raw().clone();
            self.parked_bytes += bytes.len();
            slot.held = bytes.len();
            slot.left = 0;
            slot.ready = Some(bytes);
            return true;
        }
        let Some(part) = slot.parts.get_mut(frag as usize) else { return false };
        if part.is_none() {
            let n = reply.raw().len();
            *part = Some(reply);
            slot.held += n;
            self.parked_bytes += n;
            slot.left -= 1;
            if slot.left == 0 {
                let merged = slot.merge.finish(&slot.keys, &slot.parts);
                self.parked_bytes = self.parked_bytes - slot.held + merged.len();
                slot.held = merged.len();
                slot.ready = Some(merged);
                slot.parts.clear();
            }
        }
        true
    }

    /// Moves ready head slots to `out`, in order; each is recorded as
    /// answered now (`obs`).
    pub fn flush_ready(&mut self, rec: &Recorder, idx: usize) {
        while let Some((bytes, obs)) = self.slots.front().and_then(|s| Some((s.ready.as_ref()?, &s.obs))) {
            rec.finish(obs, bytes, idx);
            if !bytes.is_empty() {
                self.out.push_bytes(bytes);
            }
            let Some(slot) = self.slots.pop_front() else { return };
            self.head_seq += 1;
            self.release(&slot);
            if let Some(why) = slot.close {
                self.closing = Some(why);
                for s in std::mem::take(&mut self.slots) {
                    self.release(&s);
                }
                return;
            }
        }
    }

    /// A slot left: its request charge and held reply bytes go with it.
    fn release(&mut self, slot: &Slot) {
        self.queued -= slot.charge;
        self.parked_bytes -= slot.held;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::resp::{Reply, ReplyKind};

    fn bulk(s: &'static [u8]) -> AnyReply {
        AnyReply::Resp(Reply { raw: Bytes::from_static(s), kind: ReplyKind::Bulk })
    }

    #[test]
    fn a_single_passed_through_reply_needs_no_parts_and_is_counted_once() {
        let mut c = Client::new(0, Protocol::Redis, 1 << 20, 1 << 20);
        c.slots.push_back(Slot::pending(Vec::new(), MergePlan::Pass));
        assert_eq!(c.slots[0].parts.capacity(), 0, "no parts vector allocated");
        assert!(!c.slots[0].answered(0));
        assert!(c.slots[0].answered(1), "no such part");
        assert!(c.deliver(0, 0, bulk(b"$1\r\nx\r\n")));
        assert!(c.slots[0].answered(0));
        assert_eq!(c.slots[0].ready.as_deref(), Some(&b"$1\r\nx\r\n"[..]));
        assert_eq!((c.parked_bytes, c.slots[0].held), (7, 7));
        c.deliver(0, 0, bulk(b"$1\r\ny\r\n"));
        assert_eq!(c.slots[0].ready.as_deref(), Some(&b"$1\r\nx\r\n"[..]), "a second reply changes nothing");
        assert_eq!(c.parked_bytes, 7);
        assert!(!c.deliver(1, 0, bulk(b"+OK\r\n")), "no such slot");
    }

    #[test]
    fn a_fanned_out_slot_keeps_one_part_per_fragment() {
        let mut c = Client::new(0, Protocol::Redis, 1 << 20, 1 << 20);
        c.slots.push_back(Slot::pending(vec![vec![0], vec![1]], MergePlan::Pass));
        assert_eq!(c.slots[0].parts.len(), 2);
        assert!(c.deliver(0, 1, bulk(b"+OK\r\n")));
        assert!(c.slots[0].answered(1) && !c.slots[0].answered(0));
        assert!(c.slots[0].ready.is_none());
    }
}
