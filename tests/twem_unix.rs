//! Pools on unix sockets (nutcracker's `listen: /path/to.sock 0666`) through
//! the real `puerta` binary, under both I/O drivers: a stale socket file is
//! replaced, the permissions are applied, clients of several connections
//! (spread over both workers) set and get through the same mux session as
//! TCP clients, keys land where the ring says, and the file is removed on a
//! clean shutdown.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use common::twem::{command, memcached, RawResp, Reply};
use common::twem_puerta::PuertaTwem;
use common::{drivers, redis, tmpdir, wait_until};

fn ok() -> Reply {
    Reply::Status(b"OK".to_vec())
}

/// A TCP redis pool (what `PuertaTwem` waits on), a redis pool on `rsock`
/// and a memcache pool on `msock`.
fn conf(redis_ports: &[u16], mc_port: u16, rsock: &Path, msock: &Path) -> String {
    let servers: String = redis_ports.iter().map(|p| format!("   - 127.0.0.1:{p}:1\n")).collect();
    format!(
        "tcp:\n  listen: 127.0.0.1:{{listen}}\n  redis: true\n  servers:\n{servers}\
         unix:\n  listen: {} 0666\n  redis: true\n  hash: murmur\n  servers:\n{servers}\
         mc:\n  listen: {} 0600\n  servers:\n   - 127.0.0.1:{mc_port}:1\n",
        rsock.display(),
        msock.display()
    )
}

#[test]
fn pools_on_unix_sockets_serve_under_both_drivers() {
    let backends = [redis(), redis()];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let mc = memcached();
    for io in drivers() {
        let dir = tmpdir();
        let (rsock, msock) = (dir.join("redis.sock"), dir.join("mc.sock"));
        // A socket file left by an earlier (crashed) run is replaced.
        drop(UnixListener::bind(&rsock).unwrap());
        assert!(UnixStream::connect(&rsock).is_err(), "nothing listens on the stale file");
        let text = conf(&ports, mc.port, &rsock, &msock);
        let px = PuertaTwem::start_with(&text, io, "nutcracker.yml", &[]);
        wait_until("the unix socket to accept", Duration::from_secs(10), || UnixStream::connect(&rsock).is_ok());
        for (path, mode) in [(&rsock, 0o666), (&msock, 0o600)] {
            let m = std::fs::metadata(path).unwrap();
            assert!(m.file_type().is_socket(), "{io}: {}", path.display());
            assert_eq!(m.permissions().mode() & 0o777, mode, "{io}: {}", path.display());
        }

        // Eight clients at once (both workers accept from the one socket),
        // each pipelining its own keys in one write.
        for b in &backends {
            RawResp::connect(b.port).cmd(&[b"FLUSHALL"]);
        }
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = rsock.clone();
                std::thread::spawn(move || {
                    let mut c = RawResp::connect_unix(&path);
                    let keys: Vec<String> = (0..100).map(|i| format!("u{t}-{i}")).collect();
                    let sets: Vec<Vec<u8>> =
                        keys.iter().map(|k| command(&[b"SET", k.as_bytes(), format!("v-{k}").as_bytes()])).collect();
                    assert!(c.pipeline(&sets).iter().all(|r| *r == ok()));
                    let gets: Vec<Vec<u8>> = keys.iter().map(|k| command(&[b"GET", k.as_bytes()])).collect();
                    for (k, r) in keys.iter().zip(c.pipeline(&gets)) {
                        assert_eq!(r, Reply::Bulk(Some(format!("v-{k}").into_bytes())));
                    }
                    // A fan-out over both servers, merged in order.
                    let mget = c.cmd(&[b"MGET", keys[0].as_bytes(), b"nope", keys[99].as_bytes()]);
                    let want = [Some(format!("v-{}", keys[0])), None, Some(format!("v-{}", keys[99]))];
                    let want = want.into_iter().map(|v| Reply::Bulk(v.map(String::into_bytes))).collect();
                    assert_eq!(mget, Reply::Array(Some(want)));
                    keys
                })
            })
            .collect();
        let keys: Vec<String> = threads.into_iter().flat_map(|t| t.join().expect("a client thread")).collect();

        // Every key is on the backend the unix pool's ring names.
        let cfg = puerta::config::load(&px.conf).unwrap_or_else(|e| panic!("{e}"));
        let pool = cfg.pools.iter().find(|p| p.name == "unix").expect("the unix pool");
        let ring = puerta::route::ring::for_pool(pool, &|_| true).expect("a ring");
        let held: Vec<Vec<Vec<u8>>> = backends.iter().map(|b| RawResp::connect(b.port).keys()).collect();
        assert_eq!(held.iter().map(Vec::len).sum::<usize>(), keys.len(), "{io}");
        for k in &keys {
            let owner = ring.pick(k.as_bytes()).unwrap() as usize;
            assert!(held[owner].contains(&k.as_bytes().to_vec()), "{io}: {k} not on backend {owner}");
        }
        assert!(held.iter().all(|h| !h.is_empty()), "{io}: keys on both backends");

        // The memcache pool on its own socket: set, get, an exact END.
        let s = UnixStream::connect(&msock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        (&s).write_all(b"set mk 0 0 2\r\nhi\r\nget mk nokey\r\n").unwrap();
        let mut got = String::new();
        for _ in 0..4 {
            r.read_line(&mut got).unwrap();
        }
        assert_eq!(got, "STORED\r\nVALUE mk 0 2\r\nhi\r\nEND\r\n", "{io}");
        drop((r, s));

        // A clean shutdown removes both socket files.
        px.signal(libc::SIGTERM);
        let mut px = px;
        let status = px.proc.child.wait().unwrap();
        assert!(status.success(), "{io}: exit {status}");
        assert!(!rsock.exists() && !msock.exists(), "{io}: socket files left after shutdown");
    }
}
