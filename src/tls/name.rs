//! The name Puerta presents (SNI) and verifies for a TLS backend, and the
//! blocking TLS client the control thread's probes use.
//!
//! Owner: nobody (pure functions and a per-probe stream). Invariants: a
//! name is always produced (the backend's IP when nothing better is
//! known), so a backend never goes without verification for want of a
//! name; the blocking stream does no I/O beyond the socket it is given,
//! whose timeouts bound every step.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{ClientTls, TlsError};

/// `backend_tls.server_name` when set; else `host`, the server's host as
/// written in `servers` (`ServerSpec::host`); else (no host known) its IP
/// address. The same rule as the multiplexed pools' (`ClientTls::name_for`).
pub fn backend_name(tls: &ClientTls, host: &str, addr: SocketAddr) -> ServerName<'static> {
    let ip = || ServerName::IpAddress(addr.ip().into());
    if host.is_empty() && tls.settings.server_name.is_none() {
        return ip();
    }
    tls.name_for(host).unwrap_or_else(|_| ip())
}

/// A backend a probe speaks TLS to: the pool's client config and the name.
#[derive(Clone)]
pub struct TlsTarget {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl TlsTarget {
    pub fn new(tls: &ClientTls, host: &str, addr: SocketAddr) -> TlsTarget {
        TlsTarget { config: tls.config.clone(), name: backend_name(tls, host, addr) }
    }
}

/// A probe's socket: plaintext, or TLS over it.
pub enum ProbeStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl ProbeStream {
    /// Wraps `sock` (its timeouts set) and, for a TLS target, completes the
    /// handshake over it.
    pub fn open(sock: TcpStream, tls: Option<&TlsTarget>) -> Result<ProbeStream, TlsError> {
        let Some(t) = tls else { return Ok(ProbeStream::Plain(sock)) };
        let conn = ClientConnection::new(t.config.clone(), t.name.clone())?;
        let mut s = StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(ProbeStream::Tls(Box::new(s)))
    }

    /// The socket underneath (to set its timeouts).
    pub fn sock(&self) -> &TcpStream {
        match self {
            ProbeStream::Plain(s) => s,
            ProbeStream::Tls(s) => &s.sock,
        }
    }
}

impl Read for ProbeStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ProbeStream::Plain(s) => s.read(buf),
            ProbeStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ProbeStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            ProbeStream::Plain(s) => s.write(buf),
            ProbeStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ProbeStream::Plain(s) => s.flush(),
            ProbeStream::Tls(s) => s.flush(),
        }
    }
}
