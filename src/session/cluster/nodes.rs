//! The session's node registry and routing: which node serves a slot (the
//! snapshot's slot map, patched by a core-local MOVED override until the
//! next snapshot), which replica serves a read, and which known node a
//! redirect names.
//!
//! Nodes are interned by address into session-local ids, so connections
//! and units can name a node while snapshots come and go. Trust rule
//! (DESIGN §5): only the topology (CLUSTER SLOTS / NODES, via the
//! snapshot) adds nodes; a redirect is mapped to a node with `known`,
//! which never registers one. A node that leaves the topology keeps its id
//! while connections to it are open (`conns`), and its id is freed (and
//! may be reused) once the last one closes, so the registry is bounded by
//! the topology plus nodes still draining.
//!
//! Invariants: `view_local[i]` is the local id of view node `i`, and
//! `in_view` is set exactly for those ids; an override names only a node
//! in the view and exists only for slots a node answered MOVED for since
//! the current view arrived; a freed id is in `free` and in no map.

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
    /// Connections of any kind open to the node: its id is freed when this
    /// is 0 and the node is not in the view.
    pub conns: u32,
    /// The node is in the current view (only such nodes get connections).
    pub in_view: bool,
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
    list: Vec<Option<Node>>,
    /// Freed ids, reused by `intern`.
    free: Vec<u32>,
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
            free: Vec::new(),
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
    /// Returns the local ids of nodes no longer in the view (the caller
    /// closes their idle connections, then calls `prune`).
    pub fn apply_view(&mut self, view: Arc<SlotMap>) -> Vec<u32> {
        for n in self.list.iter_mut().flatten() {
            n.in_view = false;
            n.reported = false;
        }
        self.view_local = view.nodes().iter().map(|n| self.intern(n.addr)).collect();
        for &id in &self.view_local {
            if let Some(n) = self.list.get_mut(id as usize).and_then(Option::as_mut) {
                n.in_view = true;
            }
        }
        self.view = view;
        self.overrides.clear();
        self.reported_slots.fill(0);
        self.ids().filter(|&id| !self.in_view(id)).collect()
    }

    /// Ids in use.
    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.list.iter().enumerate().filter(|(_, n)| n.is_some()).map(|(i, _)| i as u32)
    }

    /// Frees the ids of nodes out of the view with no connection left;
    /// returns them (the caller forgets its own references).
    pub fn prune(&mut self) -> Vec<u32> {
        let gone: Vec<u32> =
            self.ids().filter(|&id| self.node(id).is_some_and(|n| !n.in_view && n.conns == 0)).collect();
        for &id in &gone {
            if let Some(n) = self.list.get_mut(id as usize).and_then(Option::take) {
                self.by_addr.remove(&n.addr);
                self.free.push(id);
            }
        }
        gone
    }

    /// Whether node `id` is in the current view.
    pub fn in_view(&self, id: u32) -> bool {
        self.node(id).is_some_and(|n| n.in_view)
    }

    /// Nodes registered (in the view, or out of it with connections open).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids().count()
    }

    /// The local id of the node at `addr`, registering it if new. Only
    /// `apply_view` calls this: nodes come from the topology alone.
    fn intern(&mut self, addr: SocketAddr) -> u32 {
        if let Some(&id) = self.by_addr.get(&addr) {
            return id;
        }
        let node = Node {
            addr,
            // RESP2 connections, then their RESP3 twins.
            shared: vec![None; self.slots * 2],
            rr: 0,
            idle_pinned: Vec::new(),
            pinned_open: 0,
            conns: 0,
            in_view: false,
            down_until: None,
            fail_streak: 0,
            last_errno: 0,
            reported: false,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.list[id as usize] = Some(node);
                id
            }
            None => {
                self.list.push(Some(node));
                (self.list.len() - 1) as u32
            }
        };
        self.by_addr.insert(addr, id);
        id
    }

    pub fn node(&self, id: u32) -> Option<&Node> {
        self.list.get(id as usize)?.as_ref()
    }

    pub fn node_mut(&mut self, id: u32) -> Option<&mut Node> {
        self.list.get_mut(id as usize)?.as_mut()
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

    /// Records a MOVED: `slot` is served by `node` (a node of the view)
    /// until the next view.
    pub fn patch(&mut self, slot: u16, node: u32) {
        debug_assert!(self.in_view(node), "overrides name only nodes of the view");
        self.overrides.insert(slot, node);
    }

    /// The node of the current view a redirect names, if any; `from` is
    /// the node that answered (an empty host means its host). Never
    /// registers a node: an address the topology does not list is `None`.
    pub fn known(&self, to: &Endpoint, from: SocketAddr) -> Option<u32> {
        let i = if to.host.is_empty() {
            self.view.find(SocketAddr::new(from.ip(), to.port))?
        } else if let Ok(ip) = to.host.parse::<IpAddr>() {
            self.view.find(SocketAddr::new(ip, to.port))?
        } else {
            self.view.find_endpoint(&to.text())?
        };
        self.view_local.get(usize::from(i)).copied()
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
