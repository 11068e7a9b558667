//! RESP3 clients in cluster mode: HELLO 3 answered locally, their units on
//! connections that sent HELLO 3, pub/sub pushes relayed on pinned ones.

use super::tests::{cmd, owner, H};
use crate::route::keyslot;

#[test]
fn resp3_clients_get_their_own_connections_and_native_replies() {
    let mut h = H::default3();
    let (c2, c3) = (h.client(), h.client());
    h.send(c3, &["HELLO", "3"]);
    assert!(h.take_str(c3).starts_with("%7\r\n"));
    let k = "user:1";
    let port = owner(keyslot(k.as_bytes()));
    h.send(c2, &["HGETALL", k]);
    h.send(c3, &["HGETALL", k]);
    let conns = h.conns_to(port);
    assert_eq!(conns.len(), 2, "a RESP2 and a RESP3 connection");
    let (b2, b3) = (conns[0], conns[1]);
    assert_eq!(h.written(b2), cmd(&["HGETALL", k]));
    let mut expect = cmd(&["HELLO", "3"]);
    expect.extend(cmd(&["HGETALL", k]));
    assert_eq!(h.written(b3), expect);
    h.reply(b2, b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    h.reply(b3, b"%1\r\n$5\r\nproto\r\n:3\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(h.take_str(c2), "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(h.take_str(c3), "%1\r\n$1\r\nf\r\n$1\r\nv\r\n", "push dropped, map native");
}

#[test]
fn resp3_pubsub_pushes_are_relayed_on_the_pinned_connection() {
    let mut h = H::default3();
    let c = h.client();
    h.send(c, &["HELLO", "3"]);
    h.take(c);
    let ch = "news";
    h.send(c, &["SUBSCRIBE", ch]);
    let pinned = h.conn(owner(keyslot(ch.as_bytes())));
    let mut expect = cmd(&["HELLO", "3"]);
    expect.extend(cmd(&["SUBSCRIBE", ch]));
    assert_eq!(h.written(pinned), expect);
    h.reply(pinned, b"%1\r\n$5\r\nproto\r\n:3\r\n>3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    h.reply(pinned, b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
    assert_eq!(
        h.take_str(c),
        ">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    h.send(c, &["UNSUBSCRIBE"]);
    h.written(pinned);
    h.reply(pinned, b">3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n");
    h.take(c);
    // Out of pub/sub: a normal command is routed again.
    h.send(c, &["PING"]);
    assert_eq!(h.take_str(c), "+PONG\r\n");
}

#[test]
fn unsubscribe_without_subscriptions_answers_a_push_in_resp3() {
    let mut h = H::default3();
    let c = h.client();
    h.send(c, &["UNSUBSCRIBE"]);
    assert_eq!(h.take_str(c), "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    h.send(c, &["HELLO", "3"]);
    h.take(c);
    h.send(c, &["UNSUBSCRIBE", "a"]);
    assert_eq!(h.take_str(c), ">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n");
}
