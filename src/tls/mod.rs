//! TLS for Puerta's sockets, on rustls's sans-IO API (no OpenSSL): loading
//! PEM certificates and keys, building the server side (`ServerTls`, a
//! pool's `tls` key: Puerta terminates its clients' TLS) and the client side
//! (`ClientTls`, a pool's `backend_tls` key: Puerta originates TLS to its
//! backends), and `TlsConn`, the per-connection record that turns
//! ciphertext from a socket into plaintext for a session and back.
//!
//! Owner: the config layer builds `ServerTls`/`ClientTls` once per load or
//! reload (so a reload re-reads the files, and new handshakes use the new
//! certificates while connections already up keep theirs); workers create
//! one `TlsConn` per TLS socket and own it. Invariants:
//! - nothing here does I/O on sockets: bytes go in and out as slices;
//! - `TlsConn`'s outgoing ciphertext queue is bounded (`OUT_BOUND`): a
//!   caller moves a session's plaintext in only while `has_room`;
//! - every failure is a `TlsError`, never a panic, whatever the peer sent.

mod conn;
mod load;
mod name;
pub mod peer;
#[cfg(test)]
mod tests;

pub use conn::{TlsConn, OUT_BOUND};
pub use load::{ClientSettings, ClientTls, ServerSettings, ServerTls, Version, ANNOUNCED};
pub use name::{backend_name, ProbeStream, TlsTarget};

/// Why a certificate could not be loaded or a TLS session failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no {what} found in PEM")]
    Empty { path: String, what: &'static str },
    #[error("{path}: not valid PEM: {source}")]
    Pem {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid certificate: {reason}")]
    BadCert { path: String, reason: String },
    #[error("the key does not match the certificate: {0}")]
    KeyMismatch(String),
    #[error("{0}")]
    Config(String),
    #[error("invalid server_name {0:?}")]
    ServerName(String),
    #[error("handshake timed out")]
    Timeout,
    #[error("TLS: {0}")]
    Session(#[from] rustls::Error),
    #[error("TLS: {0}")]
    Io(#[from] std::io::Error),
}

/// Handshake failure reasons: a fixed list, one counter each in /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The peer's certificate did not verify (unknown CA, expired, name).
    BadCertificate,
    /// A client certificate was required and none came.
    NoCertificate,
    /// No common protocol version, cipher suite or ALPN protocol.
    Negotiation,
    /// The peer sent something that is not TLS, or broke the protocol.
    Protocol,
    /// The peer sent an alert and gave up.
    PeerAlert,
    /// The handshake did not finish in time.
    Timeout,
    /// The peer closed (or reset) the connection mid-handshake.
    Closed,
}

impl FailReason {
    pub const ALL: [FailReason; 7] = [
        FailReason::BadCertificate,
        FailReason::NoCertificate,
        FailReason::Negotiation,
        FailReason::Protocol,
        FailReason::PeerAlert,
        FailReason::Timeout,
        FailReason::Closed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailReason::BadCertificate => "bad_certificate",
            FailReason::NoCertificate => "no_certificate",
            FailReason::Negotiation => "negotiation",
            FailReason::Protocol => "protocol",
            FailReason::PeerAlert => "peer_alert",
            FailReason::Timeout => "timeout",
            FailReason::Closed => "closed",
        }
    }

    /// Classifies a failed session.
    pub fn of(err: &TlsError) -> FailReason {
        use rustls::Error as E;
        match err {
            TlsError::Timeout => FailReason::Timeout,
            TlsError::Session(E::InvalidCertificate(_)) => FailReason::BadCertificate,
            TlsError::Session(E::NoCertificatesPresented) => FailReason::NoCertificate,
            TlsError::Session(E::PeerIncompatible(_)) | TlsError::Session(E::NoApplicationProtocol) => {
                FailReason::Negotiation
            }
            // A TLS 1.3 server that wants a client certificate says so with
            // this alert after the client's Finished (`tls_backend::fail`).
            TlsError::Session(E::AlertReceived(rustls::AlertDescription::CertificateRequired)) => {
                FailReason::NoCertificate
            }
            TlsError::Session(E::AlertReceived(_)) => FailReason::PeerAlert,
            TlsError::Io(_) => FailReason::Closed,
            _ => FailReason::Protocol,
        }
    }
}
