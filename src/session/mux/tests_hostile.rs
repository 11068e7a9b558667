//! Hostile clients and backends against the session, sans-IO: requests
//! memcached or Redis would read differently are never forwarded (command
//! smuggling), lengths near the integer limits neither panic nor wrap, and
//! requests with too many keys are refused without closing.

use super::tests::{b, cmd, H};
use super::*;

fn mc() -> H {
    H::new(MuxConfig::new(Protocol::Memcache, 3))
}

/// Everything any backend of the pool was asked to send.
fn all_backends(h: &mut H) -> Vec<u8> {
    h.intents();
    (0..3).flat_map(|s| h.take_backend(b(s))).collect()
}

/// The smuggling line: memcached refuses the exptime and would run
/// the "data" (`flush_all`) as a command on the shared connection.
#[test]
fn memcache_bad_exptime_smuggles_nothing() {
    let mut h = mc();
    let c = h.s.add_client();
    h.send(c, b"set x 0 10000000000000000000 9 noreply\r\nflush_all\r\n");
    assert_eq!(h.take_client(c), b"CLIENT_ERROR bad command line format\r\n");
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Protocol)]);
    assert!(all_backends(&mut h).is_empty(), "nothing reaches a backend");
}

/// A data block that is itself two gets: with flags memcached refuses, it
/// would answer another client's get with the attacker's chosen reply.
#[test]
fn memcache_bad_flags_smuggle_no_data_block() {
    for line in [
        &b"set x 4294967296 0 22\r\n"[..],
        b"set x -1 0 22\r\n",
        b"set x 0 0 -4294967274\r\n",
        b"set x 0 2147483648 22\r\n",
        b"set x 0 0 22 maybe\r\n",
        b"cas x 0 0 22 18446744073709551616\r\n",
        b"set x\x000 0 0 22\r\n",
    ] {
        let mut h = mc();
        let victim = h.s.add_client();
        let c = h.s.add_client();
        let mut attack = line.to_vec();
        attack.extend_from_slice(b"get secret\r\nget secret\r\n");
        h.send(c, &attack);
        let got = h.take_client(c);
        assert!(got.starts_with(b"CLIENT_ERROR ") || got == b"ERROR\r\n", "{line:?}: {got:?}");
        assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Protocol)], "{line:?}");
        // The victim's get is the only thing on the wire.
        h.send(victim, b"get a\r\n");
        assert_eq!(all_backends(&mut h), b"get a\r\n", "{line:?}");
    }
}

/// The 32-byte worker killer, and its reply-side twin.
#[test]
fn memcache_huge_lengths_neither_panic_nor_forward() {
    let mut h = mc();
    let c = h.s.add_client();
    h.send(c, b"set a 0 0 18446744073709551582\r\n");
    assert_eq!(h.take_client(c), b"CLIENT_ERROR bad command line format\r\n");
    assert!(all_backends(&mut h).is_empty());

    // A backend that declares such a length is closed; the client whose
    // get it answered gets an error, and the worker lives on.
    let c = h.s.add_client();
    h.send(c, b"get a\r\n");
    assert_eq!(all_backends(&mut h), b"get a\r\n");
    h.reply(b(0), b"VALUE a 0 18446744073709551582\r\n");
    assert_eq!(h.take_client(c), b"SERVER_ERROR Protocol error\r\n");
    assert!(h.intents().contains(&MuxIntent::CloseBackend(b(0), BackendClose::Other)));
}

#[test]
fn memcache_item_over_max_item_bytes_is_refused() {
    let mut cfg = MuxConfig::new(Protocol::Memcache, 3);
    cfg.max_item_bytes = 10;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, b"set a 0 0 10\r\n0123456789\r\n");
    assert_eq!(all_backends(&mut h), b"set a 0 0 10\r\n0123456789\r\n");
    h.send(c, b"set a 0 0 11\r\n01234567890\r\n");
    h.reply(b(0), b"STORED\r\n");
    assert_eq!(h.take_client(c), b"STORED\r\nSERVER_ERROR object too large for cache\r\n");
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Protocol)]);
    assert!(all_backends(&mut h).is_empty());
}

/// The RESP example: Redis refuses `$03` and closes the shared
/// connection, failing every client's pipelined requests on it.
#[test]
fn redis_leading_zero_length_is_never_forwarded() {
    for bad in [
        &b"*2\r\n$03\r\nGET\r\n$1\r\na\r\n"[..],
        b"*2\r\n$+3\r\nGET\r\n$1\r\na\r\n",
        b"*2\r\n$-0\r\nGET\r\n$1\r\na\r\n",
        b"*02\r\n$3\r\nGET\r\n$1\r\na\r\n",
        b"*+2\r\n$3\r\nGET\r\n$1\r\na\r\n",
        b"*-0\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n",
    ] {
        let mut h = H::redis();
        let c = h.s.add_client();
        h.send(c, bad);
        let got = h.take_client(c);
        assert!(got.starts_with(b"-ERR Protocol error: invalid "), "{bad:?}: {got:?}");
        assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Protocol)], "{bad:?}");
        assert!(all_backends(&mut h).is_empty(), "{bad:?}");
    }
}

#[test]
fn too_many_keys_is_an_error_and_the_connection_stays() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.max_keys_per_request = 100_000;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    let keys: Vec<String> = (0..100_001).map(|i| format!("{}{i}", ['a', 'b', 'c'][i % 3])).collect();
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(String::as_str));
    h.send(c, &cmd(&args));
    assert_eq!(h.take_client(c), b"-ERR too many keys in request (max_keys_per_request = 100000)\r\n");
    assert!(all_backends(&mut h).is_empty());
    // At the limit: split over the three servers, in one pass over the keys.
    args.pop();
    h.send(c, &cmd(&args));
    let sent = all_backends(&mut h);
    assert_eq!(sent.windows(6).filter(|w| w == b"$4\r\nMG").count(), 3, "one MGET per server");
    assert_eq!(h.intents(), []);
    let mut args = vec!["MSET"];
    for k in &keys {
        args.extend([k.as_str(), "v"]);
    }
    let c = h.s.add_client(); // the first still waits for its MGET
    h.send(c, &cmd(&args));
    assert_eq!(h.take_client(c), b"-ERR too many keys in request (max_keys_per_request = 100000)\r\n");

    let mut cfg = MuxConfig::new(Protocol::Memcache, 3);
    cfg.max_keys_per_request = 100_000;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    let line = format!("get {}\r\n", keys.join(" "));
    h.send(c, line.as_bytes());
    assert_eq!(h.take_client(c), b"CLIENT_ERROR too many keys in request (max_keys_per_request = 100000)\r\n");
    assert_eq!(h.intents(), []);
    assert!(all_backends(&mut h).is_empty());
    h.send(c, b"get a\r\n");
    assert_eq!(all_backends(&mut h), b"get a\r\n", "still open and in sync");
}
