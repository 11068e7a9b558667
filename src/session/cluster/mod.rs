//! The sans-IO Redis Cluster session, one per cluster pool per worker:
//! every client of the pool on this worker, multiplexed over a few
//! pipelined connections per cluster node.
//!
//! Driver-facing shape (the same as `mux::MuxSession`): the driver feeds
//! events (`handle_*`, time passed in), then takes bytes
//! (`poll_client_transmit`, `poll_backend_transmit`) and decisions
//! (`poll_intent`: connect, close, report to the control thread). Nodes
//! are dynamic, so a `Connect(BackendId)` is resolved to an address with
//! `backend_addr`. A new topology arrives with `handle_topology`.
//!
//! What it does for a request: applies the pool's command policy (the
//! same in every client state, `policy.rs`), routes it by its keys' slot
//! (slot map from the snapshot plus a core-local MOVED override), follows
//! MOVED (re-send at once, patch the slot, report) and ASK (ASKING + the
//! request on the same connection, map unchanged) to nodes of the
//! topology only (a redirect elsewhere waits for a refresh that names the
//! node; a script's redirect moves that request only), retries TRYAGAIN /
//! CLUSTERDOWN / LOADING / MASTERDOWN and unreachable nodes with bounded
//! backoff, splits
//! MGET/MSET/DEL/UNLINK/EXISTS/TOUCH per slot and merges in key order,
//! answers -CROSSSLOT for other cross-slot requests, sends reads to
//! READONLY replica connections when `read_from` says, runs WATCH
//! transactions, blocking commands and pub/sub on pinned connections from
//! a small pool, and answers the local commands (PING, AUTH, SCAN, INFO,
//! CLUSTER ...).
//!
//! Invariants:
//! - each client's replies leave in its request order (the mux session's
//!   per-client slot queue); a split request is ready when every part is;
//! - each client's keyed requests run in its order per slot, also when
//!   the slot's route changes under its pipeline (`order.rs`);
//! - a client that does not read never delays another: replies go to
//!   per-client buffers, and past `client_output_limit` it is closed;
//!   a client's request bytes awaiting replies are bounded by
//!   `client_queue_limit` (reads pause past it), as in `mux::limits`;
//! - only requests already written to a node that dies get an error;
//!   requests not yet written are routed again (with backoff);
//! - connections (and with them backend AUTH) go only to nodes of the
//!   current topology; nodes that leave it are forgotten once their
//!   connections close;
//! - nothing here touches a socket or reads a clock.
//!
//! Bytes from `poll_*_transmit` stay valid only until the next call into
//! the session that concerns that connection.

mod clients;
mod conns;
mod dispatch;
mod drain;
mod events;
mod fanout;
mod intake;
mod local;
mod nodes;
mod order;
mod policy;
mod redirect;
mod reply;
mod routes;
mod scan;
mod txn;
mod types;
mod unit;

pub use types::{BackendId, ClusterIntent, ClusterSessionConfig, ClusterStats};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::route::SlotMap;
use crate::session::mux::client::{Client, ClientDecoder, Slot};
use crate::session::mux::limits::Budget;
use crate::session::mux::reply::AnyReply;
use crate::session::mux::{ClientClose, ClientId, Protocol};
use conns::Conn;
use fanout::Agg;
use nodes::Nodes;
use unit::{Dest, Retry, Unit};

/// A client of the cluster session: the mux session's ordered reply queue
/// plus cluster state.
struct CClient {
    pub base: Client,
    /// The local address the client connected to (CLUSTER SLOTS says it).
    pub local: Option<SocketAddr>,
    /// MULTI state: commands queued locally until EXEC.
    pub tx: Option<txn::Tx>,
    /// WATCH, a blocking command or pub/sub: the pinned connection.
    pub pin: Option<BackendId>,
    pub watching: bool,
    /// The slot of the WATCHed keys.
    pub watch_slot: Option<u16>,
    /// Subscribed: requests go to the pin as they are, its frames relay.
    pub subscribed: bool,
    /// A blocking command is outstanding: read nothing more (as Redis).
    pub blocked: bool,
    /// A decoded request waiting until earlier replies are out.
    pub parked: Option<crate::protocol::resp::Request>,
    /// The node that served the client's last routed command (WAIT).
    pub last_node: Option<u32>,
    /// Outstanding keyed units and where they went (`order.rs`).
    pub routes: routes::Routes,
    /// Units waiting for an earlier unit of their slot (`order.rs`).
    pub held: VecDeque<Unit>,
}

pub struct ClusterSession {
    cfg: ClusterSessionConfig,
    nodes: Nodes,
    /// Boxed: a free slot costs one pointer, not a whole `CClient`.
    clients: Vec<Option<Box<CClient>>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    conns: Vec<Option<Conn>>,
    conn_gens: Vec<u32>,
    free_conns: Vec<u32>,
    aggs: Vec<Option<Agg>>,
    free_aggs: Vec<u32>,
    retries: Vec<Retry>,
    intents: VecDeque<ClusterIntent>,
    dirty_clients: Vec<ClientId>,
    dirty_backends: Vec<BackendId>,
    /// Clients that may continue decoding (a parked or blocked request
    /// cleared); run at the end of each event.
    resume: Vec<ClientId>,
    /// Clients with held units whose earlier work was answered; run with
    /// `resume`.
    unhold: Vec<ClientId>,
    stats: ClusterStats,
    /// Close clients as they reach a request boundary (`set_draining`).
    draining: bool,
    /// Reply bytes buffered per client and in all (`mux::limits`).
    budget: Budget,
    /// The latest `now` an event passed in (for events that carry none).
    clock: Option<Instant>,
    /// When a redirect to a node outside the topology was last reported
    /// (at most one report per `redirect::UNKNOWN_REPORT_GAP`, and again
    /// at once under a new view).
    unknown_reported: Option<Instant>,
    /// Requests decoded from clients (INFO's `total_commands_processed`).
    commands: u64,
    /// Per-request timing, per-command counters, slow log (`obs`).
    obs: crate::obs::Recorder,
    /// The other workers' (clients, commands) of this pool, as last
    /// published (`set_peer_totals`).
    peers: (u64, u64),
    /// Per-IP rate limits of the pool on this core (`session::ratelimit`).
    pub(super) rate: crate::session::ratelimit::RateGate,
}

impl ClusterSession {
    /// A session routing on `view` (the pool snapshot's slot map).
    pub fn new(cfg: ClusterSessionConfig, view: Arc<SlotMap>) -> ClusterSession {
        ClusterSession {
            nodes: Nodes::new(view, cfg.node_connections),
            cfg,
            clients: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            conns: Vec::new(),
            conn_gens: Vec::new(),
            free_conns: Vec::new(),
            aggs: Vec::new(),
            free_aggs: Vec::new(),
            retries: Vec::new(),
            intents: VecDeque::new(),
            dirty_clients: Vec::new(),
            dirty_backends: Vec::new(),
            resume: Vec::new(),
            unhold: Vec::new(),
            stats: ClusterStats::default(),
            draining: false,
            budget: Budget::default(),
            clock: None,
            unknown_reported: None,
            commands: 0,
            obs: crate::obs::Recorder::off(crate::obs::Kind::Redis),
            peers: (0, 0),
            rate: Default::default(),
        }
    }

    /// Where this session records timing, counters and slow requests.
    pub fn set_recorder(&mut self, rec: crate::obs::Recorder) {
        self.obs = rec;
    }

    pub fn recorder(&self) -> &crate::obs::Recorder {
        &self.obs
    }

    pub fn recorder_mut(&mut self) -> &mut crate::obs::Recorder {
        &mut self.obs
    }

    /// The batch's clock, for events that carry none and for timing.
    #[inline]
    fn set_clock(&mut self, now: Instant) {
        self.clock = Some(now);
        self.obs.set_now(now);
    }

    pub fn config(&self) -> &ClusterSessionConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }

    /// The topology this session routes on.
    pub fn topology(&self) -> &Arc<SlotMap> {
        &self.nodes.view
    }

    /// A new snapshot's slot map: MOVED overrides are dropped (the new map
    /// is at least as fresh), idle connections to nodes that left the
    /// topology are closed (busy ones once idle) and such nodes forgotten,
    /// and units waiting for a redirect's node to appear are woken if it
    /// did (`redirect.rs`).
    pub fn handle_topology(&mut self, view: Arc<SlotMap>) {
        if Arc::ptr_eq(&view, &self.nodes.view) {
            return;
        }
        let gone = self.nodes.apply_view(view);
        self.unknown_reported = None;
        if !gone.is_empty() {
            let on_gone: Vec<BackendId> = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (BackendId { idx: i as u32, gen: c.gen }, c.node)))
                .filter(|(_, node)| gone.contains(node))
                .map(|(b, _)| b)
                .collect();
            for b in on_gone {
                self.retire_if_gone(b);
            }
            let freed = self.nodes.prune();
            self.forget_nodes(&freed);
        }
        self.wake_awaiting();
    }

    /// The address a backend connection goes to (for `Connect`).
    pub fn backend_addr(&self, b: BackendId) -> Option<SocketAddr> {
        self.nodes.node(self.conn(b)?.node).map(|n| n.addr)
    }

    /// Registers a newly accepted client; `local` is the address it
    /// connected to (CLUSTER SLOTS announces it), if the driver knows it.
    pub fn add_client(&mut self, local: Option<SocketAddr>) -> ClientId {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.clients.push(None);
            self.gens.push(0);
            (self.clients.len() - 1) as u32
        });
        let gen = self.gens[idx as usize];
        let mut base = Client::new(gen, Protocol::Redis, self.cfg.max_request_bytes, 0);
        base.authed = self.cfg.users.is_none();
        self.clients[idx as usize] = Some(Box::new(CClient {
            base,
            local,
            tx: None,
            pin: None,
            watching: false,
            watch_slot: None,
            subscribed: false,
            blocked: false,
            parked: None,
            last_node: None,
            routes: routes::Routes::default(),
            held: VecDeque::new(),
        }));
        ClientId { idx, gen }
    }

    pub fn client_count(&self) -> usize {
        self.clients.len() - self.free.len()
    }

    /// Client requests decoded so far.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// The other workers' clients and commands of this pool (INFO).
    pub fn set_peer_totals(&mut self, clients: u64, commands: u64) {
        self.peers = (clients, commands);
    }

    fn client(&self, id: ClientId) -> Option<&CClient> {
        self.clients.get(id.idx as usize)?.as_deref().filter(|c| c.base.gen == id.gen)
    }

    fn client_mut(&mut self, id: ClientId) -> Option<&mut CClient> {
        self.clients.get_mut(id.idx as usize)?.as_deref_mut().filter(|c| c.base.gen == id.gen)
    }

    /// Queues a ready reply for `id`.
    fn reply_now(&mut self, id: ClientId, bytes: Bytes) {
        if let Some(c) = self.client_mut(id) {
            c.base.slots.push_back(Slot::ready(bytes));
        }
    }

    /// Queues `reply` (if any), then closes once it is out.
    fn close_after(&mut self, id: ClientId, why: ClientClose, reply: Bytes) {
        let Some(c) = self.client_mut(id) else { return };
        let mut slot = Slot::ready(reply);
        slot.close = Some(why);
        c.base.slots.push_back(slot);
        c.base.stop_reading = true;
    }

    /// A client that may have bytes to send (`poll_client_transmit`).
    pub fn poll_dirty_client(&mut self) -> Option<ClientId> {
        self.dirty_clients.pop()
    }

    /// A backend connection that may have bytes to send.
    pub fn poll_dirty_backend(&mut self) -> Option<BackendId> {
        self.dirty_backends.pop()
    }

    /// The next decision for the driver, if any.
    pub fn poll_intent(&mut self) -> Option<ClusterIntent> {
        self.intents.pop_front()
    }

    /// Delivers a unit's final reply to where it belongs.
    fn complete(&mut self, mut unit: Unit, reply: crate::protocol::resp::Reply) {
        let reply = match std::mem::replace(&mut unit.post, unit::Post::None) {
            unit::Post::None => reply,
            unit::Post::Scan(walk) => match self.scan_reply(unit.dest, *walk, reply) {
                Some(r) => r,
                None => return, // the call goes on at the next page
            },
        };
        match unit.done {
            unit::Done::Nothing => {}
            unit::Done::Unblock => self.unblock(unit.dest),
            unit::Done::EndWatch => self.end_watch(unit.dest),
        }
        match unit.dest {
            Dest::Client { id, seq, frag } => self.deliver(id, seq, frag, reply),
            Dest::Agg { agg, part } => self.agg_part(agg, part, reply),
        }
    }

    fn deliver(&mut self, id: ClientId, seq: u64, frag: u32, reply: crate::protocol::resp::Reply) {
        let Some(c) = self.client_mut(id) else { return };
        let before = c.base.buffered();
        if c.base.deliver(seq, frag, AnyReply::Resp(reply)) {
            let held = !c.held.is_empty();
            self.flush_client_from(id, Some(before));
            if held {
                self.unhold.push(id);
            }
        }
    }

    /// Pushes a slot awaiting `parts` replies merged by `merge`; returns
    /// its sequence number.
    fn push_slot(&mut self, id: ClientId, keys: Vec<Vec<u32>>, merge: crate::session::mux::reply::MergePlan) -> u64 {
        let Some(c) = self.client_mut(id) else { return 0 };
        let seq = c.base.next_seq();
        c.base.slots.push_back(Slot::pending(keys, merge));
        seq
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_acl;
#[cfg(test)]
mod tests_connect;
#[cfg(test)]
mod tests_keys;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_local;
#[cfg(test)]
mod tests_policy;
#[cfg(test)]
mod tests_redirect;
#[cfg(test)]
mod tests_resp3;
#[cfg(test)]
mod tests_state;
#[cfg(test)]
mod tests_trust;
