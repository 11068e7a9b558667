//! The Redis Cluster routing table of one `mode = "redis_cluster"` pool:
//! a `[u16; 16384]` slot -> node index array, the node table, and each
//! master's healthy replicas.
//!
//! Owner: built by the control thread from a topology refresh and carried
//! inside `PoolSnapshot`, so it is replaced whole with the snapshot and
//! never mutated after publication. Workers only read it (their MOVED
//! patches live in the session's core-local override, not here).
//! Invariants: every slot holds `NO_NODE` or the index of a master in
//! `nodes`; a node appears once (by address); `replicas[i]` lists healthy
//! replicas only and is empty for replicas themselves.

use std::net::SocketAddr;

use super::keyslot::SLOTS;

/// A slot no master serves.
pub const NO_NODE: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica,
}

/// One cluster node as of one refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The 40-character node id (empty if the cluster did not say).
    pub id: String,
    pub addr: SocketAddr,
    /// `host:port` as the cluster announces it: what MOVED and ASK name.
    pub endpoint: String,
    pub role: Role,
    /// For a replica, the index of its master.
    pub master: Option<u16>,
    /// False when CLUSTER NODES flags it fail, pfail, handshake or noaddr.
    pub healthy: bool,
    /// The hostname the node announces (`cluster-announce-hostname`),
    /// validated as a DNS name: the TLS server name with `server_name =
    /// "announced"`. From the topology only, never from a redirect.
    pub hostname: Option<String>,
}

/// Input to `SlotMap::build`: a node as the refresh found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: String,
    pub addr: SocketAddr,
    pub endpoint: String,
    pub healthy: bool,
    pub hostname: Option<String>,
}

/// Input to `SlotMap::build`: slot ranges (inclusive) served by one master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    pub ranges: Vec<(u16, u16)>,
    pub master: NodeSpec,
    pub replicas: Vec<NodeSpec>,
}

/// What a worker tells the control thread about a cluster pool; the
/// control thread merges reports into one topology refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterReport {
    /// A node answered `-MOVED slot addr`: the map is stale for `slot`.
    Moved { slot: u16, addr: SocketAddr },
    /// A node refused a connection, closed it or timed out.
    NodeFailed { addr: SocketAddr },
    /// A reply redirected `slot` to an address the map does not list: the
    /// worker followed nothing and waits for a refresh to name the node.
    /// It may be forged (a script's error reply), so it only asks for a
    /// refresh, which the control thread rate-limits.
    UnknownNode { slot: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    slots: Box<[u16]>,
    nodes: Vec<ClusterNode>,
    replicas: Vec<Vec<u16>>,
    /// Masters that own slots, in order of their lowest slot (SCAN walks
    /// them in this order).
    shards: Vec<u16>,
}

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap::empty()
    }
}

impl SlotMap {
    /// No nodes, no slot served (before the first successful refresh).
    pub fn empty() -> SlotMap {
        SlotMap {
            slots: vec![NO_NODE; SLOTS].into_boxed_slice(),
            nodes: Vec::new(),
            replicas: Vec::new(),
            shards: Vec::new(),
        }
    }

    /// Builds the map. A master listed by several specs (CLUSTER SLOTS
    /// lists each of its ranges separately) is one node; ranges past slot
    /// 16383 are clipped; a later spec wins a slot two specs claim.
    pub fn build(shards: Vec<ShardSpec>) -> SlotMap {
        let mut map = SlotMap::empty();
        for shard in shards {
            let m = map.intern(&shard.master, Role::Master, None);
            for (start, end) in shard.ranges {
                let end = usize::from(end).min(SLOTS - 1);
                for s in usize::from(start)..=end {
                    map.slots[s] = m;
                }
            }
            for r in &shard.replicas {
                let idx = map.intern(r, Role::Replica, Some(m));
                if r.healthy && !map.replicas[usize::from(m)].contains(&idx) {
                    map.replicas[usize::from(m)].push(idx);
                }
            }
        }
        let mut lowest: Vec<(u16, u16)> = Vec::new();
        for (slot, &n) in map.slots.iter().enumerate() {
            if n != NO_NODE && !lowest.iter().any(|&(_, m)| m == n) {
                lowest.push((slot as u16, n));
            }
        }
        map.shards = lowest.into_iter().map(|(_, n)| n).collect();
        map
    }

    /// The index of `spec`'s node, adding it if new. A node seen first as a
    /// replica and later as a master (mid-failover listings) becomes master.
    fn intern(&mut self, spec: &NodeSpec, role: Role, master: Option<u16>) -> u16 {
        if let Some(i) = self.find(spec.addr) {
            let n = &mut self.nodes[usize::from(i)];
            if role == Role::Master {
                n.role = Role::Master;
                n.master = None;
            }
            n.healthy &= spec.healthy;
            if n.hostname.is_none() {
                n.hostname.clone_from(&spec.hostname);
            }
            return i;
        }
        self.nodes.push(ClusterNode {
            id: spec.id.clone(),
            addr: spec.addr,
            endpoint: spec.endpoint.clone(),
            role,
            master,
            healthy: spec.healthy,
            hostname: spec.hostname.clone(),
        });
        self.replicas.push(Vec::new());
        (self.nodes.len() - 1) as u16
    }

    /// The master serving `slot`, if any.
    #[inline]
    pub fn master_of(&self, slot: u16) -> Option<u16> {
        self.slots.get(usize::from(slot)).copied().filter(|&n| n != NO_NODE)
    }

    pub fn node(&self, idx: u16) -> Option<&ClusterNode> {
        self.nodes.get(usize::from(idx))
    }

    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// Healthy replicas of master `idx`.
    pub fn replicas(&self, idx: u16) -> &[u16] {
        self.replicas.get(usize::from(idx)).map_or(&[], |v| &v[..])
    }

    /// Masters that serve slots, ordered by their lowest slot.
    pub fn shards(&self) -> &[u16] {
        &self.shards
    }

    /// The lowest slot master `idx` serves.
    pub fn lowest_slot(&self, idx: u16) -> Option<u16> {
        self.slots.iter().position(|&n| n == idx).map(|s| s as u16)
    }

    /// Slots that have a master.
    pub fn assigned(&self) -> usize {
        self.slots.iter().filter(|&&n| n != NO_NODE).count()
    }

    /// Slots whose master is healthy.
    pub fn served(&self) -> usize {
        let ok: Vec<bool> = self.nodes.iter().map(|n| n.healthy).collect();
        self.slots.iter().filter(|&&n| n != NO_NODE && ok[usize::from(n)]).count()
    }

    /// The node at `addr`.
    pub fn find(&self, addr: SocketAddr) -> Option<u16> {
        self.nodes.iter().position(|n| n.addr == addr).map(|i| i as u16)
    }

    /// The node announced as `endpoint` (`host:port`), for redirects that
    /// name a host instead of an address.
    pub fn find_endpoint(&self, endpoint: &str) -> Option<u16> {
        self.nodes.iter().position(|n| n.endpoint == endpoint).map(|i| i as u16)
    }

    /// Inclusive slot ranges per master, in slot order: `(start, end, node)`.
    pub fn ranges(&self) -> Vec<(u16, u16, u16)> {
        let mut out: Vec<(u16, u16, u16)> = Vec::new();
        for (slot, &n) in self.slots.iter().enumerate() {
            if n == NO_NODE {
                continue;
            }
            match out.last_mut() {
                Some((_, end, m)) if *m == n && usize::from(*end) + 1 == slot => *end = slot as u16,
                _ => out.push((slot as u16, slot as u16, n)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16, healthy: bool) -> NodeSpec {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        NodeSpec { id: format!("id{port}"), addr, endpoint: addr.to_string(), healthy, hostname: None }
    }

    fn three() -> SlotMap {
        SlotMap::build(vec![
            ShardSpec { ranges: vec![(0, 5460)], master: node(1, true), replicas: vec![node(4, true)] },
            ShardSpec { ranges: vec![(5461, 10922)], master: node(2, true), replicas: vec![node(5, false)] },
            ShardSpec { ranges: vec![(10923, 16383)], master: node(3, true), replicas: vec![node(6, true)] },
        ])
    }

    #[test]
    fn slots_nodes_and_replicas() {
        let m = three();
        assert_eq!(m.master_of(0), Some(0));
        assert_eq!(m.master_of(5460), Some(0));
        assert_eq!(m.master_of(5461), Some(2));
        assert_eq!(m.master_of(16383), Some(4));
        assert_eq!(m.assigned(), SLOTS);
        assert_eq!(m.nodes().len(), 6);
        assert_eq!(m.node(1).map(|n| (n.role, n.master)), Some((Role::Replica, Some(0))));
        assert_eq!(m.replicas(0), [1]);
        assert!(m.replicas(2).is_empty(), "an unhealthy replica serves no reads");
        assert_eq!(m.shards(), [0, 2, 4]);
        assert_eq!(m.lowest_slot(2), Some(5461));
        assert_eq!(m.find(([127, 0, 0, 1], 3).into()), Some(4));
        assert_eq!(m.find_endpoint("127.0.0.1:5"), Some(3));
        assert_eq!(m.ranges(), [(0, 5460, 0), (5461, 10922, 2), (10923, 16383, 4)]);
    }

    #[test]
    fn split_ranges_of_one_master_are_one_node() {
        let m = SlotMap::build(vec![
            ShardSpec { ranges: vec![(0, 99)], master: node(1, true), replicas: vec![] },
            ShardSpec { ranges: vec![(100, 199)], master: node(2, true), replicas: vec![] },
            ShardSpec { ranges: vec![(200, 16383)], master: node(1, true), replicas: vec![] },
        ]);
        assert_eq!(m.nodes().len(), 2);
        assert_eq!(m.master_of(250), Some(0));
        assert_eq!(m.shards(), [0, 1]);
        assert_eq!(m.ranges(), [(0, 99, 0), (100, 199, 1), (200, 16383, 0)]);
    }

    #[test]
    fn unassigned_and_unhealthy_slots() {
        let m = SlotMap::build(vec![ShardSpec { ranges: vec![(0, 8191)], master: node(1, false), replicas: vec![] }]);
        assert_eq!(m.master_of(8192), None);
        assert_eq!(m.assigned(), 8192);
        assert_eq!(m.served(), 0);
        assert_eq!(SlotMap::empty().master_of(0), None);
        let clipped = SlotMap::build(vec![ShardSpec {
            ranges: vec![(16000, u16::MAX)],
            master: node(1, true),
            replicas: vec![],
        }]);
        assert_eq!(clipped.assigned(), 384);
    }
}
