//! The thin blocking I/O of a topology refresh: connect to one node, send
//! AUTH (when configured), CLUSTER SLOTS and CLUSTER NODES in one write,
//! read the replies with one overall deadline, parse them, and resolve
//! the host names they announce (`dns.rs`). With the pool's `backend_tls`
//! the connection speaks TLS (`tls::ProbeStream` over the same socket, so
//! the handshake is bounded by the same deadline).
//!
//! Runs on the control thread, never on a worker. Every wait (connect,
//! write, each read, DNS) is bounded by one deadline `timeout` from the
//! start, so an unreachable or silent node or a slow resolver costs at
//! most that much; the caller (`ClusterPool::poll_refresh`) splits one
//! budget over the nodes it asks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::dns::Dns;
use super::topology;
use crate::protocol::cluster::{self, parse_nodes, parse_slots, ClusterParseError};
use crate::protocol::resp::value::{self, Value};
use crate::protocol::resp::{Reply, ReplyDecoder, ReplyKind};
use crate::protocol::ProtoError;
use crate::route::slotmap::ShardSpec;
use crate::tls::{ClientTls, ProbeStream, TlsError, TlsTarget};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: no reply within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr}: AUTH failed: {reply}")]
    Auth { addr: SocketAddr, reply: String },
    #[error("{addr}: bad reply: {source}")]
    Proto {
        addr: SocketAddr,
        #[source]
        source: ProtoError,
    },
    #[error("{addr}: TLS: {source}")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: TlsError,
    },
    #[error("{addr}: {source}")]
    Parse {
        addr: SocketAddr,
        #[source]
        source: ClusterParseError,
    },
}

/// Backend credentials: (user, password).
pub type Credentials<'a> = Option<(Option<&'a str>, &'a str)>;

/// TLS toward a node: the pool's client config and the host to name.
pub type NodeTls<'a> = Option<(&'a ClientTls, &'a str)>;

/// Fetches the topology as the node at `addr` sees it; host names are
/// resolved with `dns` within the same deadline.
pub fn fetch(
    addr: SocketAddr,
    auth: Credentials<'_>,
    timeout: Duration,
    dns: &mut Dns,
    tls: NodeTls<'_>,
) -> Result<Vec<ShardSpec>, FetchError> {
    let io = |source| FetchError::Io { addr, source };
    let deadline = Instant::now() + timeout;
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    tcp.set_nodelay(true).map_err(io)?;
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    tcp.set_write_timeout(Some(left)).map_err(io)?;
    // The handshake reads too (within the write below).
    tcp.set_read_timeout(Some(left)).map_err(io)?;
    let tls_err = |source| FetchError::Tls { addr, source };
    let target = match tls {
        None => None,
        Some((tls, host)) => Some(TlsTarget { config: tls.config.clone(), name: tls.name_for(host).map_err(tls_err)? }),
    };
    let mut s = ProbeStream::open(tcp, target.as_ref()).map_err(tls_err)?;
    let mut req = Vec::new();
    if let Some((user, pw)) = auth {
        req.extend_from_slice(&cluster::auth(user, pw));
    }
    req.extend_from_slice(cluster::CLUSTER_SLOTS);
    req.extend_from_slice(cluster::CLUSTER_NODES);
    s.write_all(&req).and_then(|()| s.flush()).map_err(io)?;
    let want = 2 + usize::from(auth.is_some());
    let mut replies = read_replies(&mut s, want, deadline, addr, timeout)?;
    if auth.is_some() {
        let r = replies.remove(0);
        if r.kind != ReplyKind::Status {
            return Err(FetchError::Auth { addr, reply: String::from_utf8_lossy(&r.raw).trim_end().to_owned() });
        }
    }
    let parse = |source| FetchError::Parse { addr, source };
    let slots_v = value::parse(&replies[0].raw).map_err(|source| FetchError::Proto { addr, source })?;
    let slots = parse_slots(&slots_v).map_err(parse)?;
    let nodes_text = match value::parse(&replies[1].raw).map_err(|source| FetchError::Proto { addr, source })? {
        Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Error(e) => return Err(parse(ClusterParseError::ErrorReply(String::from_utf8_lossy(&e).into_owned()))),
        other => {
            return Err(parse(ClusterParseError::Nodes {
                line: 0,
                problem: format!("expected a bulk string, got {other:?}"),
            }))
        }
    };
    let nodes = parse_nodes(&nodes_text).map_err(parse)?;
    let table = dns.resolve_all(&topology::hostnames(&slots, &nodes), deadline);
    let resolve = |host: &str, port: u16| table.get(&(host.to_owned(), port)).copied();
    Ok(topology::shards(&slots, &nodes, addr, &resolve))
}

fn read_replies(
    s: &mut ProbeStream,
    want: usize,
    deadline: Instant,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Vec<Reply>, FetchError> {
    let mut buf = BytesMut::new();
    let mut dec = ReplyDecoder::default();
    let mut out = Vec::with_capacity(want);
    let mut chunk = [0u8; 16 * 1024];
    while out.len() < want {
        while let Some(r) = dec.decode(&mut buf).map_err(|source| FetchError::Proto { addr, source })? {
            out.push(r);
            if out.len() == want {
                return Ok(out);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FetchError::Timeout { addr, timeout });
        }
        s.sock().set_read_timeout(Some(left)).map_err(|source| FetchError::Io { addr, source })?;
        match s.read(&mut chunk) {
            Ok(0) => {
                let source = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed");
                return Err(FetchError::Io { addr, source });
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(FetchError::Timeout { addr, timeout })
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(FetchError::Io { addr, source }),
        }
    }
    Ok(out)
}
