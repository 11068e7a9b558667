//! Unit tests: a server and a client `TlsConn` talking through memory.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(tag: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("puerta-tls-unit-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA, and a "localhost" certificate it signed.
fn pki(f: &Files) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (f.write("ca.pem", &ca.pem()), f.write("cert.pem", &cert.pem()), f.write("key.pem", &key.serialize_pem()))
}

/// Moves bytes both ways until neither side has anything to send.
fn pump(a: &mut TlsConn, b: &mut TlsConn, got_a: &mut Vec<u8>, got_b: &mut Vec<u8>) -> Result<(), TlsError> {
    for _ in 0..20 {
        let (x, y) = (a.pending().to_vec(), b.pending().to_vec());
        if x.is_empty() && y.is_empty() {
            return Ok(());
        }
        a.advance(x.len());
        b.advance(y.len());
        b.receive(&x, &mut |p| got_b.extend_from_slice(p))?;
        a.receive(&y, &mut |p| got_a.extend_from_slice(p))?;
    }
    Ok(())
}

fn settings(cert: PathBuf, key: PathBuf, ca: Option<PathBuf>) -> ServerSettings {
    ServerSettings { cert, key, ca, min_version: Version::Tls12, alpn: vec![] }
}

#[test]
fn handshake_then_plaintext_both_ways_and_bounded_queue() {
    let f = Files::new("rt");
    let (ca, cert, key) = pki(&f);
    let server = ServerTls::load(settings(cert, key, None)).unwrap();
    assert!(server.seconds_left() > 0);
    let client =
        ClientTls::load(ClientSettings { ca: Some(ca), cert: None, key: None, server_name: None, verify: true })
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = TlsConn::server(&server.config, deadline).unwrap();
    let mut c = TlsConn::client(&client.config, client.name_for("localhost").unwrap(), deadline).unwrap();
    let (mut got_c, mut got_s) = (Vec::new(), Vec::new());
    pump(&mut c, &mut s, &mut got_c, &mut got_s).unwrap();
    assert!(!s.is_handshaking() && !c.is_handshaking());
    assert_eq!(s.version(), Some("1.3"));
    assert_eq!(c.send_plain(b"PING\r\n"), 6);
    assert_eq!(s.send_plain(b"+PONG\r\n"), 7);
    pump(&mut c, &mut s, &mut got_c, &mut got_s).unwrap();
    assert_eq!(got_s, b"PING\r\n");
    assert_eq!(got_c, b"+PONG\r\n");
    // The queue stops taking plaintext past its bound.
    let big = vec![b'x'; 4 * OUT_BOUND];
    let mut taken = 0;
    while s.has_room() {
        taken += s.send_plain(&big);
    }
    assert!(taken < 3 * OUT_BOUND, "took {taken}");
    assert_eq!(s.send_plain(&big), 0);
}

#[test]
fn wrong_ca_and_missing_client_cert_fail_with_reasons() {
    let f = Files::new("bad");
    let (_, cert, key) = pki(&f);
    let f2 = Files::new("other");
    let (other_ca, _, _) = pki(&f2);
    let server = ServerTls::load(settings(cert.clone(), key.clone(), None)).unwrap();
    let client = ClientTls::load(ClientSettings {
        ca: Some(other_ca.clone()),
        cert: None,
        key: None,
        server_name: None,
        verify: true,
    })
    .unwrap();
    let d = Instant::now() + Duration::from_secs(5);
    let mut s = TlsConn::server(&server.config, d).unwrap();
    let mut c = TlsConn::client(&client.config, client.name_for("localhost").unwrap(), d).unwrap();
    let err = pump(&mut c, &mut s, &mut Vec::new(), &mut Vec::new()).unwrap_err();
    assert!(matches!(FailReason::of(&err), FailReason::BadCertificate | FailReason::PeerAlert), "{err}");

    // ca set on the server: a client without a certificate is refused.
    let server = ServerTls::load(settings(cert, key, Some(other_ca))).unwrap();
    let client =
        ClientTls::load(ClientSettings { ca: None, cert: None, key: None, server_name: None, verify: false }).unwrap();
    let mut s = TlsConn::server(&server.config, d).unwrap();
    let mut c = TlsConn::client(&client.config, client.name_for("localhost").unwrap(), d).unwrap();
    let mut fails = Vec::new();
    for _ in 0..10 {
        let (x, y) = (c.pending().to_vec(), s.pending().to_vec());
        c.advance(x.len());
        s.advance(y.len());
        if let Err(e) = s.receive(&x, &mut |_| {}) {
            fails.push(FailReason::of(&e));
            break;
        }
        let _ = c.receive(&y, &mut |_| {});
    }
    assert_eq!(fails, vec![FailReason::NoCertificate]);
}

#[test]
fn load_errors_name_the_file() {
    let f = Files::new("err");
    let (_, cert, _) = pki(&f);
    let missing = f.dir.join("nope.pem");
    let err = ServerTls::load(settings(cert.clone(), missing.clone(), None)).unwrap_err();
    assert!(err.to_string().contains("nope.pem"), "{err}");
    let empty = f.write("empty.pem", "");
    let err = ServerTls::load(settings(empty, cert.clone(), None)).unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    // A key that is not the certificate's.
    let other = f.write("other.key", &rcgen::KeyPair::generate().unwrap().serialize_pem());
    let err = ServerTls::load(settings(cert, other, None)).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch(_)), "{err}");
}

#[test]
fn garbage_and_half_hello_never_panic() {
    let f = Files::new("junk");
    let (_, cert, key) = pki(&f);
    let server = ServerTls::load(settings(cert, key, None)).unwrap();
    let d = Instant::now();
    let mut s = TlsConn::server(&server.config, d).unwrap();
    assert!(s.receive(b"\x16\x03\x01\x02\x00\x01", &mut |_| {}).is_ok(), "half a hello waits");
    assert!(s.handshake_expired(Instant::now()));
    let mut s = TlsConn::server(&server.config, d).unwrap();
    let err = s.receive(b"GET / HTTP/1.1\r\n\r\n", &mut |_| {}).unwrap_err();
    assert_eq!(FailReason::of(&err), FailReason::Protocol);
}

fn client_settings(ca: Option<PathBuf>, server_name: Option<&str>, verify: bool) -> ClientSettings {
    ClientSettings { ca, cert: None, key: None, server_name: server_name.map(str::to_owned), verify }
}

#[test]
fn backend_names_follow_server_name_host_and_announced() {
    let f = Files::new("names");
    let (ca, cert, key) = pki(&f);
    let name = |s: Option<&str>, host: &str| {
        let c = ClientTls::load(client_settings(Some(ca.clone()), s, true)).unwrap();
        c.name_for(host).map(|n| n.to_str().into_owned())
    };
    assert_eq!(name(None, "redis-1.internal").unwrap(), "redis-1.internal");
    assert_eq!(name(None, "10.0.0.7").unwrap(), "10.0.0.7");
    assert_eq!(name(None, "[::1]").unwrap(), "::1", "an IPv6 host as written in servers");
    assert_eq!(name(Some("cache.example"), "10.0.0.7").unwrap(), "cache.example");
    assert_eq!(name(Some(ANNOUNCED), "node-3.cluster").unwrap(), "node-3.cluster");
    assert!(name(None, "not a name!").is_err());

    // Verified against the server's "localhost" certificate; verify =
    // false accepts it under any name.
    let server = ServerTls::load(settings(cert, key, None)).unwrap();
    let run = |client: &ClientTls, host: &str| {
        let now = Instant::now() + Duration::from_secs(5);
        let mut c = client.connect(host, now).unwrap();
        let mut s = TlsConn::server(&server.config, now).unwrap();
        pump(&mut c, &mut s, &mut Vec::new(), &mut Vec::new()).map(|()| !c.is_handshaking())
    };
    let verifying = ClientTls::load(client_settings(Some(ca), None, true)).unwrap();
    assert!(run(&verifying, "localhost").unwrap());
    let err = run(&verifying, "elsewhere.example").unwrap_err();
    assert_eq!(FailReason::of(&err), FailReason::BadCertificate, "{err}");
    let blind = ClientTls::load(client_settings(None, None, false)).unwrap();
    assert!(run(&blind, "elsewhere.example").unwrap());
}

#[test]
fn peer_names_reads_cn_and_every_kind_of_san() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["app.internal".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "app1");
    params.subject_alt_names.push(rcgen::SanType::IpAddress([10, 0, 0, 7].into()));
    params.subject_alt_names.push(rcgen::SanType::URI("spiffe://example.org/app".try_into().unwrap()));
    let cert = params.self_signed(&key).unwrap();
    let names = peer::names(cert.der());
    assert_eq!(names.cn.as_deref(), Some("app1"));
    assert_eq!(names.sans, ["app.internal", "10.0.0.7", "spiffe://example.org/app"]);
    assert_eq!(peer::names(b"not a certificate"), crate::acl::CertNames::default());
}

#[test]
fn a_certificate_required_alert_is_no_certificate() {
    use rustls::{AlertDescription as A, Error as E};
    let of = |a| FailReason::of(&TlsError::Session(E::AlertReceived(a)));
    assert_eq!(of(A::CertificateRequired), FailReason::NoCertificate);
    assert_eq!(of(A::HandshakeFailure), FailReason::PeerAlert);
}
