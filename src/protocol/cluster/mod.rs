//! Redis Cluster on the wire: topology replies (CLUSTER SLOTS, CLUSTER
//! NODES), the redirect and retry errors nodes answer with (MOVED, ASK,
//! TRYAGAIN, CLUSTERDOWN, LOADING), and the commands Puerta itself sends to
//! nodes (ASKING, READONLY, AUTH, the topology queries).
//!
//! Sans-IO and allocation-light on the request path: `redirect::classify`
//! looks only at an error line; the topology parsers run on the control
//! thread and may allocate. Nothing here knows about slots maps or
//! sessions; `route::slotmap` and `control::cluster` consume the results.

pub mod commands;
pub mod keys;
pub mod nodes;
pub mod redirect;
pub mod slots;

pub use nodes::{parse_nodes, NodeFlags, NodeLine};
pub use redirect::{classify, Redirect};
pub use slots::{parse_slots, SlotsEntry};

use bytes::Bytes;

use crate::protocol::resp::encode;

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// A topology reply that does not have the documented shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterParseError {
    #[error("CLUSTER SLOTS: {0}")]
    Slots(String),
    #[error("CLUSTER NODES line {line}: {problem}")]
    Nodes { line: usize, problem: String },
    #[error("node answered an error: {0}")]
    ErrorReply(String),
}

/// Where a node says to go: `host:port` as announced. An empty host means
/// "the host you asked" (Redis sends `:port` when it does not know its
/// own address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `host:port` (IPv6 hosts keep their colons: the port is after
    /// the last one).
    pub fn parse(text: &str) -> Option<Endpoint> {
        let (host, port) = text.rsplit_once(':')?;
        let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(Endpoint { host: host.to_owned(), port })
    }

    /// `host:port` as a cluster announces it (IPv6 unbracketed, as Redis
    /// writes it in MOVED and CLUSTER NODES).
    pub fn text(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The longest announced hostname kept (a DNS name's limit).
pub const MAX_HOSTNAME: usize = 253;

/// A hostname a node announces (`cluster-announce-hostname`, in CLUSTER
/// SLOTS metadata or CLUSTER NODES), kept only if it is a DNS name: at
/// most `MAX_HOSTNAME` bytes, dot-separated labels of 1 to 63 ASCII
/// letters, digits, `-` or `_`, no label starting or ending with `-`.
/// Lowercased. It is network data that becomes a TLS server name, so
/// anything else is dropped (`None`), never an error.
pub fn dns_name(raw: &str) -> Option<String> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() || name.len() > MAX_HOSTNAME {
        return None;
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    name.split('.').all(label_ok).then(|| name.to_ascii_lowercase())
}

/// `ASKING`: the next command may run on a slot this node is importing.
pub const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
/// `READONLY`: this connection may read from a replica.
pub const READONLY: &[u8] = b"*1\r\n$8\r\nREADONLY\r\n";
/// `CLUSTER SLOTS`
pub const CLUSTER_SLOTS: &[u8] = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
/// `CLUSTER NODES`
pub const CLUSTER_NODES: &[u8] = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n";

/// `AUTH password` or, with a user, `AUTH username password` (Redis 6 ACL).
pub fn auth(username: Option<&str>, password: &str) -> Bytes {
    match username {
        Some(u) => encode::command([&b"AUTH"[..], u.as_bytes(), password.as_bytes()].into_iter()),
        None => encode::command([&b"AUTH"[..], password.as_bytes()].into_iter()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders_are_resp_commands() {
        let one = |s: &[u8]| encode::command([s].into_iter());
        assert_eq!(ASKING, &one(b"ASKING")[..]);
        assert_eq!(READONLY, &one(b"READONLY")[..]);
        assert_eq!(CLUSTER_SLOTS, &encode::command([&b"CLUSTER"[..], b"SLOTS"].into_iter())[..]);
        assert_eq!(CLUSTER_NODES, &encode::command([&b"CLUSTER"[..], b"NODES"].into_iter())[..]);
        assert_eq!(&auth(None, "pw")[..], b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
        assert_eq!(&auth(Some("al"), "pw")[..], b"*3\r\n$4\r\nAUTH\r\n$2\r\nal\r\n$2\r\npw\r\n");
    }

    #[test]
    fn dns_names_are_bounded_and_validated() {
        assert_eq!(dns_name("Node-1.Test").as_deref(), Some("node-1.test"));
        assert_eq!(dns_name("node-1.test.").as_deref(), Some("node-1.test"), "a root dot is dropped");
        assert_eq!(dns_name("a_b").as_deref(), Some("a_b"));
        for bad in ["", ".", "a..b", "-a", "a-", "a b", "a/b", "a\0b", "ä.test", "a:1", "*.test"] {
            assert_eq!(dns_name(bad), None, "{bad:?}");
        }
        assert_eq!(dns_name(&"a".repeat(64)), None, "a label is at most 63 bytes");
        let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
        assert_eq!(long.len(), MAX_HOSTNAME);
        assert!(dns_name(&long).is_some());
        assert_eq!(dns_name(&format!("{long}e")), None, "longer than 253 bytes");
    }

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::parse("10.0.0.1:7000"), Some(Endpoint { host: "10.0.0.1".into(), port: 7000 }));
        assert_eq!(Endpoint::parse("::1:7000"), Some(Endpoint { host: "::1".into(), port: 7000 }));
        assert_eq!(Endpoint::parse(":7000"), Some(Endpoint { host: String::new(), port: 7000 }));
        assert_eq!(Endpoint::parse("host"), None);
        assert_eq!(Endpoint::parse("h:0"), None);
        assert_eq!(Endpoint::parse("h:99999"), None);
        assert_eq!(Endpoint::parse("::1:7000").map(|e| e.text()), Some("::1:7000".to_owned()));
    }
}
