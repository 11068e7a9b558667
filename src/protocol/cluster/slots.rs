//! `CLUSTER SLOTS`: slot ranges with their master and replicas.
//!
//! Shape (Redis 3 to 7): an array of `[start, end, master, replica...]`,
//! each node `[host, port, id?, metadata?]`, the metadata a flat list of
//! key/value pairs (Redis 7: `hostname` with `cluster-announce-hostname`;
//! `ip` when the endpoint is a hostname). Only `hostname` is kept, and
//! only if it is a DNS name (`super::dns_name`). Redis writes the host as ""
//! or "?" (or nil) when it does not know an endpoint for the node; that is
//! kept as an empty host, meaning "the host this reply came from". Redis
//! leaves failed replicas out of this reply; node flags come from
//! `CLUSTER NODES`.

use super::{ClusterParseError, Endpoint};
use crate::protocol::resp::value::Value;

/// One node of a slot range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotsNode {
    pub endpoint: Endpoint,
    /// The node id, empty before Redis 4 (which did not send it).
    pub id: String,
    /// The announced hostname (metadata `hostname`), if a valid DNS name.
    pub hostname: Option<String>,
}

/// One `[start, end, master, replicas...]` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotsEntry {
    pub start: u16,
    pub end: u16,
    pub master: SlotsNode,
    pub replicas: Vec<SlotsNode>,
}

fn bad(what: String) -> ClusterParseError {
    ClusterParseError::Slots(what)
}

/// Parses a whole `CLUSTER SLOTS` reply.
pub fn parse_slots(v: &Value) -> Result<Vec<SlotsEntry>, ClusterParseError> {
    if let Value::Error(e) = v {
        return Err(ClusterParseError::ErrorReply(String::from_utf8_lossy(e).into_owned()));
    }
    let ranges = v.as_array().ok_or_else(|| bad("expected an array".into()))?;
    ranges.iter().enumerate().map(|(i, r)| entry(r).map_err(|e| bad(format!("range {i}: {e}")))).collect()
}

fn entry(v: &Value) -> Result<SlotsEntry, String> {
    let parts = v.as_array().ok_or("expected an array")?;
    if parts.len() < 3 {
        return Err(format!("expected start, end and a master, got {} elements", parts.len()));
    }
    let slot = |x: &Value| {
        x.as_int()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&s| usize::from(s) < super::SLOTS)
            .ok_or_else(|| format!("expected a slot 0..16383, got {x:?}"))
    };
    let (start, end) = (slot(&parts[0])?, slot(&parts[1])?);
    if start > end {
        return Err(format!("range {start}-{end} is reversed"));
    }
    let master = node(&parts[2])?;
    let replicas = parts[3..].iter().map(node).collect::<Result<Vec<_>, _>>()?;
    Ok(SlotsEntry { start, end, master, replicas })
}

fn node(v: &Value) -> Result<SlotsNode, String> {
    let f = v.as_array().ok_or("expected a node array")?;
    let host = match f.first() {
        Some(Value::Nil) | None => "",
        Some(h) => h.as_str().ok_or_else(|| format!("expected a host string, got {h:?}"))?,
    };
    let host = if host == "?" { "" } else { host };
    let port = f
        .get(1)
        .and_then(Value::as_int)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("expected a port 1..65535, got {:?}", f.get(1)))?;
    let id = f.get(2).and_then(Value::as_str).unwrap_or("").to_owned();
    let hostname = f.get(3).and_then(metadata_hostname);
    Ok(SlotsNode { endpoint: Endpoint { host: host.to_owned(), port }, id, hostname })
}

/// `hostname` from a node's metadata pairs; anything malformed is ignored.
fn metadata_hostname(v: &Value) -> Option<String> {
    let pairs = v.as_array()?;
    let value = pairs.chunks_exact(2).find(|kv| kv[0].as_bytes() == Some(b"hostname"))?;
    value[1].as_str().and_then(super::dns_name)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::resp::value::parse;

    /// A Redis 7 reply: metadata arrays, one range with a replica, one
    /// without, and a node with an unknown endpoint.
    const REPLY: &[u8] = b"*2\r\n\
*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:30001\r\n$3\r\naaa\r\n*0\r\n\
*4\r\n$9\r\n127.0.0.1\r\n:30004\r\n$3\r\nddd\r\n*2\r\n$8\r\nhostname\r\n$2\r\nh4\r\n\
*3\r\n:5461\r\n:16383\r\n*3\r\n$1\r\n?\r\n:30002\r\n$3\r\nbbb\r\n";

    #[test]
    fn parses_ranges_nodes_and_unknown_endpoints() {
        let got = parse_slots(&parse(&Bytes::from_static(REPLY)).unwrap()).unwrap();
        let n = |host: &str, port, id: &str| SlotsNode {
            endpoint: Endpoint { host: host.into(), port },
            id: id.into(),
            hostname: (port == 30004).then(|| "h4".to_owned()),
        };
        assert_eq!(
            got,
            vec![
                SlotsEntry {
                    start: 0,
                    end: 5460,
                    master: n("127.0.0.1", 30001, "aaa"),
                    replicas: vec![n("127.0.0.1", 30004, "ddd")]
                },
                SlotsEntry { start: 5461, end: 16383, master: n("", 30002, "bbb"), replicas: vec![] },
            ]
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        let v = |s: &'static [u8]| parse(&Bytes::from_static(s)).unwrap();
        assert!(
            matches!(parse_slots(&v(b"-ERR This instance has cluster support disabled\r\n")), Err(ClusterParseError::ErrorReply(e)) if e.contains("cluster support disabled"))
        );
        assert!(parse_slots(&v(b":1\r\n")).is_err());
        assert!(parse_slots(&v(b"*1\r\n*2\r\n:0\r\n:1\r\n")).is_err(), "no master");
        assert!(parse_slots(&v(b"*1\r\n*3\r\n:9\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n")).is_err(), "reversed");
        assert!(parse_slots(&v(b"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n")).is_err(), "slot range");
        assert!(parse_slots(&v(b"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n")).is_err(), "port 0");
        assert_eq!(parse_slots(&v(b"*0\r\n")), Ok(vec![]));
    }

    #[test]
    fn hostname_metadata_is_validated() {
        let one = |meta: &str| {
            let raw = format!("*1\r\n*3\r\n:0\r\n:1\r\n*4\r\n$1\r\nh\r\n:1\r\n$1\r\ni\r\n{meta}");
            let got = parse_slots(&parse(&Bytes::from(raw)).unwrap()).unwrap();
            got[0].master.hostname.clone()
        };
        let pair = |k: &str, v: &str| format!("*2\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len());
        assert_eq!(one(&pair("hostname", "Node-1.test")).as_deref(), Some("node-1.test"));
        assert_eq!(one(&pair("hostname", "bad name")), None, "not a DNS name");
        assert_eq!(one(&pair("hostname", &"a".repeat(300))), None, "too long");
        assert_eq!(one(&pair("ip", "10.0.0.1")), None, "no hostname key");
        assert_eq!(one("*1\r\n$8\r\nhostname\r\n"), None, "a key without a value");
        assert_eq!(one(":5\r\n"), None, "not a list");
        let two = "*4\r\n$2\r\nip\r\n$1\r\nx\r\n$8\r\nhostname\r\n$2\r\nh2\r\n";
        assert_eq!(one(two).as_deref(), Some("h2"), "hostname after another pair");
    }
}
