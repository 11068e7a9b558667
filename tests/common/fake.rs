//! Stand-ins the hostile suite puts around Puerta: a `Trap` (an address an
//! attacker names, which must never be connected to), a `Tap` (a relay in
//! front of a real server that records every byte Puerta sends it and
//! counts its connections), a `FakeServer` (a scripted backend that answers
//! whatever it is told, garbage included) and a raw HTTP request with
//! headers of the test's choosing.
//!
//! Every listener thread stops when its handle drops: the handle sets a
//! flag and connects once to wake the accept loop, and that wake-up
//! connection is never counted.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::hostile::read_retry;

/// A listener with a stop flag; `serve` gets every accepted connection
/// and its index, on a thread of its own.
struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    fn start(serve: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (st, acc) = (stop.clone(), accepted.clone());
        let serve = Arc::new(serve);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let n = acc.fetch_add(1, Ordering::SeqCst);
                let serve = serve.clone();
                std::thread::spawn(move || serve(conn, n));
            }
        });
        Listener { port, stop, accepted }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The attacker's address: accepts, records what arrives, answers nothing.
pub struct Trap {
    l: Listener,
    got: Arc<Mutex<Vec<u8>>>,
}

impl Trap {
    pub fn start() -> Trap {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let l = Listener::start(move |mut s, _| {
            let mut b = [0u8; 4096];
            while let Ok(n) = read_retry(&mut s, &mut b) {
                if n == 0 {
                    return;
                }
                g.lock().unwrap().extend_from_slice(&b[..n]);
            }
        });
        Trap { l, got }
    }

    pub fn port(&self) -> u16 {
        self.l.port
    }

    /// Panics, naming `case`, if anything ever connected (and shows what
    /// it sent, e.g. an AUTH with the backend password).
    pub fn assert_untouched(&self, case: &str) {
        let n = self.l.accepted.load(Ordering::SeqCst);
        let got = self.got.lock().unwrap().clone();
        assert_eq!(
            n,
            0,
            "{case}: Puerta connected to the attacker's port {n} times and sent {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// A relay to a real server that records what Puerta sends it.
pub struct Tap {
    l: Listener,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    pub fn start(to: u16) -> Tap {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let rec = sent.clone();
        let l = Listener::start(move |front, _| {
            let Ok(back) = TcpStream::connect(("127.0.0.1", to)) else { return };
            let _ = front.set_nodelay(true);
            let _ = back.set_nodelay(true);
            let (mut f_in, mut b_out) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let rec = rec.clone();
            std::thread::spawn(move || {
                let mut b = vec![0u8; 65536];
                while let Ok(n) = read_retry(&mut f_in, &mut b) {
                    if n == 0 || b_out.write_all(&b[..n]).is_err() {
                        break;
                    }
                    rec.lock().unwrap().extend_from_slice(&b[..n]);
                }
                let _ = b_out.shutdown(Shutdown::Write);
            });
            let (mut b_in, mut f_out) = (back, front);
            let _ = std::io::copy(&mut b_in, &mut f_out);
            let _ = f_out.shutdown(Shutdown::Both);
        });
        Tap { l, sent }
    }

    pub fn port(&self) -> u16 {
        self.l.port
    }

    /// Connections Puerta opened to the server through the tap.
    pub fn connections(&self) -> usize {
        self.l.accepted.load(Ordering::SeqCst)
    }

    /// True if Puerta ever sent `needle` to the server.
    pub fn saw(&self, needle: &[u8]) -> bool {
        let sent = self.sent.lock().unwrap();
        !needle.is_empty() && sent.windows(needle.len()).any(|w| w == needle)
    }

    /// Panics, naming `case`, if Puerta forwarded `needle`.
    pub fn assert_never_sent(&self, case: &str, needle: &[u8]) {
        assert!(!self.saw(needle), "{case}: Puerta forwarded {:?} to the backend", String::from_utf8_lossy(needle));
    }
}

/// A scripted backend: every chunk read on connection `n` is answered
/// with `answer(n, chunk)` (nothing if empty); the connection stays open.
pub struct FakeServer {
    l: Listener,
}

impl FakeServer {
    pub fn start(answer: impl Fn(usize, &[u8]) -> Vec<u8> + Send + Sync + 'static) -> FakeServer {
        let l = Listener::start(move |mut s, n| {
            let mut b = vec![0u8; 65536];
            while let Ok(k) = read_retry(&mut s, &mut b) {
                if k == 0 {
                    return;
                }
                let out = answer(n, &b[..k]);
                if !out.is_empty() && s.write_all(&out).is_err() {
                    return;
                }
            }
        });
        FakeServer { l }
    }

    pub fn port(&self) -> u16 {
        self.l.port
    }

    pub fn connections(&self) -> usize {
        self.l.accepted.load(Ordering::SeqCst)
    }
}

/// Sends `head` (request line and headers, without the blank line) plus
/// `body` with Content-Length; returns (status, body) or the I/O error,
/// reading for at most `wait`.
pub fn http_raw(port: u16, head: &str, body: &str, wait: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(wait))?;
    write!(s, "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// A plain read timeout for attack sockets.
pub const SHORT: Duration = Duration::from_secs(3);
