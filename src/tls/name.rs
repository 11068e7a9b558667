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

/// `backend_tls.server_name` when set; else the host of the server entry
/// as written (its default name is `host:port`); else, for a server given
/// its own name (`"10.0.0.5:6379:1 cache-a"`), its IP address.
pub fn backend_name(tls: &ClientTls, written: &str, addr: SocketAddr) -> ServerName<'static> {
    let named = tls.settings.server_name.clone().or_else(|| host_of(written, addr.port()));
    named.and_then(|n| ServerName::try_from(n).ok()).unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
}

/// The host of `host:port` (IPv6 in brackets) when the port is `port`.
fn host_of(written: &str, port: u16) -> Option<String> {
    let (host, p) = written.rsplit_once(':')?;
    if p.parse::<u16>().ok()? != port {
        return None;
    }
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

/// A backend a probe speaks TLS to: the pool's client config and the name.
#[derive(Clone)]
pub struct TlsTarget {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl TlsTarget {
    pub fn new(tls: &ClientTls, written: &str, addr: SocketAddr) -> TlsTarget {
        TlsTarget { config: tls.config.clone(), name: backend_name(tls, written, addr) }
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

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_comes_from_the_written_address_only_when_it_is_one() {
        assert_eq!(host_of("redis.internal:6379", 6379).as_deref(), Some("redis.internal"));
        assert_eq!(host_of("[::1]:6379", 6379).as_deref(), Some("::1"));
        assert_eq!(host_of("cache-a", 6379), None, "a custom name is no host");
        assert_eq!(host_of("other:7000", 6379), None, "another port: not this address");
    }
}
