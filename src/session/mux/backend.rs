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
//! - the state is `Idle` whenever no socket exists;
//! - `silent` holds the requests that get no reply (memcached `noreply`)
//!   only until they are written: the session pops them as `sent` passes
//!   their end, so their deadline bounds the write, not a reply.
//!
//! Shared with the cluster session (`session::cluster`), which queues its
//! own entry type: anything `Queued` (bytes to write, a start offset, a
//! deadline) can ride a `Backend`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::types::{ClientId, Protocol};
use crate::protocol::memcache::{McReplyDecoder, McRequestDecoder};
use crate::protocol::resp::{ReplyDecoder, RequestDecoder};
use crate::session::outbuf::OutBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BState {
    Idle,
    Connecting { deadline: Option<Instant> },
    Ready,
}

pub(crate) enum ReplyDec {
    Resp(ReplyDecoder),
    Mc(McReplyDecoder),
}

/// A request written (or queued) on this connection, awaiting its reply.
///
/// It does not keep its bytes once they are in the connection's `out`
/// (`push_request`): a request is usually a slice of the client's read
/// buffer, and holding it would pin that whole allocation for as long as
/// the reply takes, far more memory than the request's own bytes. A
/// request that must go elsewhere is copied back out of `out`.
pub(crate) struct Inflight {
    /// `None` for the AUTH/SELECT Puerta sends on connect.
    pub client: Option<ClientId>,
    pub seq: u64,
    pub frag: u32,
    /// The bytes until queued (then empty; see above).
    pub request: Bytes,
    /// The request's length in the stream.
    pub len: usize,
    /// Where the key it was routed by sits in it.
    pub route: RouteBy,
    pub retrieval: bool,
    /// Offset of the request's first byte in this connection's stream.
    pub start: u64,
    /// When it was queued (`obs::Recorder::now_us`), for the backend
    /// round trip.
    pub sent_us: u32,
    pub deadline: Option<Instant>,
}

/// Where the key a request was routed by sits in its bytes, so a request
/// that must be routed again (its connection died before it was written)
/// finds it without keeping a copy (`route_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteBy {
    /// Routed by the empty key (keyless commands, memcached `version`).
    Empty,
    /// Redis: argument `i` of the command; memcached: key `i`.
    Arg(u32),
    /// Always this server: one part of a command sent to every server
    /// (memcached `flush_all`, SCRIPT LOAD, FUNCTION, INFO), which no key
    /// routes; if its connection dies unsent it goes to the same server on
    /// a new connection. A plan sets `Server(_)`; `forward` binds each part
    /// to its fragment's server.
    Server(u32),
}

/// The key `request` was routed by.
pub(crate) fn route_key(proto: Protocol, request: &[u8], by: RouteBy) -> Vec<u8> {
    let RouteBy::Arg(i) = by else { return Vec::new() };
    let mut buf = BytesMut::from(request);
    match proto {
        Protocol::Redis => match RequestDecoder::new(usize::MAX).decode(&mut buf) {
            Ok(Some(req)) => req.arg(i as usize).to_vec(),
            _ => Vec::new(),
        },
        // Already validated when it was queued: no limits needed again.
        Protocol::Memcache => match McRequestDecoder::new(usize::MAX, usize::MAX).decode(&mut buf) {
            Ok(Some(req)) => req.key(i as usize).to_vec(),
            _ => Vec::new(),
        },
    }
}

/// Largest reply buffer sized up front (`presize`); past it a reply's
/// buffer grows as it arrives.
const PRESIZE_MAX: usize = 16 << 20;

/// Sizes a backend's reply buffer for the large bulk string or memcached
/// value being read (`want`: `ReplyDecoder::wants`, `McReplyDecoder::wants`), so it is allocated once, not grown
/// and copied read by read; such a reply then leaves the buffer as one
/// block that goes to the client uncopied (`OutBuf::push_bytes`).
#[inline]
pub(crate) fn presize(rbuf: &mut BytesMut, want: Option<usize>) {
    let Some(want) = want.map(|w| w.min(PRESIZE_MAX)) else { return };
    if want > rbuf.capacity() && want - rbuf.len() >= crate::session::outbuf::SHARE_MIN {
        rbuf.reserve(want - rbuf.len());
    }
}

/// What a `Backend` queues: bytes to write, and where they start in the
/// connection's stream (set when queued), plus an optional reply deadline.
pub(crate) trait Queued {
    fn bytes(&self) -> &Bytes;
    fn set_start(&mut self, start: u64);
    fn deadline(&self) -> Option<Instant>;
}

impl Queued for Inflight {
    fn bytes(&self) -> &Bytes {
        &self.request
    }
    fn set_start(&mut self, start: u64) {
        self.start = start;
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

pub(crate) struct Backend<E = Inflight> {
    pub state: BState,
    pub out: OutBuf,
    pub queued: u64,
    pub sent: u64,
    pub rbuf: BytesMut,
    pub dec: ReplyDec,
    pub inflight: VecDeque<E>,
    /// Requests expecting no reply, in stream order, not yet written.
    pub silent: VecDeque<E>,
}

impl<E: Queued> Backend<E> {
    pub fn new(proto: Protocol) -> Backend<E> {
        Backend {
            state: BState::Idle,
            out: OutBuf::default(),
            queued: 0,
            sent: 0,
            rbuf: BytesMut::new(),
            dec: new_dec(proto),
            inflight: VecDeque::new(),
            silent: VecDeque::new(),
        }
    }

    /// Forgets the connection; returns what was in flight.
    pub fn reset(&mut self, proto: Protocol) -> VecDeque<E> {
        let taken = std::mem::take(&mut self.inflight);
        *self = Backend::new(proto);
        taken
    }

    pub fn push(&mut self, mut entry: E, expect_reply: bool) {
        entry.set_start(self.queued);
        self.out.push(entry.bytes());
        self.queued += entry.bytes().len() as u64;
        if expect_reply {
            self.inflight.push_back(entry);
        } else {
            self.silent.push_back(entry);
        }
    }

    /// The earliest deadline this connection has: connecting, a reply
    /// owed, or a no-reply request not yet written.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            BState::Idle => None,
            BState::Connecting { deadline } => deadline,
            BState::Ready => {
                let reply = self.inflight.front().and_then(|e| e.deadline());
                let write = self.silent.front().and_then(|e| e.deadline());
                reply.into_iter().chain(write).min()
            }
        }
    }
}

impl Backend<Inflight> {
    /// Queues a request and lets go of its bytes (now copied in `out`).
    pub fn push_request(&mut self, mut entry: Inflight, expect_reply: bool) {
        entry.len = entry.request.len();
        self.push(entry, expect_reply);
        let queue = if expect_reply { &mut self.inflight } else { &mut self.silent };
        if let Some(e) = queue.back_mut() {
            e.request = Bytes::new();
        }
    }

    /// The bytes of a queued request that never left Puerta, copied out
    /// of `out` (`None` if any of it was written).
    pub fn unsent_request(&self, e: &Inflight) -> Option<Bytes> {
        let skip = usize::try_from(e.start.checked_sub(self.sent)?).ok()?;
        self.out.copy_unsent(skip, e.len).map(Bytes::from)
    }

    /// Takes the next no-reply request that is now wholly written.
    pub fn pop_written_silent(&mut self) -> Option<Inflight> {
        let e = self.silent.front()?;
        if e.start + e.len as u64 > self.sent {
            return None;
        }
        self.silent.pop_front()
    }
}

fn new_dec(proto: Protocol) -> ReplyDec {
    match proto {
        Protocol::Redis => ReplyDec::Resp(ReplyDecoder::default()),
        Protocol::Memcache => ReplyDec::Mc(McReplyDecoder::default()),
    }
}
