//! Proxy users (`[[user]]`, Redis ACL rules) through the real `puerta`
//! binary, both I/O drivers: a twemproxy redis pool over a real
//! redis-server and a redis_cluster pool over a real cluster. AUTH and
//! HELLO AUTH texts, the NOAUTH gate, command / key / channel denials,
//! MULTI, the scripting rule, and a reload that removes a user.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::{drivers, free_port, redis, wait_until, Puerta, Resp};

const USERS: &str = "[[user]]\nname = \"app\"\nrules = \"on >s3cret ~app:* &news.* +@all -@dangerous\"\n\
[[user]]\nname = \"ro\"\nrules = \"on >ro-pw %R~* +@read\"\n\
[[user]]\nname = \"default\"\nrules = \"on >pw allkeys allchannels +@all\"\n";

fn twem_config(listen: u16, backend: u16, users: &str) -> String {
    format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"2s\"\n\
         [[pool]]\nname = \"r\"\nlisten = \"127.0.0.1:{listen}\"\nmode = \"redis\"\n\
         servers = [\"127.0.0.1:{backend}:1\"]\nunsupported = \"error\"\n{users}"
    )
}

fn connect(port: u16) -> Resp {
    let mut c = None;
    wait_until("the pool to accept", Duration::from_secs(10), || {
        c = Resp::connect(port).ok();
        c.is_some()
    });
    c.expect("connected")
}

/// What every Redis pool must answer the same way.
fn common_checks(port: u16) {
    let mut c = connect(port);
    assert_eq!(c.cmd(&["GET", "app:1"]).unwrap(), "-NOAUTH Authentication required.");
    assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG");
    assert_eq!(
        c.cmd(&["AUTH", "app", "wrong"]).unwrap(),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(c.cmd(&["AUTH", "app", "s3cret"]).unwrap(), "OK");
    assert_eq!(c.cmd(&["SET", "app:1", "v"]).unwrap(), "OK");
    assert_eq!(c.cmd(&["GET", "app:1"]).unwrap(), "v");
    assert_eq!(c.cmd(&["GET", "other"]).unwrap(), "-NOPERM No permissions to access a key");
    assert_eq!(c.cmd(&["MSET", "app:2", "x", "other", "y"]).unwrap(), "-NOPERM No permissions to access a key");
    assert_eq!(c.cmd(&["GET", "app:2"]).unwrap(), "(nil)", "nothing of a denied MSET was sent");
    assert_eq!(c.cmd(&["FLUSHALL"]).unwrap(), "-NOPERM User app has no permissions to run the 'flushall' command");
    assert_eq!(
        c.cmd(&["EVAL", "return 1", "1", "app:1"]).unwrap(),
        "-NOPERM User app has no permissions to run the 'eval' command",
        "scripts need allkeys or +@scripting"
    );
    // HELLO 3 AUTH on a fresh connection, then a read-only user.
    let mut h = connect(port);
    h.cmd(&["HELLO", "3", "AUTH", "ro", "ro-pw"]).unwrap();
    let mut rest = String::new();
    for _ in 0..14 {
        rest.push_str(&h.reply().unwrap());
    }
    assert_eq!(h.cmd(&["GET", "app:1"]).unwrap(), "v");
    assert_eq!(h.cmd(&["SET", "app:1", "w"]).unwrap(), "-NOPERM User ro has no permissions to run the 'set' command");
    // AUTH <password> is user default.
    let mut d = connect(port);
    assert_eq!(d.cmd(&["AUTH", "pw"]).unwrap(), "OK");
    assert_eq!(d.cmd(&["DEL", "app:1"]).unwrap(), "1");
}

#[test]
fn twemproxy_pool_users() {
    let backend = redis();
    for io in drivers() {
        let listen = free_port();
        let p = Puerta::start(&twem_config(listen, backend.port, USERS), io);
        common_checks(listen);

        // Reload without `app`: its connection closes between requests,
        // `ro` keeps working under its new rules.
        let mut app = connect(listen);
        assert_eq!(app.cmd(&["AUTH", "app", "s3cret"]).unwrap(), "OK");
        let mut ro = connect(listen);
        assert_eq!(ro.cmd(&["AUTH", "ro", "ro-pw"]).unwrap(), "OK");
        let users = "[[user]]\nname = \"ro\"\nrules = \"on >ro-pw %R~* +get\"\n";
        std::fs::write(&p.config, twem_config(listen, backend.port, users).replace("{admin}", &p.admin.to_string()))
            .unwrap();
        let (status, body) = p.post("/reload");
        assert_eq!(status, 200, "{io}: reload: {body}");
        assert!(app.is_closed(), "{io}: the removed user's connection is closed");
        wait_until("the new rules", Duration::from_secs(5), || {
            ro.cmd(&["EXISTS", "k"]).unwrap().starts_with("-NOPERM")
        });
        assert_eq!(ro.cmd(&["GET", "k"]).unwrap(), "(nil)");
        let mut again = connect(listen);
        assert_eq!(
            again.cmd(&["AUTH", "app", "s3cret"]).unwrap(),
            "-WRONGPASS invalid username-password pair or user is disabled."
        );
    }
}

#[test]
fn cluster_pool_users() {
    let cluster = Cluster::start();
    for io in drivers() {
        let extra = format!("client_auth = {{ legacy = \"old-pw\" }}\n{USERS}");
        let p = ClusterProxy::start(&cluster, io, &extra);
        common_checks(p.port);
        let mut c = connect(p.port);
        assert_eq!(c.cmd(&["AUTH", "legacy", "old-pw"]).unwrap(), "OK", "{io}: client_auth is a user");
        let mut app = connect(p.port);
        assert_eq!(app.cmd(&["AUTH", "app", "s3cret"]).unwrap(), "OK");
        // MULTI: the denial at queue time, EXECABORT at EXEC.
        assert_eq!(app.cmd(&["MULTI"]).unwrap(), "OK");
        assert_eq!(app.cmd(&["SET", "other", "v"]).unwrap(), "-NOPERM No permissions to access a key");
        assert!(app.cmd(&["EXEC"]).unwrap().starts_with("-EXECABORT"), "{io}");
        // Pub/sub channels.
        assert_eq!(app.cmd(&["PUBLISH", "other", "m"]).unwrap(), "-NOPERM No permissions to access a channel");
        assert_eq!(app.cmd(&["PUBLISH", "news.x", "m"]).unwrap(), "0");
        assert_eq!(app.cmd(&["SUBSCRIBE", "other"]).unwrap(), "-NOPERM No permissions to access a channel");
        assert_eq!(app.cmd(&["SUBSCRIBE", "news.a"]).unwrap(), "*3");
        assert_eq!(app.reply().unwrap(), "subscribe", "{io}");
        drop(p);
    }
}

#[test]
fn memcache_pool_admits_users_by_source_ip() {
    use std::io::{Read, Write};
    let mc = common::twem::memcached();
    for io in drivers() {
        let listen = free_port();
        let pool = format!(
            "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\n\
             [[pool]]\nname = \"m\"\nlisten = \"127.0.0.1:{listen}\"\nmode = \"memcache\"\n\
             servers = [\"127.0.0.1:{}:1\"]\n",
            mc.port
        );
        let open = |source: &str| format!("{pool}[[user]]\nname = \"web\"\nrules = \"on\"\nsource = [\"{source}\"]\n");
        let p = Puerta::start(&open("10.0.0.0/8"), io);
        let mut c = connect(listen);
        assert!(c.is_closed(), "{io}: a loopback client is no user of 10.0.0.0/8");
        std::fs::write(&p.config, open("127.0.0.0/8").replace("{admin}", &p.admin.to_string())).unwrap();
        assert_eq!(p.post("/reload").0, 200);
        wait_until("loopback admitted", Duration::from_secs(5), || {
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", listen)) else { return false };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 64];
            s.write_all(b"version\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"VERSION"))
        });
    }
}
