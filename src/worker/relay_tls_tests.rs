//! `relay_tls` without a driver: a relay whose client speaks TLS, driven
//! against an in-memory rustls client. Checks the bound on queued
//! ciphertext (the session stops reading the backend instead), that a
//! close waits for held ciphertext, the pinned send of io_uring, and the
//! handshake deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{PoolConfig, ServerSpec};
use crate::session::{CloseReason, Intent};
use crate::tls::{ClientSettings, ClientTls, ServerSettings, ServerTls, Version, OUT_BOUND};
use crate::worker::core::{WorkerCore, HIGH_WATER};

/// A CA and a "localhost" leaf it signed, as PEM files in `dir`.
fn pki(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = leaf.signed_by(&key, &rcgen::Issuer::new(ca_params, ca_key)).unwrap();
    let w = |n: &str, t: String| {
        let p = dir.join(n);
        std::fs::write(&p, t).unwrap();
        p
    };
    (w("ca.pem", ca.pem()), w("cert.pem", cert.pem()), w("key.pem", key.serialize_pem()))
}

struct Fixture {
    relay: Relay,
    client: TlsConn,
    stats: TlsStats,
    t0: Instant,
}

/// A connected relay of a tcp pool with `tls`, and a client TLS session.
fn fixture(tag: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("puerta-relay-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = pki(&dir);
    let server = ServerTls::load(ServerSettings { cert, key, ca: None, min_version: Version::Tls12, alpn: vec![] });
    let client =
        ClientTls::load(ClientSettings { ca: Some(ca), cert: None, key: None, server_name: None, verify: true });
    let _ = std::fs::remove_dir_all(&dir);
    let spec = ServerSpec { addr: "127.0.0.1:6379".parse().unwrap(), weight: 1, name: "r".into(), host: String::new() };
    let mut cfg = PoolConfig::with_defaults("p", "127.0.0.1:7000".parse().unwrap(), vec![spec]);
    cfg.tls.server = Some(Arc::new(server.unwrap()));
    cfg.tls.handshake_timeout = Duration::from_secs(1);
    let pool = Arc::new(PoolSnapshot::new(cfg, 0, &[0], &|_| true, Arc::default()));
    let (t0, stats) = (Instant::now(), TlsStats::default());
    let session = TcpSession::new(WorkerCore::limits(&pool), t0);
    let tls = accept(&pool, false, t0, &stats).unwrap();
    assert!(tls.is_some(), "a TLS listener's client gets a TLS side");
    let mut relay = Relay::new(pool, Vec::new(), 0, session);
    relay.tls[Side::Client as usize] = tls;
    relay.session.handle_connected(t0);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let client = TlsConn::client(&client.unwrap().config, name, t0 + Duration::from_secs(5)).unwrap();
    Fixture { relay, client, stats, t0 }
}

impl Fixture {
    /// Moves records between the client and the relay's client socket
    /// until neither has any; returns the plaintext the client received.
    fn exchange(&mut self) -> Vec<u8> {
        let mut got = Vec::new();
        for _ in 0..50 {
            let to_relay = self.client.pending().to_vec();
            self.client.advance(to_relay.len());
            if !to_relay.is_empty() {
                data(&mut self.relay, Side::Client, &to_relay, self.t0, &self.stats);
            }
            let to_client = transmit(&mut self.relay, Side::Client, self.t0).map(<[u8]>::to_vec).unwrap_or_default();
            sent(&mut self.relay, Side::Client, to_client.len(), self.t0);
            self.client.receive(&to_client, &mut |p| got.extend_from_slice(p)).unwrap();
            if to_relay.is_empty() && to_client.is_empty() {
                break;
            }
        }
        got
    }
}

#[test]
fn plaintext_crosses_and_a_client_that_stops_reading_stops_the_backend() {
    let mut f = fixture("bound");
    f.exchange();
    assert!(!f.client.is_handshaking(), "handshake done");
    assert_eq!(f.stats.established_13.get(), 1);
    f.client.send_plain(b"PING\r\n");
    f.exchange();
    assert_eq!(f.relay.session.poll_transmit(Side::Backend), Some(&b"PING\r\n"[..]), "decrypted for the backend");
    f.relay.session.handle_sent(Side::Backend, 6, f.t0);
    f.relay.session.handle_data(Side::Backend, b"+PONG\r\n", f.t0);
    assert_eq!(f.exchange(), b"+PONG\r\n", "encrypted for the client");

    // The client stops reading: the backend keeps sending.
    let chunk = vec![b'x'; 64 * 1024];
    let mut fed = 0;
    while wants_read(&f.relay, Side::Backend) && fed < 64 * HIGH_WATER {
        f.relay.session.handle_data(Side::Backend, &chunk, f.t0);
        fed += chunk.len();
        // The driver offers to write; the socket takes nothing.
        let _ = transmit(&mut f.relay, Side::Client, f.t0);
    }
    assert!(!wants_read(&f.relay, Side::Backend), "the backend stops being read");
    let queued = transmit(&mut f.relay, Side::Client, f.t0).unwrap().len();
    assert!(queued <= OUT_BOUND + 32 * 1024, "ciphertext queue bounded: {queued}");
    assert!(fed <= HIGH_WATER + OUT_BOUND + chunk.len(), "bounded by the high water mark, fed {fed}");
}

#[test]
fn a_close_waits_for_held_ciphertext_and_pinned_sends_wait_for_completion() {
    let mut f = fixture("held");
    f.exchange();
    f.relay.session.handle_data(Side::Backend, b"-ERR bye\r\n", f.t0);
    f.relay.session.handle_eof(Side::Backend);
    let out = transmit_pinned(&mut f.relay, Side::Client, f.t0).unwrap().to_vec();
    assert!(transmit_pinned(&mut f.relay, Side::Client, f.t0).is_none(), "one send in flight at a time");
    assert_eq!(f.relay.session.poll_intent(), None, "the reply is still ciphertext in flight");
    sent(&mut f.relay, Side::Client, 3, f.t0);
    assert_eq!(f.relay.session.poll_intent(), None, "partly written");
    let rest = transmit_pinned(&mut f.relay, Side::Client, f.t0).unwrap().to_vec();
    assert_eq!(rest, out[3..], "the unwritten remainder, in order");
    sent(&mut f.relay, Side::Client, rest.len(), f.t0);
    assert_eq!(f.relay.session.poll_intent(), Some(Intent::Close(CloseReason::BackendClosed)));
    let mut got = Vec::new();
    f.client.receive(&out, &mut |p| got.extend_from_slice(p)).unwrap();
    assert_eq!(got, b"-ERR bye\r\n");
}

#[test]
fn a_stalled_handshake_closes_at_its_deadline() {
    let mut f = fixture("deadline");
    let hello = f.client.pending().to_vec();
    data(&mut f.relay, Side::Client, &hello[..10], f.t0, &f.stats);
    let due = next_deadline(&f.relay, false).unwrap();
    assert_eq!(due, f.t0 + Duration::from_secs(1), "the handshake deadline comes first");
    tick(&mut f.relay, f.t0 + Duration::from_millis(500), &f.stats);
    assert_eq!(f.relay.session.poll_intent(), None);
    tick(&mut f.relay, due, &f.stats);
    assert_eq!(f.relay.session.poll_intent(), Some(Intent::Close(CloseReason::Error(Side::Client, libc::ETIMEDOUT))));
    assert_eq!(f.stats.failures[FailReason::ALL.iter().position(|r| *r == FailReason::Timeout).unwrap()].get(), 1);
}
