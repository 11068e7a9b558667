//! `SLOWLOG GET [n] | LEN | RESET | HELP`, answered by the proxy itself in
//! the Redis modes, in Redis's entry format, from the pool's slow log over
//! every core (durations are Puerta's, client to client).
//!
//! An entry is Redis's six fields: id, Unix time in seconds, duration in
//! microseconds, the arguments, the client's address and its name (empty:
//! Puerta does not keep client names). Arrays, integers and bulk strings
//! read the same in RESP2 and RESP3, so one encoding serves both.

use bytes::{Bytes, BytesMut};

use super::rec::Recorder;
use super::slowlog::Entry;
use crate::protocol::resp::encode::{self, put_bulk, put_header};
use crate::protocol::resp::Request;

/// Entries `SLOWLOG GET` returns without a count (Redis's default).
const DEFAULT_GET: usize = 10;

const HELP: [&str; 8] = [
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
];

/// The reply to a `SLOWLOG` request.
pub fn slowlog_reply(rec: &Recorder, req: &Request) -> Bytes {
    let sub = if req.argc() > 1 { req.arg(1).to_ascii_uppercase() } else { Vec::new() };
    match (&sub[..], req.argc()) {
        (b"GET", 2) => get(&rec.slowlog_get(DEFAULT_GET)),
        (b"GET", 3) => match parse_count(req.arg(2)) {
            Some(n) => get(&rec.slowlog_get(n)),
            None => encode::error("ERR count should be greater than or equal to -1"),
        },
        (b"LEN", 2) => encode::integer(i64::try_from(rec.slowlog_len()).unwrap_or(i64::MAX)),
        (b"RESET", 2) => {
            rec.slowlog_reset();
            Bytes::from_static(b"+OK\r\n")
        }
        (b"HELP", 2) => {
            let mut out = BytesMut::new();
            put_header(&mut out, b'*', HELP.len() as i64);
            for line in HELP {
                out.extend_from_slice(b"+");
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.freeze()
        }
        (b"", _) => encode::error("ERR wrong number of arguments for 'slowlog' command"),
        _ => encode::error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            String::from_utf8_lossy(req.arg(1))
        )),
    }
}

/// A count as Redis reads it: -1 (all) or a non-negative integer.
fn parse_count(b: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(b).ok()?;
    match s.parse::<i64>().ok()? {
        -1 => Some(usize::MAX),
        n if n >= 0 => usize::try_from(n).ok(),
        _ => None,
    }
}

fn get(entries: &[Entry]) -> Bytes {
    let mut out = BytesMut::new();
    put_header(&mut out, b'*', entries.len() as i64);
    for e in entries {
        put_header(&mut out, b'*', 6);
        int(&mut out, e.id);
        int(&mut out, e.unix_us / 1_000_000);
        int(&mut out, e.duration_us);
        put_header(&mut out, b'*', e.args.len() as i64);
        for a in &e.args {
            put_bulk(&mut out, a);
        }
        put_bulk(&mut out, e.client.as_bytes());
        put_bulk(&mut out, b"");
    }
    out.freeze()
}

fn int(out: &mut BytesMut, n: u64) {
    put_header(out, b':', i64::try_from(n).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::obs::{Kind, PoolObs, Settings};

    fn req(args: &[&str]) -> Request {
        Request::from_args(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn get_len_reset_in_redis_format() {
        let pool = Arc::new(PoolObs::new(Kind::Redis));
        let rec = Recorder::new(Some(pool.clone()), Kind::Redis, Settings::default(), Instant::now());
        let e = Entry {
            id: 0,
            unix_us: 1_700_000_000_500_000,
            duration_us: 51_000,
            command: "GET",
            args: vec![b"GET".to_vec(), b"#00".to_vec()],
            backend: "r1".into(),
            client: "127.0.0.1:5000".into(),
        };
        pool.add_slow(e.clone(), 128);
        pool.add_slow(Entry { unix_us: e.unix_us + 1, ..e }, 128);
        assert_eq!(&slowlog_reply(&rec, &req(&["SLOWLOG", "LEN"]))[..], b":2\r\n");
        let one = slowlog_reply(&rec, &req(&["slowlog", "get", "1"]));
        assert_eq!(
            &one[..],
            &b"*1\r\n*6\r\n:1\r\n:1700000000\r\n:51000\r\n*2\r\n$3\r\nGET\r\n$3\r\n#00\r\n$14\r\n127.0.0.1:5000\r\n$0\r\n\r\n"[..]
        );
        assert!(slowlog_reply(&rec, &req(&["SLOWLOG", "GET", "-1"])).starts_with(b"*2\r\n"));
        assert!(slowlog_reply(&rec, &req(&["SLOWLOG", "GET", "-2"])).starts_with(b"-ERR count"));
        assert!(slowlog_reply(&rec, &req(&["SLOWLOG", "NOPE"])).starts_with(b"-ERR unknown subcommand"));
        assert_eq!(&slowlog_reply(&rec, &req(&["SLOWLOG", "RESET"]))[..], b"+OK\r\n");
        assert_eq!(&slowlog_reply(&rec, &req(&["SLOWLOG", "LEN"]))[..], b":0\r\n");
    }
}
