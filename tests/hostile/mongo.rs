//! Hostile Mongo frames (defect 1's Mongo half): client messages whose
//! messageLength is below the 16-byte header, above the 48,000,000-byte
//! limit, negative or i32::MAX, and a mongos that answers with such
//! frames. The mongos is a stand-in written here (no mongod can be
//! installed): it answers hello as a mongos, `{ping: 1, n: N}` with
//! `{ok: 1, n: N}`, and `{evil: I}` with the I-th broken frame.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use bson::{doc, oid::ObjectId, Document};

use crate::common::fake::SHORT;
use crate::common::hostile::{attack_to_close, drain, Target, Until};
use crate::common::{drivers, free_port, Puerta};
use crate::mongo_support::{mongos_config, op_msg, read_msg};
use crate::RSS_SMALL_MIB;

/// messageLength values no frame may have.
const BAD_LENGTHS: [i32; 7] = [0, 8, 15, -1, i32::MIN, 48_000_001, i32::MAX];

fn reply(to: i32, d: &Document) -> Vec<u8> {
    let mut m = op_msg(77, d);
    m[8..12].copy_from_slice(&to.to_le_bytes());
    m
}

/// Serves one stand-in connection until it closes.
fn serve(mut s: TcpStream, pid: ObjectId) -> std::io::Result<()> {
    loop {
        let mut h = [0u8; 16];
        s.read_exact(&mut h)?;
        let len = i32::from_le_bytes(h[0..4].try_into().unwrap());
        let id = i32::from_le_bytes(h[4..8].try_into().unwrap());
        let mut body = vec![0u8; (len as usize).saturating_sub(16)];
        s.read_exact(&mut body)?;
        let d = body.get(5..).and_then(|b| Document::from_reader(b).ok()).unwrap_or_default();
        let out = if d.contains_key("hello") || d.contains_key("isMaster") || d.contains_key("ismaster") {
            reply(
                id,
                &doc! {"ismaster": true, "isWritablePrimary": true, "msg": "isdbgrid", "maxWireVersion": 21,
                "minWireVersion": 0, "ok": 1.0, "topologyVersion": {"processId": pid, "counter": 0_i64}},
            )
        } else if let Ok(i) = d.get_i32("evil") {
            let mut m = reply(id, &doc! {"ok": 1.0});
            m[0..4].copy_from_slice(&BAD_LENGTHS[i as usize % BAD_LENGTHS.len()].to_le_bytes());
            m
        } else {
            reply(id, &doc! {"ok": 1.0, "n": d.get_i32("n").unwrap_or(-1)})
        };
        s.write_all(&out)?;
    }
}

fn fake_mongos() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let pid = ObjectId::new();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s, pid));
        }
    });
    port
}

/// One fresh connection: a ping with a number of its own comes back.
fn probe(port: u16) -> Result<(), String> {
    pings(port, 1, 1000)
}

/// `count` pipelined pings numbered from `first`, each answered in order
/// with its own number.
fn pings(port: u16, count: i32, first: i32) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req: Vec<u8> =
        (first..first + count).flat_map(|n| op_msg(n, &doc! {"ping": 1, "n": n, "$db": "admin"})).collect();
    s.write_all(&req).map_err(|e| e.to_string())?;
    for n in first..first + count {
        let (to, d) = read_msg(&mut s).map_err(|e| format!("ping {n}: {e}"))?;
        if to != n || d.get_i32("n") != Ok(n) {
            return Err(format!("ping {n} was answered {to}: {d}"));
        }
    }
    Ok(())
}

fn start(io: &str) -> (Puerta, u16) {
    let backend = fake_mongos();
    let listen = free_port();
    let p = Puerta::start(&mongos_config(listen, &[("fake", backend)], ""), io);
    p.wait_ready();
    (p, listen)
}

#[test]
fn family_mongo_client_frames_with_bad_lengths() {
    for io in drivers() {
        let (p, listen) = start(io);
        let t = Target { pid: p.proc.pid(), port: listen, probe: &probe, rss_mib: RSS_SMALL_MIB };
        for len in BAD_LENGTHS {
            let case = format!("mongo client messageLength {len} ({io})");
            let mut frame = op_msg(5, &doc! {"ping": 1, "$db": "admin"});
            frame[0..4].copy_from_slice(&len.to_le_bytes());
            let (got, closed) = attack_to_close(listen, &frame, SHORT);
            assert!(closed && got.is_empty(), "{case}: got {} bytes, closed: {closed}", got.len());
            pings(listen, 16, 1).unwrap_or_else(|e| panic!("{case}: the good client: {e}"));
            t.assert_healthy(&case);
        }
    }
}

#[test]
fn family_mongo_backend_frames_with_bad_lengths() {
    for io in drivers() {
        let (p, listen) = start(io);
        let t = Target { pid: p.proc.pid(), port: listen, probe: &probe, rss_mib: RSS_SMALL_MIB };
        for (i, len) in BAD_LENGTHS.iter().enumerate() {
            let case = format!("mongo backend answers messageLength {len} ({io})");
            let mut s = TcpStream::connect(("127.0.0.1", listen)).unwrap();
            s.write_all(&op_msg(3, &doc! {"evil": i as i32, "$db": "admin"})).unwrap();
            let (got, closed) = drain(&mut s, SHORT, Until::Closed);
            assert!(closed, "{case}: the client was left waiting ({} bytes)", got.len());
            pings(listen, 16, 1).unwrap_or_else(|e| panic!("{case}: the good client: {e}"));
            t.assert_healthy(&case);
        }
    }
}
