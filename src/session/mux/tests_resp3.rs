//! The handshake under `unsupported = "close"`, and RESP3 clients served
//! over the RESP3 twins of the backend connections.

use super::tests::{b, cmd, H};
use super::*;

#[test]
fn redis_py_handshake_passes_a_closing_pool() {
    let mut h = H::redis();
    let c = h.s.add_client();
    let mut hs = cmd(&["HELLO", "3"]);
    hs.extend(cmd(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]));
    hs.extend(cmd(&["CLIENT", "SETINFO", "LIB-VER", "8.2.0"]));
    hs.extend(cmd(&["CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", "internal-ip"]));
    h.send(c, &hs);
    let out = String::from_utf8(h.take_client(c)).unwrap();
    assert!(out.starts_with("%7\r\n"), "{out}");
    assert!(out.ends_with("+OK\r\n+OK\r\n-ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n"));
    assert!(h.intents().is_empty(), "nothing connected, nothing closed");
}

#[test]
fn resp3_clients_ride_twins_that_sent_hello_3() {
    let mut h = H::redis();
    let (c2, c3) = (h.s.add_client(), h.s.add_client());
    h.send(c3, &cmd(&["HELLO", "3"]));
    h.take_client(c3);
    h.send(c2, &cmd(&["HGETALL", "a"]));
    h.send(c3, &cmd(&["HGETALL", "a"]));
    let twin = BackendId { server: 0, conn: 1 };
    assert_eq!(h.intents(), [MuxIntent::Connect(b(0)), MuxIntent::Connect(twin)]);
    assert_eq!(h.take_backend(b(0)), cmd(&["HGETALL", "a"]));
    let mut expect = cmd(&["HELLO", "3"]);
    expect.extend(cmd(&["HGETALL", "a"]));
    assert_eq!(h.take_backend(twin), expect);
    h.reply(b(0), b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    // HELLO's map is swallowed, a push is never matched to a request, and
    // the map reply passes through as it is.
    h.reply(twin, b"%1\r\n$5\r\nproto\r\n:3\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(h.take_client(c2), b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(h.take_client(c3), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    // A fan-out merges RESP3 nulls like RESP2 nils.
    h.send(c3, &cmd(&["MGET", "a1", "b1"]));
    let twin1 = BackendId { server: 1, conn: 1 };
    h.intents();
    h.take_backend(twin);
    h.take_backend(twin1);
    h.reply(twin, b"*1\r\n$1\r\nx\r\n");
    h.reply(twin1, b"%1\r\n$5\r\nproto\r\n:3\r\n*1\r\n_\r\n");
    assert_eq!(h.take_client(c3), b"*2\r\n$1\r\nx\r\n_\r\n");
}
