//! Test harness: real redis-server processes and the real `puerta` binary on
//! loopback ports, plus a tiny RESP client and HTTP getter.
//!
//! Every process started here is killed when its handle drops, so a failing
//! test leaves nothing running.

#![allow(dead_code)]

pub mod cluster;
pub mod cluster_driver;
pub mod cluster_load;
pub mod cluster_puerta;
pub mod daemon;
pub mod fake;
pub mod hostile;
pub mod tls;
pub mod twem;
pub mod twem_puerta;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The drivers every behaviour test runs under: io_uring and epoll. Where
/// the kernel refuses io_uring_setup (seccomp, old kernel) the io_uring runs
/// are skipped with a note, since Puerta itself would fall back to epoll.
pub fn drivers() -> Vec<&'static str> {
    // A zeroed struct io_uring_params.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes `params` only.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: closing the fd we just got.
        unsafe { libc::close(fd as i32) };
        vec!["uring", "epoll"]
    } else {
        eprintln!("note: io_uring_setup failed here; running the epoll driver only");
        vec!["epoll"]
    }
}

/// A port nothing listens on now and that no earlier call in this test
/// process returned (the OS may hand a released port out again, and two
/// tests of one binary run in parallel).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

pub struct Proc {
    pub child: Child,
    pub port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Waits until the port accepts connections and checks that the child
    /// is still alive: a server that lost the race for its port exits,
    /// and a connect that succeeds then reaches someone else's listener.
    pub fn wait_listening(&mut self, what: &str) {
        let addr = self.addr();
        wait_until(&format!("{what} to listen on {addr}"), Duration::from_secs(10), || {
            TcpStream::connect(addr).is_ok()
        });
        std::thread::sleep(Duration::from_millis(20));
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{what} on port {} exited ({status}); its port was taken by another process", self.port);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Starts a throwaway redis-server on a free port.
pub fn redis() -> Proc {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        // DEBUG SLEEP slows a backend on purpose (the slow log tests).
        .args(["--enable-debug-command", "yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/test.sh installs it)");
    let mut p = Proc { child, port };
    p.wait_listening("redis-server");
    p
}

pub fn tmpdir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d =
        std::env::temp_dir().join(format!("puerta-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Puerta {
    pub proc: Proc,
    pub admin: u16,
    pub config: PathBuf,
    /// Puerta's stderr (its log), shown when a test panics.
    pub log: PathBuf,
}

impl Puerta {
    /// Writes `config` (with `{admin}` replaced) and starts puerta with the
    /// given driver, waiting until /healthz answers.
    pub fn start(config: &str, io: &str) -> Puerta {
        Self::start_with(config, &["--io", io], |_| {})
    }

    /// As `start`, with the command-line arguments after `-c FILE` given
    /// and a hook to adjust the command (e.g. a seccomp filter).
    pub fn start_with(config: &str, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Puerta {
        let admin = free_port();
        let dir = tmpdir();
        let path = dir.join("puerta.toml");
        let log = dir.join("puerta.log");
        std::fs::write(&path, config.replace("{admin}", &admin.to_string())).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_puerta"));
        cmd.args(["-c", path.to_str().unwrap(), "-v", "info"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        tweak(&mut cmd);
        let child = cmd.spawn().unwrap();
        let p = Puerta { proc: Proc { child, port: 0 }, admin, config: path, log };
        wait_until("puerta admin to answer", Duration::from_secs(10), || {
            http("GET", p.admin, "/healthz").map(|(s, _)| s == 200).unwrap_or(false)
        });
        p
    }

    /// Everything Puerta logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http("GET", self.admin, path).expect("admin request")
    }

    pub fn post(&self, path: &str) -> (u16, String) {
        http("POST", self.admin, path).expect("admin request")
    }

    pub fn wait_ready(&self) {
        wait_until("puerta /ready", Duration::from_secs(10), || self.get("/ready").0 == 200);
    }

    /// Sum of a metric's samples whose label text contains `labels`.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }
}

impl Drop for Puerta {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {}:", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A raw HTTP/1.1 request; returns (status, body).
pub fn http(method: &str, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// A minimal blocking RESP client for tests.
pub struct Resp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Resp {
    pub fn connect(port: u16) -> std::io::Result<Resp> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Resp { r: BufReader::new(s.try_clone()?), w: s })
    }

    /// Sends a command without reading its reply (pipelining; `reply`
    /// reads the replies in order).
    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
        }
        self.w.write_all(req.as_bytes())
    }

    /// Sends a command; returns the reply rendered as text (`+OK` -> "OK",
    /// bulk -> its bytes, nil -> "(nil)", error -> "-ERR ...", int -> digits).
    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
        }
        self.w.write_all(req.as_bytes())?;
        self.reply()
    }

    pub fn reply(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let line = line.trim_end().to_string();
        match line.as_bytes().first() {
            Some(b'+') | Some(b':') => Ok(line[1..].to_string()),
            Some(b'-') => Ok(line),
            Some(b'$') => {
                let n: i64 = line[1..].parse().unwrap_or(-1);
                if n < 0 {
                    return Ok("(nil)".into());
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }
            _ => Ok(line),
        }
    }

    /// True if the server closed the connection (EOF or reset) within the
    /// 5 s read timeout. A timeout means the connection is still open (the
    /// server is holding it, not closing it) and is false, so a test of
    /// "closed at once" cannot pass on a connection left hanging.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        closed_by_peer(self.r.read(&mut b))
    }
}

/// Reads the outcome of a one-byte read on a socket with a read timeout:
/// EOF or a reset is "closed"; data or a timeout (still open) is not.
pub fn closed_by_peer(r: std::io::Result<usize>) -> bool {
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// Pool config for tcp mode over the given backend ports.
pub fn tcp_config(listen: u16, backends: &[u16], extra_pool: &str, extra_server: &str) -> String {
    let servers: Vec<String> = backends.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"5s\"\n{extra_server}\n\
         [[pool]]\nname = \"main\"\nlisten = \"127.0.0.1:{listen}\"\nmode = \"tcp\"\nservers = [{}]\n\
         check_interval = \"200ms\"\ncheck_timeout = \"200ms\"\nrise = 1\nfall = 1\n{extra_pool}\n",
        servers.join(", ")
    )
}
