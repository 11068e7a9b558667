//! Proxy users in the cluster session: the same ACL in every state
//! (normal, MULTI, subscribed), checked before anything reaches a node.

use super::tests::{map3, users, H};

fn h_with_alice() -> (H, super::ClientId) {
    let mut cfg = H::cfg();
    cfg.users = Some(users(&[("alice", "on >p +@all -@dangerous ~app:* &news.*")]));
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    h.send(c, &["AUTH", "alice", "p"]);
    assert_eq!(h.take_str(c), "+OK\r\n");
    (h, c)
}

#[test]
fn denials_in_normal_state_send_nothing() {
    let (mut h, c) = h_with_alice();
    h.send(c, &["MGET", "app:1", "other", "app:2"]);
    h.send(c, &["FLUSHALL"]);
    h.send(c, &["PUBLISH", "other", "m"]);
    h.send(c, &["EVAL", "return 1", "1", "app:1"]);
    assert_eq!(
        h.take_str(c),
        "-NOPERM No permissions to access a key\r\n\
         -NOPERM User alice has no permissions to run the 'flushall' command\r\n\
         -NOPERM No permissions to access a channel\r\n\
         -NOPERM User alice has no permissions to run the 'eval' command\r\n"
    );
    assert!(h.s.poll_dirty_backend().is_none(), "nothing was sent to a node");
}

#[test]
fn multi_queues_the_denial_and_exec_aborts() {
    let (mut h, c) = h_with_alice();
    h.send(c, &["MULTI"]);
    h.send(c, &["SET", "other", "v"]);
    h.send(c, &["EXEC"]);
    let out = h.take_str(c);
    assert!(out.starts_with("+OK\r\n-NOPERM No permissions to access a key\r\n-EXECABORT"), "{out}");
}

#[test]
fn subscribe_checks_every_channel() {
    let (mut h, c) = h_with_alice();
    h.send(c, &["SUBSCRIBE", "news.a", "other"]);
    h.send(c, &["PSUBSCRIBE", "news.a*"]);
    assert_eq!(
        h.take_str(c),
        "-NOPERM No permissions to access a channel\r\n-NOPERM No permissions to access a channel\r\n"
    );
}
