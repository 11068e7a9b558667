//! The cluster session's byte bounds (`mux::limits`): reads pause at
//! `client_queue_limit` until replies drain, the output limit's soft timer
//! runs on ticks, and reply bytes are accounted for the process cap.

use std::time::Duration;

use super::tests::{cmd, key_on, H};
use crate::session::mux::OutputLimit;

#[test]
fn reads_pause_at_the_queue_limit_and_resume_as_replies_leave() {
    let mut cfg = H::cfg();
    cfg.client_queue_limit = 100;
    let mut h = H::new(cfg, super::tests::map3(true));
    let c = h.client();
    let k = key_on(1, 0);
    let big = "v".repeat(150);
    let mut pipe = cmd(&["SET", &k, &big]);
    pipe.extend(cmd(&["GET", &k]));
    h.send_raw(c, &pipe);
    assert!(!h.s.wants_client_read(c), "the SET alone is past 100 bytes");
    assert_eq!(h.written_to(1), cmd(&["SET", &k, &big]), "one request always goes out");
    h.reply_to(1, b"+OK\r\n");
    assert_eq!(h.take_str(c), "+OK\r\n");
    assert_eq!(h.written_to(1), cmd(&["GET", &k]), "decoded again once the reply left");
    assert!(h.s.wants_client_read(c));
}

#[test]
fn soft_output_limit_closes_a_client_that_stays_past_it() {
    let mut cfg = H::cfg();
    cfg.output = OutputLimit { hard: 1 << 20, soft: 100, soft_for: Duration::from_secs(30) };
    let mut h = H::new(cfg, super::tests::map3(true));
    let c = h.client();
    h.send(c, &["GET", &key_on(1, 0)]);
    h.written_to(1);
    let value = format!("$200\r\n{}\r\n", "x".repeat(200));
    h.reply_to(1, value.as_bytes());
    assert_eq!(h.s.buffered_bytes(), value.len());
    assert_eq!(h.s.next_deadline(), Some(h.now + Duration::from_secs(30)));
    h.advance(Duration::from_secs(29));
    assert_eq!(h.s.client_count(), 1);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.s.client_count(), 0, "30 s past soft: closed");
    assert_eq!((h.s.stats().slow_closed, h.s.buffered_bytes()), (1, 0));
}
