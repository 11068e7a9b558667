//! `CLUSTER NODES`: one line per node, the source of node flags.
//!
//! Line format: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping>
//! <pong> <epoch> <link> <slot>...`, where a slot item is `N`, `N-M`, or a
//! migration marker `[N->-id]` / `[N-<-id]`. A node flagged `fail`,
//! `fail?` (pfail), `handshake` or `noaddr`, or whose link is
//! `disconnected`, counts as unhealthy.

use super::{ClusterParseError, Endpoint};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeFlags {
    pub myself: bool,
    pub master: bool,
    pub replica: bool,
    pub fail: bool,
    pub pfail: bool,
    pub handshake: bool,
    pub noaddr: bool,
}

impl NodeFlags {
    /// What DESIGN.md calls unhealthy: fail, pfail, handshake or noaddr.
    pub fn unhealthy(&self) -> bool {
        self.fail || self.pfail || self.handshake || self.noaddr
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    /// Empty host for `:port` (a node that does not know its address).
    pub endpoint: Endpoint,
    pub hostname: Option<String>,
    pub flags: NodeFlags,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    pub connected: bool,
    /// Owned slot ranges, inclusive.
    pub slots: Vec<(u16, u16)>,
    /// Slots this node is migrating away (`[N->-id]`).
    pub migrating: Vec<u16>,
    /// Slots this node is importing (`[N-<-id]`).
    pub importing: Vec<u16>,
}

impl NodeLine {
    pub fn healthy(&self) -> bool {
        !self.flags.unhealthy() && self.connected
    }
}

/// Parses the bulk text of a `CLUSTER NODES` reply.
pub fn parse_nodes(text: &str) -> Result<Vec<NodeLine>, ClusterParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| line(l).map_err(|problem| ClusterParseError::Nodes { line: i.saturating_add(1), problem }))
        .collect()
}

fn line(l: &str) -> Result<NodeLine, String> {
    let f: Vec<&str> = l.split_ascii_whitespace().collect();
    if f.len() < 8 {
        return Err(format!("expected at least 8 fields, got {}", f.len()));
    }
    // `addr[,hostname[,key=value...]]` (Redis 7.2 may append aux fields);
    // only a valid DNS name is kept (it may become a TLS server name).
    let mut parts = f[1].split(',');
    let addr = parts.next().unwrap_or_default();
    let hostname = parts.next().filter(|h| !h.contains('=')).and_then(super::dns_name);
    let ip_port = addr.split_once('@').map_or(addr, |(a, _)| a);
    let endpoint = match Endpoint::parse(ip_port) {
        Some(e) => e,
        // A `noaddr` node is listed as ":0@0": keep it, unroutable.
        None if ip_port.ends_with(":0") => Endpoint { host: String::new(), port: 0 },
        None => return Err(format!("expected ip:port@cport, got {:?}", f[1])),
    };
    let mut flags = NodeFlags::default();
    for flag in f[2].split(',') {
        match flag {
            "myself" => flags.myself = true,
            "master" => flags.master = true,
            "slave" | "replica" => flags.replica = true,
            "fail" => flags.fail = true,
            "fail?" => flags.pfail = true,
            "handshake" => flags.handshake = true,
            "noaddr" => flags.noaddr = true,
            // nofailover, noflags and future flags do not affect routing.
            _ => {}
        }
    }
    let master_id = (f[3] != "-").then(|| f[3].to_owned());
    let connected = f[7] == "connected";
    let (mut slots, mut migrating, mut importing) = (Vec::new(), Vec::new(), Vec::new());
    for item in &f[8..] {
        if let Some(inner) = item.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            if let Some((slot, _)) = inner.split_once("->-") {
                migrating.push(slot_num(slot)?);
            } else if let Some((slot, _)) = inner.split_once("-<-") {
                importing.push(slot_num(slot)?);
            } else {
                return Err(format!("expected [slot->-id] or [slot-<-id], got {item:?}"));
            }
            continue;
        }
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let (a, b) = (slot_num(a)?, slot_num(b)?);
        if a > b {
            return Err(format!("slot range {item:?} is reversed"));
        }
        slots.push((a, b));
    }
    Ok(NodeLine { id: f[0].to_owned(), endpoint, hostname, flags, master_id, connected, slots, migrating, importing })
}

fn slot_num(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|&n| usize::from(n) < super::SLOTS)
        .ok_or_else(|| format!("expected a slot, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
07c3 127.0.0.1:30004@31004,h4 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 7000 [5460->-67ed] [77-<-67ed]
292f 127.0.0.1:30003@31003 master,fail? - 1426238317741 1426238316232 3 disconnected 10923-16383
aaaa :0@0 master,noaddr - 0 0 0 disconnected
";

    #[test]
    fn parses_flags_slots_and_migrations() {
        let n = parse_nodes(TEXT).unwrap();
        assert_eq!(n.len(), 5);
        assert_eq!(n[0].master_id.as_deref(), Some("e7d1"));
        assert_eq!(n[0].hostname.as_deref(), Some("h4"));
        assert!(n[0].flags.replica && n[0].healthy());
        assert_eq!(n[1].slots, [(5461, 10922)]);
        assert!(n[2].flags.myself && n[2].flags.master);
        assert_eq!(n[2].slots, [(0, 5460), (7000, 7000)]);
        assert_eq!((n[2].migrating.clone(), n[2].importing.clone()), (vec![5460], vec![77]));
        assert!(n[3].flags.pfail && !n[3].healthy() && !n[3].connected);
        assert!(n[4].flags.noaddr && n[4].endpoint.port == 0 && !n[4].healthy());
        assert_eq!(n[1].endpoint, Endpoint { host: "127.0.0.1".into(), port: 30002 });
    }

    #[test]
    fn hostnames_are_positional_and_validated() {
        let host =
            |field: &str| parse_nodes(&format!("a {field} master - 0 0 1 connected")).unwrap()[0].hostname.clone();
        assert_eq!(host("1.2.3.4:1@2,Node-1.test").as_deref(), Some("node-1.test"));
        assert_eq!(host("1.2.3.4:1@2,node-1.test,shard-id=ab12").as_deref(), Some("node-1.test"));
        assert_eq!(host("1.2.3.4:1@2,,shard-id=ab12"), None, "no hostname, an aux field");
        assert_eq!(host("1.2.3.4:1@2,shard-id=ab12"), None, "an aux field is not a hostname");
        assert_eq!(host("1.2.3.4:1@2,bad/name"), None, "not a DNS name");
    }

    #[test]
    fn bad_lines_name_their_number() {
        assert_eq!(
            parse_nodes("a 1.2.3.4:1@2 master - 0 0 1 connected 0-5\nshort line\n"),
            Err(ClusterParseError::Nodes { line: 2, problem: "expected at least 8 fields, got 2".into() })
        );
        assert!(parse_nodes("a nohost master - 0 0 1 connected").is_err());
        assert!(parse_nodes("a 1.2.3.4:1@2 master - 0 0 1 connected 9-3").is_err());
        assert!(parse_nodes("a 1.2.3.4:1@2 master - 0 0 1 connected 16384").is_err());
        assert!(parse_nodes("a 1.2.3.4:1@2 master - 0 0 1 connected [5-x]").is_err());
        assert_eq!(parse_nodes("\n\n"), Ok(vec![]));
    }
}
