//! One client connection inside the session: its input buffer and decoder,
//! its ordered queue of pending reply slots, and its outbound bytes.
//!
//! Invariants:
//! - `slots[i]` answers the request with sequence `head_seq + i`; replies
//!   leave strictly in that order, whatever order the backends answer in;
//! - a slot is ready once every fragment it waits for has a reply, and only
//!   ready slots at the head move to `out`;
//! - after a slot that closes the client, nothing more is read.
//!
//! The cluster session (`session::cluster`) reuses `Client` and `Slot` for
//! its own per-client ordering.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::reply::{AnyReply, MergePlan};
use super::types::{ClientClose, Protocol};
use crate::protocol::memcache::McRequestDecoder;
use crate::protocol::resp::RequestDecoder;
use crate::session::outbuf::OutBuf;

pub(crate) enum ClientDecoder {
    Resp(RequestDecoder),
    Mc(McRequestDecoder),
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
}

impl Slot {
    pub fn ready(bytes: Bytes) -> Slot {
        Slot { ready: Some(bytes), parts: Vec::new(), keys: Vec::new(), left: 0, merge: MergePlan::Pass, close: None }
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
    /// The client half-closed: close once every reply is out.
    pub eof: bool,
    /// A closing slot was queued: read nothing more.
    pub stop_reading: bool,
    /// Set when the closing slot reached `out`.
    pub closing: Option<ClientClose>,
}

impl Client {
    /// `max_item_bytes` bounds a memcached data block (unused for Redis).
    pub fn new(gen: u32, proto: Protocol, max_request_bytes: usize, max_item_bytes: usize) -> Client {
        let dec = match proto {
            Protocol::Redis => ClientDecoder::Resp(RequestDecoder::new(max_request_bytes)),
            Protocol::Memcache => ClientDecoder::Mc(McRequestDecoder::new(max_request_bytes, max_item_bytes)),
        };
        Client {
            gen,
            inbuf: BytesMut::new(),
            dec,
            slots: VecDeque::new(),
            head_seq: 0,
            out: OutBuf::default(),
            authed: false,
            eof: false,
            stop_reading: false,
            closing: None,
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
        let Some(part) = slot.parts.get_mut(frag as usize) else { return false };
        if part.is_none() {
            *part = Some(reply);
            slot.left -= 1;
            if slot.left == 0 {
                slot.ready = Some(slot.merge.finish(&slot.keys, &slot.parts));
                slot.parts.clear();
            }
        }
        true
    }

    /// Moves ready head slots to `out`, in order.
    pub fn flush_ready(&mut self) {
        while let Some(bytes) = self.slots.front().and_then(|s| s.ready.as_ref()) {
            if !bytes.is_empty() {
                self.out.push(bytes);
            }
            let slot = self.slots.pop_front();
            self.head_seq += 1;
            if let Some(why) = slot.and_then(|s| s.close) {
                self.closing = Some(why);
                self.slots.clear();
                return;
            }
        }
    }
}
