//! Loading PEM files and building rustls configs: `ServerTls` (a pool's
//! `tls`, for its clients) and `ClientTls` (a pool's `backend_tls`).
//!
//! Owner: the config layer, once per load or reload. Invariants: a built
//! value holds everything a handshake needs (no file is read after this);
//! its `PartialEq` compares the settings as written, not the file contents,
//! so a reload that only rotates certificate files does not count as a
//! reshaped pool (sessions and clients stay), while the new files are still
//! read and used for new handshakes.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::TlsError;

/// The lowest protocol version a side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    #[default]
    Tls12,
    Tls13,
}

impl Version {
    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            Version::Tls12 => &BOTH,
            Version::Tls13 => &ONLY13,
        }
    }
}

/// A pool's `tls` table, paths resolved against the config file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Set: clients must present a certificate signed by one of these.
    pub ca: Option<PathBuf>,
    pub min_version: Version,
    pub alpn: Vec<String>,
}

/// The server side, built: what each accepted TLS client's handshake uses.
#[derive(Debug)]
pub struct ServerTls {
    pub settings: ServerSettings,
    pub config: Arc<ServerConfig>,
    /// The certificate's notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
    }
}

impl ServerTls {
    pub fn load(settings: ServerSettings) -> Result<ServerTls, TlsError> {
        let certs = certs(&settings.cert)?;
        let not_after = not_after(&settings.cert, &certs[0])?;
        let key = key(&settings.key)?;
        let prov = crypto();
        let builder = ServerConfig::builder_with_provider(prov.clone())
            .with_protocol_versions(settings.min_version.versions())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &settings.ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = Arc::new(roots(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, prov)
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(key_error)?;
        config.ticketer = provider::Ticketer::new()?;
        config.alpn_protocols = settings.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(ServerTls { settings, config: Arc::new(config), not_after })
    }

    /// Seconds until the certificate expires (negative once it has).
    pub fn seconds_left(&self) -> i64 {
        self.not_after.saturating_sub(unix_now())
    }
}

/// A pool's `backend_tls` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name to verify; `None`: the backend's host as written in
    /// `servers` (an IP literal is checked against the certificate's IP
    /// SANs). `ANNOUNCED` (cluster pools): each node's announced hostname.
    pub server_name: Option<String>,
    pub verify: bool,
}

/// The client side, built.
#[derive(Debug)]
pub struct ClientTls {
    pub settings: ClientSettings,
    pub config: Arc<ClientConfig>,
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
    }
}

impl ClientTls {
    pub fn load(settings: ClientSettings) -> Result<ClientTls, TlsError> {
        let prov = crypto();
        let builder = ClientConfig::builder_with_provider(prov.clone())
            .with_protocol_versions(Version::Tls12.versions())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match (&settings.ca, settings.verify) {
            (_, false) => builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(prov))),
            (Some(ca), true) => builder.with_root_certificates(roots(ca)?),
            (None, true) => return Err(TlsError::Config("verify = true needs a ca".into())),
        };
        let config = match (&settings.cert, &settings.key) {
            (Some(c), Some(k)) => builder.with_client_auth_cert(certs(c)?, key(k)?).map_err(key_error)?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::Config("cert and key go together".into())),
        };
        Ok(ClientTls { settings, config: Arc::new(config) })
    }

    /// The name to present and verify for a backend at `host` (its host
    /// as configured or announced; `server_name` overrides it unless it
    /// is `ANNOUNCED`).
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = match self.settings.server_name.as_deref() {
            Some(n) if n != ANNOUNCED => n,
            _ => host,
        };
        // "[::1]" as written in `servers` is the address ::1.
        let name = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
    }

    /// `server_name = "announced"`: cluster nodes are named by the
    /// hostname they announce.
    pub fn wants_announced(&self) -> bool {
        self.settings.server_name.as_deref() == Some(ANNOUNCED)
    }
}

/// The `server_name` value that names each cluster node by its announced
/// hostname (CLUSTER SLOTS's `hostname` field), where it has one.
pub const ANNOUNCED: &str = "announced";

impl ClientTls {
    /// A client session toward `host`, due by `deadline`.
    pub fn connect(&self, host: &str, deadline: std::time::Instant) -> Result<super::TlsConn, TlsError> {
        super::TlsConn::client(&self.config, self.name_for(host)?, deadline)
    }
}

/// The ring provider: it builds offline with a C compiler alone. rustls
/// marks it deprecated because it has no post-quantum key exchange; the
/// classical groups it offers are what redis-server and redis-cli speak.
#[allow(deprecated)]
fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(provider::default_provider())
}

fn key_error(e: rustls::Error) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(k) => TlsError::KeyMismatch(format!("{k:?}")),
        other => TlsError::Config(other.to_string()),
    }
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    let f = File::open(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })?;
    Ok(BufReader::new(f))
}

/// Every certificate in a PEM file (at least one).
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem { path: path.display().to_string(), source };
    let list = rustls_pemfile::certs(&mut open(path)?).collect::<Result<Vec<_>, _>>().map_err(pem)?;
    if list.is_empty() {
        return Err(TlsError::Empty { path: path.display().to_string(), what: "CERTIFICATE" });
    }
    Ok(list)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = |source| TlsError::Pem { path: path.display().to_string(), source };
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(pem)?
        .ok_or_else(|| TlsError::Empty { path: path.display().to_string(), what: "PRIVATE KEY" })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store.add(c).map_err(|e| TlsError::BadCert { path: path.display().to_string(), reason: e.to_string() })?;
    }
    Ok(store)
}

/// A certificate's notAfter in Unix seconds.
pub fn not_after(path: &Path, der: &CertificateDer<'_>) -> Result<i64, TlsError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => Ok(cert.validity().not_after.timestamp()),
        Err(e) => Err(TlsError::BadCert { path: path.display().to_string(), reason: e.to_string() }),
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `verify = false`: accepts any server certificate (signatures are still
/// checked, so the handshake itself stays sound).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
