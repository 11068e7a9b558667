//! Client load for cluster tests that change the cluster under traffic
//! (failover, MOVED, ASK): a strict RESP client with a reply deadline, and
//! writer/reader loops on their own threads that log every round.
//!
//! The client never panics on what the proxy sends: a reply that does not
//! arrive within `HANG`, bytes that do not decode as RESP, or a closed
//! connection end the loop with an `Err` naming what happened, which the
//! test reports. Error replies are not failures here: they are classified
//! (`CLEAR` prefixes only, else the loop ends) and counted per message.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use puerta::protocol::resp::{Reply, ReplyDecoder};
use puerta::route::keyslot;

use super::cluster_puerta::cmd;

/// Longest a reply may take. A request for an unreachable node is retried
/// for about 6.5 s (max_retries 10, retry_backoff 50ms) before its error.
pub const HANG: Duration = Duration::from_secs(20);

/// Error prefixes a client may be shown while the cluster changes: Puerta's
/// own `ERR <reason>` for a failed node and the cluster's retryable states
/// once Puerta's retries ran out. MOVED and ASK never reach a client.
pub const CLEAR: [&str; 5] = ["ERR ", "CLUSTERDOWN ", "TRYAGAIN ", "MASTERDOWN ", "LOADING "];

/// A blocking RESP client that decodes strictly and waits at most `HANG`.
pub struct Client {
    sock: TcpStream,
    buf: BytesMut,
    dec: ReplyDecoder,
    scratch: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Result<Client, String> {
        let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
        Ok(Client { sock, buf: BytesMut::new(), dec: ReplyDecoder::default(), scratch: vec![0; 64 * 1024] })
    }

    pub fn send(&mut self, cmds: &[Vec<u8>]) -> Result<(), String> {
        self.sock.write_all(&cmds.concat()).map_err(|e| format!("write: {e}"))
    }

    /// The next `n` replies, or what went wrong instead.
    pub fn replies(&mut self, n: usize) -> Result<Vec<Reply>, String> {
        let end = Instant::now() + HANG;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.dec.decode(&mut self.buf) {
                Ok(Some(r)) => {
                    out.push(r);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(format!("garbage after {} of {n} replies: {e}", out.len())),
            }
            if Instant::now() > end {
                return Err(format!("hang: {} of {n} replies within {HANG:?}", out.len()));
            }
            match self.sock.read(&mut self.scratch) {
                Ok(0) => return Err(format!("connection closed after {} of {n} replies", out.len())),
                Ok(k) => self.buf.extend_from_slice(&self.scratch[..k]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(format!("read after {} of {n} replies: {e}", out.len())),
            }
        }
        Ok(out)
    }

    pub fn pipeline(&mut self, cmds: &[Vec<u8>]) -> Result<Vec<Reply>, String> {
        self.send(cmds)?;
        self.replies(cmds.len())
    }
}

/// An error reply's text without `-` and CRLF; `None` for other replies.
pub fn error_text(r: &Reply) -> Option<String> {
    r.is_error().then(|| String::from_utf8_lossy(&r.raw[1..r.raw.len().saturating_sub(2)]).into_owned())
}

/// A bulk reply's value (`Some(None)` for nil); `None` for other replies.
pub fn bulk(r: &Reply) -> Option<Option<String>> {
    let raw = &r.raw[..];
    if raw.starts_with(b"$-1\r\n") {
        return Some(None);
    }
    let body = raw.strip_prefix(b"$")?;
    let start = body.iter().position(|&b| b == b'\n')? + 1;
    let data = body.get(start..body.len().checked_sub(2)?)?;
    Some(Some(String::from_utf8_lossy(data).into_owned()))
}

/// A hash tag for every slot: `{tags[s]}` puts a key in slot `s`.
pub fn slot_tags() -> Vec<String> {
    let mut tags = vec![String::new(); 16384];
    let mut left = tags.len();
    for i in 0u64.. {
        let t = format!("t{i}");
        let s = keyslot(t.as_bytes()) as usize;
        if tags[s].is_empty() {
            tags[s] = t;
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    tags
}

/// One pass over the keys.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub start: Instant,
    pub end: Instant,
    pub errors: usize,
    /// No error, and every GET saw what this round expects: the value just
    /// written (writer) or some value (reader).
    pub clean: bool,
}

#[derive(Debug, Default)]
pub struct Log {
    pub rounds: Vec<Round>,
    /// Error reply text -> how many.
    pub errors: BTreeMap<String, usize>,
    /// The first GETs that did not see what their round expects:
    /// "round R: KEY (slot S) = GOT, want WANT".
    pub mismatches: Vec<String>,
}

impl Log {
    pub fn total_errors(&self) -> usize {
        self.errors.values().sum()
    }
}

/// A loop on its own connection until stopped. A writer SETs every key to
/// the round number and GETs it back in the same pipeline; a reader GETs.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub log: Arc<Mutex<Log>>,
    thread: Option<JoinHandle<Result<u64, String>>>,
}

impl Load {
    pub fn start(port: u16, keys: Vec<String>, writer: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Log::default()));
        let (s, l) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || run(port, &keys, writer, &s, &l));
        Load { stop, log, thread: Some(thread) }
    }

    /// Rounds logged so far.
    pub fn rounds(&self) -> Vec<Round> {
        self.log.lock().unwrap().rounds.clone()
    }

    /// Whether the loop ended by itself (an `Err`: see `finish`).
    pub fn ended(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until `n` more clean rounds than now have completed; panics
    /// with the loop's error if it ended.
    pub fn wait_clean_rounds(&mut self, n: usize, within: Duration) {
        let count = |l: &Load| l.rounds().iter().filter(|r| r.clean).count();
        let want = count(self) + n;
        let end = Instant::now() + within;
        while count(self) < want {
            if self.ended() {
                panic!("load loop ended: {:?}", self.finish());
            }
            assert!(Instant::now() < end, "{n} clean rounds within {within:?}: {:?}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the loop; the number of rounds it ran, or why it ended.
    pub fn finish(&mut self) -> Result<u64, String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err("load thread panicked".into())),
            None => Err("already finished".into()),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(port: u16, keys: &[String], writer: bool, stop: &AtomicBool, log: &Mutex<Log>) -> Result<u64, String> {
    let mut c = Client::connect(port)?;
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let v = round.to_string();
        let start = Instant::now();
        let mut cmds: Vec<Vec<u8>> = Vec::with_capacity(keys.len() * 2);
        if writer {
            cmds.extend(keys.iter().map(|k| cmd(&["SET", k, &v])));
        }
        cmds.extend(keys.iter().map(|k| cmd(&["GET", k])));
        let replies = c.pipeline(&cmds)?;
        let (sets, gets) = replies.split_at(if writer { keys.len() } else { 0 });
        let mut errors = Vec::new();
        let mut clean = true;
        let mut mismatches = Vec::new();
        for (k, r) in keys.iter().zip(sets) {
            match error_text(r) {
                Some(e) => errors.push((k, e)),
                None if &r.raw[..] == b"+OK\r\n" => {}
                None => return Err(format!("SET {k}: unexpected {:?}", String::from_utf8_lossy(&r.raw))),
            }
        }
        for (k, r) in keys.iter().zip(gets) {
            if let Some(e) = error_text(r) {
                errors.push((k, e));
                continue;
            }
            let Some(got) = bulk(r) else {
                return Err(format!("GET {k}: not a bulk reply: {:?}", String::from_utf8_lossy(&r.raw)));
            };
            let ok = if writer { got.as_deref() == Some(&v) } else { got.is_some() };
            if !ok && mismatches.len() < 5 {
                mismatches.push(format!("round {round}: {k} (slot {}) = {got:?}, want {v}", keyslot(k.as_bytes())));
            }
            clean &= ok;
        }
        for (k, e) in &errors {
            if !CLEAR.iter().any(|p| e.starts_with(p)) {
                return Err(format!("round {round}, {k}: unclear error -{e}"));
            }
        }
        let mut l = log.lock().unwrap();
        for (_, e) in &errors {
            *l.errors.entry(e.clone()).or_default() += 1;
        }
        let n = errors.len();
        if l.mismatches.len() < 20 {
            l.mismatches.extend(mismatches);
        }
        l.rounds.push(Round { start, end: Instant::now(), errors: n, clean: clean && n == 0 });
    }
    Ok(round)
}
