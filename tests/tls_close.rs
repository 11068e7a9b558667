//! A reply queued right before Puerta closes a client reaches the client,
//! under both drivers, over TLS (followed by a close_notify, so a TLS
//! client sees a clean close, not a truncation) and in plaintext: QUIT
//! (closes silently in redis pools, as nutcracker does; answers +OK in
//! cluster pools, as Redis does), a protocol error, and a large reply
//! pipelined with QUIT to a client that reads late (so the last
//! ciphertext is still queued when the session closes the client).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::tls::{client_config, redis_cli, Ca, Leaf, TlsResp};
use common::{drivers, free_port, redis, tmpdir, Puerta};

fn tls_line(leaf: &Leaf) -> String {
    format!("tls = {{ cert = \"{}\", key = \"{}\" }}", leaf.cert.display(), leaf.key.display())
}

fn config(port: u16, plain: u16, backend: u16, tls: &str) -> String {
    format!(
        "[server]\nworkers = 1\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"1s\"\n\n\
         [[pool]]\nname = \"r\"\nmode = \"redis\"\nlisten = \"127.0.0.1:{port}\"\n\
         plain_listen = \"127.0.0.1:{plain}\"\nservers = [\"127.0.0.1:{backend}:1\"]\n{tls}\n"
    )
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// 8 MiB: more than loopback socket buffers hold, so while the client
/// sleeps the tail of the reply waits in Puerta.
const BIG: usize = 8 << 20;

#[test]
fn replies_before_a_close_reach_the_client() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "close");
    let leaf = ca.leaf(&dir, "server", false);
    let backend = redis();
    let big = "b".repeat(BIG);
    for io in drivers() {
        let (port, plain) = (free_port(), free_port());
        let p = Puerta::start(&config(port, plain, backend.port, &tls_line(&leaf)), io);
        let cfg = client_config(&ca.pem, None);

        let mut c = TlsResp::connect(port, cfg.clone()).unwrap();
        assert_eq!(c.cmd(&["SET", "big", &big]).unwrap(), "OK", "{io}");
        c.send_raw(&resp(&["QUIT"])).unwrap();
        assert_eq!(c.read_to_close(), Ok(Vec::new()), "{io}: a clean TLS close after QUIT");

        let mut c = TlsResp::connect(port, cfg.clone()).unwrap();
        c.send_raw(b"*1\r\n+PING\r\n").unwrap();
        let got = c.read_to_close().unwrap_or_else(|e| panic!("{io}: protocol error: {e}"));
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("-ERR Protocol error"), "{io}: {got:?}");

        // The whole value, though the client reads late, then the close.
        let mut c = TlsResp::connect(port, cfg.clone()).unwrap();
        c.send_raw(&[resp(&["GET", "big"]), resp(&["QUIT"])].concat()).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(c.reply().map(|r| r.len()), Ok(BIG), "{io}: the large reply");
        assert_eq!(c.read_to_close(), Ok(Vec::new()), "{io}: a clean TLS close after a large reply");

        // Plaintext: the same pipeline on `plain_listen`.
        let mut s = std::net::TcpStream::connect(("127.0.0.1", plain)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&[resp(&["GET", "big"]), resp(&["QUIT"])].concat()).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let want = format!("${BIG}\r\n{big}\r\n").into_bytes();
        assert!(got == want, "{io}: plaintext got {} bytes, want {}", got.len(), want.len());
        drop(p);
    }
}

#[test]
fn cluster_pool_quit_answers_ok_over_tls() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "cq");
    let leaf = ca.leaf(&dir, "server", false);
    let cluster = Cluster::start_with(3, 0, 2000);
    for io in drivers() {
        let proxy = ClusterProxy::start(&cluster, io, &tls_line(&leaf));
        let mut c = TlsResp::connect(proxy.port, client_config(&ca.pem, None)).unwrap();
        assert_eq!(c.cmd(&["SET", "q", "1"]), Ok("OK".to_string()), "{io}");
        assert_eq!(c.cmd(&["QUIT"]), Ok("OK".to_string()), "{io}: QUIT's +OK");
        assert_eq!(c.read_to_close(), Ok(Vec::new()), "{io}: a clean TLS close after QUIT");
        let (ok, out) = redis_cli(proxy.port, &ca.pem, None, &["quit"]);
        assert!(ok && out == "OK", "{io}: redis-cli --tls quit: {out}");
    }
}
