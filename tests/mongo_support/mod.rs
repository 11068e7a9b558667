//! Helpers for tests/mongo.rs: the Python interpreter with mockupdb and
//! pymongo, mongos stand-ins (tests/mongo/standin.py), a minimal blocking
//! OP_MSG client, and mongos pool configs.
//!
//! No mongod can be installed here, so the servers are mockupdb stand-ins.
//! A missing Python or package is a test FAILURE with instructions, never a
//! silent skip.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use bson::{doc, Document};

/// The venv's python (scripts/test.sh creates `.venv` from
/// tests/requirements.txt), else `python3` on PATH; checked once.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let py = if venv.exists() { venv } else { PathBuf::from("python3") };
        let ok = Command::new(&py)
            .args(["-c", "import mockupdb, pymongo; assert pymongo.version_tuple[0] == 4"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "{} cannot import mockupdb and pymongo 4: run scripts/test.sh, which creates .venv \
             and installs tests/requirements.txt (the mongo tests need them; they do not skip)",
            py.display()
        );
        py
    })
    .clone()
}

pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mongo").join(name)
}

/// A running stand-in; killed on drop (and it exits when its stdin closes).
pub struct Standin {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    pub name: String,
    /// While this file exists the stand-in ignores hello/isMaster.
    pub stop_hello: PathBuf,
}

impl Standin {
    pub fn start(name: &str) -> Standin {
        Self::start_on(name, 0, &super::common::tmpdir().join(format!("stop-{name}")))
    }

    pub fn start_on(name: &str, port: u16, stop_hello: &std::path::Path) -> Standin {
        Self::start_args(name, port, stop_hello, &[])
    }

    /// A stand-in whose hello answers come `delay` late.
    pub fn start_slow_hello(name: &str, delay: Duration) -> Standin {
        let stop = super::common::tmpdir().join(format!("stop-{name}"));
        Self::start_args(name, 0, &stop, &["--hello-delay", &delay.as_secs_f64().to_string()])
    }

    /// A stand-in that serves TLS only, with this certificate and key.
    pub fn start_tls(name: &str, cert: &std::path::Path, key: &std::path::Path) -> Standin {
        let stop = super::common::tmpdir().join(format!("stop-{name}"));
        let args = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
        Self::start_args(name, 0, &stop, &args)
    }

    fn start_args(name: &str, port: u16, stop_hello: &std::path::Path, extra: &[&str]) -> Standin {
        let mut cmd = Command::new(python());
        cmd.arg(script("standin.py")).args(["--name", name, "--stop-hello", stop_hello.to_str().unwrap()]).args(extra);
        if port != 0 {
            cmd.args(["--port", &port.to_string()]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!("stand-in {name} did not start: {line:?}");
        });
        Standin { child, _stdin: stdin, port, name: name.to_string(), stop_hello: stop_hello.to_path_buf() }
    }

    pub fn stop_answering_hello(&self) {
        std::fs::write(&self.stop_hello, b"").unwrap();
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mongos pool over `backends` ((name, port) pairs), quick health checks.
pub fn mongos_config(listen: u16, backends: &[(&str, u16)], extra_pool: &str) -> String {
    let servers: Vec<String> = backends.iter().map(|(n, p)| format!("\"127.0.0.1:{p} {n}\"")).collect();
    format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"5s\"\n\
         [[pool]]\nname = \"mongo\"\nlisten = \"127.0.0.1:{listen}\"\nmode = \"mongos\"\nservers = [{}]\n\
         check_interval = \"300ms\"\ncheck_timeout = \"250ms\"\nrise = 1\nfall = 2\n{extra_pool}\n",
        servers.join(", ")
    )
}

/// A minimal blocking OP_MSG client.
pub struct Mongo {
    pub s: TcpStream,
    next_id: i32,
}

pub fn op_msg(id: i32, d: &Document) -> Vec<u8> {
    let mut body = 0u32.to_le_bytes().to_vec();
    body.push(0);
    d.to_writer(&mut body).unwrap();
    let mut out = ((16 + body.len()) as i32).to_le_bytes().to_vec();
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&2013i32.to_le_bytes());
    out.extend(body);
    out
}

/// Reads one OP_MSG; returns (responseTo, section-0 document).
pub fn read_msg(s: &mut TcpStream) -> std::io::Result<(i32, Document)> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h)?;
    let len = i32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
    let to = i32::from_le_bytes(h[8..12].try_into().unwrap());
    let mut body = vec![0u8; len - 16];
    s.read_exact(&mut body)?;
    let d = Document::from_reader(&body[5..]).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((to, d))
}

impl Mongo {
    pub fn connect(port: u16) -> Mongo {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Mongo { s, next_id: 1 }
    }

    pub fn command(&mut self, d: Document) -> std::io::Result<Document> {
        let id = self.next_id;
        self.next_id += 1;
        self.s.write_all(&op_msg(id, &d))?;
        let (to, reply) = read_msg(&mut self.s)?;
        assert_eq!(to, id, "reply must answer the request");
        Ok(reply)
    }

    pub fn hello(&mut self, app: &str) -> Document {
        self.command(doc! {"hello": 1, "client": {"application": {"name": app}, "driver": {"name": "rust-test"}},
        "$db": "admin"})
            .unwrap()
    }

    /// Which stand-in this connection reaches.
    pub fn whoami(&mut self) -> String {
        self.command(doc! {"whoami": 1, "$db": "admin"}).unwrap().get_str("name").unwrap().to_string()
    }

    /// True if the peer closed the connection within the read timeout (a
    /// timeout means it is still open: false).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        super::common::closed_by_peer(self.s.read(&mut b))
    }
}
