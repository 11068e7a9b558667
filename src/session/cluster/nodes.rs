//! The session's node registry and routing: which node serves a slot (the
//! snapshot's slot map, patched by a core-local MOVED override until the
//! next snapshot), which replica serves a read, and where a redirect goes.
//!
//! Nodes are interned by address into session-local ids that never change
//! for the session's life (a node that leaves the topology keeps its id;
//! its idle connections are closed), so connections and units can name a
//! node while snapshots come and go. Invariants: `view_local[i]` is the
//! local id of view node `i`; an override exists only for slots a node
//! answered MOVED for since the current view arrived.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::types::BackendId;
use crate::config::ReadFrom;
use crate::protocol::cluster::Endpoint;
use crate::route::{SlotMap, SLOTS};

pub(super) struct Node {
    pub addr: SocketAddr,
    /// Shared connections, `node_connections` of them (`None` until used).
    pub shared: Vec<Option<BackendId>>,
    pub rr: u32,
    /// Idle pinned connections ready for reuse.
    pub idle_pinned: Vec<BackendId>,
    /// Pinned connections open (idle or in use).
    pub pinned_open: u32,
    /// After a failed connect: no new connection before this.
    pub down_until: Option<Instant>,
    pub fail_streak: u32,
    /// The errno of the last failure, for the error a client may see.
    pub last_errno: i32,
    /// A NodeFailed report went out for the current view.
    pub reported: bool,
}

/// Why no node could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoRoute {
    /// No master serves the slot (or no topology yet): retryable.
    NoMaster,
    /// `read_from = "replica"` and the slot's master has no healthy replica.
    NoReplica,
}

pub(super) struct Nodes {
    pub list: Vec<Node>,
    by_addr: HashMap<SocketAddr, u32>,
    pub view: Arc<SlotMap>,
    view_local: Vec<u32>,
    overrides: HashMap<u16, u32>,
    /// Slots a MOVED was reported for under the current view.
    reported_slots: Box<[u64; SLOTS / 64]>,
    rr_master: usize,
    rr_replica: usize,
    slots: usize,
}

impl Nodes {
    pub fn new(view: Arc<SlotMap>, node_connections: u32) -> Nodes {
        let mut n = Nodes {
            list: Vec::new(),
            by_addr: HashMap::new(),
            view: Arc::new(SlotMap::empty()),
            view_local: Vec::new(),
            overrides: HashMap::new(),
            reported_slots: Box::new([0; SLOTS / 64]),
            rr_master: 0,
            rr_replica: 0,
            slots: node_connections.max(1) as usize,
        };
        n.apply_view(view);
        n
    }

    /// Takes a new topology: the override and report memory start over.
    /// Returns the local ids of nodes no longer in the view.
    pub fn apply_view(&mut self, view: Arc<SlotMap>) -> Vec<u32> {
        self.view_local = view.nodes().iter().map(|n| self.intern(n.addr)).collect();
        self.view = view;
        self.overrides.clear();
        self.reported_slots.fill(0);
        for n in &mut self.list {
            n.reported = false;
        }
        (0..self.list.len() as u32).filter(|id| !self.view_local.contains(id)).collect()
    }

    /// The local id of the node at `addr`, registering it if new.
    pub fn intern(&mut self, addr: SocketAddr) -> u32 {
        if let Some(&id) = self.by_addr.get(&addr) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(Node {
            addr,
            shared: vec![None; self.slots],
            rr: 0,
            idle_pinned: Vec::new(),
            pinned_open: 0,
            down_until: None,
            fail_streak: 0,
            last_errno: 0,
            reported: false,
        });
        self.by_addr.insert(addr, id);
        id
    }

    pub fn node(&self, id: u32) -> Option<&Node> {
        self.list.get(id as usize)
    }

    pub fn node_mut(&mut self, id: u32) -> Option<&mut Node> {
        self.list.get_mut(id as usize)
    }

    /// The node serving `slot`: an override, else the view's master, or
    /// for reads one of its healthy replicas as `read_from` says.
    pub fn route(&mut self, slot: u16, read: bool, read_from: ReadFrom) -> Result<u32, NoRoute> {
        if let Some(&n) = self.overrides.get(&slot) {
            return Ok(n);
        }
        let master = self.view.master_of(slot).ok_or(NoRoute::NoMaster)?;
        if read && read_from != ReadFrom::Master {
            let replicas = self.view.replicas(master);
            if !replicas.is_empty() {
                self.rr_replica = self.rr_replica.wrapping_add(1);
                let r = replicas[self.rr_replica % replicas.len()];
                return Ok(self.view_local[usize::from(r)]);
            }
            if read_from == ReadFrom::Replica {
                return Err(NoRoute::NoReplica);
            }
        }
        Ok(self.view_local[usize::from(master)])
    }

    /// Some master, round robin (keyless commands).
    pub fn any_master(&mut self) -> Result<u32, NoRoute> {
        let shards = self.view.shards();
        if shards.is_empty() {
            return Err(NoRoute::NoMaster);
        }
        self.rr_master = self.rr_master.wrapping_add(1);
        Ok(self.view_local[usize::from(shards[self.rr_master % shards.len()])])
    }

    /// The lowest slot of each master, in slot order: how fan-outs name
    /// shards (routing by that slot survives failovers).
    pub fn shard_slots(&self) -> Vec<u16> {
        self.view.shards().iter().filter_map(|&m| self.view.lowest_slot(m)).collect()
    }

    /// Records a MOVED: `slot` is served by `node` until the next view.
    pub fn patch(&mut self, slot: u16, node: u32) {
        self.overrides.insert(slot, node);
    }

    /// The node a redirect names; `from` answered it (an empty host means
    /// its host). Hostnames are looked up among the view's endpoints.
    pub fn resolve(&mut self, to: &Endpoint, from: u32) -> Option<u32> {
        let addr = if to.host.is_empty() {
            SocketAddr::new(self.node(from)?.addr.ip(), to.port)
        } else if let Ok(ip) = to.host.parse::<IpAddr>() {
            SocketAddr::new(ip, to.port)
        } else {
            let i = self.view.find_endpoint(&to.text())?;
            return self.view_local.get(usize::from(i)).copied();
        };
        Some(self.intern(addr))
    }

    /// True the first time a MOVED for `slot` is seen under this view.
    pub fn take_moved_report(&mut self, slot: u16) -> bool {
        let (w, b) = (usize::from(slot) / 64, 1u64 << (slot % 64));
        let first = self.reported_slots[w] & b == 0;
        self.reported_slots[w] |= b;
        first
    }

    /// True the first time node `id` failed under this view.
    pub fn take_node_report(&mut self, id: u32) -> bool {
        self.node_mut(id).is_some_and(|n| !std::mem::replace(&mut n.reported, true))
    }
}
