//! What the session sends to nodes: a `Unit` is one piece of client work
//! that can be routed, redirected and retried as a whole (a command, one
//! slot's share of a split MGET, one master's share of a DBSIZE, a whole
//! MULTI..EXEC batch); a `CEntry` is what sits in a connection's in-flight
//! queue: a unit, or a hidden command whose reply is consumed (AUTH,
//! READONLY, ASKING, the MULTI and queued commands of a batch).
//!
//! Invariant: a unit is in exactly one place at a time: a connection's
//! queue, the retry timer list, or completed.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::protocol::cluster::Endpoint;

use crate::session::mux::backend::Queued;
use crate::session::mux::ClientId;

/// Where a unit's final reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dest {
    /// Part `frag` of the client's reply slot `seq`.
    Client { id: ClientId, seq: u64, frag: u32 },
    /// Part `part` of aggregate `agg` (DBSIZE, KEYS, INFO, FLUSH...).
    Agg { agg: u32, part: u32 },
}

/// How a unit picks its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// A shared connection to the slot's master, or to one of its
    /// replicas for `read` commands when `read_from` allows.
    Slot { slot: u16, read: bool },
    /// A shared connection to some master (keyless commands).
    AnyMaster,
    /// The client's pinned connection (blocking commands, WATCH).
    Pinned { slot: Option<u16> },
}

/// Done when the unit completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Done {
    Nothing,
    /// A blocking command finished: the client may read again and its
    /// pinned connection goes back to the pool.
    Unblock,
    /// EXEC / DISCARD / UNWATCH ended a WATCH: release the pin.
    EndWatch,
}

/// Rewrites a reply before delivery.
#[derive(Debug, Clone)]
pub(super) enum Post {
    None,
    /// A node's SCAN reply: part of a client's SCAN call (`scan.rs`).
    Scan(Box<super::scan::Walk>),
}

#[derive(Debug, Clone)]
pub(super) struct Unit {
    pub dest: Dest,
    /// Hidden commands sent just before `req` on the same connection
    /// (MULTI and the queued commands of a transaction); a redirect in
    /// their replies redirects the unit.
    pub pre: Vec<Bytes>,
    pub req: Bytes,
    pub target: Target,
    pub done: Done,
    pub post: Post,
    /// No reply deadline (blocking commands).
    pub blocking: bool,
    /// Its error replies can carry any text user code chooses: a script or
    /// function call (EVAL, EVALSHA, FCALL and their _RO forms) or a
    /// command Puerta does not know (a module's may run user code too). A
    /// redirect in its reply moves this request only (`redirect.rs`).
    pub scripted: bool,
    /// A redirect whose node the topology did not list yet: re-judged
    /// when the unit's retry comes due (or a new view names the node).
    pub awaiting: Option<Box<Hop>>,
    pub redirects: u32,
    pub retries: u32,
}

/// A MOVED or ASK as a node sent it.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    pub ask: bool,
    pub slot: u16,
    pub to: Endpoint,
    /// The node that answered (an empty host in `to` means its host).
    pub from: SocketAddr,
    /// When it came: a view that names the node makes the unit due then.
    pub since: Instant,
}

impl Unit {
    pub fn new(dest: Dest, req: Bytes, target: Target) -> Unit {
        Unit {
            dest,
            pre: Vec::new(),
            req,
            target,
            done: Done::Nothing,
            post: Post::None,
            blocking: false,
            scripted: false,
            awaiting: None,
            redirects: 0,
            retries: 0,
        }
    }
}

#[derive(Debug)]
pub(super) enum Entry {
    /// A reply to consume: `note` records a redirect in it for the unit
    /// that follows (transaction batches).
    Hidden {
        note: bool,
    },
    Unit(Box<Unit>),
}

/// One queued write on a connection and what its reply means.
#[derive(Debug)]
pub(super) struct CEntry {
    pub wire: Bytes,
    pub start: u64,
    pub deadline: Option<Instant>,
    pub what: Entry,
    /// When a unit was queued (`obs::Recorder::now_us`), for the node's
    /// round trip; 0 for hidden entries, which are not timed.
    pub sent_us: u32,
}

impl Queued for CEntry {
    fn bytes(&self) -> &Bytes {
        &self.wire
    }
    fn set_start(&mut self, start: u64) {
        self.start = start;
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// A unit waiting for its retry time.
#[derive(Debug)]
pub(super) struct Retry {
    pub at: Instant,
    pub unit: Unit,
}
