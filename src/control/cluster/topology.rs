//! Turning one node's CLUSTER SLOTS and CLUSTER NODES replies into the
//! shard list `SlotMap::build` takes: endpoints resolved to addresses,
//! node health from the NODES flags, and each node's announced hostname
//! (SLOTS metadata, else its NODES line; already validated as a DNS name
//! by the parsers).
//!
//! Pure apart from the caller-supplied resolver (the control thread passes
//! DNS; tests pass a table). An endpoint with an empty host means the node
//! that answered (`asked`). A range whose master cannot be resolved is
//! left out (its slots stay unserved) rather than failing the refresh.
//!
//! Nodes CLUSTER NODES lists that CLUSTER SLOTS does not (a master that
//! owns no slot yet, the target of a reshard to a new node) are part of
//! the topology too, as shards without ranges: a MOVED or ASK may name
//! them (DESIGN §5: redirects go only to nodes the topology lists). Nodes
//! in handshake or without an address are left out.

use std::net::{IpAddr, SocketAddr};

use crate::protocol::cluster::slots::SlotsNode;
use crate::protocol::cluster::{Endpoint, NodeLine, SlotsEntry};
use crate::route::slotmap::{NodeSpec, ShardSpec};

/// Resolves a `host` (never empty) and port to an address.
pub type Resolve<'a> = &'a dyn Fn(&str, u16) -> Option<SocketAddr>;

/// The address for `ep`: an IP literal directly, else `resolve`.
pub fn address(ep: &Endpoint, asked: SocketAddr, resolve: Resolve<'_>) -> Option<SocketAddr> {
    if ep.host.is_empty() {
        return Some(SocketAddr::new(asked.ip(), ep.port));
    }
    match ep.host.parse::<IpAddr>() {
        Ok(ip) => Some(SocketAddr::new(ip, ep.port)),
        Err(_) => resolve(&ep.host, ep.port),
    }
}

/// The host names (not IP literals, not empty) the replies announce, each
/// once: what a refresh resolves before `shards` (`dns.rs`).
pub fn hostnames(slots: &[SlotsEntry], nodes: &[NodeLine]) -> Vec<(String, u16)> {
    let announced = slots.iter().flat_map(|e| std::iter::once(&e.master).chain(&e.replicas)).map(|n| &n.endpoint);
    let mut out: Vec<(String, u16)> = Vec::new();
    for ep in announced.chain(nodes.iter().map(|l| &l.endpoint)) {
        let name = (ep.host.clone(), ep.port);
        if !ep.host.is_empty() && ep.host.parse::<IpAddr>().is_err() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The shards of a cluster as the node at `asked` described it.
pub fn shards(slots: &[SlotsEntry], nodes: &[NodeLine], asked: SocketAddr, resolve: Resolve<'_>) -> Vec<ShardSpec> {
    let spec = |n: &SlotsNode| -> Option<NodeSpec> {
        let addr = address(&n.endpoint, asked, resolve)?;
        // Health by id, else by address (Redis before 4 sent no ids).
        let line = nodes.iter().find(|l| !n.id.is_empty() && l.id == n.id).or_else(|| {
            nodes.iter().find(|l| address(&l.endpoint, asked, resolve) == Some(addr) && l.endpoint.port != 0)
        });
        let endpoint = if n.endpoint.host.is_empty() { addr.to_string() } else { n.endpoint.text() };
        // The announced hostname: SLOTS metadata, else the NODES line's.
        let hostname = n.hostname.clone().or_else(|| line.and_then(|l| l.hostname.clone()));
        Some(NodeSpec { id: n.id.clone(), addr, endpoint, healthy: line.is_none_or(NodeLine::healthy), hostname })
    };
    let mut out: Vec<ShardSpec> = slots
        .iter()
        .filter_map(|e| {
            let master = spec(&e.master)?;
            let replicas = e.replicas.iter().filter_map(spec).collect();
            Some(ShardSpec { ranges: vec![(e.start, e.end)], master, replicas })
        })
        .collect();
    let listed =
        |out: &[ShardSpec], a| out.iter().any(|s| s.master.addr == a || s.replicas.iter().any(|r| r.addr == a));
    for l in nodes.iter().filter(|l| l.endpoint.port != 0 && !l.flags.handshake && !l.flags.noaddr) {
        let Some(addr) = address(&l.endpoint, asked, resolve) else { continue };
        if !listed(&out, addr) {
            let endpoint = if l.endpoint.host.is_empty() { addr.to_string() } else { l.endpoint.text() };
            let hostname = l.hostname.clone();
            let master = NodeSpec { id: l.id.clone(), addr, endpoint, healthy: l.healthy(), hostname };
            out.push(ShardSpec { ranges: Vec::new(), master, replicas: Vec::new() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::cluster::parse_nodes;
    use crate::route::SlotMap;

    fn node(host: &str, port: u16, id: &str) -> SlotsNode {
        SlotsNode { endpoint: Endpoint { host: host.into(), port }, id: id.into(), hostname: None }
    }

    #[test]
    fn flags_mark_health_and_hosts_resolve() {
        let slots = vec![
            SlotsEntry { start: 0, end: 8191, master: node("10.0.0.1", 1, "a"), replicas: vec![node("db-b", 2, "b")] },
            SlotsEntry { start: 8192, end: 16383, master: node("", 3, "c"), replicas: vec![node("nowhere", 4, "d")] },
        ];
        let nodes = parse_nodes(
            "a 10.0.0.1:1@11 master - 0 0 1 connected 0-8191\n\
             b 10.0.0.2:2@12 slave,fail? a 0 0 1 connected\n\
             c 10.0.0.9:3@13 myself,master - 0 0 2 connected 8192-16383\n",
        )
        .unwrap();
        let asked: SocketAddr = "10.0.0.9:3".parse().unwrap();
        let dns = |h: &str, p: u16| (h == "db-b").then(|| SocketAddr::from(([10, 0, 0, 2], p)));
        let got = shards(&slots, &nodes, asked, &dns);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].master.addr, "10.0.0.1:1".parse().unwrap());
        assert_eq!(got[0].replicas.len(), 1);
        assert_eq!(got[0].replicas[0].endpoint, "db-b:2");
        assert!(!got[0].replicas[0].healthy, "fail? is unhealthy");
        assert_eq!(got[0].replicas[0].hostname, None, "none announced");
        assert_eq!(got[1].master.addr, asked, "an empty host is the node asked");
        assert!(got[1].replicas.is_empty(), "an unresolvable replica is left out");
        let map = SlotMap::build(got);
        assert_eq!(map.served(), 16384);
        assert!(map.replicas(0).is_empty());
        let names = hostnames(&slots, &nodes);
        assert_eq!(names, [("db-b".to_owned(), 2), ("nowhere".to_owned(), 4)], "each host once, no IP literal");
    }

    #[test]
    fn announced_hostnames_come_from_slots_else_nodes() {
        let mut a = node("10.0.0.1", 1, "a");
        a.hostname = Some("node-a.test".into());
        let slots = vec![SlotsEntry { start: 0, end: 16383, master: a, replicas: vec![node("10.0.0.2", 2, "b")] }];
        let nodes = parse_nodes(
            "a 10.0.0.1:1@11,other.test myself,master - 0 0 1 connected 0-16383\n\
             b 10.0.0.2:2@12,node-b.test slave a 0 0 1 connected\n\
             e 10.0.0.5:5@15,node-e.test master - 0 0 3 connected\n",
        )
        .unwrap();
        let got = shards(&slots, &nodes, "10.0.0.1:1".parse().unwrap(), &|_: &str, _| None);
        assert_eq!(got[0].master.hostname.as_deref(), Some("node-a.test"), "SLOTS metadata first");
        assert_eq!(got[0].replicas[0].hostname.as_deref(), Some("node-b.test"), "else the NODES line");
        assert_eq!(got[1].master.hostname.as_deref(), Some("node-e.test"), "a node without slots");
        let map = SlotMap::build(got);
        assert_eq!(map.nodes()[0].hostname.as_deref(), Some("node-a.test"));
    }

    #[test]
    fn nodes_without_slots_are_in_the_topology() {
        let slots = vec![SlotsEntry { start: 0, end: 16383, master: node("10.0.0.1", 1, "a"), replicas: vec![] }];
        let nodes = parse_nodes(
            "a 10.0.0.1:1@11 myself,master - 0 0 1 connected 0-16383\n\
             e 10.0.0.5:5@15 master - 0 0 3 connected\n\
             f 10.0.0.6:6@16 handshake - 0 0 0 connected\n\
             g :0@0 master,noaddr - 0 0 0 disconnected\n",
        )
        .unwrap();
        let got = shards(&slots, &nodes, "10.0.0.1:1".parse().unwrap(), &|_: &str, _| None);
        let map = SlotMap::build(got);
        let e: SocketAddr = "10.0.0.5:5".parse().unwrap();
        assert!(map.find(e).is_some(), "a new master that owns no slot yet may be named by an ASK");
        assert_eq!(map.find_endpoint("10.0.0.5:5"), map.find(e));
        assert_eq!(map.shards().len(), 1, "it serves nothing");
        assert_eq!(map.served(), 16384);
        assert!(map.find("10.0.0.6:6".parse().unwrap()).is_none(), "not a node in handshake");
        assert_eq!(map.nodes().len(), 2);
    }
}
