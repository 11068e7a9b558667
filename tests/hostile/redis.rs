//! Hostile clients of a twemproxy-style redis pool (defects 7, 8 and 10):
//! an MGET of 80 MiB to a client that reads it, RESP lengths Redis itself
//! refuses (leading zeros, `+`, `-0`) on a backend connection the good
//! clients share, and MGETs of 60,000 and 100,001 keys.

use std::io::Write;
use std::net::TcpStream;

use crate::common::fake::{Tap, SHORT};
use crate::common::hostile::{attack_to_close, named, read_until, resp_probe, target, Proto, Victim};
use crate::common::twem::{command, RawResp, Reply};
use crate::common::twem_puerta::PuertaTwem;
use crate::common::{drivers, redis};
use crate::{numbered, RSS_SMALL_MIB};

/// A redis pool (TOML) over `servers`, named s0, s1, ...; one connection
/// per server per worker, so clients of a worker share it.
pub fn redis_pool(servers: &[u16], extra: &str) -> String {
    let s: Vec<String> = servers.iter().enumerate().map(|(i, p)| format!("\"127.0.0.1:{p}:1 s{i}\"")).collect();
    format!(
        "[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\nservers = [{}]\n\
         server_connections = 1\n{extra}",
        s.join(", ")
    )
}

pub fn start(servers: &[u16], extra: &str, io: &str) -> PuertaTwem {
    PuertaTwem::start_with(&redis_pool(servers, extra), io, "p.toml", &[])
}

#[test]
fn d7_redis_large_mget_to_a_client_that_reads() {
    // 5 values of 16 MiB: 80 MiB of reply, past the old 64 MiB
    // client_reply_limit, well below client_output_limit's 1 GiB hard
    // default, which is also what one client may make Puerta buffer: the
    // bound. (Main with client_reply_limit raised peaked near 570 MiB in a
    // debug build: the request, sub-requests, replies and the merged reply
    // all held at once.)
    const RSS_MIB: u64 = 1024;
    let rs = [redis(), redis()];
    let ports: Vec<u16> = rs.iter().map(|r| r.port).collect();
    for io in drivers() {
        let case = format!("d7 MGET of 5 x 16 MiB ({io})");
        let px = start(&ports, "", io);
        let t = target(&px, &resp_probe, RSS_MIB);
        let v = Victim::start(px.port(), Proto::Redis, &numbered("d7v", 24), 6);
        let keys = numbered("big", 5);
        let vals: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 16 << 20]).collect();
        let mut mset: Vec<&[u8]> = vec![b"MSET"];
        for (k, val) in keys.iter().zip(&vals) {
            mset.push(k.as_bytes());
            mset.push(val);
        }
        let mut c = RawResp::connect(px.port());
        let ok = named(&case, "MSET of 80 MiB", || c.cmd(&mset));
        assert_eq!(ok, Reply::Status(b"OK".to_vec()), "{case}: MSET");
        let mut mget: Vec<&[u8]> = vec![b"MGET"];
        mget.extend(keys.iter().map(|k| k.as_bytes()));
        let s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        let mut r = RawResp::from_stream(s);
        let got = named(&case, "the reading client's MGET", || r.pipeline(&[command(&mget)]).remove(0));
        let want = Reply::Array(Some(vals.iter().map(|v| Reply::Bulk(Some(v.clone()))).collect()));
        assert!(got == want, "{case}: the reading client did not get its 80 MiB reply");
        assert_eq!(r.cmd(&[b"PING"]), Reply::Status(b"PONG".to_vec()), "{case}: the client stays open");
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

#[test]
fn d8_redis_non_canonical_lengths_are_refused_before_the_backend() {
    let r = redis();
    let tap = Tap::start(r.port);
    // Each attack, and the part of it that Redis refuses.
    let attacks: [(&[u8], &[u8]); 9] = [
        (b"*2\r\n$03\r\nGET\r\n$1\r\na\r\n", b"$03\r\n"),
        (b"*02\r\n$3\r\nGET\r\n$1\r\na\r\n", b"*02\r\n"),
        (b"*2\r\n$+3\r\nGET\r\n$1\r\na\r\n", b"$+3"),
        (b"*+2\r\n$3\r\nGET\r\n$1\r\na\r\n", b"*+2"),
        (b"*2\r\n$3\r\nGET\r\n$-0\r\n\r\n", b"$-0"),
        (b"*-0\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n", b"*-0"),
        (b"*2\r\n$3\r\nGET\r\n$1 \r\na\r\n", b"$1 \r\n"),
        (b"*2\r\n$3\r\nGET\r\n$ 1\r\na\r\n", b"$ 1"),
        (b"*2\r\n$3\r\nGET\r\n$00001\r\na\r\n", b"$00001"),
    ];
    for io in drivers() {
        let case = format!("d8 RESP lengths with leading zeros, signs, spaces ({io})");
        let px = start(&[tap.port()], "", io);
        let t = target(&px, &resp_probe, RSS_SMALL_MIB);
        let v = Victim::start(px.port(), Proto::Redis, &numbered("d8v", 24), 6);
        let conns = tap.connections();
        for (a, _) in attacks {
            for _ in 0..3 {
                let (got, closed) = attack_to_close(px.port(), a, SHORT);
                let what = String::from_utf8_lossy(a);
                assert!(closed, "{case}: {what:?} left the connection open (got {:?})", String::from_utf8_lossy(&got));
                assert!(!got.starts_with(b"$"), "{case}: {what:?} was answered {:?}", String::from_utf8_lossy(&got));
            }
        }
        v.finish(&case);
        for (_, bad) in attacks {
            tap.assert_never_sent(&case, bad);
        }
        assert_eq!(tap.connections(), conns, "{case}: a backend connection was closed and reopened");
        t.assert_healthy(&case);
    }
}

/// `MGET` of `n` keys `mk:0..`, as one command.
fn mget(n: usize) -> Vec<u8> {
    let keys = numbered("mk", n);
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(keys.iter().map(|k| k.as_bytes()));
    command(&args)
}

#[test]
fn d10_redis_mget_of_60k_and_100001_keys() {
    let rs = [redis(), redis()];
    let ports: Vec<u16> = rs.iter().map(|r| r.port).collect();
    for io in drivers() {
        let case = format!("d10 MGET of 60,000 and 100,001 keys ({io})");
        let px = start(&ports, "", io);
        let t = target(&px, &resp_probe, RSS_SMALL_MIB);
        let v = Victim::start(px.port(), Proto::Redis, &numbered("d10v", 24), 6);
        let mut c = RawResp::connect(px.port());
        let sets: Vec<Vec<u8>> =
            (0..60_000).step_by(997).map(|i| command(&[b"SET", format!("mk:{i}").as_bytes(), b"x"])).collect();
        assert!(c.pipeline(&sets).iter().all(|r| *r == Reply::Status(b"OK".to_vec())));
        match c.pipeline(&[mget(60_000)]).remove(0) {
            Reply::Array(Some(items)) => {
                assert_eq!(items.len(), 60_000, "{case}");
                for (i, it) in items.iter().enumerate() {
                    let want = if i % 997 == 0 { Reply::Bulk(Some(b"x".to_vec())) } else { Reply::Bulk(None) };
                    assert_eq!(*it, want, "{case}: MGET item {i}");
                }
            }
            other => panic!("{case}: 60,000-key MGET answered {other:?}"),
        }
        let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        s.write_all(&mget(100_001)).unwrap();
        let (got, _) = read_until(&mut s, b"\r\n", SHORT);
        let head = String::from_utf8_lossy(&got[..got.len().min(200)]).into_owned();
        let names_limit = head.contains("100000") || head.contains("100,000");
        assert!(head.starts_with('-') && names_limit, "{case}: 100,001 keys answered {head:?}");
        v.finish(&case);
        t.assert_healthy(&case);
    }
}
