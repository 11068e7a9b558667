//! A test-only driver for the sans-IO cluster session on std sockets, so
//! the session can be tested against a real cluster before the workers
//! host it (phase 2 plugs it into the io_uring and epoll drivers).
//!
//! One thread, nonblocking `TcpStream`s polled in a loop: each `pump`
//! carries out the session's intents (connects are blocking with a short
//! timeout: loopback answers at once or refuses), writes what it wants
//! written, reads what the nodes sent, ticks its timers and collects the
//! bytes for each in-process client. It can also play the control thread:
//! with `refresh` set, the session's reports feed a real `ClusterPool`
//! whose new maps go back to the session, as snapshots would.
//!
//! Clients are in-process: a test sends request bytes and waits, polling,
//! for whole RESP replies.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use puerta::control::cluster::ClusterPool;
use puerta::protocol::resp::{Reply, ReplyDecoder};
use puerta::route::{ClusterReport, SlotMap};
use puerta::session::cluster::{BackendId, ClusterIntent, ClusterSession, ClusterSessionConfig};
use puerta::session::mux::ClientId;

/// How long a test waits for a reply before it fails.
pub const REPLY_WAIT: Duration = Duration::from_secs(30);

struct In {
    buf: BytesMut,
    dec: ReplyDecoder,
    closed: bool,
}

pub struct Driver {
    pub s: ClusterSession,
    socks: HashMap<usize, (BackendId, TcpStream)>,
    clients: HashMap<ClientId, In>,
    pub reports: Vec<ClusterReport>,
    /// Plays the control thread when set.
    pub refresh: Option<ClusterPool>,
    scratch: Vec<u8>,
}

impl Driver {
    pub fn new(cfg: ClusterSessionConfig, view: Arc<SlotMap>) -> Driver {
        Driver {
            s: ClusterSession::new(cfg, view),
            socks: HashMap::new(),
            clients: HashMap::new(),
            reports: Vec::new(),
            refresh: None,
            scratch: vec![0; 64 * 1024],
        }
    }

    pub fn client(&mut self) -> ClientId {
        let id = self.s.add_client(Some(SocketAddr::from(([127, 0, 0, 1], 7000))));
        self.clients.insert(id, In { buf: BytesMut::new(), dec: ReplyDecoder::default(), closed: false });
        id
    }

    pub fn send(&mut self, c: ClientId, bytes: &[u8]) {
        self.s.handle_client_data(c, bytes, Instant::now());
        self.pump();
    }

    /// One pass over everything; true if anything moved.
    pub fn pump(&mut self) -> bool {
        let mut moved = false;
        let now = Instant::now();
        while let Some(i) = self.s.poll_intent() {
            moved = true;
            match i {
                ClusterIntent::Connect(b) => self.connect(b),
                ClusterIntent::CloseBackend(b, _) => {
                    self.socks.remove(&b.index());
                }
                ClusterIntent::CloseClient(c, _) => {
                    if let Some(cl) = self.clients.get_mut(&c) {
                        cl.closed = true;
                    }
                }
                ClusterIntent::Report(r) => {
                    self.reports.push(r);
                    if let Some(p) = self.refresh.as_mut() {
                        p.handle_report(r, now);
                    }
                }
            }
        }
        let ids: Vec<(usize, BackendId)> = self.socks.iter().map(|(&i, (b, _))| (i, *b)).collect();
        for (i, b) in ids {
            moved |= self.write_backend(i, b);
            moved |= self.read_backend(i, b);
        }
        let clients: Vec<ClientId> = self.clients.keys().copied().collect();
        for c in clients {
            while let Some(buf) = self.s.poll_client_transmit(c) {
                let n = buf.len();
                if let Some(cl) = self.clients.get_mut(&c) {
                    cl.buf.extend_from_slice(&buf);
                }
                self.s.handle_client_sent(c, n, Instant::now());
                moved = true;
            }
        }
        self.s.handle_tick(Instant::now());
        if let Some(p) = self.refresh.as_mut() {
            if p.poll_refresh(Instant::now()) {
                self.s.handle_topology(p.map());
                moved = true;
            }
        }
        moved
    }

    fn connect(&mut self, b: BackendId) {
        let Some(addr) = self.s.backend_addr(b) else { return };
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                s.set_nonblocking(true).unwrap();
                s.set_nodelay(true).unwrap();
                self.socks.insert(b.index(), (b, s));
                self.s.handle_backend_connected(b);
            }
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::ECONNREFUSED);
                self.s.handle_backend_connect_failed(b, errno, Instant::now());
            }
        }
    }

    fn write_backend(&mut self, i: usize, b: BackendId) -> bool {
        let mut moved = false;
        loop {
            let Some(buf) = self.s.poll_backend_transmit(b) else { return moved };
            let Some((_, sock)) = self.socks.get_mut(&i) else { return moved };
            match sock.write(&buf) {
                Ok(n) => {
                    self.s.handle_backend_sent(b, n);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.s.handle_backend_sent(b, 0);
                    return moved;
                }
                Err(e) => {
                    self.socks.remove(&i);
                    self.s.handle_backend_closed(b, e.raw_os_error(), Instant::now());
                    return true;
                }
            }
        }
    }

    fn read_backend(&mut self, i: usize, b: BackendId) -> bool {
        let mut moved = false;
        loop {
            let Some((_, sock)) = self.socks.get_mut(&i) else { return moved };
            match sock.read(&mut self.scratch) {
                Ok(0) => {
                    self.socks.remove(&i);
                    self.s.handle_backend_closed(b, None, Instant::now());
                    return true;
                }
                Ok(n) => {
                    let data = self.scratch[..n].to_vec();
                    self.s.handle_backend_data(b, &data, Instant::now());
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return moved,
                Err(e) => {
                    self.socks.remove(&i);
                    self.s.handle_backend_closed(b, e.raw_os_error(), Instant::now());
                    return true;
                }
            }
        }
    }

    /// Pumps until `c` has `n` whole replies, and returns them.
    pub fn replies(&mut self, c: ClientId, n: usize) -> Vec<Reply> {
        let end = Instant::now() + REPLY_WAIT;
        let mut out = Vec::with_capacity(n);
        loop {
            let cl = self.clients.get_mut(&c).expect("known client");
            while out.len() < n {
                match cl.dec.decode(&mut cl.buf).expect("the session sends valid RESP") {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
            if out.len() == n {
                return out;
            }
            assert!(!cl.closed, "client closed after {} of {n} replies", out.len());
            assert!(Instant::now() < end, "timed out: {} of {n} replies", out.len());
            if !self.pump() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// Sends one command and returns its reply's bytes as text.
    pub fn cmd(&mut self, c: ClientId, args: &[&str]) -> String {
        let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(c, &super::twem::command(&raw));
        String::from_utf8_lossy(&self.replies(c, 1)[0].raw).into_owned()
    }

    /// Sends `cmds` in one write and waits for all their replies.
    pub fn pipeline(&mut self, c: ClientId, cmds: &[Vec<u8>]) -> Vec<Reply> {
        self.send(c, &cmds.concat());
        self.replies(c, cmds.len())
    }

    /// Pumps for `d` (timers, refreshes, relayed messages).
    pub fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if !self.pump() {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    }

    /// Whether the session closed client `c`.
    pub fn is_closed(&self, c: ClientId) -> bool {
        self.clients.get(&c).is_none_or(|cl| cl.closed)
    }
}
