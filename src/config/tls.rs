//! A pool's TLS keys, file shape and conversion: `tls` (Puerta terminates
//! its clients' TLS), `plain_listen` (an extra plaintext listener for the
//! same pool), `tls_handshake_timeout` and `backend_tls` (Puerta
//! originates TLS to its backends).
//!
//! Owner: the config layer. Conversion reads the PEM files (relative paths
//! are relative to the config file's folder) and builds the rustls configs,
//! so a file that is missing, not PEM, or a key that does not match its
//! certificate is a `file:line: pool[i].tls.key: ...` error of `puerta
//! check`, a start or a reload, like any other bad value. An expired
//! certificate loads (a warning is logged; `puerta check` refuses it, see
//! `expired`), so a proxy never refuses to start over a date alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::file::PoolFile;
use super::span::KeyPath;
use super::twem::ListenAddr;
use super::types::Mode;
use super::validate::{pick, positive_duration, Problems};
use crate::tls::{ClientSettings, ClientTls, ServerSettings, ServerTls, Version, ANNOUNCED};

/// `tls = { cert, key, ca, min_version, alpn }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca: Option<String>,
    pub min_version: Option<String>,
    pub alpn: Option<Vec<String>>,
}

/// `backend_tls = { ca, cert, key, server_name, verify = true }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackendTlsFile {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub server_name: Option<String>,
    pub verify: Option<bool>,
}

/// A pool's TLS, converted. `Default` is plaintext everywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolTls {
    /// Clients of `listen` speak TLS.
    pub server: Option<Arc<ServerTls>>,
    /// An extra plaintext listener (only with `server`).
    pub plain_listen: Option<SocketAddr>,
    /// A client whose handshake has not finished by then is closed.
    pub handshake_timeout: Duration,
    /// Backend connections speak TLS.
    pub backend: Option<Arc<ClientTls>>,
}

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl PoolTls {
    /// `tls.ca` is set: clients of `listen` must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.server.as_ref().is_some_and(|s| s.settings.ca.is_some())
    }
}

impl Default for PoolTls {
    fn default() -> Self {
        PoolTls { server: None, plain_listen: None, handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT, backend: None }
    }
}

/// Converts the TLS keys of one pool; `dir` is the config file's folder.
pub(crate) fn convert(file: &PoolFile, mode: Option<Mode>, dir: &Path, p: &mut Problems) -> Option<PoolTls> {
    let key = |k: &str| KeyPath::root().key(k);
    let mut out = PoolTls::default();
    let mut ok = true;
    if let Some(t) = &file.tls {
        match server(t, dir, p) {
            Some(s) => out.server = Some(Arc::new(s)),
            None => ok = false,
        }
    }
    if let Some(text) = &file.plain_listen {
        if file.tls.is_none() {
            p.add(key("plain_listen"), "expected only with tls (listen is already plaintext)");
            ok = false;
        }
        match super::addr::listen(text) {
            Ok(ListenAddr::Tcp(a)) => out.plain_listen = Some(a),
            Ok(_) => {
                p.add(key("plain_listen"), format!("expected host:port, got {text:?}"));
                ok = false;
            }
            Err(e) => {
                p.add(key("plain_listen"), e);
                ok = false;
            }
        }
    }
    if let Some(v) = &file.tls_handshake_timeout {
        match p.check(key("tls_handshake_timeout"), positive_duration(v)) {
            Some(d) => out.handshake_timeout = d,
            None => ok = false,
        }
    }
    if let Some(b) = &file.backend_tls {
        match backend(b, mode, dir, p) {
            // Every mode originates TLS: mux pools (`worker::tls_backend`),
            // tcp and mongos relays (`worker::relay_tls`).
            Some(c) => {
                if !c.settings.verify {
                    tracing::warn!(
                        pool = %file.name.as_deref().unwrap_or("?"),
                        "backend_tls.verify = false: backend certificates are not checked (impersonation possible)"
                    );
                }
                out.backend = Some(Arc::new(c));
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn path_of(dir: &Path, text: &str) -> PathBuf {
    let p = Path::new(text);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn server(t: &TlsFile, dir: &Path, p: &mut Problems) -> Option<ServerTls> {
    let key = |k: &str| KeyPath::root().key("tls").key(k);
    let cert =
        p.check(key("cert"), t.cert.as_deref().ok_or_else(|| "required key is missing; expected a PEM file".into()));
    let pkey =
        p.check(key("key"), t.key.as_deref().ok_or_else(|| "required key is missing; expected a PEM file".into()));
    let min_version = p.check(
        key("min_version"),
        pick(t.min_version.as_deref().unwrap_or("1.2"), &[("1.2", Version::Tls12), ("1.3", Version::Tls13)]),
    );
    let alpn = t.alpn.clone().unwrap_or_default();
    if alpn.iter().any(|a| a.is_empty() || a.len() > 255) {
        p.add(key("alpn"), "expected protocol names of 1 to 255 bytes");
        return None;
    }
    let settings = ServerSettings {
        cert: path_of(dir, cert?),
        key: path_of(dir, pkey?),
        ca: t.ca.as_deref().map(|c| path_of(dir, c)),
        min_version: min_version?,
        alpn,
    };
    let files =
        [("key", Some(settings.key.clone())), ("ca", settings.ca.clone()), ("cert", Some(settings.cert.clone()))];
    match ServerTls::load(settings) {
        Ok(s) => {
            if s.seconds_left() <= 0 {
                tracing::warn!(cert = %s.settings.cert.display(), "TLS certificate has expired");
            }
            Some(s)
        }
        Err(e) => {
            p.add(key(blame(&e, files.each_ref().map(|(k, f)| (*k, f.as_deref())))), e.to_string());
            None
        }
    }
}

fn backend(b: &BackendTlsFile, mode: Option<Mode>, dir: &Path, p: &mut Problems) -> Option<ClientTls> {
    let key = |k: &str| KeyPath::root().key("backend_tls").key(k);
    let verify = b.verify.unwrap_or(true);
    if verify && b.ca.is_none() {
        p.add(key("ca"), "required key is missing while verify = true; expected a PEM file of CA certificates");
        return None;
    }
    if b.cert.is_some() != b.key.is_some() {
        p.add(key(if b.cert.is_some() { "key" } else { "cert" }), "expected cert and key together (mutual TLS)");
        return None;
    }
    let settings = ClientSettings {
        ca: b.ca.as_deref().map(|c| path_of(dir, c)),
        cert: b.cert.as_deref().map(|c| path_of(dir, c)),
        key: b.key.as_deref().map(|c| path_of(dir, c)),
        server_name: b.server_name.clone(),
        verify,
    };
    if let Some(name) = &settings.server_name {
        if name == ANNOUNCED && !matches!(mode, Some(Mode::RedisCluster)) {
            p.add(
                key("server_name"),
                format!("{ANNOUNCED:?} is only for redis_cluster pools (the nodes' announced hostnames)"),
            );
            return None;
        }
        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            p.add(key("server_name"), format!("expected a DNS name or IP address, got {name:?}"));
            return None;
        }
    }
    let files = [("key", settings.key.clone()), ("ca", settings.ca.clone()), ("cert", settings.cert.clone())];
    match ClientTls::load(settings) {
        Ok(c) => Some(c),
        Err(e) => {
            p.add(key(blame(&e, files.each_ref().map(|(k, f)| (*k, f.as_deref())))), e.to_string());
            None
        }
    }
}

/// Which key of the table a load error belongs to: the one whose file it
/// names (a mismatch is the key's).
fn blame(e: &crate::tls::TlsError, files: [(&'static str, Option<&Path>); 3]) -> &'static str {
    if matches!(e, crate::tls::TlsError::KeyMismatch(_)) {
        return "key";
    }
    let text = e.to_string();
    let named = |f: &Path| text.starts_with(&*f.display().to_string()) || text.contains(&format!(" {}", f.display()));
    files.iter().find(|(_, f)| f.is_some_and(named)).map_or("cert", |(k, _)| k)
}

/// `puerta check`: certificates that have expired, as (pool, problem).
pub fn expired(cfg: &super::Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pool in &cfg.pools {
        if let Some(s) = &pool.tls.server {
            if s.seconds_left() <= 0 {
                out.push((pool.name.clone(), format!("{}: certificate has expired", s.settings.cert.display())));
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
