//! Per-IP rate limits in the mux session with simulated time: delay pauses
//! decoding and reads until tokens return (and the deadline says when),
//! error answers Redis's and memcached's texts in place, close closes, and
//! bytes count the request as decoded.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{b, cmd, route, H};
use super::*;
use crate::limit::{IpKey, OnLimit, PoolLimits, RateSpec};
use crate::session::ratelimit::{ClientRate, RateCtx};

fn limited(protocol: Protocol, spec: RateSpec, on_limit: OnLimit) -> (H, ClientId) {
    let mut h = H::new(MuxConfig::new(protocol, 1));
    let pool = Arc::new(PoolLimits::new(1));
    h.s.set_rate(Some(RateCtx { ip: Some((pool.clone(), spec)), users: None, on_limit, worker: 0 }));
    let c = h.s.add_client();
    let key = IpKey::new("10.0.0.1".parse().unwrap());
    h.s.set_client_rate(c, ClientRate::new(key, pool.slot(key).share, None));
    h.intents();
    (h, c)
}

fn gets(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| cmd(&["GET", &format!("a{i}")])).collect()
}

#[test]
fn delay_pauses_until_tokens_return() {
    let spec = RateSpec { requests: Some(10.0), bytes: None, burst: 1.0 };
    let (mut h, c) = limited(Protocol::Redis, spec, OnLimit::Delay);
    h.send(c, &gets(15));
    h.intents();
    assert_eq!(h.take_backend(b(0)), gets(10), "the burst: 10 go");
    assert!(!h.s.wants_client_read(c), "reads pause while the bucket is empty");
    assert_eq!(h.s.next_deadline(), Some(h.now + Duration::from_millis(100)), "one token in 100 ms");
    h.s.handle_tick(h.now + Duration::from_millis(99), &route);
    assert!(h.take_backend(b(0)).is_empty());
    h.now += Duration::from_millis(100);
    h.s.handle_tick(h.now, &route);
    h.intents();
    assert_eq!(h.take_backend(b(0)), cmd(&["GET", "a10"]), "one more, no error");
    h.now += Duration::from_millis(400);
    h.s.handle_tick(h.now, &route);
    assert_eq!(h.take_backend(b(0)), gets(15)[gets(11).len()..], "the rest, at the rate");
    assert!(h.s.wants_client_read(c));
    assert_eq!(h.take_client(c), b"", "nothing but replies is ever sent");
    assert_eq!(h.s.stats().rate_limited, 2, "each wait counts once");
}

#[test]
fn error_answers_in_place_and_keeps_order() {
    let spec = RateSpec { requests: Some(2.0), bytes: None, burst: 1.0 };
    let (mut h, c) = limited(Protocol::Redis, spec, OnLimit::Error);
    h.send(c, &gets(3));
    h.intents();
    assert_eq!(h.take_backend(b(0)), gets(2));
    h.reply(b(0), b"$1\r\na\r\n$1\r\nb\r\n");
    assert_eq!(h.take_client(c), b"$1\r\na\r\n$1\r\nb\r\n-ERR rate limit exceeded\r\n");
    assert!(h.s.wants_client_read(c), "the connection stays");
    h.now += Duration::from_millis(500);
    h.send(c, &gets(1));
    assert_eq!(h.take_backend(b(0)), gets(1), "a token came back");

    let (mut h, c) = limited(Protocol::Memcache, spec, OnLimit::Error);
    h.send(c, b"get a1\r\nget a2\r\nget a3\r\n");
    h.intents();
    assert_eq!(h.take_backend(b(0)), b"get a1\r\nget a2\r\n");
    h.reply(b(0), b"END\r\nEND\r\n");
    assert_eq!(h.take_client(c), b"END\r\nEND\r\nSERVER_ERROR rate limit exceeded\r\n");
}

#[test]
fn close_closes_after_earlier_replies() {
    let spec = RateSpec { requests: Some(1.0), bytes: None, burst: 1.0 };
    let (mut h, c) = limited(Protocol::Redis, spec, OnLimit::Close);
    h.send(c, &gets(2));
    h.intents();
    assert_eq!(h.take_backend(b(0)), gets(1));
    h.reply(b(0), b"$-1\r\n");
    assert_eq!(h.take_client(c), b"$-1\r\n");
    assert!(h.intents().contains(&MuxIntent::CloseClient(c, ClientClose::RateLimited)));
}

#[test]
fn bytes_count_each_request_as_decoded() {
    let one = cmd(&["SET", "a", &"v".repeat(100)]);
    let spec = RateSpec { requests: None, bytes: Some(one.len() as f64 * 2.0), burst: 1.0 };
    let (mut h, c) = limited(Protocol::Redis, spec, OnLimit::Delay);
    h.send(c, &one.repeat(3));
    h.intents();
    assert_eq!(h.take_backend(b(0)), one.repeat(2), "two requests' bytes a second, burst 1");
    // The third waits until the two are paid for: half a second per request.
    assert_eq!(h.s.next_deadline(), Some(h.now + Duration::from_millis(1)));
    h.now += Duration::from_millis(1);
    h.s.handle_tick(h.now, &route);
    assert_eq!(h.take_backend(b(0)), one, "above zero: the third goes, into debt");
    h.send(c, &one);
    // Its debt takes ~0.5 s to pay off; it asks again every rebalance
    // period (100 ms) meanwhile, in case this core's share grew.
    let mut waited = Duration::ZERO;
    while let Some(d) = h.s.next_deadline().filter(|_| h.take_backend(b(0)).is_empty()) {
        let step = d - h.now;
        assert!(step <= Duration::from_millis(100), "{step:?}");
        waited += step;
        h.now = d;
        h.s.handle_tick(h.now, &route);
        h.intents();
        if waited > Duration::from_secs(2) {
            break;
        }
    }
    assert!(waited >= Duration::from_millis(495) && waited <= Duration::from_millis(501), "{waited:?}");
}

#[test]
fn a_client_without_an_address_or_a_pool_without_rates_is_never_limited() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &gets(100));
    h.intents();
    assert_eq!(h.s.stats().rate_limited, 0);
    assert!(h.s.wants_client_read(c));
}

/// A user's limit in a Redis pool with no `per_ip`: requests before AUTH
/// (and the AUTH) are nobody's; after it they draw on the user's bucket
/// and are counted for it, denials too.
#[test]
fn a_users_bucket_applies_after_auth_and_counts_what_it_sent() {
    use crate::acl::{User, Users};
    use crate::limit::UserLimits;
    let mut app = User::from_rules("app", "on >pw allkeys +@all -flushall").unwrap();
    app.id = 0;
    let mut cfg = MuxConfig::new(Protocol::Redis, 1);
    cfg.users = Some(Arc::new(Users::new(vec![Arc::new(app)])));
    let mut h = H::new(cfg);
    let spec = RateSpec { requests: Some(2.0), bytes: None, burst: 1.0 };
    let limits = Arc::new(UserLimits::new(vec![("app".to_owned(), Some(spec))], 1, h.now, None));
    let users = Some(limits.clone());
    h.s.set_rate(Some(RateCtx { ip: None, users, on_limit: OnLimit::Error, worker: 0 }));
    let c = h.s.add_client();
    h.intents();
    h.send(c, &[cmd(&["PING"]), cmd(&["AUTH", "app", "pw"]), cmd(&["FLUSHALL"])].concat());
    h.send(c, &gets(3));
    h.intents();
    assert_eq!(h.take_backend(b(0)), gets(1), "PING and AUTH are nobody's; the denied FLUSHALL took a token");
    h.reply(b(0), b"$-1\r\n");
    let out = String::from_utf8(h.take_client(c)).unwrap();
    assert!(out.ends_with("$-1\r\n-ERR rate limit exceeded\r\n-ERR rate limit exceeded\r\n"), "{out}");
    let (name, t) = limits.totals().next().unwrap();
    assert_eq!(name, "app");
    let sent = cmd(&["FLUSHALL"]).len() + cmd(&["GET", "a0"]).len();
    assert_eq!((t.requests, t.bytes, t.denied, t.limited), (2, sent as u64, 1, 2));
    assert_eq!(h.s.stats().rate_limited, 0, "no per-IP bucket refused anything");
}
