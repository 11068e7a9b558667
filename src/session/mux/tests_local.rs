//! Commands the session answers or refuses itself: PING, QUIT, AUTH,
//! unsupported commands, arity and protocol errors, and the memcached
//! front (multi-get merge, noreply, quit).

use super::tests::{b, cmd, route, H};
use super::*;

#[test]
fn ping_and_quit_are_local_and_ordered() {
    let mut h = H::redis();
    let c = h.s.add_client();
    let mut pipe = cmd(&["GET", "a"]);
    pipe.extend(cmd(&["PING"]));
    pipe.extend(cmd(&["QUIT"]));
    pipe.extend(cmd(&["GET", "a"])); // after QUIT: never read
    h.send(c, &pipe);
    h.intents();
    assert_eq!(h.take_backend(b(0)), cmd(&["GET", "a"]));
    assert!(h.take_client(c).is_empty(), "PONG waits behind the GET");
    h.reply(b(0), b"$1\r\nv\r\n");
    assert_eq!(h.take_client(c), b"$1\r\nv\r\n+PONG\r\n");
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Quit)]);
}

#[test]
fn auth_flow_uses_nutcracker_strings() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.redis_auth = Some(b"s3cret".to_vec());
    cfg.redis_db = 2;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a"]));
    h.send(c, &cmd(&["AUTH", "wrong"]));
    h.send(c, &cmd(&["AUTH", "s3cret"]));
    h.send(c, &cmd(&["GET", "a"]));
    assert_eq!(h.take_client(c), b"-NOAUTH Authentication required\r\n-ERR invalid password\r\n+OK\r\n");
    h.intents();
    // The backend connection authenticates and selects first.
    let mut expect = cmd(&["AUTH", "s3cret"]);
    expect.extend(cmd(&["SELECT", "2"]));
    expect.extend(cmd(&["GET", "a"]));
    assert_eq!(h.take_backend(b(0)), expect);
    h.reply(b(0), b"+OK\r\n+OK\r\n$1\r\nv\r\n");
    assert_eq!(h.take_client(c), b"$1\r\nv\r\n", "AUTH/SELECT replies are swallowed");

    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["AUTH", "x"]));
    assert_eq!(h.take_client(c), b"-ERR Client sent AUTH, but no password is set\r\n");
}

#[test]
fn unsupported_closes_or_errors_by_config() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["CONFIG", "GET", "x"]));
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Unsupported)]);

    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.unsupported = Unsupported::Error;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, &cmd(&["CONFIG", "GET", "x"]));
    h.send(c, &cmd(&["GET", "a", "extra"]));
    h.send(c, &cmd(&["PING"]));
    assert_eq!(
        h.take_client(c),
        &b"-ERR unsupported command 'CONFIG'\r\n-ERR wrong number of arguments for 'get' command\r\n+PONG\r\n"[..]
    );
    assert!(h.intents().is_empty(), "connection kept");
}

#[test]
fn allow_scripts_false_refuses_script_calls_like_unsupported_commands() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.allow_scripts = false;
    cfg.unsupported = Unsupported::Error;
    let mut h = H::new(cfg.clone());
    let c = h.s.add_client();
    h.send(c, &cmd(&["EVAL", "redis.call('FLUSHALL')", "1", "k"]));
    h.send(c, &cmd(&["fcall_ro", "f", "1", "k"]));
    assert_eq!(
        h.take_client(c),
        &b"-ERR EVAL is refused by this Puerta pool (allow_scripts = false)\r\n\
           -ERR FCALL_RO is refused by this Puerta pool (allow_scripts = false)\r\n"[..]
    );
    assert!(h.intents().is_empty(), "nothing forwarded, connection kept");
    cfg.unsupported = Unsupported::Close;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, &cmd(&["EVALSHA", "abc", "1", "k"]));
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Unsupported)]);
}

#[test]
fn wrong_arity_closes_like_nutcracker() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a", "b"]));
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::WrongArity)]);
}

#[test]
fn protocol_error_replies_then_closes() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.max_request_bytes = 64;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, b"*1\r\n+PING\r\n");
    assert_eq!(h.take_client(c), b"-ERR Protocol error: expected '$', got '+'\r\n");
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Protocol)]);
    let c = h.s.add_client();
    h.send(c, b"*2\r\n$3\r\nSET\r\n$100\r\n");
    assert_eq!(h.take_client(c), b"-ERR Protocol error: request larger than max_request_bytes (64)\r\n");
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Protocol)]);
    assert_eq!(h.s.stats().client_err, 2);
}

#[test]
fn all_servers_gone_is_an_error_reply() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.s.handle_client_data(c, &cmd(&["GET", "a"]), h.now, &|_: &[u8]| None);
    assert_eq!(h.take_client(c), b"-ERR no server available for key\r\n");
    // A route past the pool's servers counts as none.
    h.send(c, &cmd(&["GET", "z"]));
    assert_eq!(h.take_client(c), b"-ERR no server available for key\r\n");
}

#[test]
fn memcache_multiget_merges_and_noreply_gets_no_slot() {
    let mut h = H::new(MuxConfig::new(Protocol::Memcache, 3));
    let c = h.s.add_client();
    h.send(c, b"set a1 0 0 1 noreply\r\nx\r\nget b1 a1 b2\r\n");
    h.intents();
    assert_eq!(h.take_backend(b(0)), b"set a1 0 0 1 noreply\r\nx\r\nget a1\r\n");
    assert_eq!(h.take_backend(b(1)), b"get b1 b2\r\n");
    h.reply(b(1), b"VALUE b2 0 2\r\nB2\r\nEND\r\n");
    assert!(h.take_client(c).is_empty());
    h.reply(b(0), b"VALUE a1 0 1\r\nx\r\nEND\r\n");
    assert_eq!(h.take_client(c), b"VALUE a1 0 1\r\nx\r\nVALUE b2 0 2\r\nB2\r\nEND\r\n");
    h.send(c, b"quit\r\n");
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Quit)]);
    let _ = route(b"a");
}

#[test]
fn memcache_bad_command_errors_then_closes() {
    let mut h = H::new(MuxConfig::new(Protocol::Memcache, 3));
    let c = h.s.add_client();
    h.send(c, b"bogus\r\n");
    assert_eq!(h.take_client(c), b"ERROR\r\n");
    assert_eq!(h.intents(), [MuxIntent::CloseClient(c, ClientClose::Protocol)]);
}
