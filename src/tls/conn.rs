//! `TlsConn`: one socket's TLS session, sans-IO. Ciphertext read from the
//! socket goes in through `receive`, which hands the plaintext to a sink
//! (the session); the session's plaintext goes in through `send_plain`,
//! and `pending`/`advance` give the ciphertext to write and take back what
//! the socket took.
//!
//! Owner: the worker that owns the socket (boxed in the driver's socket
//! record, `None` for plaintext sockets, so they pay one pointer).
//! Invariants: the ciphertext queue holds at most about `OUT_BOUND` bytes
//! beyond one record (`has_room` gates new plaintext, and rustls's own
//! buffer limit is set to the same bound); received plaintext never
//! accumulates here: each `receive` drains all of it to the sink.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use super::TlsError;

/// Ciphertext queued toward the peer before the session's plaintext stops
/// being taken (DESIGN §5 rule 4: bytes bound memory).
pub const OUT_BOUND: usize = 64 * 1024;

/// Plaintext read out of rustls per call into the sink.
const CHUNK: usize = 16 * 1024;

pub struct TlsConn {
    conn: Connection,
    /// Ciphertext not yet taken by the socket, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    /// While handshaking: when the handshake must have finished.
    deadline: Option<Instant>,
    /// The peer's close_notify arrived: no more plaintext comes.
    closed: bool,
}

impl TlsConn {
    /// The server side of an accepted connection.
    pub fn server(config: &Arc<ServerConfig>, deadline: Instant) -> Result<TlsConn, TlsError> {
        Ok(TlsConn::new(Connection::Server(ServerConnection::new(config.clone())?), deadline))
    }

    /// The client side of a connection to a backend.
    pub fn client(
        config: &Arc<ClientConfig>,
        name: ServerName<'static>,
        deadline: Instant,
    ) -> Result<TlsConn, TlsError> {
        Ok(TlsConn::new(Connection::Client(ClientConnection::new(config.clone(), name)?), deadline))
    }

    fn new(mut conn: Connection, deadline: Instant) -> TlsConn {
        conn.set_buffer_limit(Some(OUT_BOUND));
        let mut t = TlsConn { conn, out: Vec::new(), out_pos: 0, deadline: Some(deadline), closed: false };
        // A client speaks first: its ClientHello is ready at once.
        t.encrypt();
        t
    }

    /// Feeds ciphertext from the socket; each run of plaintext it yields
    /// goes to `sink`. On an error the alert (if any) is queued in
    /// `pending`; the caller closes the connection.
    pub fn receive(&mut self, mut data: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<(), TlsError> {
        let mut buf = [0u8; CHUNK];
        while !data.is_empty() {
            let n = self.conn.read_tls(&mut data)?;
            let state = self.conn.process_new_packets();
            if let Err(e) = state {
                self.encrypt();
                return Err(e.into());
            }
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => {
                        self.closed = true;
                        break;
                    }
                    Ok(k) => sink(&buf[..k]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            if n == 0 {
                break;
            }
        }
        if !self.conn.is_handshaking() {
            self.deadline = None;
        }
        self.encrypt();
        Ok(())
    }

    /// Takes as much of the session's plaintext as the bound allows and
    /// encrypts it; returns the bytes taken (0 while the queue is full).
    pub fn send_plain(&mut self, plain: &[u8]) -> usize {
        if !self.has_room() {
            return 0;
        }
        let n = self.conn.writer().write(plain).unwrap_or(0);
        self.encrypt();
        n
    }

    /// Room for more plaintext: the ciphertext queue is under its bound.
    pub fn has_room(&self) -> bool {
        self.out.len().saturating_sub(self.out_pos) < OUT_BOUND
    }

    /// Ciphertext waiting for the socket.
    pub fn pending(&self) -> &[u8] {
        self.out.get(self.out_pos..).unwrap_or(&[])
    }

    /// The socket took `n` bytes of `pending`.
    pub fn advance(&mut self, n: usize) {
        self.out_pos = self.out_pos.saturating_add(n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 2 * OUT_BOUND {
                self.out = Vec::new();
            }
        }
        // rustls may hold more (a large plaintext write): move it along.
        self.encrypt();
    }

    /// Queues a close_notify alert (the caller flushes `pending`).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
        self.encrypt();
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer sent close_notify.
    pub fn peer_closed(&self) -> bool {
        self.closed
    }

    /// The handshake is still running past its deadline.
    pub fn handshake_expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// `handshake_expired`, reported once: the deadline is disarmed.
    pub fn take_expired(&mut self, now: Instant) -> bool {
        let expired = self.handshake_expired(now);
        if expired {
            self.deadline = None;
        }
        expired
    }

    /// The names of the peer's verified certificate (`None`: it sent none,
    /// or the handshake is not done).
    pub fn peer_names(&self) -> Option<crate::acl::CertNames> {
        let leaf = self.conn.peer_certificates()?.first()?;
        Some(super::peer::names(leaf))
    }

    /// "1.2" or "1.3" once negotiated.
    pub fn version(&self) -> Option<&'static str> {
        match self.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => Some("1.3"),
            rustls::ProtocolVersion::TLSv1_2 => Some("1.2"),
            _ => None,
        }
    }

    /// Moves rustls's queued records into `out`, up to the bound.
    fn encrypt(&mut self) {
        while self.conn.wants_write() && self.out.len().saturating_sub(self.out_pos) < OUT_BOUND {
            if self.out_pos > 0 && self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            match self.conn.write_tls(&mut self.out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
