//! A fast mongos-shaped stand-in for benchmarks (`scripts/bench-mongo.sh`,
//! `scripts/bench-callgrind.sh MODE=mongos`): one thread, one epoll loop
//! (mio), like redis-server, so that at -c 50 it answers many messages per
//! wakeup and is not the bottleneck the Python mockupdb stand-in is.
//!
//! It answers:
//! - `hello` / `isMaster` (OP_MSG, or OP_QUERY on `admin.$cmd` with an
//!   OP_REPLY) like a mongos: `msg: "isdbgrid"`, `maxWireVersion: 17`,
//!   `ok: 1`, and a `topologyVersion` for Puerta's health probe;
//! - `find` with `filter: {_id: K}`: `{cursor: {firstBatch: [{_id: K,
//!   server: NAME}], id: 0, ns: DB.COLL}, ok: 1}`, an empty batch when K is
//!   outside `0..DOCS` (what `tests/mongo/standin.py` answers);
//! - any other OP_MSG: `{ok: 1}`; OP_MSG with `moreToCome`: nothing.
//!
//! Invariants: replies go out in request order per connection; a
//! malformed stream closes that connection only. Not a test fixture (the
//! tests use the mockupdb stand-in, which has real cursors).
//!
//! Usage: mongos_standin [--port P] [--docs N] [--name NAME]
//! Prints `PORT <n>` once listening, runs until killed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use bson::{doc, RawDocument};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const OP_REPLY: i32 = 1;
const OP_QUERY: i32 = 2004;
const OP_MSG: i32 = 2013;
const FLAG_MORE_TO_COME: u32 = 2;
const MAX_MESSAGE: usize = 48_000_000;
const LISTENER: Token = Token(usize::MAX);

struct Conn {
    sock: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// Whether WRITABLE interest is registered (a reply did not fit).
    want_write: bool,
}

struct Server {
    docs: i64,
    name: String,
    /// `hello` reply document, serialized once.
    hello: Vec<u8>,
    ok: Vec<u8>,
    next_id: i32,
}

fn le32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn put_str(out: &mut Vec<u8>, key: &str, v: &str) {
    out.push(0x02);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(&(v.len() as i32 + 1).to_le_bytes());
    out.extend_from_slice(v.as_bytes());
    out.push(0);
}

fn open(out: &mut Vec<u8>, ty: u8, key: &str) -> usize {
    if ty != 0 {
        out.push(ty);
        out.extend_from_slice(key.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(&[0; 4]);
    out.len() - 4
}

fn close(out: &mut Vec<u8>, at: usize) {
    out.push(0);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

impl Server {
    /// Appends the reply (if any) to one whole request to `out`.
    fn answer(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
        let req_id = le32(msg, 4).ok_or("short header")?;
        let op = le32(msg, 12).ok_or("short header")?;
        let body = &msg[16..];
        self.next_id = self.next_id.wrapping_add(1);
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.next_id.to_le_bytes());
        out.extend_from_slice(&req_id.to_le_bytes());
        match op {
            OP_QUERY => {
                // flags, collection cstring, skip, limit, query: isMaster only.
                out.extend_from_slice(&OP_REPLY.to_le_bytes());
                out.extend_from_slice(&0i32.to_le_bytes()); // responseFlags
                out.extend_from_slice(&0i64.to_le_bytes()); // cursorID
                out.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
                out.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
                out.extend_from_slice(&self.hello);
            }
            OP_MSG => {
                let flags = le32(body, 0).ok_or("short OP_MSG")? as u32;
                if flags & FLAG_MORE_TO_COME != 0 {
                    out.truncate(start);
                    return Ok(());
                }
                if body.get(4) != Some(&0) {
                    return Err("OP_MSG without section 0 first");
                }
                let len = le32(body, 5).and_then(|n| usize::try_from(n).ok()).ok_or("bad document")?;
                let d = body.get(5..5 + len).and_then(|b| RawDocument::from_bytes(b).ok()).ok_or("bad document")?;
                let first = d.iter().next().and_then(|e| e.ok()).map(|(k, _)| k).unwrap_or("");
                out.extend_from_slice(&OP_MSG.to_le_bytes());
                out.extend_from_slice(&0u32.to_le_bytes());
                out.push(0);
                match first {
                    "hello" | "isMaster" | "ismaster" => out.extend_from_slice(&self.hello),
                    "find" => self.find(d, out),
                    _ => out.extend_from_slice(&self.ok),
                }
            }
            _ => return Err("unsupported opcode"),
        }
        let len = (out.len() - start) as i32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    fn find(&self, d: &RawDocument, out: &mut Vec<u8>) {
        let coll = d.get_str("find").unwrap_or("c");
        let db = d.get_str("$db").unwrap_or("test");
        let id = d
            .get_document("filter")
            .ok()
            .and_then(|f| f.get("_id").ok().flatten())
            .and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)));
        let top = open(out, 0, "");
        let cursor = open(out, 0x03, "cursor");
        let batch = open(out, 0x04, "firstBatch");
        if let Some(k) = id.filter(|k| (0..self.docs).contains(k)) {
            let e = open(out, 0x03, "0");
            out.push(0x12);
            out.extend_from_slice(b"_id\0");
            out.extend_from_slice(&k.to_le_bytes());
            put_str(out, "server", &self.name);
            close(out, e);
        }
        close(out, batch);
        out.push(0x12);
        out.extend_from_slice(b"id\0");
        out.extend_from_slice(&0i64.to_le_bytes());
        put_str(out, "ns", &format!("{db}.{coll}"));
        close(out, cursor);
        out.push(0x01);
        out.extend_from_slice(b"ok\0");
        out.extend_from_slice(&1f64.to_le_bytes());
        close(out, top);
    }
}

/// Reads what is there, answers every whole message, writes what fits.
/// `Ok(false)`: the connection is done.
fn serve(srv: &mut Server, c: &mut Conn) -> io::Result<bool> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match c.sock.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => c.rbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut at = 0;
    while let Some(len) = le32(&c.rbuf, at) {
        let len = usize::try_from(len).ok().filter(|n| (16..=MAX_MESSAGE).contains(n));
        let len = len.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad messageLength"))?;
        if c.rbuf.len() - at < len {
            break;
        }
        srv.answer(&c.rbuf[at..at + len], &mut c.wbuf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        at += len;
    }
    c.rbuf.drain(..at);
    flush(c)
}

fn flush(c: &mut Conn) -> io::Result<bool> {
    while !c.wbuf.is_empty() {
        match c.sock.write(&c.wbuf) {
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let docs: i64 = arg(&args, "--docs").and_then(|p| p.parse().ok()).unwrap_or(1000);
    let name = arg(&args, "--name").unwrap_or_else(|| "standin".into());
    let mut hello = Vec::new();
    let process_id = bson::oid::ObjectId::new();
    doc! {
        "ismaster": true, "isWritablePrimary": true, "msg": "isdbgrid",
        "topologyVersion": {"processId": process_id, "counter": 0i64},
        "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000, "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1, "minWireVersion": 0, "maxWireVersion": 17, "ok": 1.0,
    }
    .to_writer(&mut hello)
    .map_err(io::Error::other)?;
    let mut ok = Vec::new();
    doc! {"ok": 1.0}.to_writer(&mut ok).map_err(io::Error::other)?;
    let mut srv = Server { docs, name, hello, ok, next_id: 0 };

    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    println!("PORT {}", listener.local_addr()?.port());
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next = 0usize;
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let _ = sock.set_nodelay(true);
                    next += 1;
                    poll.registry().register(&mut sock, Token(next), Interest::READABLE)?;
                    conns.insert(next, Conn { sock, rbuf: Vec::new(), wbuf: Vec::new(), want_write: false });
                }
                continue;
            }
            let Some(c) = conns.get_mut(&ev.token().0) else { continue };
            let alive = if ev.is_readable() || ev.is_read_closed() { serve(&mut srv, c) } else { flush(c) };
            match alive {
                Ok(true) => {
                    let want = !c.wbuf.is_empty();
                    if want != c.want_write {
                        let i = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
                        poll.registry().reregister(&mut c.sock, ev.token(), i)?;
                        c.want_write = want;
                    }
                }
                _ => {
                    if let Some(mut c) = conns.remove(&ev.token().0) {
                        let _ = poll.registry().deregister(&mut c.sock);
                    }
                }
            }
        }
    }
}
