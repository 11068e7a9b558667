//! The hostile suite's four checks (tests/hostile.rs): after every attack
//! the process is alive with every worker serving, a good client's
//! pipelined replies were all correct during and after the attack, backend
//! state did not change (checked by each case), and RSS stayed under a
//! bound the case states.
//!
//! Invariants: every check reads the real process (/proc/PID) or talks to
//! it over fresh sockets, never trusting Puerta's own view of itself. A
//! `Victim` compares whole reply bytes with the bytes a correct server
//! sends, so a reply delivered to the wrong client, or one reply too many
//! or too few, is a mismatch, never skipped. `Cases` runs named sub-cases
//! to the end and reports every failure by name, so one broken defect does
//! not hide the verdict on the others.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::twem_puerta::PuertaTwem;

/// How a pool's clients talk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Memcache,
    Redis,
}

/// Workers every hostile case runs with (and checks are all alive).
pub const WORKERS: usize = 2;

/// VmRSS of `pid` in MiB; `None` when the process is gone.
pub fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim();
    kb.parse::<u64>().ok().map(|kb| kb / 1024)
}

/// utime + stime of `pid` in seconds, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which may itself hold spaces.
    let rest: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// The process state letter (`R`, `S`, `Z` for a dead, unreaped child).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Threads of `pid` named like workers (`puerta-w*`).
pub fn worker_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim().starts_with("puerta-w"))
        .count()
}

/// A probe: one fresh connection is served (Ok) or why not.
pub type Probe<'a> = &'a dyn Fn(u16) -> Result<(), String>;

/// Sends `req` on a fresh connection and reads exactly `want` back.
pub fn exchange(port: u16, req: &[u8], want: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).map_err(|e| format!("write: {e}"))?;
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).map_err(|e| format!("no reply to {:?}: {e}", String::from_utf8_lossy(req)))?;
    if got != want {
        return Err(format!("{:?} answered {:?}", String::from_utf8_lossy(req), String::from_utf8_lossy(&got)));
    }
    Ok(())
}

/// The memcached probe: a get of `key` (which must not exist) is `END`.
pub fn mc_probe(key: &str) -> impl Fn(u16) -> Result<(), String> + '_ {
    move |port| exchange(port, format!("get {key}\r\n").as_bytes(), b"END\r\n")
}

/// The RESP probe: a GET of a key no case writes is nil (forwarded, so
/// a backend answers).
pub fn resp_probe(port: u16) -> Result<(), String> {
    exchange(port, &super::twem::command(&[b"GET", b"hostile:probe"]), b"$-1\r\n")
}

/// Runs `f`; a panic inside (e.g. a test client that met EOF) is re-raised
/// with `case` and `what` in front, so the failure names its case.
pub fn named<T>(case: &str, what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{case}: {what}: {msg}")
        }
    }
}

/// What a case checks the process against.
pub struct Target<'a> {
    pub pid: u32,
    pub port: u16,
    pub probe: Probe<'a>,
    /// The RSS bound of this case, in MiB.
    pub rss_mib: u64,
}

impl Target<'_> {
    /// Checks 1 and 4: the process runs, both worker threads exist, 16
    /// fresh connections in a row are each served (SO_REUSEPORT hashes
    /// each to a worker, so a dead worker's open listener shows as a
    /// connection nobody answers), and RSS is under the bound.
    pub fn assert_healthy(&self, case: &str) {
        let st = state(self.pid);
        assert!(matches!(st, Some(s) if s != 'Z' && s != 'X'), "{case}: puerta exited (state {st:?})");
        assert_eq!(worker_threads(self.pid), WORKERS, "{case}: a worker thread is gone");
        for i in 0..16 {
            if let Err(e) = (self.probe)(self.port) {
                panic!("{case}: fresh connection {i} was not served: {e}");
            }
        }
        self.assert_rss(case);
    }

    pub fn assert_rss(&self, case: &str) {
        let rss = rss_mib(self.pid).unwrap_or_else(|| panic!("{case}: puerta is gone"));
        assert!(rss < self.rss_mib, "{case}: RSS {rss} MiB, bound {} MiB", self.rss_mib);
    }
}

/// A twemproxy-mode Puerta as a `Target`.
pub fn target<'a>(px: &PuertaTwem, probe: Probe<'a>, rss_mib: u64) -> Target<'a> {
    Target { pid: px.proc.pid(), port: px.port(), probe, rss_mib }
}

/// Good clients: `conns` connections, each pipelining sets of values of
/// its own and gets of the same keys, over and over in a thread, until
/// `finish`. Keys are split between connections so no two write a key.
pub struct Victim {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<u64, String>>,
}

impl Victim {
    /// Connects and runs the first round here (a failure is a broken
    /// setup, not the attack), then keeps going in the background.
    pub fn start(port: u16, proto: Proto, keys: &[String], conns: usize) -> Victim {
        let per = keys.len() / conns;
        assert!(per > 0, "need at least one key per connection");
        let mut cs: Vec<(TcpStream, Vec<String>)> = (0..conns)
            .map(|c| {
                let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.set_nodelay(true).unwrap();
                (s, keys[c * per..(c + 1) * per].to_vec())
            })
            .collect();
        for (c, (s, ks)) in cs.iter_mut().enumerate() {
            round(s, proto, ks, &format!("{c}.0")).unwrap_or_else(|e| panic!("baseline (no attack yet): {e}"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut n = 1u64;
            // The last round runs after `stop`: the good client after the attack.
            loop {
                let last = st.load(Ordering::Relaxed);
                for (c, (s, ks)) in cs.iter_mut().enumerate() {
                    round(s, proto, ks, &format!("{c}.{n}")).map_err(|e| format!("round {n}: {e}"))?;
                }
                n += 1;
                if last {
                    return Ok(n);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Victim { stop, handle }
    }

    /// Stops after one more round and panics, naming `case`, on any wrong
    /// reply seen during or after the attack.
    pub fn finish(self, case: &str) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.join() {
            Ok(Ok(rounds)) => rounds,
            Ok(Err(e)) => panic!("{case}: the good client saw a wrong reply: {e}"),
            Err(_) => panic!("{case}: the good client's thread panicked"),
        }
    }
}

/// One pipelined round: set every key to a value naming `tag`, then get
/// every key; the reply bytes must be exactly what a server sends.
fn round(s: &mut TcpStream, proto: Proto, keys: &[String], tag: &str) -> Result<(), String> {
    let (mut req, mut want) = (Vec::new(), Vec::new());
    let vals: Vec<String> = keys.iter().map(|k| format!("{k}={tag}")).collect();
    for (k, v) in keys.iter().zip(&vals) {
        match proto {
            Proto::Memcache => {
                req.extend_from_slice(format!("set {k} 0 0 {}\r\n{v}\r\n", v.len()).as_bytes());
                want.extend_from_slice(b"STORED\r\n");
            }
            Proto::Redis => {
                req.extend(super::twem::command(&[b"SET", k.as_bytes(), v.as_bytes()]));
                want.extend_from_slice(b"+OK\r\n");
            }
        }
    }
    for (k, v) in keys.iter().zip(&vals) {
        match proto {
            Proto::Memcache => {
                req.extend_from_slice(format!("get {k}\r\n").as_bytes());
                want.extend_from_slice(format!("VALUE {k} 0 {}\r\n{v}\r\nEND\r\n", v.len()).as_bytes());
            }
            Proto::Redis => {
                req.extend(super::twem::command(&[b"GET", k.as_bytes()]));
                want.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
            }
        }
    }
    s.write_all(&req).map_err(|e| format!("write: {e}"))?;
    let mut got = vec![0u8; want.len()];
    let mut at = 0;
    while at < got.len() {
        match read_retry(s, &mut got[at..]) {
            Ok(0) => return Err(format!("connection closed after {at} of {} reply bytes", want.len())),
            Ok(n) => at += n,
            Err(e) => return Err(format!("after {at} of {} reply bytes: {e}", want.len())),
        }
        let seen = &got[..at];
        if seen != &want[..at] {
            let from = seen.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
            let show =
                |b: &[u8]| String::from_utf8_lossy(&b[from.saturating_sub(20)..(from + 60).min(b.len())]).into_owned();
            return Err(format!("reply differs at byte {from}: got {:?}, want {:?}", show(seen), show(&want)));
        }
    }
    Ok(())
}

/// `read`, retried when a signal interrupts it (the test process gets
/// SIGCHLD as children stop, continue and exit).
pub fn read_retry(s: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Named sub-cases: each runs to the end; `finish` panics listing every
/// failed one, so the coordinator sees which fix each needs.
#[derive(Default)]
pub struct Cases {
    failed: Vec<String>,
    ran: usize,
}

impl Cases {
    pub fn run(&mut self, name: &str, f: impl FnOnce()) {
        self.ran += 1;
        if let Err(e) = catch_unwind(AssertUnwindSafe(f)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            // Messages from the checks already start with the case's name.
            self.failed.push(if msg.contains(name) { msg } else { format!("{name}: {msg}") });
        }
    }

    pub fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} of {} cases failed:\n{}",
            self.failed.len(),
            self.ran,
            self.failed.join("\n")
        );
    }
}

/// When `drain` stops reading.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// At EOF or after a quiet gap of `QUIET` once something came
    /// (loopback replies come in microseconds: a gap means "that was all").
    Quiet,
    /// Only at EOF (or the deadline): for checks that the peer closed.
    Closed,
}

/// Reads what a hostile connection gets back, waiting up to `wait` in
/// all; returns the bytes and whether the connection was closed.
pub fn drain(s: &mut TcpStream, wait: Duration, until: Until) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + wait;
    let mut end = deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match read_retry(s, &mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if until == Until::Quiet {
                    end = (Instant::now() + QUIET).min(deadline);
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

/// See `Until::Quiet`.
pub const QUIET: Duration = Duration::from_millis(300);

fn connect_attacker(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("puerta stopped accepting on {port} (a worker or the process died?): {e}"))
}

/// Opens a connection, writes `bytes` (ignoring a write refused because
/// Puerta already closed) and returns what came back (`Until::Quiet`).
pub fn attack(port: u16, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = connect_attacker(port);
    let _ = s.write_all(bytes);
    drain(&mut s, wait, Until::Quiet)
}

/// As `attack`, but reads until Puerta closes the connection (or `wait`).
pub fn attack_to_close(port: u16, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = connect_attacker(port);
    let _ = s.write_all(bytes);
    drain(&mut s, wait, Until::Closed)
}

/// Reads until the bytes end with `end`; false on EOF, an error or
/// `wait` passing first.
pub fn read_until(s: &mut TcpStream, end: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while !out.ends_with(end) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match read_retry(s, &mut b) {
            Ok(0) | Err(_) => return (out, false),
            Ok(n) => out.extend_from_slice(&b[..n]),
        }
    }
    (out, true)
}

/// Ten seconds: direct reads of a real server.
pub const DIRECT: Duration = Duration::from_secs(10);
