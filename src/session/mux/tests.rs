//! Session behaviour with a simulated driver: ordering, batching, fan-out,
//! local commands and slow clients. Failure paths are in `tests_fail.rs`.

use std::time::{Duration, Instant};

use super::*;

/// Test placement: key "a..." -> server 0, "b..." -> 1, "c..." -> 2; the
/// empty key -> 0.
pub(super) fn route(k: &[u8]) -> Option<u32> {
    Some(k.first().map_or(0, |b| (b - b'a') as u32))
}

pub(super) fn cmd(args: &[&str]) -> Vec<u8> {
    crate::protocol::resp::encode::command(args.iter().map(|a| a.as_bytes())).to_vec()
}

pub(super) fn b(server: u32) -> BackendId {
    BackendId { server, conn: 0 }
}

pub(super) struct H {
    pub s: MuxSession,
    pub now: Instant,
}

impl H {
    pub fn new(cfg: MuxConfig) -> H {
        H { s: MuxSession::new(cfg), now: Instant::now() }
    }

    pub fn redis() -> H {
        H::new(MuxConfig::new(Protocol::Redis, 3))
    }

    pub fn send(&mut self, c: ClientId, bytes: &[u8]) {
        self.s.handle_client_data(c, bytes, self.now, &route);
    }

    /// Everything the session wants written to a backend, marked sent.
    pub fn take_backend(&mut self, id: BackendId) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(buf) = self.s.poll_backend_transmit(id) {
            out.extend_from_slice(&buf);
            let n = buf.len();
            self.s.handle_backend_sent(id, n, self.now, &route);
        }
        out
    }

    pub fn reply(&mut self, id: BackendId, bytes: &[u8]) {
        self.s.handle_backend_data(id, bytes, self.now, &route);
    }

    /// Everything the session wants written to a client, marked sent.
    pub fn take_client(&mut self, c: ClientId) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(buf) = self.s.poll_client_transmit(c) {
            out.extend_from_slice(&buf);
            let n = buf.len();
            self.s.handle_client_sent(c, n, self.now, &route);
        }
        out
    }

    /// Drains intents, completing every connect at once.
    pub fn intents(&mut self) -> Vec<MuxIntent> {
        let mut v = Vec::new();
        while let Some(i) = self.s.poll_intent() {
            if let MuxIntent::Connect(id) = i {
                self.s.handle_backend_connected(id);
            }
            v.push(i);
        }
        v
    }
}

#[test]
fn replies_keep_request_order_across_servers() {
    let mut h = H::redis();
    let c = h.s.add_client();
    let mut pipe = cmd(&["GET", "a1"]);
    pipe.extend(cmd(&["GET", "b1"]));
    pipe.extend(cmd(&["GET", "a2"]));
    h.send(c, &pipe);
    assert_eq!(h.intents(), [MuxIntent::Connect(b(0)), MuxIntent::Connect(b(1))]);
    let mut both = cmd(&["GET", "a1"]);
    both.extend(cmd(&["GET", "a2"]));
    assert_eq!(h.take_backend(b(0)), both, "server 0 gets its two requests in one write");
    assert_eq!(h.take_backend(b(1)), cmd(&["GET", "b1"]));
    // Server 1 answers first: nothing may reach the client yet.
    h.reply(b(1), b"$2\r\nB1\r\n");
    assert!(h.take_client(c).is_empty());
    h.reply(b(0), b"$2\r\nA1\r\n$2\r\nA2\r\n");
    assert_eq!(h.take_client(c), b"$2\r\nA1\r\n$2\r\nB1\r\n$2\r\nA2\r\n");
}

#[test]
fn many_clients_share_one_write_and_get_their_own_replies() {
    let mut h = H::redis();
    let clients: Vec<ClientId> = (0..5).map(|_| h.s.add_client()).collect();
    for (i, &c) in clients.iter().enumerate() {
        h.send(c, &cmd(&["GET", &format!("a{i}")]));
    }
    h.intents();
    let batch = h.take_backend(b(0));
    let expect: Vec<u8> = (0..5).flat_map(|i| cmd(&["GET", &format!("a{i}")])).collect();
    assert_eq!(batch, expect, "one write carries every client's request");
    let answers: Vec<u8> = (0..5).flat_map(|i| format!(":{i}\r\n").into_bytes()).collect();
    h.reply(b(0), &answers);
    for (i, &c) in clients.iter().enumerate() {
        assert_eq!(h.take_client(c), format!(":{i}\r\n").as_bytes());
    }
}

#[test]
fn a_reply_split_at_every_byte_reaches_the_client_whole() {
    let reply = b"*3\r\n$1\r\nx\r\n$-1\r\n:5\r\n";
    for cut in 0..reply.len() {
        let mut h = H::redis();
        let c = h.s.add_client();
        h.send(c, &cmd(&["HMGET", "a", "f1", "f2", "f3"]));
        h.intents();
        h.take_backend(b(0));
        h.reply(b(0), &reply[..cut]);
        let early = h.take_client(c);
        assert!(early.is_empty(), "nothing before the reply is whole (cut {cut})");
        h.reply(b(0), &reply[cut..]);
        assert_eq!(h.take_client(c), reply);
    }
}

#[test]
fn mget_del_mset_fan_out_and_merge() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["MGET", "b1", "a1", "b2"]));
    h.send(c, &cmd(&["DEL", "a1", "b1", "c1"]));
    h.send(c, &cmd(&["MSET", "a1", "1", "b1", "2"]));
    h.intents();
    let mut to_a = cmd(&["MGET", "a1"]);
    to_a.extend(cmd(&["DEL", "a1"]));
    to_a.extend(cmd(&["MSET", "a1", "1"]));
    assert_eq!(h.take_backend(b(0)), to_a);
    let mut to_b = cmd(&["MGET", "b1", "b2"]);
    to_b.extend(cmd(&["DEL", "b1"]));
    to_b.extend(cmd(&["MSET", "b1", "2"]));
    assert_eq!(h.take_backend(b(1)), to_b);
    assert_eq!(h.take_backend(b(2)), cmd(&["DEL", "c1"]));
    h.reply(b(1), b"*2\r\n$2\r\nB1\r\n$-1\r\n:1\r\n+OK\r\n");
    h.reply(b(2), b":1\r\n");
    h.reply(b(0), b"*1\r\n$2\r\nA1\r\n:0\r\n+OK\r\n");
    assert_eq!(h.take_client(c), b"*3\r\n$2\r\nB1\r\n$2\r\nA1\r\n$-1\r\n:2\r\n+OK\r\n");
    assert_eq!(h.s.stats().fragments, 7);
}

#[test]
fn slow_client_is_closed_and_never_holds_back_another() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.output = OutputLimit::hard(1000);
    let mut h = H::new(cfg);
    let (slow, fast) = (h.s.add_client(), h.s.add_client());
    for i in 0..4 {
        h.send(slow, &cmd(&["GET", &format!("a{i}")]));
    }
    h.send(fast, &cmd(&["GET", "a9"]));
    h.intents();
    h.take_backend(b(0));
    // 400-byte values: the slow client never reads and passes 1000 bytes.
    let value = format!("$400\r\n{}\r\n", "v".repeat(400));
    for _ in 0..4 {
        h.reply(b(0), value.as_bytes());
    }
    assert!(h.intents().contains(&MuxIntent::CloseClient(slow, ClientClose::SlowClient)));
    assert_eq!(h.s.stats().slow_closed, 1);
    h.reply(b(0), b"$4\r\nfast\r\n");
    assert_eq!(h.take_client(fast), b"$4\r\nfast\r\n");
    assert!(h.s.poll_client_transmit(slow).is_none(), "the closed id is dead");
}

#[test]
fn pending_limit_pauses_reading_until_replies_drain() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.max_pending_per_client = 2;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    let pipe: Vec<u8> = (0..3).flat_map(|i| cmd(&["GET", &format!("a{i}")])).collect();
    h.send(c, &pipe);
    assert!(!h.s.wants_client_read(c));
    h.intents();
    assert_eq!(h.take_backend(b(0)).len(), 2 * cmd(&["GET", "a0"]).len(), "third request waits");
    h.reply(b(0), b":0\r\n:1\r\n");
    assert_eq!(h.take_client(c), b":0\r\n:1\r\n");
    assert_eq!(h.take_backend(b(0)), cmd(&["GET", "a2"]), "resumed after the client drained");
    assert!(h.s.wants_client_read(c));
}

#[test]
fn eof_answers_buffered_requests_then_closes() {
    let mut h = H::redis();
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a"]));
    h.s.handle_client_eof(c);
    h.intents();
    h.take_backend(b(0));
    h.reply(b(0), b"$-1\r\n");
    assert_eq!(h.take_client(c), b"$-1\r\n");
    assert!(h.intents().contains(&MuxIntent::CloseClient(c, ClientClose::Eof)));
}

#[test]
fn late_reply_for_a_closed_client_is_dropped() {
    let mut h = H::redis();
    let (gone, other) = (h.s.add_client(), h.s.add_client());
    h.send(gone, &cmd(&["GET", "a"]));
    h.send(other, &cmd(&["GET", "a"]));
    h.intents();
    h.take_backend(b(0));
    h.s.handle_client_error(gone, libc::ECONNRESET);
    let reused = h.s.add_client();
    assert_ne!(reused, gone, "generation differs");
    h.reply(b(0), b":1\r\n:2\r\n");
    assert_eq!(h.take_client(other), b":2\r\n");
    assert!(h.take_client(reused).is_empty());
}

#[test]
fn timeouts_are_passed_in() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.timeout = Some(Duration::from_millis(100));
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    h.send(c, &cmd(&["GET", "a"]));
    assert_eq!(h.s.next_deadline(), Some(h.now + Duration::from_millis(100)));
}

#[test]
fn eof_while_paused_still_answers_every_buffered_request() {
    let mut cfg = MuxConfig::new(Protocol::Redis, 3);
    cfg.max_pending_per_client = 2;
    let mut h = H::new(cfg);
    let c = h.s.add_client();
    let mut pipe: Vec<u8> = (0..5).flat_map(|i| cmd(&["GET", &format!("a{i}")])).collect();
    pipe.extend_from_slice(b"*2\r\n$3\r\nGET"); // a partial request, never completed
    h.send(c, &pipe);
    h.s.handle_client_eof(c);
    h.intents();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let sent = h.take_backend(b(0));
        let n = sent.len() / cmd(&["GET", "a0"]).len();
        h.reply(b(0), &b":7\r\n".repeat(n));
        answers.extend(h.take_client(c));
    }
    assert_eq!(answers, b":7\r\n".repeat(5), "all five answered after EOF");
    assert!(h.intents().contains(&MuxIntent::CloseClient(c, ClientClose::Eof)));
}
