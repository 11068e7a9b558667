//! Backend TLS end to end (`backend_tls`: Puerta originates TLS), under
//! both drivers: a real redis-server serving TLS only behind a twemproxy
//! redis pool (plaintext clients, and TLS on both sides with
//! `redis-cli --tls`); mutual TLS; handshakes that must fail (wrong CA, a
//! missing client certificate, a hostname mismatch) with the pool's clear
//! error while other pools keep serving; and a real TLS cluster
//! (`--tls-cluster yes`) behind a redis_cluster pool; a memcache pool to
//! memcached's TLS listener (`-Z`); a backend that never answers the
//! handshake, cut by `connect_timeout`, counted as a "timeout" failure.
mod common;
use std::time::Duration;

use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::tls::{
    self, client_config, memcached_tls, puerta_check, redis_cli, redis_tls, redis_tls_args, tls_line, Ca, Leaf,
    TlsResp, SERVER,
};
use common::twem::RawMemcache;
use common::{drivers, free_port, tmpdir, wait_until, Puerta, Resp};

fn backend_tls(ca: &Ca, client: Option<&Leaf>, extra: &str) -> String {
    let mtls =
        client.map(|l| format!(", cert = \"{}\", key = \"{}\"", l.cert.display(), l.key.display())).unwrap_or_default();
    format!("backend_tls = {{ ca = \"{}\"{mtls}{extra} }}", ca.pem.display())
}

/// A redis pool that retries a failed server soon.
fn pool(name: &str, port: u16, backend: u16, extra: &str) -> String {
    tls::redis_pool(name, port, backend, &format!("server_retry_timeout = \"200ms\"\n{extra}"))
}

/// A pool's `servers` written as `localhost:port` instead of the IP.
fn by_host(pool: &str) -> String {
    pool.replace("servers = [\"127.0.0.1:", "servers = [\"localhost:")
}

#[test]
fn redis_pool_to_a_tls_only_backend() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "be");
    let leaf = ca.leaf(&dir, "redis", false);
    let front = ca.leaf(&dir, "front", false);
    let backend = redis_tls(&ca, &leaf, false);
    for io in drivers() {
        let (port, both) = (free_port(), free_port());
        let tls_front = tls_line(&front, None);
        let mut cfg = SERVER.to_string();
        cfg.push_str(&pool("r", port, backend.port, &backend_tls(&ca, None, "")));
        cfg.push_str(&pool("both", both, backend.port, &format!("{}\n{tls_front}", backend_tls(&ca, None, ""))));
        let p = Puerta::start(&cfg, io);
        let mut c = Resp::connect(port).unwrap();
        // Pipelined before the backend handshake can have finished: the
        // requests wait for it and go out after it, in order.
        for i in 0..20 {
            c.send(&["SET", &format!("{io}-k{i}"), &i.to_string()]).unwrap();
        }
        for i in 0..20 {
            assert_eq!(c.reply().unwrap(), "OK", "{io}: pipelined SET {i}");
        }
        for i in 0..20 {
            assert_eq!(c.cmd(&["GET", &format!("{io}-k{i}")]).unwrap(), i.to_string(), "{io}");
        }
        // A large value both ways: many TLS records, more than the bounded
        // ciphertext queue holds at once.
        let big = "y".repeat(700_000);
        assert_eq!(c.cmd(&["SET", &format!("{io}-big"), &big]).unwrap(), "OK", "{io}");
        assert_eq!(c.cmd(&["GET", &format!("{io}-big")]).unwrap().len(), big.len(), "{io}");

        // TLS on both sides, redis-cli --tls as the client.
        let (ok, out) = redis_cli(both, &ca.pem, None, &["get", &format!("{io}-k7")]);
        assert!(ok && out == "7", "{io}: redis-cli --tls through TLS on both sides: {out}");
        let mut t = TlsResp::connect(both, client_config(&ca.pem, None)).unwrap();
        assert_eq!(t.cmd(&["GET", &format!("{io}-big")]).unwrap().len(), big.len(), "{io}");

        assert!(p.metric("puerta_tls_established_total", "side=\"backend\"") >= 2.0, "{io}");
        assert!(p.metric("puerta_tls_handshakes_total", "side=\"backend\"") >= 2.0, "{io}");
        assert_eq!(p.metric("puerta_tls_handshake_failures_total", "side=\"backend\""), 0.0, "{io}");
    }
}

#[test]
fn mutual_tls_and_failed_handshakes() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "good");
    let other = Ca::new(&dir, "other");
    let leaf = ca.leaf(&dir, "redis", false);
    let client = ca.leaf(&dir, "puerta", false);
    let plain = common::redis();
    let mtls = redis_tls(&ca, &leaf, true);
    for io in drivers() {
        let ports: Vec<u16> = (0..7).map(|_| free_port()).collect();
        let mut cfg = SERVER.to_string();
        cfg.push_str(&pool("mtls", ports[0], mtls.port, &backend_tls(&ca, Some(&client), "")));
        cfg.push_str(&pool("nocert", ports[1], mtls.port, &backend_tls(&ca, None, "")));
        cfg.push_str(&pool("wrongca", ports[2], mtls.port, &backend_tls(&other, Some(&client), "")));
        let mismatch = backend_tls(&ca, Some(&client), ", server_name = \"redis.example.org\"");
        cfg.push_str(&pool("mismatch", ports[3], mtls.port, &mismatch));
        cfg.push_str(&pool("plain", ports[4], plain.port, ""));
        // verify = false: no CA, any certificate (here one `other` never
        // signed for this host is not even looked at).
        let noverify = format!(
            "backend_tls = {{ verify = false, cert = \"{}\", key = \"{}\" }}",
            client.cert.display(),
            client.key.display()
        );
        cfg.push_str(&pool("noverify", ports[5], mtls.port, &noverify));
        // The default name is the host as written in `servers`.
        let by_name = pool("byname", ports[6], mtls.port, &backend_tls(&ca, Some(&client), ""));
        cfg.push_str(&by_host(&by_name));
        let p = Puerta::start(&cfg, io);

        let mut good = Resp::connect(ports[0]).unwrap();
        assert_eq!(good.cmd(&["SET", "m", "1"]).unwrap(), "OK", "{io}: mutual TLS");
        // Each failing pool answers its clients with the pool's clear error.
        for (name, port) in [("nocert", ports[1]), ("wrongca", ports[2]), ("mismatch", ports[3])] {
            let mut c = Resp::connect(port).unwrap();
            let got = c.cmd(&["GET", "m"]).unwrap();
            // The session's failed-connect error, strerror(EPROTO).
            assert_eq!(got, "-ERR Protocol error", "{io}: pool {name} through a failed handshake");
        }
        for (name, port) in [("noverify", ports[5]), ("byname", ports[6])] {
            let mut c = Resp::connect(port).unwrap();
            assert_eq!(c.cmd(&["GET", "m"]).unwrap(), "1", "{io}: pool {name}");
        }
        // Puerta keeps serving the other pools.
        assert_eq!(good.cmd(&["GET", "m"]).unwrap(), "1", "{io}");
        let mut pl = Resp::connect(ports[4]).unwrap();
        assert_eq!(pl.cmd(&["PING"]).unwrap(), "PONG", "{io}");
        wait_until("backend TLS failures counted", Duration::from_secs(5), || {
            p.metric("puerta_tls_handshake_failures_total", "side=\"backend\",reason=\"bad_certificate\"") >= 2.0
        });
        // TLS 1.3: the missing client certificate is refused by an alert
        // after the handshake; it counts as a handshake failure all the same.
        wait_until("no_certificate counted", Duration::from_secs(5), || {
            p.metric("puerta_tls_handshake_failures_total", "side=\"backend\",reason=\"no_certificate\"") >= 1.0
        });
        assert!(p.log().contains("TLS handshake with a backend failed"), "{io}");
    }
}

#[test]
fn memcache_pool_to_a_tls_memcached() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "mc");
    let leaf = ca.leaf(&dir, "memcached", false);
    let backend = memcached_tls(&leaf);
    for io in drivers() {
        let port = free_port();
        let cfg = format!(
            "{SERVER}\n[[pool]]\nname = \"m\"\nmode = \"memcache\"\nlisten = \"127.0.0.1:{port}\"\n\
             servers = [\"127.0.0.1:{}:1\"]\n{}\n",
            backend.port,
            backend_tls(&ca, None, "")
        );
        let p = Puerta::start(&cfg, io);
        let keys: Vec<Vec<u8>> = (0..40).map(|i| format!("{io}-mk{i}").into_bytes()).collect();
        let mut c = RawMemcache::connect(port);
        c.set_all(&keys);
        assert!(c.present(&keys).iter().all(|&p| p), "{io}: keys set through TLS are read back");
        assert!(p.metric("puerta_tls_established_total", "side=\"backend\"") >= 1.0, "{io}");
    }
}

#[test]
fn cluster_pool_to_a_tls_cluster() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "cl");
    let leaf = ca.leaf(&dir, "node", false);
    let front = ca.leaf(&dir, "front", false);
    let cli = vec!["--tls".to_string(), "--cacert".to_string(), ca.pem.display().to_string()];
    let cluster = Cluster::start_tls(3, 0, (redis_tls_args(&ca, &leaf, false), cli));
    let tls_front = tls_line(&front, None);
    for io in drivers() {
        // TLS on both sides: Puerta terminates the clients' TLS and
        // originates TLS to every node (and to the refresh's CLUSTER SLOTS).
        let extra = format!("{}\n{tls_front}", backend_tls(&ca, None, ""));
        let proxy = ClusterProxy::start_tls(&cluster, io, &extra);
        let mut c = TlsResp::connect(proxy.port, client_config(&ca.pem, None)).unwrap();
        let keys: Vec<String> = (0..60).map(|i| format!("{io}-ck{i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(c.cmd(&["SET", k, &i.to_string()]).unwrap(), "OK", "{io}: SET {k}");
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(c.cmd(&["GET", k]).unwrap(), i.to_string(), "{io}: GET {k}");
        }
        let (ok, out) = redis_cli(proxy.port, &ca.pem, None, &["get", &keys[7]]);
        assert!(ok && out == "7", "{io}: redis-cli --tls through a cluster pool over TLS: {out}");

        // A slot moves to another master under Puerta: its keys stay
        // reachable (MOVED or the next refresh), over TLS to the new owner.
        let slot = puerta::route::keyslot(keys[3].as_bytes());
        let from = cluster.owner_of(slot);
        let to = *cluster.master_ports().iter().find(|&&p| p != from).unwrap();
        cluster.move_slot(slot, to);
        assert_eq!(c.cmd(&["GET", &keys[3]]).unwrap(), "3", "{io}: GET after the slot moved");
        assert_eq!(c.cmd(&["SET", &keys[3], "moved"]).unwrap(), "OK", "{io}");
        assert_eq!(c.cmd(&["GET", &keys[3]]).unwrap(), "moved", "{io}");

        let p = &proxy.puerta;
        assert!(p.metric("puerta_tls_established_total", "side=\"backend\"") >= 3.0, "{io}");
        assert_eq!(p.metric("puerta_tls_handshake_failures_total", "side=\"backend\""), 0.0, "{io}");
    }
}

#[test]
fn announced_hostnames_name_cluster_nodes() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "ann");
    // One certificate for every node's announced hostname (and localhost,
    // the seeds' host as written), but not for their IP.
    let names = ["localhost", "node-0.test", "node-1.test", "node-2.test"];
    let leaf = ca.client(&dir, "nodes", "nodes", &names);
    let cli = vec!["--tls".to_string(), "--cacert".to_string(), ca.pem.display().to_string()];
    let cluster = Cluster::start_tls_hostnames(3, 0, (redis_tls_args(&ca, &leaf, false), cli));
    let seeds: Vec<String> = cluster.tls_seeds().iter().map(|s| s.replace("127.0.0.1:", "localhost:")).collect();
    for io in drivers() {
        let announced = ClusterProxy::start_on(&seeds, io, &backend_tls(&ca, None, ", server_name = \"announced\""));
        let mut c = Resp::connect(announced.port).unwrap();
        let keys: Vec<String> = (0..30).map(|i| format!("{io}-an{i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(c.cmd(&["SET", k, &i.to_string()]).unwrap(), "OK", "{io}: SET {k}");
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(c.cmd(&["GET", k]).unwrap(), i.to_string(), "{io}: GET {k}");
        }
        let p = &announced.puerta;
        assert!(p.metric("puerta_tls_established_total", "side=\"backend\"") >= 3.0, "{io}");
        assert_eq!(p.metric("puerta_tls_handshake_failures_total", "side=\"backend\""), 0.0, "{io}");
        drop(announced);

        // Without "announced" the nodes are named by their IP, which the
        // certificate does not cover (the seeds, named as written, verify).
        let by_ip = ClusterProxy::start_on(&seeds, io, &backend_tls(&ca, None, ""));
        let mut c = Resp::connect(by_ip.port).unwrap();
        // (The pool retries the node, so the reply may be an error or late.)
        let got = c.cmd(&["GET", &keys[0]]);
        assert!(got.as_deref().is_ok_and(|r| r.starts_with("-ERR")) || got.is_err(), "{io}: {got:?}");
        let failed = "side=\"backend\",reason=\"bad_certificate\"";
        assert!(by_ip.puerta.metric("puerta_tls_handshake_failures_total", failed) >= 1.0, "{io}");
    }
}

#[test]
fn default_server_name_is_the_host_as_written() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "names");
    // A certificate for "localhost" only: no IP SAN.
    let leaf = ca.leaf_for(&dir, "redis", false, false);
    let backend = redis_tls(&ca, &leaf, false);
    for io in drivers() {
        let (by_name, by_ip) = (free_port(), free_port());
        let mut cfg = SERVER.to_string();
        let tls = backend_tls(&ca, None, "");
        cfg.push_str(&by_host(&pool("name", by_name, backend.port, &tls)));
        cfg.push_str(&pool("ip", by_ip, backend.port, &tls));
        let p = Puerta::start(&cfg, io);
        let mut c = Resp::connect(by_name).unwrap();
        assert_eq!(c.cmd(&["SET", "n", "1"]).unwrap(), "OK", "{io}: localhost verified as written");
        let mut c = Resp::connect(by_ip).unwrap();
        assert_eq!(c.cmd(&["GET", "n"]).unwrap(), "-ERR Protocol error", "{io}: 127.0.0.1 is not in the certificate");
        assert!(p.metric("puerta_tls_handshake_failures_total", "side=\"backend\",reason=\"bad_certificate\"") >= 1.0);
    }
}

#[test]
fn check_validates_backend_tls() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "chk");
    let leaf = ca.leaf(&dir, "client", false);
    let run = |mode: &str, tls: &str| {
        let text = pool("p", free_port(), 6379, tls).replace("mode = \"redis\"", &format!("mode = \"{mode}\""));
        puerta_check(&dir, &format!("{SERVER}{text}"))
    };
    for mode in ["redis", "memcache"] {
        let (ok, err) = run(mode, &backend_tls(&ca, Some(&leaf), ""));
        assert!(ok, "{mode}: {err}");
    }
    let (ok, err) = run("redis", &backend_tls(&ca, None, ", server_name = \"announced\""));
    assert!(!ok && err.contains("backend_tls.server_name") && err.contains("redis_cluster"), "{err}");
    let (ok, err) =
        run("redis", &format!("backend_tls = {{ ca = \"{}\", cert = \"{}\" }}", ca.pem.display(), leaf.cert.display()));
    assert!(!ok && err.contains("backend_tls.key") && err.contains("together"), "{err}");
    let (ok, err) = run("redis", "backend_tls = { server_name = \"x\" }");
    assert!(!ok && err.contains("backend_tls.ca") && err.contains("verify"), "{err}");
    let (ok, err) = run("redis", &format!("backend_tls = {{ ca = \"{}\" }}", dir.join("nope.pem").display()));
    assert!(!ok && err.contains("backend_tls.ca") && err.contains("nope.pem"), "{err}");
}

#[test]
fn a_handshake_cut_by_connect_timeout_counts_as_timeout() {
    let dir = tmpdir();
    let ca = Ca::new(&dir, "stall");
    // Accepts TCP (the kernel's backlog) but never answers the ClientHello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = silent.local_addr().unwrap().port();
    for io in drivers() {
        let port = free_port();
        // The session's connect deadline comes long before the handshake's.
        let extra =
            format!("connect_timeout = \"300ms\"\ntls_handshake_timeout = \"10s\"\n{}", backend_tls(&ca, None, ""));
        let p = Puerta::start(&format!("{SERVER}{}", pool("stall", port, backend, &extra)), io);
        let mut c = Resp::connect(port).unwrap();
        let got = c.cmd(&["GET", "k"]).unwrap();
        assert_eq!(got, "-ERR Connection timed out", "{io}");
        let failures = "puerta_tls_handshake_failures_total";
        wait_until("the cut handshake counted", Duration::from_secs(5), || {
            p.metric(failures, "side=\"backend\",reason=\"timeout\"") >= 1.0
        });
        assert_eq!(p.metric(failures, "side=\"backend\",reason=\"closed\""), 0.0, "{io}: counted as closed");
        assert!(p.metric("puerta_tls_handshakes_total", "side=\"backend\"") >= 1.0, "{io}");
    }
}
