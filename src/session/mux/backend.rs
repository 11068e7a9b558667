//! One backend connection inside the session: the requests written to it
//! (in order, awaiting replies), its outbound bytes, and its reply decoder.
//!
//! Invariants:
//! - replies arrive in the order requests were queued, so the head of
//!   `inflight` always owns the next reply;
//! - `queued` and `sent` count bytes of this connection's stream; an entry
//!   with `start < sent` has at least partly reached the server, one with
//!   `start >= sent` never left Puerta (and can go elsewhere if the
//!   connection dies);
//! - the state is `Idle` whenever no socket exists.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::types::{ClientId, Protocol};
use crate::protocol::memcache::McReplyDecoder;
use crate::protocol::resp::ReplyDecoder;
use crate::session::outbuf::OutBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BState {
    Idle,
    Connecting { deadline: Option<Instant> },
    Ready,
}

pub(super) enum ReplyDec {
    Resp(ReplyDecoder),
    Mc(McReplyDecoder),
}

/// A request written (or queued) on this connection, awaiting its reply.
pub(super) struct Inflight {
    /// `None` for the AUTH/SELECT Puerta sends on connect.
    pub client: Option<ClientId>,
    pub seq: u64,
    pub frag: u32,
    pub request: Bytes,
    pub route_key: Bytes,
    pub retrieval: bool,
    /// Offset of the request's first byte in this connection's stream.
    pub start: u64,
    pub deadline: Option<Instant>,
}

pub(super) struct Backend {
    pub state: BState,
    pub out: OutBuf,
    pub queued: u64,
    pub sent: u64,
    pub rbuf: BytesMut,
    pub dec: ReplyDec,
    pub inflight: VecDeque<Inflight>,
}

impl Backend {
    pub fn new(proto: Protocol) -> Backend {
        Backend {
            state: BState::Idle,
            out: OutBuf::default(),
            queued: 0,
            sent: 0,
            rbuf: BytesMut::new(),
            dec: new_dec(proto),
            inflight: VecDeque::new(),
        }
    }

    /// Forgets the connection; returns what was in flight.
    pub fn reset(&mut self, proto: Protocol) -> VecDeque<Inflight> {
        let taken = std::mem::take(&mut self.inflight);
        *self = Backend::new(proto);
        taken
    }

    pub fn push(&mut self, mut entry: Inflight, expect_reply: bool) {
        entry.start = self.queued;
        self.out.push(&entry.request);
        self.queued += entry.request.len() as u64;
        if expect_reply {
            self.inflight.push_back(entry);
        }
    }

    /// The earliest deadline this connection has.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            BState::Idle => None,
            BState::Connecting { deadline } => deadline,
            BState::Ready => self.inflight.front().and_then(|e| e.deadline),
        }
    }
}

fn new_dec(proto: Protocol) -> ReplyDec {
    match proto {
        Protocol::Redis => ReplyDec::Resp(ReplyDecoder::default()),
        Protocol::Memcache => ReplyDec::Mc(McReplyDecoder::default()),
    }
}
