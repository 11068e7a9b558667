//! The mongos health probe: connect, (PROXY header), hello, judge.
//!
//! Owner: the control thread, which calls `probe_all` for the due backends
//! of a mongos pool. Each probe runs on its own scoped thread with blocking
//! sockets bounded by the probe deadline, so one dead host never delays the
//! others and the round ends within `check_timeout`. The message building
//! and judging is sans-IO in `protocol::mongo::probe`. With `backend_tls`
//! the hello goes over TLS (after the PROXY header, which precedes the
//! handshake as in HAProxy), the handshake bounded by the same deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::config::MongoConfig;
use crate::protocol::mongo::header::{Header, HEADER_LEN};
use crate::protocol::mongo::probe::{hello_op_msg, is_master_op_query, judge, parse_reply, HelloReply, ProbeError};
use crate::protocol::proxy;
use crate::tls::{ProbeStream, TlsError, TlsTarget};

/// One probe's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    pub rtt: Duration,
    pub process_id: Option<[u8; 12]>,
    /// Why it failed, for the log line when the backend goes down.
    pub error: Option<String>,
}

/// Largest hello reply read (a real one is well under 2 KiB).
const MAX_REPLY: u32 = 1 << 20;

/// Probes every address concurrently; results in the same order.
pub fn probe_all(addrs: &[SocketAddr], timeout: Duration, cfg: &MongoConfig) -> Vec<Outcome> {
    probe_all_tls(addrs, &vec![None; addrs.len()], timeout, cfg)
}

/// `probe_all`, speaking TLS to the addresses with a `TlsTarget`
/// (`tls[i]` goes with `addrs[i]`).
pub fn probe_all_tls(
    addrs: &[SocketAddr],
    tls: &[Option<TlsTarget>],
    timeout: Duration,
    cfg: &MongoConfig,
) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = addrs
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let t = tls.get(i).and_then(|t| t.as_ref());
                s.spawn(move || probe(a, t, timeout, cfg))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Outcome {
                    ok: false,
                    rtt: timeout,
                    process_id: None,
                    error: Some("probe thread panicked".into()),
                })
            })
            .collect()
    })
}

fn probe(addr: SocketAddr, tls: Option<&TlsTarget>, timeout: Duration, cfg: &MongoConfig) -> Outcome {
    let start = Instant::now();
    let deadline = start + timeout;
    let lb = cfg.proxy_protocol.is_some();
    let mut res = exchange((addr, tls), deadline, cfg, &hello_op_msg(lb));
    // Servers before 3.6 drop the connection on OP_MSG: retry as OP_QUERY
    // isMaster while time is left.
    if matches!(res, Err(Failure::Closed) | Err(Failure::Bad(_))) && Instant::now() < deadline {
        res = exchange((addr, tls), deadline, cfg, &is_master_op_query());
    }
    let rtt = start.elapsed();
    match res {
        Ok(r) => {
            let verdict = judge(&r, cfg.require_mongos, cfg.min_wire_version);
            Outcome { ok: verdict.is_ok(), rtt, process_id: r.process_id, error: verdict.err().map(|e| e.to_string()) }
        }
        Err(e) => Outcome { ok: false, rtt, process_id: None, error: Some(e.to_string()) },
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Io(io::Error),
    #[error("connection closed before a reply")]
    Closed,
    #[error("{0}")]
    Bad(ProbeError),
    #[error("{0}")]
    Tls(TlsError),
}

fn io_failure(e: io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => Failure::Closed,
        // A socket timeout reads as EAGAIN; say what it means.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Failure::Io(io::Error::new(io::ErrorKind::TimedOut, "no hello reply within check_timeout"))
        }
        _ => Failure::Io(e),
    }
}

fn exchange(
    (addr, tls): (SocketAddr, Option<&TlsTarget>),
    deadline: Instant,
    cfg: &MongoConfig,
    request: &[u8],
) -> Result<HelloReply, Failure> {
    let left = || {
        let d = deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err(Failure::Io(io::Error::new(io::ErrorKind::TimedOut, "probe timed out")))
        } else {
            Ok(d)
        }
    };
    let mut s = TcpStream::connect_timeout(&addr, left()?).map_err(Failure::Io)?;
    let _ = s.set_nodelay(true);
    s.set_write_timeout(Some(left()?)).map_err(Failure::Io)?;
    if let Some(v) = cfg.proxy_protocol {
        let local = s.local_addr().map_err(Failure::Io)?;
        s.write_all(&proxy::encode(v, local, addr)).map_err(io_failure)?;
    }
    s.set_read_timeout(Some(left()?)).map_err(Failure::Io)?;
    let mut s = ProbeStream::open(s, tls).map_err(Failure::Tls)?;
    s.write_all(request).map_err(io_failure)?;
    let mut hdr = [0u8; HEADER_LEN];
    s.sock().set_read_timeout(Some(left()?)).map_err(Failure::Io)?;
    s.read_exact(&mut hdr).map_err(io_failure)?;
    let h = match Header::parse(&hdr, MAX_REPLY) {
        Some(Ok(h)) => h,
        _ => return Err(Failure::Bad(ProbeError::Malformed("bad reply header"))),
    };
    let mut msg = hdr.to_vec();
    msg.resize(h.length as usize, 0);
    s.sock().set_read_timeout(Some(left()?)).map_err(Failure::Io)?;
    s.read_exact(&mut msg[HEADER_LEN..]).map_err(io_failure)?;
    parse_reply(&msg).map_err(Failure::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::mongo::header::{OP_MSG, OP_QUERY, OP_REPLY};
    use crate::protocol::mongo::probe::PROBE_REQUEST_ID;
    use std::net::TcpListener;

    /// A one-shot server answering the first message with `reply_doc`.
    fn server(reply_doc: Option<bson::Document>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut hdr = [0u8; 16];
            c.read_exact(&mut hdr).unwrap();
            let h = Header::parse(&hdr, 1 << 20).unwrap().unwrap();
            let mut body = vec![0u8; h.body_len()];
            c.read_exact(&mut body).unwrap();
            let Some(d) = reply_doc else {
                std::thread::sleep(Duration::from_secs(2)); // never answers
                return;
            };
            let mut b = 0u32.to_le_bytes().to_vec();
            b.push(0);
            d.to_writer(&mut b).unwrap();
            let mut out = Vec::new();
            Header { length: (16 + b.len()) as u32, request_id: 1, response_to: PROBE_REQUEST_ID, op_code: OP_MSG }
                .write(&mut out);
            out.extend(b);
            c.write_all(&out).unwrap();
        });
        addr
    }

    /// A pre-3.6 server: it drops the connection on OP_MSG and answers an
    /// OP_QUERY isMaster with OP_REPLY. Returns the address and the opcodes
    /// it received, in order.
    fn legacy_server() -> (SocketAddr, std::sync::mpsc::Receiver<i32>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut c, _) = l.accept().unwrap();
                let mut hdr = [0u8; 16];
                c.read_exact(&mut hdr).unwrap();
                let h = Header::parse(&hdr, 1 << 20).unwrap().unwrap();
                let mut body = vec![0u8; h.body_len()];
                c.read_exact(&mut body).unwrap();
                tx.send(h.op_code).unwrap();
                if h.op_code != OP_QUERY {
                    continue; // unknown opcode: drop the connection
                }
                let r = crate::protocol::mongo::command::parse_request(OP_QUERY, &body);
                assert_eq!((r.command, r.db), (Some("isMaster"), Some("admin")));
                // OP_REPLY: responseFlags, cursorID, startingFrom, numberReturned, doc.
                let mut b = 0i32.to_le_bytes().to_vec();
                b.extend_from_slice(&0i64.to_le_bytes());
                b.extend_from_slice(&0i32.to_le_bytes());
                b.extend_from_slice(&1i32.to_le_bytes());
                bson::doc! {"ismaster": true, "msg": "isdbgrid", "maxWireVersion": 9, "ok": 1.0}
                    .to_writer(&mut b)
                    .unwrap();
                let mut out = Vec::new();
                let len = (16 + b.len()) as u32;
                Header { length: len, request_id: 1, response_to: h.request_id, op_code: OP_REPLY }.write(&mut out);
                out.extend(b);
                c.write_all(&out).unwrap();
            }
        });
        (addr, rx)
    }

    #[test]
    fn falls_back_to_op_query_is_master() {
        let (addr, seen) = legacy_server();
        let r = probe_all(&[addr], Duration::from_secs(2), &MongoConfig::default());
        assert!(r[0].ok, "an old mongos answering only OP_QUERY isMaster is healthy: {:?}", r[0]);
        let ops: Vec<i32> = seen.try_iter().collect();
        assert_eq!(ops, vec![OP_MSG, OP_QUERY], "hello first, then the isMaster fallback");
    }

    #[test]
    fn judges_real_sockets() {
        let cfg = MongoConfig::default();
        let pid = bson::oid::ObjectId::new();
        let good = server(Some(bson::doc! {"msg": "isdbgrid", "maxWireVersion": 17, "ok": 1.0,
        "topologyVersion": {"processId": pid, "counter": 0_i64}}));
        let mongod = server(Some(bson::doc! {"maxWireVersion": 17, "ok": 1.0}));
        let silent = server(None);
        let r = probe_all(&[good, mongod, silent], Duration::from_millis(500), &cfg);
        assert!(r[0].ok, "{:?}", r[0]);
        assert_eq!(r[0].process_id, Some(pid.bytes()));
        assert!(!r[1].ok);
        assert!(r[1].error.as_deref().unwrap().contains("not a mongos"), "{:?}", r[1]);
        assert!(!r[2].ok, "a server that never answers fails within the timeout");
        assert!(r[2].rtt < Duration::from_millis(1500));
        assert!(r[2].error.as_deref().unwrap().contains("no hello reply"), "{:?}", r[2]);
    }
}
