//! Tests of `MongoTracker` (framing both ways, request/reply matching,
//! boundaries, handshake metadata) and of mongos `TcpSession`s (retire at
//! a boundary, deferred routing), with simulated time.

use super::*;
use crate::protocol::mongo::command::tests::op_msg_body;
use crate::protocol::mongo::header::{Header, FLAG_EXHAUST_ALLOWED};
use bson::doc;

fn msg(id: i32, to: i32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    Header { length: (16 + body.len()) as u32, request_id: id, response_to: to, op_code: OP_MSG }.write(&mut v);
    v.extend_from_slice(body);
    v
}

fn find(id: i32) -> Vec<u8> {
    msg(id, 0, &op_msg_body(0, &doc! {"find": "c", "$db": "shop"}))
}

fn reply(id: i32, to: i32, flags: u32) -> Vec<u8> {
    msg(id, to, &op_msg_body(flags, &doc! {"ok": 1}))
}

#[test]
fn boundary_only_between_reply_and_next_request() {
    let t0 = Instant::now();
    let mut t = MongoTracker::new(1 << 20);
    assert!(t.at_boundary());
    let req = find(5);
    for cut in 1..req.len() {
        let mut t = MongoTracker::new(1 << 20);
        t.handle_data(Side::Client, &req[..cut], t0).unwrap();
        assert!(!t.at_boundary(), "mid-request at {cut}");
    }
    t.handle_data(Side::Client, &req, t0).unwrap();
    assert!(!t.at_boundary(), "a request awaits its reply");
    let rep = reply(9, 5, 0);
    t.handle_data(Side::Backend, &rep[..10], t0).unwrap();
    assert!(!t.at_boundary(), "mid-reply");
    t.handle_data(Side::Backend, &rep[10..], t0 + Duration::from_millis(3)).unwrap();
    assert!(t.at_boundary());
    let obs: Vec<_> = t.drain_observations().collect();
    let find_cmd = command_index(Some("find")) as u8;
    assert_eq!(obs[0], Observation::Request { opcode: 0, command: find_cmd, bytes: req.len() as u32 });
    match obs[1] {
        Observation::Reply { command, name, db, elapsed, bytes, error } => {
            assert_eq!((bytes, error), (rep.len() as u32, None), "whole reply counted; ok: 1 is no error");
            assert_eq!(command, find_cmd);
            assert_eq!(name.as_str(), "find");
            assert_eq!(db.as_str(), "shop");
            assert_eq!(elapsed, Duration::from_millis(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn more_to_come_on_both_sides() {
    let t0 = Instant::now();
    let mut t = MongoTracker::new(1 << 20);
    // A fire-and-forget write expects no reply.
    let w = msg(1, 0, &op_msg_body(FLAG_MORE_TO_COME, &doc! {"insert": "c", "$db": "d"}));
    t.handle_data(Side::Client, &w, t0).unwrap();
    assert!(t.at_boundary());
    // An exhaust hello: replies with moreToCome chain by responseTo.
    let h = msg(2, 0, &op_msg_body(FLAG_EXHAUST_ALLOWED, &doc! {"hello": 1, "$db": "admin"}));
    t.handle_data(Side::Client, &h, t0).unwrap();
    t.handle_data(Side::Backend, &reply(10, 2, FLAG_MORE_TO_COME), t0).unwrap();
    assert!(!t.at_boundary(), "more replies promised");
    t.handle_data(Side::Backend, &reply(11, 10, 0), t0).unwrap();
    assert!(t.at_boundary());
}

#[test]
fn first_hello_metadata_and_oversized() {
    let t0 = Instant::now();
    let mut t = MongoTracker::new(1 << 20);
    assert!(!t.handshake_seen());
    let h = op_msg_body(
        0,
        &doc! {"hello": 1, "client": {"application": {"name": "app1"}, "driver": {"name": "PyMongo"}}, "$db": "admin"},
    );
    t.handle_data(Side::Client, &msg(1, 0, &h), t0).unwrap();
    assert!(t.handshake_seen());
    assert_eq!(t.hello().unwrap().app_name.as_deref(), Some("app1"));

    let mut small = MongoTracker::new(64);
    let big = msg(1, 0, &[0u8; 100]);
    assert!(matches!(small.handle_data(Side::Client, &big, t0), Err(FrameError::Oversized { length: 116, max: 64 })));
}

#[test]
fn unknown_commands_count_as_other_but_keep_their_name() {
    let t0 = Instant::now();
    let mut t = MongoTracker::new(1 << 20);
    let req = msg(3, 0, &op_msg_body(0, &doc! {"reIndex": "c", "$db": "shop"}));
    t.handle_data(Side::Client, &req, t0).unwrap();
    t.handle_data(Side::Backend, &reply(4, 3, 0), t0).unwrap();
    let obs: Vec<_> = t.drain_observations().collect();
    assert_eq!(obs[0], Observation::Request { opcode: 0, command: 0, bytes: req.len() as u32 });
    match obs[1] {
        Observation::Reply { command: 0, name, db, .. } => {
            assert_eq!((name.as_str(), db.as_str()), ("reIndex", "shop"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ok_zero_replies_carry_their_error_class() {
    let t0 = Instant::now();
    let mut t = MongoTracker::new(1 << 20);
    let err = |id, to, name: &str| {
        let long = "x".repeat(300);
        msg(id, to, &op_msg_body(0, &doc! {"ok": 0.0, "errmsg": long, "code": 11000, "codeName": name}))
    };
    for (i, (name, class)) in [("DuplicateKey", "DuplicateKey"), ("NoSuchCodeName", "other")].into_iter().enumerate() {
        let id = 10 * (i as i32 + 1);
        t.handle_data(Side::Client, &find(id), t0).unwrap();
        t.handle_data(Side::Backend, &err(id + 1, id, name), t0).unwrap();
        let obs: Vec<_> = t.drain_observations().collect();
        match obs[1] {
            Observation::Reply { error: Some(c), .. } => {
                assert_eq!(crate::obs::CLASSES[usize::from(c)], class, "{name}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn pending_is_bounded() {
    let t0 = Instant::now();
    let mut t = MongoTracker::new(1 << 20);
    for id in 0..(MAX_PENDING as i32 + 10) {
        t.handle_data(Side::Client, &find(id), t0).unwrap();
    }
    assert_eq!(t.pending.len(), MAX_PENDING);
}

mod session {
    use super::*;
    use crate::session::{CloseReason, Intent, Limits, TcpSession};

    fn open(defer: bool) -> (TcpSession, Instant) {
        let t0 = Instant::now();
        let limits = Limits { connect_timeout: Duration::from_secs(1), idle_timeout: None, high_water: 1 << 20 };
        let mut s = TcpSession::new(limits, t0).with_mongo(MongoTracker::new(1 << 20), defer);
        if !defer {
            s.handle_connected(t0);
        }
        (s, t0)
    }

    fn flush(s: &mut TcpSession, to: crate::session::Side, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = s.poll_transmit(to) {
            let n = b.len();
            out.extend_from_slice(b);
            s.handle_sent(to, n, now);
        }
        out
    }

    #[test]
    fn retire_waits_for_the_reply_then_closes() {
        let (mut s, t0) = open(false);
        let req = find(1);
        s.handle_data(Side::Client, &req[..20], t0);
        s.retire(CloseReason::Retired, t0 + Duration::from_secs(5));
        assert!(s.wants_read(Side::Client), "mid-request: keep reading the rest");
        s.handle_data(Side::Client, &req[20..], t0);
        assert_eq!(flush(&mut s, Side::Backend, t0), req, "forwarded unchanged");
        assert!(!s.wants_read(Side::Client), "whole request in: take no new one");
        assert_eq!(s.poll_intent(), None, "reply outstanding");
        let rep = reply(7, 1, 0);
        s.handle_data(Side::Backend, &rep, t0);
        assert_eq!(s.poll_intent(), None, "reply not yet delivered");
        assert_eq!(flush(&mut s, Side::Client, t0), rep);
        assert_eq!(s.poll_intent(), Some(Intent::Close(CloseReason::Retired)));
    }

    #[test]
    fn retire_deadline_bounds_a_hung_backend() {
        let (mut s, t0) = open(false);
        s.handle_data(Side::Client, &find(1), t0);
        flush(&mut s, Side::Backend, t0);
        assert_eq!(s.next_deadline(true), None, "open, no idle timeout: no timer");
        s.retire(CloseReason::Retired, t0 + Duration::from_secs(5));
        assert_eq!(s.next_deadline(true), Some(t0 + Duration::from_secs(5)), "the retire deadline needs a timer");
        s.handle_tick(t0 + Duration::from_secs(4));
        assert_eq!(s.poll_intent(), None);
        s.handle_tick(t0 + Duration::from_secs(5));
        assert_eq!(s.poll_intent(), Some(Intent::Close(CloseReason::Retired)));
    }

    #[test]
    fn bad_header_closes_without_forwarding() {
        let (mut s, t0) = open(false);
        let mut bad = find(1);
        bad[..4].copy_from_slice(&8i32.to_le_bytes());
        s.handle_data(Side::Client, &bad, t0);
        assert_eq!(s.poll_transmit(Side::Backend), None);
        assert_eq!(s.poll_intent(), Some(Intent::Close(CloseReason::Protocol(Side::Client, FrameError::Short(8)))));
    }

    #[test]
    fn deferred_route_waits_for_the_handshake() {
        let (mut s, t0) = open(true);
        let h =
            msg(1, 0, &op_msg_body(0, &doc! {"hello": 1, "client": {"application": {"name": "a"}}, "$db": "admin"}));
        s.handle_data(Side::Client, &h[..30], t0);
        assert!(s.awaiting_route());
        assert_eq!(s.take_route(), None);
        s.handle_data(Side::Client, &h[30..], t0);
        let meta = s.take_route().expect("handshake seen").expect("it was a hello");
        assert_eq!(meta.app_name.as_deref(), Some("a"));
        assert_eq!(s.take_route(), None, "only once");
        s.handle_connected(t0);
        assert_eq!(flush(&mut s, Side::Backend, t0), h);
    }
}

#[test]
fn compressed_and_legacy_opcodes_are_framed_and_matched() {
    use crate::protocol::mongo::header::{OP_COMPRESSED, OP_REPLY};
    let t0 = Instant::now();
    let mut t = MongoTracker::new(1 << 20);
    // OP_COMPRESSED: originalOpcode, uncompressedSize, compressorId, data.
    let mut body = 2013i32.to_le_bytes().to_vec();
    body.extend_from_slice(&100i32.to_le_bytes());
    body.push(1);
    body.extend_from_slice(&[0xAB; 30]);
    let mut m = Vec::new();
    Header { length: (16 + body.len()) as u32, request_id: 4, response_to: 0, op_code: OP_COMPRESSED }.write(&mut m);
    m.extend(&body);
    t.handle_data(Side::Client, &m, t0).unwrap();
    assert!(!t.at_boundary(), "a compressed request still awaits its reply");
    let mut r = Vec::new();
    Header { length: 16 + 20, request_id: 5, response_to: 4, op_code: OP_REPLY }.write(&mut r);
    r.extend_from_slice(&[0u8; 20]);
    t.handle_data(Side::Backend, &r, t0).unwrap();
    assert!(t.at_boundary());
    let obs: Vec<_> = t.drain_observations().collect();
    assert_eq!(
        obs[0],
        Observation::Request { opcode: 2, command: 0, bytes: m.len() as u32 },
        "counted as op_compressed / other"
    );
    assert!(matches!(obs[1], Observation::Reply { command: 0, .. }));
}
