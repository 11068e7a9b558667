//! TLS test kit: certificates made with rcgen (a CA, leaves it signs,
//! expired ones), written to a temp folder as PEM, and a blocking rustls
//! client speaking RESP to check what Puerta serves over TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A CA and where its PEM lives.
pub struct Ca {
    pub pem: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate and key, as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("puerta test CA {name}"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca { pem, issuer: rcgen::Issuer::new(params, key) }
    }

    /// A leaf for "localhost" and 127.0.0.1, named `name` on disk;
    /// `expired` dates it in the past.
    pub fn leaf(&self, dir: &Path, name: &str, expired: bool) -> Leaf {
        self.leaf_for(dir, name, expired, true)
    }

    /// A leaf for "localhost", and for 127.0.0.1 too when `ip`.
    pub fn leaf_for(&self, dir: &Path, name: &str, expired: bool, ip: bool) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        if ip {
            params.subject_alt_names.push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        }
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf { cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// A client certificate with subject CN `cn` and DNS names `dns`.
    pub fn client(&self, dir: &Path, file: &str, cn: &str, dns: &[&str]) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf { cert: dir.join(format!("{file}.pem")), key: dir.join(format!("{file}.key")) };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut BufReader::new(std::fs::File::open(path).unwrap())).map(Result::unwrap).collect()
}

fn pem_key(path: &Path) -> PrivateKeyDer<'static> {
    rustls_pemfile::private_key(&mut BufReader::new(std::fs::File::open(path).unwrap())).unwrap().unwrap()
}

/// A client config trusting `ca`, presenting `client` when given.
#[allow(deprecated)]
pub fn client_config(ca: &Path, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca) {
        roots.add(c).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some(l) => b.with_client_auth_cert(pem_certs(&l.cert), pem_key(&l.key)).unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// A blocking TLS RESP client.
pub struct TlsResp {
    r: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl TlsResp {
    /// Connects and completes the handshake; `Err` carries rustls's reason.
    pub fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> Result<TlsResp, String> {
        let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).map_err(|e| e.to_string())?;
        }
        Ok(TlsResp { r: BufReader::new(s) })
    }

    /// Writes `bytes` as they are (a pipeline, a malformed request).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        let s = self.r.get_mut();
        s.write_all(bytes).and_then(|()| s.flush()).map_err(|e| e.to_string())
    }

    /// Reads what is left until the server closes: `Ok` only for a clean
    /// TLS close (close_notify); a TCP close without one is an error
    /// naming what was read before it.
    pub fn read_to_close(&mut self) -> Result<Vec<u8>, String> {
        let mut got = Vec::new();
        match self.r.read_to_end(&mut got) {
            Ok(_) => Ok(got),
            Err(e) => Err(format!("{e} after {:?}", String::from_utf8_lossy(&got))),
        }
    }

    /// Sends `args` as one command and reads one reply as text: `+OK` as
    /// "OK", errors with their '-', bulk strings as their bytes, `$-1` as
    /// "(nil)", integers as digits.
    pub fn cmd(&mut self, args: &[&str]) -> Result<String, String> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        let s = self.r.get_mut();
        s.write_all(&out).and_then(|()| s.flush()).map_err(|e| e.to_string())?;
        self.reply()
    }

    /// Reads one line, without its CRLF (memcached's text protocol).
    pub fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.r.read_line(&mut line) {
            Ok(0) => Err("closed".into()),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads one reply (see `cmd`).
    pub fn reply(&mut self) -> Result<String, String> {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        let line = line.trim_end().to_string();
        match line.as_bytes().first() {
            Some(b'+') | Some(b':') => Ok(line[1..].to_string()),
            Some(b'-') => Ok(line),
            Some(b'$') if line == "$-1" => Ok("(nil)".into()),
            Some(b'$') => {
                let len: usize = line[1..].parse().map_err(|_| line.clone())?;
                let mut buf = vec![0; len + 2];
                self.r.read_exact(&mut buf).map_err(|e| e.to_string())?;
                buf.truncate(len);
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }
            _ => Err(format!("unexpected reply {line:?}")),
        }
    }
}

/// `redis-cli --tls --cacert ca -p port args...`: (exit ok, stdout+stderr).
pub fn redis_cli(port: u16, ca: &Path, client: Option<&Leaf>, args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new("redis-cli");
    cmd.args(["--tls", "--cacert", ca.to_str().unwrap(), "-p", &port.to_string()]);
    if let Some(l) = client {
        cmd.args(["--cert", l.cert.to_str().unwrap(), "--key", l.key.to_str().unwrap()]);
    }
    let out = cmd.args(args).stdin(std::process::Stdio::null()).output().expect("redis-cli");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && !text.contains("Could not") && !text.contains("SSL"), text.trim().to_string())
}

/// A redis-server that speaks TLS only (`--port 0 --tls-port P`), serving
/// `leaf` and trusting `ca` for client certificates; `auth_clients`:
/// `--tls-auth-clients yes` (a client certificate is required).
pub fn redis_tls(ca: &Ca, leaf: &Leaf, auth_clients: bool) -> super::Proc {
    let port = super::free_port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(redis_tls_args(ca, leaf, auth_clients))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/test.sh installs it)");
    let mut p = super::Proc { child, port };
    p.wait_listening("redis-server --tls-port");
    p
}

/// redis-server's TLS file arguments (cert, key, CA, client auth).
pub fn redis_tls_args(ca: &Ca, leaf: &Leaf, auth_clients: bool) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_string();
    vec![
        "--tls-cert-file".into(),
        path(&leaf.cert),
        "--tls-key-file".into(),
        path(&leaf.key),
        "--tls-ca-cert-file".into(),
        path(&ca.pem),
        "--tls-auth-clients".into(),
        (if auth_clients { "yes" } else { "no" }).into(),
    ]
}

/// A memcached whose one listener speaks TLS (`-Z`), serving `leaf`.
pub fn memcached_tls(leaf: &Leaf) -> super::Proc {
    let port = super::free_port();
    let opts = format!("ssl_chain_cert={},ssl_key={}", leaf.cert.display(), leaf.key.display());
    let child = std::process::Command::new("memcached")
        .args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0", "-u", "root", "-m", "64", "-Z", "-o", &opts])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("memcached must be installed (scripts/test.sh installs it)");
    let mut p = super::Proc { child, port };
    p.wait_listening("memcached -Z");
    p
}

/// A redis-server that serves TLS only (`--port 0`), with `leaf` as its
/// certificate, not asking clients for one (`--tls-auth-clients no`).
pub fn redis_tls_only(ca: &Ca, leaf: &Leaf) -> super::Proc {
    redis_tls(ca, leaf, false)
}

/// `redis_tls_only`, but clients must present a certificate `ca` signed.
pub fn redis_tls_mutual(ca: &Ca, leaf: &Leaf) -> super::Proc {
    redis_tls(ca, leaf, true)
}

/// The `[server]` table of the TLS tests' configs (`Puerta::start` fills
/// in `{admin}`).
pub const SERVER: &str = "[server]\nworkers = 2\nadmin = \"127.0.0.1:{admin}\"\nshutdown_timeout = \"1s\"\n";

/// A pool's `tls` line: serve `leaf`; with `ca`, ask clients for a
/// certificate it signed.
pub fn tls_line(leaf: &Leaf, ca: Option<&Ca>) -> String {
    let ca = ca.map(|c| format!(", ca = \"{}\"", c.pem.display())).unwrap_or_default();
    format!("tls = {{ cert = \"{}\", key = \"{}\"{ca} }}", leaf.cert.display(), leaf.key.display())
}

/// A twemproxy redis pool `name` on `port` in front of the one server
/// `backend`, with `extra` lines (a `tls` or `backend_tls` line).
pub fn redis_pool(name: &str, port: u16, backend: u16, extra: &str) -> String {
    format!(
        "\n[[pool]]\nname = \"{name}\"\nmode = \"redis\"\nlisten = \"127.0.0.1:{port}\"\n\
         servers = [\"127.0.0.1:{backend}:1\"]\n{extra}\n"
    )
}

/// `puerta check` of `config` (its `{admin}` filled in), written to
/// `dir/check.toml`: (exit ok, stderr).
pub fn puerta_check(dir: &Path, config: &str) -> (bool, String) {
    let path = dir.join("check.toml");
    std::fs::write(&path, config.replace("{admin}", "19999")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_puerta"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}
