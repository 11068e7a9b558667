//! The RESP family of malformed input (the issue's own family): deep
//! nesting, 10^6 arguments streamed, lengths near the u32, i64 and u64
//! limits, garbage after a valid request, and a backend (a scripted fake)
//! that answers garbage or lengths no reply can have.
//!
//! Client-side cases go to a real redis-server through a `Tap`, so "never
//! forwarded" is checked on the bytes Puerta actually sent.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::memcache::keys_on;
use super::redis::start;
use crate::common::fake::{FakeServer, Tap, SHORT};
use crate::common::hostile::{attack, drain, exchange, read_until, resp_probe, target, Proto, Until, Victim};
use crate::common::twem::command;
use crate::common::{drivers, redis};
use crate::{numbered, RSS_SMALL_MIB};

/// A reply that means the request was served as valid.
fn success(got: &[u8]) -> bool {
    matches!(got.first(), Some(b'+' | b'$' | b'*' | b':'))
}

#[test]
fn family_resp_deep_nesting_and_lengths_near_the_limits() {
    let r = redis();
    let tap = Tap::start(r.port);
    let mut nested = b"*1\r\n".repeat(100_000);
    nested.extend_from_slice(b"$4\r\nPING\r\n");
    let lengths: Vec<(String, Vec<u8>)> = [
        "*2147483648",
        "*4294967295",
        "*4294967296",
        "*9223372036854775807",
        "*9223372036854775808",
        "*18446744073709551615",
        "*18446744073709551616",
        "*-2",
        "*1\r\n$2147483648",
        "*1\r\n$4294967295",
        "*1\r\n$4294967296",
        "*1\r\n$9223372036854775807",
        "*1\r\n$18446744073709551615",
        "*1\r\n$18446744073709551616",
        "*1\r\n$-2",
    ]
    .iter()
    .map(|l| (l.to_string(), format!("{l}\r\nGET\r\n").into_bytes()))
    .collect();
    for io in drivers() {
        let case = format!("family: deep nesting, lengths near limits ({io})");
        let px = start(&[tap.port()], "", io);
        let t = target(&px, &resp_probe, RSS_SMALL_MIB);
        let v = Victim::start(px.port(), Proto::Redis, &numbered("fnv", 24), 6);
        let (got, _) = attack(px.port(), &nested, SHORT);
        assert!(!success(&got), "{case}: 100,000 nested arrays answered {:?}", String::from_utf8_lossy(&got));
        tap.assert_never_sent(&case, b"*1\r\n*1\r\n");
        for (what, bytes) in &lengths {
            let (got, _) = attack(px.port(), bytes, SHORT);
            assert!(!success(&got), "{case}: {what:?} answered {:?}", String::from_utf8_lossy(&got));
            let digits = what.rsplit(['*', '$']).next().unwrap();
            tap.assert_never_sent(&format!("{case}: {what:?}"), digits.as_bytes());
        }
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

#[test]
fn family_resp_a_million_arguments_streamed() {
    // The request is 7 MB; Puerta may hold it whole once.
    const RSS_MIB: u64 = 256;
    let r = redis();
    const N: usize = 1_000_000;
    for io in drivers() {
        let case = format!("family: SADD with 10^6 arguments, streamed ({io})");
        let px = start(&[r.port], "", io);
        let t = target(&px, &resp_probe, RSS_MIB);
        let v = Victim::start(px.port(), Proto::Redis, &numbered("fmv", 24), 6);
        let mut s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        let mut head = format!("*{N}\r\n$4\r\nSADD\r\n$9\r\nmillion:{io:.1}\r\n").into_bytes();
        let _ = s.write_all(&head);
        head.clear();
        let member = b"$1\r\na\r\n";
        let mut written = 2;
        'outer: while written < N {
            let chunk: Vec<u8> = member.repeat((N - written).min(10_000));
            if s.write_all(&chunk).is_err() {
                break 'outer;
            }
            written += chunk.len() / member.len();
        }
        let (got, _) = drain(&mut s, Duration::from_secs(20), Until::Quiet);
        // Redis itself answers :1 (one new member); an error is a limit.
        assert!(got == b":1\r\n" || got.first() == Some(&b'-'), "{case}: answered {:?}", String::from_utf8_lossy(&got));
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

/// (what, a valid request, the garbage after it, a marker of the garbage).
type GarbageCase = (&'static str, &'static [u8], &'static [u8], &'static [u8]);

#[test]
fn family_resp_garbage_after_a_valid_request() {
    let r = redis();
    let tap = Tap::start(r.port);
    let cases: [GarbageCase; 4] = [
        ("PING then a bare array element", b"*1\r\n$4\r\nPING\r\n", b"*1\r\nxyz-garbage\r\n", b"xyz-garbage"),
        ("GET then binary", b"*2\r\n$3\r\nGET\r\n$2\r\nhi\r\n", b"\x00\xff\xfegarbage-two\r\n", b"garbage-two"),
        (
            "GET then a top-level bulk",
            b"*2\r\n$3\r\nGET\r\n$2\r\nhi\r\n",
            b"$3\r\nGET\r\n$9\r\ngarbage-3\r\n",
            b"garbage-3",
        ),
        (
            "GET then a bad type byte",
            b"*2\r\n$3\r\nGET\r\n$2\r\nhi\r\n",
            b"*1\r\n!12\r\ngarbage-four\r\n",
            b"garbage-four",
        ),
    ];
    for io in drivers() {
        let case = format!("family: garbage after a valid request ({io})");
        let px = start(&[tap.port()], "", io);
        let t = target(&px, &resp_probe, RSS_SMALL_MIB);
        let v = Victim::start(px.port(), Proto::Redis, &numbered("fgv", 24), 6);
        for (what, valid, garbage, marker) in cases {
            let mut bytes = valid.to_vec();
            bytes.extend_from_slice(garbage);
            let (got, _) = attack(px.port(), &bytes, SHORT);
            // The valid request may be answered or dropped with the
            // connection; what follows it must not be served.
            let text = String::from_utf8_lossy(&got).into_owned();
            let rest = text.strip_prefix("+PONG\r\n").or_else(|| text.strip_prefix("$-1\r\n")).unwrap_or(&text);
            assert!(rest.is_empty() || rest.starts_with('-'), "{case}: {what}: got {text:?}");
            tap.assert_never_sent(&format!("{case}: {what}"), marker);
        }
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

/// Replies no server may send, one per fake backend connection in turn,
/// each with whether it is well-formed RESP after all (100,000 nested
/// arrays are: Puerta may relay them, but must not recurse that deep).
fn garbage_replies() -> Vec<(Vec<u8>, bool)> {
    let mut deep = b"*1\r\n".repeat(100_000);
    deep.extend_from_slice(b":1\r\n");
    let mut out: Vec<(Vec<u8>, bool)> = [
        &b"!garbage\r\n"[..],
        b"$18446744073709551615\r\n",
        b"$18446744073709551582\r\nabc\r\n",
        b"*18446744073709551615\r\n",
        b"$9223372036854775807\r\n",
        b"*4294967296\r\n",
        b"$4294967296\r\n",
        b"$-5\r\n",
        b"*-5\r\n",
        b":abc\r\n",
        b"\x00\x01\x02\r\n",
    ]
    .iter()
    .map(|r| (r.to_vec(), false))
    .collect();
    out.push((deep, true));
    out
}

#[test]
fn family_resp_backend_answers_garbage() {
    let r = redis();
    let replies = garbage_replies();
    // The fake answers a request for the i-th of these keys with reply i.
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let (ks, rs) = (keys.clone(), replies.clone());
    let fake = FakeServer::start(move |_, chunk| {
        let ks = ks.lock().unwrap();
        let text = String::from_utf8_lossy(chunk);
        match ks.iter().position(|k| text.contains(&format!("\r\n{k}\r\n"))) {
            Some(i) => rs[i].0.clone(),
            None => b"-ERR fake\r\n".to_vec(),
        }
    });
    for io in drivers() {
        let case = format!("family: a backend that answers garbage ({io})");
        // A server timeout, so a fake that announced more than it sends
        // is given up on and the next request gets a new connection.
        let px = start(&[r.port, fake.port()], "timeout = 300\n", io);
        *keys.lock().unwrap() = keys_on(&px, 1, "gb", replies.len());
        let probe_key = keys_on(&px, 0, "probe", 1).remove(0);
        let probe = move |port: u16| exchange(port, &command(&[b"GET", probe_key.as_bytes()]), b"$-1\r\n");
        let t = target(&px, &probe, RSS_SMALL_MIB);
        let v = Victim::start(px.port(), Proto::Redis, &keys_on(&px, 0, "fbv", 24), 6);
        // Twice each, on fresh connections: both workers meet most of them.
        for round in 0..2 {
            for (i, (reply, valid)) in replies.iter().enumerate() {
                let k = keys.lock().unwrap()[i].clone();
                let mut c = TcpStream::connect(("127.0.0.1", px.port()))
                    .unwrap_or_else(|e| panic!("{case}: puerta stopped accepting: {e}"));
                c.write_all(&command(&[b"GET", k.as_bytes()])).unwrap();
                // No answer within 2 s is allowed (the fake may still be
                // "sending"); an answer must be an error unless the reply
                // was well-formed after all.
                let (got, _) = read_until(&mut c, b"\r\n", Duration::from_secs(2));
                let shown = String::from_utf8_lossy(&reply[..reply.len().min(30)]).into_owned();
                assert!(
                    got.is_empty() || got[0] == b'-' || *valid,
                    "{case}: round {round}, backend reply {shown:?}: the client got {:?}",
                    String::from_utf8_lossy(&got[..got.len().min(100)])
                );
            }
        }
        assert!(fake.connections() > 0, "{case}: the fake backend was never used");
        v.finish(&case);
        t.assert_healthy(&case);
    }
}
