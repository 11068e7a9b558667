//! Backend health: a sans-IO rise/fall state machine plus the TCP connect
//! probe that feeds it (a connect and a TLS handshake for pools with
//! `backend_tls`: a listener that cannot finish the handshake, or whose
//! certificate does not verify, is down).
//!
//! Owner: the control thread, the only writer of health. Invariants: a
//! backend flips state only after `rise` consecutive successes or `fall`
//! consecutive failures; probes of one round run concurrently and each is
//! bounded by `check_timeout`, so one dead host never delays the others.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::mongo_probe::{probe_all, probe_all_tls, Outcome};
use crate::config::HealthConfig;
use crate::route::{BackendState, PoolSnapshot};
use crate::tls::{ClientTls, ProbeStream, TlsError, TlsTarget};

/// Health of one backend of one pool.
#[derive(Debug, Clone)]
pub struct BackendHealth {
    pub up: bool,
    ok_streak: u32,
    fail_streak: u32,
    pub next_probe: Instant,
    /// Last `topologyVersion.processId` a mongos reported.
    process_id: Option<[u8; 12]>,
}

impl BackendHealth {
    /// New backends start up (traffic flows at once) and are probed now.
    pub fn new(now: Instant) -> Self {
        BackendHealth { up: true, ok_streak: 0, fail_streak: 0, next_probe: now, process_id: None }
    }

    /// Records the result of a probe that started at `started`; returns
    /// true if `up` changed. The next probe is due `check_interval` after
    /// this one *started* (probes run every interval, whatever they took).
    pub fn handle_result(&mut self, ok: bool, cfg: &HealthConfig, started: Instant) -> bool {
        self.next_probe = started + cfg.check_interval;
        if ok {
            self.ok_streak += 1;
            self.fail_streak = 0;
            if !self.up && self.ok_streak >= cfg.rise {
                self.up = true;
                return true;
            }
        } else {
            self.fail_streak += 1;
            self.ok_streak = 0;
            if self.up && self.fail_streak >= cfg.fall {
                self.up = false;
                return true;
            }
        }
        false
    }

    /// Records the process id a probe saw; true when it differs from the
    /// last one seen, i.e. the server restarted in between.
    pub fn handle_process_id(&mut self, id: Option<[u8; 12]>) -> bool {
        let Some(id) = id else { return false };
        let restarted = self.process_id.is_some_and(|old| old != id);
        self.process_id = Some(id);
        restarted
    }

    /// A worker saw this backend fail: probe it on the next pass.
    pub fn handle_report(&mut self, now: Instant) {
        self.next_probe = self.next_probe.min(now);
    }
}

/// One round of probes of `due` backends of `pool`, results in order: a
/// mongos pool's hello, else a TLS handshake (`backend_tls`, to the name
/// the relays use), else a connect.
pub fn probe_round(pool: &PoolSnapshot, due: &[&BackendState]) -> Vec<Outcome> {
    let timeout = pool.cfg.health.check_timeout;
    let addrs: Vec<_> = due.iter().map(|b| b.spec.addr).collect();
    let tls = |c: &ClientTls| due.iter().map(|b| TlsTarget::new(c, &b.spec.host, b.spec.addr)).collect::<Vec<_>>();
    let plain = |(ok, rtt, error)| Outcome { ok, rtt, process_id: None, error };
    match (&pool.cfg.mongo, pool.cfg.tls.backend.as_deref()) {
        (Some(m), None) => probe_all(&addrs, timeout, m),
        (Some(m), Some(c)) => probe_all_tls(&addrs, &tls(c).into_iter().map(Some).collect::<Vec<_>>(), timeout, m),
        (None, None) => probe_connect(&addrs, timeout).into_iter().map(|(ok, rtt)| plain((ok, rtt, None))).collect(),
        (None, Some(c)) => probe_tls(&addrs, &tls(c), timeout).into_iter().map(plain).collect(),
    }
}

/// Connects to every address at once and waits up to `timeout`. Returns,
/// per address, whether it connected and how long it took.
pub fn probe_connect(addrs: &[SocketAddr], timeout: Duration) -> Vec<(bool, Duration)> {
    let start = Instant::now();
    let mut socks = Vec::with_capacity(addrs.len());
    let mut result = vec![(false, timeout); addrs.len()];
    for (i, a) in addrs.iter().enumerate() {
        let s = socket2::Socket::new(socket2::Domain::for_address(*a), socket2::Type::STREAM.cloexec(), None);
        let Ok(s) = s else { continue };
        if s.set_nonblocking(true).is_err() {
            continue;
        }
        match s.connect(&(*a).into()) {
            Ok(()) => result[i] = (true, start.elapsed()),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => socks.push((i, s)),
            Err(_) => {}
        }
    }
    while !socks.is_empty() {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let mut fds: Vec<libc::pollfd> =
            socks.iter().map(|(_, s)| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLOUT, revents: 0 }).collect();
        // SAFETY: `fds` is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, left.as_millis().max(1) as i32) };
        if n < 0 {
            continue; // EINTR: recompute the time left
        }
        let mut still = Vec::new();
        for ((i, s), p) in socks.into_iter().zip(&fds) {
            if p.revents == 0 {
                still.push((i, s));
            } else {
                let ok = matches!(s.take_error(), Ok(None)) && s.peer_addr().is_ok();
                result[i] = (ok, start.elapsed());
            }
        }
        socks = still;
    }
    result
}

/// `backend_tls` pools: connects to every address and completes a TLS
/// handshake with its target, each on its own thread, all within
/// `timeout`. Returns, per address, whether it succeeded, how long it took,
/// and why it failed.
pub fn probe_tls(addrs: &[SocketAddr], tls: &[TlsTarget], timeout: Duration) -> Vec<(bool, Duration, Option<String>)> {
    let deadline = Instant::now() + timeout;
    std::thread::scope(|s| {
        let handles: Vec<_> = addrs.iter().zip(tls).map(|(&a, t)| s.spawn(move || handshake(a, t, deadline))).collect();
        handles
            .into_iter()
            .map(|h| {
                let start = deadline.checked_sub(timeout).unwrap_or(deadline);
                match h.join() {
                    Ok(Ok(())) => (true, start.elapsed(), None),
                    Ok(Err(e)) => (false, start.elapsed(), Some(e)),
                    Err(_) => (false, timeout, Some("probe thread panicked".into())),
                }
            })
            .collect()
    })
}

fn handshake(addr: SocketAddr, tls: &TlsTarget, deadline: Instant) -> Result<(), String> {
    let left = || Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero());
    let timed_out = || "TLS handshake timed out".to_string();
    let sock = std::net::TcpStream::connect_timeout(&addr, left().ok_or_else(timed_out)?).map_err(|e| e.to_string())?;
    let left = left().ok_or_else(timed_out)?;
    sock.set_read_timeout(Some(left)).and_then(|()| sock.set_write_timeout(Some(left))).map_err(|e| e.to_string())?;
    match ProbeStream::open(sock, Some(tls)) {
        Ok(_) => Ok(()),
        Err(TlsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Err(timed_out()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HealthConfig {
        HealthConfig { check_interval: Duration::from_secs(2), check_timeout: Duration::from_secs(1), rise: 2, fall: 3 }
    }

    #[test]
    fn falls_after_n_failures_and_rises_after_m_successes() {
        let t = Instant::now();
        let mut h = BackendHealth::new(t);
        assert!(h.up);
        assert!(!h.handle_result(false, &cfg(), t));
        assert!(!h.handle_result(false, &cfg(), t));
        assert!(!h.handle_result(true, &cfg(), t), "a success resets the failure streak");
        assert!(!h.handle_result(false, &cfg(), t));
        assert!(!h.handle_result(false, &cfg(), t));
        assert!(h.handle_result(false, &cfg(), t));
        assert!(!h.up);
        assert!(!h.handle_result(true, &cfg(), t));
        assert!(h.handle_result(true, &cfg(), t));
        assert!(h.up);
        assert_eq!(h.next_probe, t + Duration::from_secs(2));
    }

    #[test]
    fn process_id_change_is_a_restart() {
        let mut h = BackendHealth::new(Instant::now());
        assert!(!h.handle_process_id(Some([1; 12])), "first sighting");
        assert!(!h.handle_process_id(None), "a failed probe says nothing");
        assert!(!h.handle_process_id(Some([1; 12])));
        assert!(h.handle_process_id(Some([2; 12])));
    }

    #[test]
    fn report_pulls_probe_forward() {
        let t = Instant::now();
        let mut h = BackendHealth::new(t);
        h.handle_result(true, &cfg(), t);
        h.handle_report(t + Duration::from_millis(10));
        assert_eq!(h.next_probe, t + Duration::from_millis(10));
    }

    #[test]
    fn probe_sees_open_and_closed_ports() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let closed = {
            let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            t.local_addr().unwrap()
        };
        let r = probe_connect(&[open, closed], Duration::from_millis(500));
        assert!(r[0].0, "listening port must probe ok");
        assert!(!r[1].0, "closed port must fail");
    }
}
