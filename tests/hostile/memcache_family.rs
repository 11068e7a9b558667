//! The memcached family of malformed requests (defect 2 and the issue's
//! own family): every numeric field at 0, max, max+1, negative, with a
//! leading zero or a sign, and huge, near the u32 and u64 limits; keys of
//! 251 bytes and keys with control characters; `noreply` where memcached
//! does not take it; garbage after a valid request.
//!
//! How smuggling shows: each storage attempt carries the data block
//! `delete hc:NNN`, where `hc:NNN` is a canary written straight to
//! memcached beforehand. If Puerta and memcached disagree on where the
//! request ends, memcached runs the block as a command and that canary is
//! gone, naming the attempt. Every attempt's backend goes through a `Tap`,
//! so a byte string that must never be forwarded can be checked too.

use std::io::Write;
use std::net::TcpStream;

use super::memcache::{mc_present, mc_set, start, Canary};
use crate::common::drivers;
use crate::common::fake::{Tap, SHORT};
use crate::common::hostile::{mc_probe, read_until, target, Proto, Victim};
use crate::common::twem::memcached;
use crate::{numbered, RSS_SMALL_MIB};

/// One hostile request.
struct Attempt {
    name: String,
    bytes: Vec<u8>,
    /// Its data block deletes canary `hc:NNN` if memcached runs it.
    canary: bool,
    /// Bytes that must never reach memcached.
    never: Option<Vec<u8>>,
}

const NUMS: &[&str] = &[
    "0",
    "1",
    "01",
    "+1",
    "-0",
    "-1",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "18446744073709551582",
    "99999999999999999999999999",
    "1a",
    "0x10",
];

/// A storage command line `line` followed by the canary data block.
fn store(name: String, i: usize, line: String) -> Attempt {
    let bytes = format!("{line}\r\ndelete hc:{i:03}\r\n").into_bytes();
    Attempt { name, bytes, canary: true, never: None }
}

fn plain(name: String, line: &str) -> Attempt {
    Attempt { name, bytes: format!("{line}\r\n").into_bytes(), canary: false, never: None }
}

/// Sends every attempt on its own connection (all at once), each followed
/// by a `get` that reads back `END` when the two agree on framing; checks
/// canaries, forwarded bytes, the good clients and the process.
fn run(family: &str, build: impl Fn() -> Vec<Attempt>) {
    let m = memcached();
    let tap = Tap::start(m.port);
    for io in drivers() {
        let case = format!("{family} ({io})");
        let px = start(&[tap.port()], "", io);
        let probe = mc_probe("hostile:probe");
        let t = target(&px, &probe, RSS_SMALL_MIB);
        let attempts = build();
        let hc: Vec<String> = (0..attempts.len()).map(|i| format!("hc:{i:03}")).collect();
        mc_set(m.port, &hc, "c");
        let canary = Canary::plant(&m, "famc");
        let v = Victim::start(px.port(), Proto::Memcache, &numbered("famv", 24), 6);
        let threads: Vec<_> = attempts
            .iter()
            .map(|a| {
                let (port, bytes) = (px.port(), a.bytes.clone());
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let _ = s.write_all(&bytes);
                    let _ = s.write_all(b"get hostile:sync\r\n");
                    let (got, _) = read_until(&mut s, b"END\r\n", SHORT);
                    got
                })
            })
            .collect();
        let replies: Vec<Vec<u8>> = threads.into_iter().map(|h| h.join().unwrap()).collect();
        let present = mc_present(m.port, &hc, "c");
        let smuggled: Vec<String> = attempts
            .iter()
            .zip(&present)
            .zip(&replies)
            .filter(|((a, p), _)| a.canary && !**p)
            .map(|((a, _), r)| format!("{} (client got {:?})", a.name, String::from_utf8_lossy(&r[..r.len().min(80)])))
            .collect();
        assert!(smuggled.is_empty(), "{case}: memcached ran a data block as a command after: {smuggled:#?}");
        for a in &attempts {
            if let Some(n) = &a.never {
                tap.assert_never_sent(&format!("{case}: {}", a.name), n);
            }
        }
        canary.assert_intact(&case);
        v.finish(&case);
        t.assert_healthy(&case);
    }
}

#[test]
fn d2_memcache_every_numeric_field() {
    run("d2 numeric fields", || {
        let mut out = Vec::new();
        for n in NUMS {
            let i = out.len();
            out.push(store(format!("set flags {n}"), i, format!("set hk:{i} {n} 0 13 noreply")));
            let i = out.len();
            out.push(store(format!("set exptime {n}"), i, format!("set hk:{i} 0 {n} 13 noreply")));
            let i = out.len();
            out.push(store(format!("set bytes {n}"), i, format!("set hk:{i} 0 0 {n} noreply")));
            let i = out.len();
            out.push(store(format!("cas unique {n}"), i, format!("cas hk:{i} 0 0 13 {n} noreply")));
            let i = out.len();
            out.push(store(format!("append flags {n} (with reply)"), i, format!("append hk:{i} {n} 0 13")));
            out.push(plain(format!("incr delta {n}"), &format!("incr hk:0 {n} noreply")));
            out.push(plain(format!("decr delta {n}"), &format!("decr hk:0 {n}")));
            out.push(plain(format!("touch exptime {n}"), &format!("touch hk:0 {n} noreply")));
            out.push(plain(format!("delete time {n}"), &format!("delete hk:0 {n} noreply")));
        }
        out
    });
}

#[test]
fn d2_memcache_bad_keys_are_refused_and_not_forwarded() {
    let long = "k".repeat(251);
    let keys: Vec<(&str, String)> = vec![
        ("251 bytes", long),
        ("NUL", "a\0key".into()),
        ("0x01", "a\x01key".into()),
        ("tab", "a\tkey".into()),
        ("0x1f", "a\x1fkey".into()),
        ("CR", "a\rkey".into()),
    ];
    run("d2 bad keys", || {
        let mut out = Vec::new();
        for (what, k) in &keys {
            let i = out.len();
            let mut a = store(format!("set, key {what}"), i, format!("set {k} 0 0 13 noreply"));
            a.never = Some(k.clone().into_bytes());
            out.push(a);
            for verb in ["get", "gets", "delete", "incr", "touch"] {
                let line = match verb {
                    "incr" => format!("incr {k} 1"),
                    "touch" => format!("touch {k} 0"),
                    v => format!("{v} {k}"),
                };
                let mut a = plain(format!("{verb}, key {what}"), &line);
                a.never = Some(k.clone().into_bytes());
                out.push(a);
            }
            // A bad key among good ones in a multi-key get.
            let mut a = plain(format!("get good + key {what}"), &format!("get hk:0 {k} hk:1"));
            a.never = Some(k.clone().into_bytes());
            out.push(a);
        }
        out
    });
}

#[test]
fn d2_memcache_noreply_only_where_memcached_takes_it() {
    run("d2 noreply", || {
        let mut out = Vec::new();
        for tail in ["noreply extra", "extra", "NOREPLY", "norepl", "noreplyx", "noreply noreply"] {
            let i = out.len();
            out.push(store(format!("set ... 13 {tail}"), i, format!("set hk:{i} 0 0 13 {tail}")));
        }
        let i = out.len();
        out.push(store("cas without unique, noreply".into(), i, format!("cas hk:{i} 0 0 13 noreply")));
        for line in [
            "get hk:0 noreply",
            "gets hk:0 noreply",
            "delete hk:0 1 noreply",
            "delete hk:0 noreply noreply",
            "incr hk:0 noreply",
            "touch hk:0 noreply",
            "version noreply",
            "verbosity 1 noreply",
            "flush_all noreply",
        ] {
            out.push(plain(line.into(), line));
        }
        out
    });
}

#[test]
fn family_memcache_garbage_after_a_valid_request() {
    run("family: garbage after a valid request", || {
        let mut out = Vec::new();
        for (what, garbage) in [
            ("binary", &b"\x00\x01\x02garbage-one\r\n"[..]),
            ("unknown command", b"garbage-two hk:0\r\n"),
            ("binary protocol magic", b"\x80\x01\x00\x03garbage-three\r\n"),
            ("a bare LF line", b"\x7fgarbage-four\n"),
        ] {
            let mut bytes = b"get hk:0\r\n".to_vec();
            bytes.extend_from_slice(garbage);
            let marker = garbage.split(|b| *b == b'\r').next().unwrap().to_vec();
            out.push(Attempt { name: format!("get + {what}"), bytes, canary: false, never: Some(marker) });
        }
        out
    });
}
