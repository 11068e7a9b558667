//! Helpers for twemproxy-compatibility tests: the real `nutcracker` binary
//! on a generated YAML file, and a raw, binary-safe RESP client that
//! pipelines a whole batch in one write; memcached and a RawMemcache client;
//! `dribble`, a relay that splits a server's replies at every byte.
//!
//! A `Proxy` is anything that listens for a pool (nutcracker today, Puerta
//! once its redis mode lands), so a parity test can run the same workload
//! through each and compare where the keys went.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{free_port, tmpdir, wait_until, Proc};

/// A proxy process serving one pool on `port`.
pub trait Proxy {
    fn port(&self) -> u16;
    fn label(&self) -> &str;
}

/// nutcracker started on `yaml` (with `{listen}` replaced by a free port).
pub struct Nutcracker {
    pub proc: Proc,
    pub stats_port: u16,
    pub dir: PathBuf,
}

impl Nutcracker {
    /// Writes the YAML and starts nutcracker with a free stats port bound
    /// to loopback, waiting until the pool port accepts connections.
    pub fn start(yaml: &str) -> Nutcracker {
        let port = free_port();
        let stats_port = free_port();
        let dir = tmpdir();
        let conf = dir.join("nutcracker.yml");
        std::fs::write(&conf, yaml.replace("{listen}", &port.to_string())).unwrap();
        let child = Command::new("nutcracker")
            .arg("-c")
            .arg(&conf)
            .args(["-s", &stats_port.to_string(), "-a", "127.0.0.1", "-v", "1", "-o"])
            .arg(dir.join("nutcracker.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nutcracker must be installed (scripts/test.sh installs it)");
        let n = Nutcracker { proc: Proc { child, port }, stats_port, dir };
        wait_until("nutcracker to listen", Duration::from_secs(10), || TcpStream::connect(n.proc.addr()).is_ok());
        n
    }
}

impl Proxy for Nutcracker {
    fn port(&self) -> u16 {
        self.proc.port
    }
    fn label(&self) -> &str {
        "nutcracker"
    }
}

/// One RESP command as bytes.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A parsed RESP2 reply, bytes kept raw (keys may be binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// A blocking RESP connection that can pipeline (over TCP or a unix socket).
pub struct RawResp {
    r: BufReader<Box<dyn Read + Send>>,
    w: Box<dyn Write + Send>,
}

impl RawResp {
    pub fn connect(port: u16) -> RawResp {
        Self::from_stream(TcpStream::connect(("127.0.0.1", port)).unwrap())
    }

    /// Wraps a connection already open (and maybe already written to).
    pub fn from_stream(s: TcpStream) -> RawResp {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        RawResp { r: BufReader::new(Box::new(s.try_clone().unwrap())), w: Box::new(s) }
    }

    /// A connection to a pool's unix socket.
    pub fn connect_unix(path: &std::path::Path) -> RawResp {
        let s = std::os::unix::net::UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawResp { r: BufReader::new(Box::new(s.try_clone().unwrap())), w: Box::new(s) }
    }

    /// Sends every command in one write and reads one reply per command.
    pub fn pipeline(&mut self, cmds: &[Vec<u8>]) -> Vec<Reply> {
        let buf: Vec<u8> = cmds.concat();
        self.w.write_all(&buf).unwrap();
        (0..cmds.len()).map(|_| self.reply()).collect()
    }

    pub fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        self.pipeline(&[command(args)]).remove(0)
    }

    pub fn reply(&mut self) -> Reply {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).unwrap();
        assert!(line.ends_with(b"\r\n"), "truncated reply line {line:?}");
        line.truncate(line.len() - 2);
        let (kind, rest) = line.split_first().expect("empty reply line");
        let int = || std::str::from_utf8(rest).unwrap().parse::<i64>().unwrap();
        match kind {
            b'+' => Reply::Status(rest.to_vec()),
            b'-' => Reply::Error(rest.to_vec()),
            b':' => Reply::Int(int()),
            b'$' if int() < 0 => Reply::Bulk(None),
            b'$' => {
                let mut data = vec![0; int() as usize + 2];
                self.r.read_exact(&mut data).unwrap();
                data.truncate(data.len() - 2);
                Reply::Bulk(Some(data))
            }
            b'*' if int() < 0 => Reply::Array(None),
            b'*' => Reply::Array(Some((0..int()).map(|_| self.reply()).collect())),
            _ => panic!("bad reply type in {line:?}"),
        }
    }

    /// True if the peer closed the connection (EOF or reset) within 10 s.
    pub fn is_eof(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0) | Err(_))
    }

    /// Like `cmd`, but `None` instead of a panic if the connection fails.
    pub fn try_cmd(&mut self, args: &[&[u8]]) -> Option<Reply> {
        self.w.write_all(&command(args)).ok()?;
        let mut line = Vec::new();
        if self.r.read_until(b'\n', &mut line).ok()? == 0 || line.len() < 3 {
            return None;
        }
        match line[0] {
            b'+' => Some(Reply::Status(line[1..line.len() - 2].to_vec())),
            b'-' => Some(Reply::Error(line[1..line.len() - 2].to_vec())),
            _ => None,
        }
    }

    /// Every key on a (direct) redis-server connection.
    pub fn keys(&mut self) -> Vec<Vec<u8>> {
        match self.cmd(&[b"KEYS", b"*"]) {
            Reply::Array(Some(items)) => items
                .into_iter()
                .map(|i| match i {
                    Reply::Bulk(Some(k)) => k,
                    other => panic!("KEYS item {other:?}"),
                })
                .collect(),
            other => panic!("KEYS reply {other:?}"),
        }
    }
}

/// Starts a throwaway memcached on a free loopback port.
pub fn memcached() -> Proc {
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new("memcached")
            .args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0", "-u", "root", "-m", "64"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("memcached must be installed (scripts/test.sh installs it)");
        let mut p = Proc { child, port };
        p.wait_listening("memcached");
        // `free_port` cannot see other processes: on a busy box another
        // test run may hold the port, and a memcached slow to exit on its
        // failed bind passes `wait_listening` on the other's listener.
        // Then another run's writes and flushes land in "our" server.
        let pid = RawMemcache::connect(port).stat("pid");
        if pid.as_deref() == Some(&p.pid().to_string()) {
            return p;
        }
        eprintln!("note: port {port} answers as memcached pid {pid:?}, not ours ({}); trying another", p.pid());
    }
    panic!("could not start a memcached of our own in 5 tries");
}

/// A blocking memcached ASCII connection that pipelines.
pub struct RawMemcache {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl RawMemcache {
    pub fn connect(port: u16) -> RawMemcache {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawMemcache { r: BufReader::new(s.try_clone().unwrap()), w: s }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "truncated line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// `set key 0 0 1 / v` for every key in one write; every reply must be
    /// STORED.
    pub fn set_all(&mut self, keys: &[Vec<u8>]) {
        let mut buf = Vec::new();
        for k in keys {
            buf.extend_from_slice(b"set ");
            buf.extend_from_slice(k);
            buf.extend_from_slice(b" 0 0 1\r\nv\r\n");
        }
        self.w.write_all(&buf).unwrap();
        for k in keys {
            assert_eq!(self.line(), "STORED", "set {k:?}");
        }
    }

    /// Which of `keys` this server holds (one pipelined `get` per key).
    pub fn present(&mut self, keys: &[Vec<u8>]) -> Vec<bool> {
        let mut buf = Vec::new();
        for k in keys {
            buf.extend_from_slice(b"get ");
            buf.extend_from_slice(k);
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf).unwrap();
        keys.iter()
            .map(|_| {
                let first = self.line();
                if first == "END" {
                    return false;
                }
                assert!(first.starts_with("VALUE "), "{first}");
                assert_eq!(self.line(), "v");
                assert_eq!(self.line(), "END");
                true
            })
            .collect()
    }

    /// One line of `stats` (`STAT name value`): its value.
    pub fn stat(&mut self, name: &str) -> Option<String> {
        self.w.write_all(b"stats\r\n").unwrap();
        let mut found = None;
        loop {
            let line = self.line();
            if line == "END" {
                return found;
            }
            if let Some(v) = line.strip_prefix(&format!("STAT {name} ")) {
                found = Some(v.to_string());
            }
        }
    }

    pub fn flush_all(&mut self) {
        self.w.write_all(b"flush_all\r\n").unwrap();
        assert_eq!(self.line(), "OK");
    }
}

/// A relay in front of a real server (redis or memcached) that hands its
/// replies to Puerta one byte per write, so every reply arrives split at
/// every byte boundary.
pub struct Dribble {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Dribble {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub fn dribble(to: u16) -> Dribble {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            if st.load(Ordering::Relaxed) {
                return;
            }
            let Ok(front) = conn else { continue };
            let Ok(back) = TcpStream::connect(("127.0.0.1", to)) else { continue };
            front.set_nodelay(true).unwrap();
            let (mut f_in, mut b_out) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut f_in, &mut b_out));
            let (mut b_in, mut f_out) = (back, front);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = b_in.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    for b in &buf[..n] {
                        if f_out.write_all(std::slice::from_ref(b)).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            });
        }
    });
    Dribble { port, stop }
}
