//! Message tracking for a mongos session: where each message ends, which
//! request each reply answers, and what the driver said in its first hello.
//!
//! Owner: the `TcpSession` of a `mode = "mongos"` client. Sans-IO: bytes in
//! (the same chunks the session forwards, unchanged), observations out.
//! Invariants:
//! - `at_boundary` holds exactly when both directions are between whole
//!   messages and every request that expects a reply has received its last
//!   one (OP_MSG `moreToCome` requests expect none; `moreToCome` replies
//!   promise more);
//! - `pending` is bounded (`MAX_PENDING`), so a client that never reads
//!   its replies cannot grow it without limit;
//! - observations carry indices into `OPCODE_NAMES` / `COMMANDS`, never
//!   strings, so recording them allocates nothing.

use std::time::{Duration, Instant};

use crate::obs::classes::mongo_class;
use crate::protocol::mongo::command::{hello_meta, msg_flags, parse_request};
use crate::protocol::mongo::header::{opcode_index, FLAG_MORE_TO_COME, OP_MSG};
use crate::protocol::mongo::reply::{outcome, Outcome};
use crate::protocol::mongo::{command_index, FrameError, Framer, HelloMeta};

use super::tcp::Side;

/// Body bytes kept per request: enough for the command document of every
/// ordinary command (documents of inserts travel in kind-1 sections).
pub const REQUEST_CAPTURE: usize = 16 * 1024;
/// Reply body bytes kept: the OP_MSG flagBits and enough of the body
/// document to read `ok` and, in an error reply, `codeName` after a
/// typical `errmsg` (`protocol::mongo::reply`).
const REPLY_CAPTURE: usize = 1024;
/// Most requests awaiting a reply on one connection.
pub const MAX_PENDING: usize = 256;

/// A short name (a database or a command) held inline, truncated past
/// `InlineName::CAP` bytes, so recording a request allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineName {
    len: u8,
    buf: [u8; InlineName::CAP],
}

impl Default for InlineName {
    fn default() -> Self {
        InlineName { len: 0, buf: [0; InlineName::CAP] }
    }
}

impl InlineName {
    const CAP: usize = 64;

    fn new(s: &str) -> Self {
        let mut d = InlineName::default();
        let mut n = s.len().min(Self::CAP);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        d.buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        d.len = n as u8;
        d
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

/// Something the driver should count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// A client request of `bytes` (the whole message) went toward the
    /// backend.
    Request { opcode: u8, command: u8, bytes: u32 },
    /// A reply of `bytes` answered a request `elapsed` after it was seen.
    /// `name` is the command as the client sent it (`command` counts
    /// unknown ones as "other"; the slow-op log names them). `error`: the
    /// reply said `ok: 0`, in this class (`obs::classes::mongo_class`).
    Reply { command: u8, name: InlineName, db: InlineName, elapsed: Duration, bytes: u32, error: Option<u8> },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The id the next reply's `responseTo` must carry.
    request_id: i32,
    command: u8,
    name: InlineName,
    db: InlineName,
    started: Instant,
}

#[derive(Debug)]
pub struct MongoTracker {
    req: Framer,
    rep: Framer,
    pending: Vec<Pending>,
    /// Requests seen so far (the first one is the handshake).
    requests: u64,
    /// `requests` already charged to a rate limit (`take_new_requests`).
    charged: u64,
    hello: Option<HelloMeta>,
    obs: Vec<Observation>,
}

impl MongoTracker {
    pub fn new(max_message_bytes: u32) -> Self {
        MongoTracker {
            req: Framer::new(max_message_bytes, REQUEST_CAPTURE),
            rep: Framer::new(max_message_bytes, REPLY_CAPTURE),
            pending: Vec::new(),
            requests: 0,
            charged: 0,
            hello: None,
            obs: Vec::new(),
        }
    }

    /// Feeds bytes read from `from`. An error means the stream cannot be
    /// framed and the connection must close.
    pub fn handle_data(&mut self, from: Side, data: &[u8], now: Instant) -> Result<(), FrameError> {
        let MongoTracker { req, rep, pending, requests, hello, obs, .. } = self;
        match from {
            Side::Client => req.feed(data, |f| {
                let r = parse_request(f.header.op_code, f.body);
                let command = command_index(r.command) as u8;
                obs.push(Observation::Request {
                    opcode: opcode_index(f.header.op_code) as u8,
                    command,
                    bytes: f.header.length,
                });
                if *requests == 0 {
                    *hello = hello_meta(&r);
                }
                *requests += 1;
                let no_reply = f.header.op_code == OP_MSG && r.flags & FLAG_MORE_TO_COME != 0;
                if !no_reply {
                    if pending.len() >= MAX_PENDING {
                        pending.remove(0);
                    }
                    let db = InlineName::new(r.db.unwrap_or(""));
                    let name = InlineName::new(r.command.unwrap_or(""));
                    pending.push(Pending { request_id: f.header.request_id, command, name, db, started: now });
                }
            }),
            Side::Backend => rep.feed(data, |f| {
                let Some(i) = pending.iter().position(|p| p.request_id == f.header.response_to) else {
                    return;
                };
                let p = pending[i];
                let error = match outcome(f.header.op_code, f.body) {
                    Outcome::Ok => None,
                    Outcome::Failed(code_name) => Some(mongo_class(code_name) as u8),
                };
                obs.push(Observation::Reply {
                    command: p.command,
                    name: p.name,
                    db: p.db,
                    elapsed: now.saturating_duration_since(p.started),
                    bytes: f.header.length,
                    error,
                });
                if msg_flags(f.header.op_code, f.body) & FLAG_MORE_TO_COME != 0 {
                    // Exhaust: the next reply answers this one.
                    pending[i].request_id = f.header.request_id;
                    pending[i].started = now;
                } else {
                    pending.remove(i);
                }
            }),
        }
    }

    /// Whole requests framed since the last call (per-IP rate limits
    /// charge them).
    pub fn take_new_requests(&mut self) -> u64 {
        let n = self.requests.saturating_sub(self.charged);
        self.charged = self.requests;
        n
    }

    /// Between a reply and the next request: nothing half-sent either way
    /// and no reply outstanding.
    pub fn at_boundary(&self) -> bool {
        self.req.at_boundary() && self.rep.at_boundary() && self.pending.is_empty()
    }

    /// The client side is between whole requests.
    pub fn client_at_boundary(&self) -> bool {
        self.req.at_boundary()
    }

    /// Whether the first request (the handshake) has been seen whole.
    pub fn handshake_seen(&self) -> bool {
        self.requests > 0
    }

    /// The first hello's metadata, if the first request was a hello.
    pub fn hello(&self) -> Option<&HelloMeta> {
        self.hello.as_ref()
    }

    /// Observations since the last call, oldest first.
    pub fn drain_observations(&mut self) -> std::vec::Drain<'_, Observation> {
        self.obs.drain(..)
    }

    pub fn has_observations(&self) -> bool {
        !self.obs.is_empty()
    }
}

#[cfg(test)]
#[path = "mongo_tests.rs"]
mod tests;
