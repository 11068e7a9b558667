//! A node connect is bounded even when requests have no deadline.

use std::time::Duration;

use super::tests::{key_on, H};

#[test]
fn a_connect_that_never_completes_times_out_without_request_timeout() {
    let mut cfg = H::cfg();
    cfg.request_timeout = None;
    cfg.connect_timeout = Duration::from_millis(300);
    cfg.max_retries = 0;
    let mut h = H::new(cfg, super::tests::map3(true));
    h.hold_connects = true;
    let c = h.client();
    h.send(c, &["GET", &key_on(1, 0)]);
    let b = h.conn(1);
    assert_eq!(h.s.next_deadline(), Some(h.now + Duration::from_millis(300)));
    h.advance(Duration::from_millis(299));
    assert!(h.closed.is_empty(), "not yet");
    h.advance(Duration::from_millis(1));
    assert!(h.closed.contains(&b), "the stuck connect is given up");
    assert!(h.take_str(c).starts_with("-ERR Connection timed out"), "and the request answered");
}
