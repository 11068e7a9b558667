//! One command policy in every client state (DESIGN §5), with a simulated
//! driver: refused administration commands, `allow_flush = false` and
//! `allow_scripts = false` hold inside MULTI, while subscribed and while
//! pinned; commands Puerta answers itself never reach a shared connection
//! inside a MULTI batch; a subscribed client may send only what Redis
//! allows in that context.

use super::tests::{cmd, key_on, map3, H};

const EXECABORT: &str = "-EXECABORT Transaction discarded because of previous errors.\r\n";

fn config_refused() -> String {
    "-ERR unsupported command 'CONFIG' through Puerta in cluster mode (node administration: connect to the node)\r\n"
        .into()
}

/// Nothing was written to any node (masters 1-3, replicas 4-6).
fn nothing_sent(h: &mut H) {
    for p in 1..=6 {
        assert!(h.written_to(p).is_empty(), "something reached node {p}");
    }
}

#[test]
fn refused_commands_inside_multi_are_refused_and_abort_the_transaction() {
    let mut cfg = H::cfg();
    cfg.allow_flush = false;
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    let k = key_on(1, 0);
    for refused in [&["CONFIG", "SET", "slowlog-max-len", "4242"][..], &["FLUSHALL"], &["DEBUG", "SLEEP", "0"]] {
        for args in [&["MULTI"][..], refused, &["SET", &k, "v"], &["EXEC"]] {
            h.send(c, args);
        }
        let second = match refused[0] {
            "CONFIG" => config_refused(),
            "FLUSHALL" => "-ERR FLUSHALL is refused by this Puerta pool (allow_flush = false)\r\n".into(),
            _ => "-ERR unsupported command 'DEBUG' through Puerta in cluster mode (node administration: connect to \
                  the node)\r\n"
                .into(),
        };
        assert_eq!(h.take_str(c), format!("+OK\r\n{second}+QUEUED\r\n{EXECABORT}"), "{refused:?}");
        nothing_sent(&mut h);
    }
}

#[test]
fn commands_puerta_answers_itself_are_not_queued_raw_inside_multi() {
    let mut h = H::default3();
    let c = h.client();
    let k = key_on(2, 0);
    // Each would change a shared connection for every client (AUTH as
    // another user, RESP3, CLIENT REPLY OFF, SUBSCRIBE...), or make no
    // sense on one node (FLUSHALL, DBSIZE over one master).
    for cmdline in [
        &["AUTH", "other", "pw"][..],
        &["HELLO", "3"],
        &["CLIENT", "REPLY", "OFF"],
        &["CLIENT", "KILL", "TYPE", "normal"],
        &["READWRITE"],
        &["SUBSCRIBE", "ch"],
        &["CLUSTER", "RESET", "HARD"],
        &["FLUSHALL"],
        &["DBSIZE"],
        &["SELECT", "0"],
    ] {
        for args in [&["MULTI"][..], cmdline, &["INCR", &k], &["EXEC"]] {
            h.send(c, args);
        }
        let name = cmdline[0];
        assert_eq!(
            h.take_str(c),
            format!(
                "+OK\r\n-ERR {name} inside MULTI is not supported through Puerta in cluster mode\r\n+QUEUED\r\n\
                 {EXECABORT}"
            ),
            "{cmdline:?}"
        );
        nothing_sent(&mut h);
    }
    // What a node runs as it is still queues: PING, ECHO, keyed commands.
    for args in [&["MULTI"][..], &["PING"], &["ECHO", "e"], &["INCR", &k], &["EXEC"]] {
        h.send(c, args);
    }
    assert_eq!(h.take_str(c), "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
    let batch = [cmd(&["MULTI"]), cmd(&["PING"]), cmd(&["ECHO", "e"]), cmd(&["INCR", &k]), cmd(&["EXEC"])].concat();
    assert_eq!(h.written_to(2), batch);
}

#[test]
fn a_subscribed_client_may_send_only_what_redis_allows_there() {
    let mut cfg = H::cfg();
    cfg.allow_flush = false;
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    h.send(c, &["SUBSCRIBE", "ch"]);
    let pinned = *h.conns.last().map(|(b, _)| b).unwrap();
    assert_eq!(h.written(pinned), cmd(&["SUBSCRIBE", "ch"]));
    h.reply(pinned, b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
    h.take(c);

    // UNSUBSCRIBE is in flight: the node may already run commands again
    // when the rest of this pipeline reaches it, so Puerta must filter.
    let mut pipe = cmd(&["UNSUBSCRIBE", "ch"]);
    pipe.extend(cmd(&["CONFIG", "SET", "slowlog-max-len", "4242"]));
    pipe.extend(cmd(&["GET", "k"]));
    pipe.extend(cmd(&["FLUSHALL"]));
    pipe.extend(cmd(&["PING"]));
    h.send_raw(c, &pipe);
    assert_eq!(h.written(pinned), [cmd(&["UNSUBSCRIBE", "ch"]), cmd(&["PING"])].concat(), "only what Redis allows");
    let only = "only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context";
    assert_eq!(
        h.take_str(c),
        format!(
            "{}-ERR Can't execute 'get': {only}\r\n-ERR FLUSHALL is refused by this Puerta pool (allow_flush = false)\r\n",
            config_refused()
        )
    );
    nothing_sent(&mut h);
}

#[test]
fn allow_scripts_false_refuses_scripts_in_every_state() {
    let mut cfg = H::cfg();
    cfg.allow_scripts = false;
    let mut h = H::new(cfg, map3(true));
    let c = h.client();
    let k = key_on(3, 0);
    let refused = |name: &str| format!("-ERR {name} is refused by this Puerta pool (allow_scripts = false)\r\n");
    for args in [
        &["EVAL", "redis.call('FLUSHALL')", "0"][..],
        &["EVALSHA", "abc", "1", &k],
        &["eval_ro", "return 1", "0"],
        &["EVALSHA_RO", "abc", "0"],
        &["FCALL", "f", "0"],
        &["FCALL_RO", "f", "0"],
        &["SCRIPT", "LOAD", "return 1"],
        &["FUNCTION", "FLUSH"],
    ] {
        h.send(c, args);
        assert_eq!(h.take_str(c), refused(&args[0].to_ascii_uppercase()), "{args:?}");
    }
    for args in [&["MULTI"][..], &["EVAL", "return 1", "1", &k], &["INCR", &k], &["EXEC"]] {
        h.send(c, args);
    }
    assert_eq!(h.take_str(c), format!("+OK\r\n{}+QUEUED\r\n{EXECABORT}", refused("EVAL")));
    // Pinned by WATCH: refused, and nothing but the WATCH on the pin.
    h.send(c, &["WATCH", &k]);
    h.send(c, &["EVAL", "return 1", "1", &k]);
    h.send(c, &["CONFIG", "GET", "x"]);
    assert_eq!(h.written_to(3), cmd(&["WATCH", &k]));
    h.reply_to(3, b"+OK\r\n");
    assert_eq!(h.take_str(c), format!("+OK\r\n{}{}", refused("EVAL"), config_refused()));
    nothing_sent(&mut h);

    // The default lets scripts through.
    let mut h = H::default3();
    let c = h.client();
    h.send(c, &["EVAL", "return 1", "1", &k]);
    assert_eq!(h.written_to(3), cmd(&["EVAL", "return 1", "1", &k]));
}
