//! Issue 17, "Measure", end to end under both I/O drivers: per-command
//! counts, error classes and latency histograms in /metrics for a
//! twemproxy redis pool, a memcache pool, a redis_cluster pool and a
//! mongos pool match what the test sent; the slow log catches a request
//! slowed on purpose (`DEBUG SLEEP` on the backend it waits for), read
//! with `SLOWLOG GET` through the proxy and with `GET /slowlog`.

mod common;
mod mongo_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bson::doc;
use common::cluster::Cluster;
use common::cluster_puerta::ClusterProxy;
use common::twem::{command, memcached, RawResp, Reply};
use common::twem_puerta::PuertaTwem;
use common::{drivers, free_port, http, redis, Puerta};
use mongo_support::{mongos_config, Mongo, Standin};

/// The threshold the tests configure: far above an ordinary request on a
/// loaded test machine, far below the 300 ms the slowed request waits.
const SLOW: &str = "slow_op_threshold = \"100ms\"\n";
const SLEEP: &str = "0.3";

fn cmd(args: &[&str]) -> Vec<u8> {
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    command(&raw)
}

/// Makes the redis at `port` sleep (it is single-threaded: everything sent
/// to it meanwhile waits), returning once the sleep surely began.
fn sleep_backend(port: u16) -> JoinHandle<()> {
    let h = std::thread::spawn(move || {
        let mut c = RawResp::connect(port);
        assert_eq!(c.cmd(&[b"DEBUG", b"SLEEP", SLEEP.as_bytes()]), Reply::Status(b"OK".to_vec()));
    });
    std::thread::sleep(Duration::from_millis(50));
    h
}

/// Sends `GET key` through `c` while its backend sleeps; checks it waited.
fn slowed_get(c: &mut RawResp, backend: u16, key: &str) {
    let sleeper = sleep_backend(backend);
    let t0 = Instant::now();
    let _ = c.cmd(&[b"GET", key.as_bytes()]);
    assert!(t0.elapsed() >= Duration::from_millis(150), "the GET waited for the sleeping backend");
    sleeper.join().unwrap();
}

/// Traffic with known counts for a Redis pool: 20 SET, 30 GET, 5 MGET,
/// 3 LPUSH answered WRONGTYPE.
fn redis_traffic(c: &mut RawResp, keys: &[String]) {
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.push(cmd(&["SET", &keys[i % keys.len()], "v"]));
    }
    for i in 0..30 {
        batch.push(cmd(&["GET", &keys[i % keys.len()]]));
    }
    for _ in 0..5 {
        batch.push(cmd(&["MGET", &keys[0], &keys[1], &keys[2]]));
    }
    for _ in 0..3 {
        batch.push(cmd(&["LPUSH", &keys[0], "x"]));
    }
    let replies = c.pipeline(&batch);
    let wrongtype = replies.iter().filter(|r| matches!(r, Reply::Error(e) if e.starts_with(b"WRONGTYPE"))).count();
    assert_eq!(wrongtype, 3, "{replies:?}");
}

/// The per-command figures of pool `pool` read through `metric`.
fn assert_redis_counts(metric: &dyn Fn(&str, &str) -> f64, pool: &str, io: &str) {
    let l = |c: &str| format!("pool=\"{pool}\",command=\"{c}\"");
    let req = |c: &str| metric("puerta_command_requests_total", &l(c));
    assert_eq!(req("SET"), 20.0, "{io}");
    assert_eq!(req("GET"), 31.0, "{io}: 30 plus the slowed one");
    assert_eq!(req("MGET"), 5.0, "{io}");
    assert_eq!(req("LPUSH"), 3.0, "{io}");
    let errs = |c: &str, class: &str| metric("puerta_command_errors_total", &format!("{},class=\"{class}\"", l(c)));
    assert_eq!(errs("LPUSH", "WRONGTYPE"), 3.0, "{io}");
    assert_eq!(metric("puerta_command_errors_total", &l("GET")), 0.0, "{io}: no GET failed");
    let count = |c: &str| metric("puerta_request_duration_seconds_count", &l(c));
    assert_eq!((count("SET"), count("GET"), count("MGET"), count("LPUSH")), (20.0, 31.0, 5.0, 3.0), "{io}");
    // Every request is in the +Inf bucket; the slowed GET is above 100 ms.
    let get_inf = metric("puerta_request_duration_seconds_bucket", &format!("{},le=\"+Inf\"", l("GET")));
    let get_fast = metric("puerta_request_duration_seconds_bucket", &format!("{},le=\"0.1\"", l("GET")));
    assert_eq!(get_inf, 31.0, "{io}");
    assert!(get_fast <= 30.0, "{io}: the slowed GET is past the 100 ms bucket ({get_fast})");
    assert!(metric("puerta_command_request_bytes_total", &l("SET")) > 0.0, "{io}");
    // One backend round trip at least per request (MGET may split).
    let rtt = metric("puerta_backend_duration_seconds_count", &format!("pool=\"{pool}\""));
    assert!(rtt >= 59.0, "{io}: backend round trips {rtt}");
    assert!(metric("puerta_slowlog_entries_total", &format!("pool=\"{pool}\"")) >= 1.0, "{io}");
}

/// The newest slow log entry for `GET` through the proxy: (duration µs,
/// args).
fn proxy_slowlog_get(c: &mut RawResp) -> (i64, Vec<Vec<u8>>) {
    let Reply::Int(len) = c.cmd(&[b"SLOWLOG", b"LEN"]) else { panic!("SLOWLOG LEN") };
    assert!(len >= 1, "SLOWLOG LEN {len}");
    let Reply::Array(Some(entries)) = c.cmd(&[b"SLOWLOG", b"GET", b"-1"]) else { panic!("SLOWLOG GET") };
    assert_eq!(entries.len() as i64, len);
    for e in entries {
        let Reply::Array(Some(f)) = e else { panic!("entry") };
        assert_eq!(f.len(), 6, "Redis's six fields");
        let (Reply::Int(_id), Reply::Int(ts), Reply::Int(us), Reply::Array(Some(args))) = (&f[0], &f[1], &f[2], &f[3])
        else {
            panic!("entry fields {f:?}")
        };
        let args: Vec<Vec<u8>> =
            args.iter().map(|a| if let Reply::Bulk(Some(b)) = a { b.clone() } else { panic!() }).collect();
        if args[0] == b"GET" && *us >= 150_000 {
            assert!(*ts > 1_600_000_000, "unix seconds");
            assert!(matches!(&f[4], Reply::Bulk(Some(a)) if a.starts_with(b"127.0.0.1:")), "client address {f:?}");
            return (*us, args);
        }
    }
    panic!("no slow GET in the proxy's slow log")
}

/// The slow GET in `GET /slowlog` of `pool`: its JSON entry.
fn admin_slow_get(admin: u16, pool: &str) -> serde_json::Value {
    let (status, body) = http("GET", admin, "/slowlog").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let p = v["pools"].as_array().unwrap().iter().find(|p| p["pool"] == pool).expect("pool listed").clone();
    let e = p["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["command"] == "GET" && e["duration_us"].as_u64() >= Some(150_000));
    let e = e.cloned().unwrap_or_else(|| panic!("no slow GET in /slowlog: {body}"));
    assert!(e["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.1:")), "the client's address: {e}");
    e
}

#[test]
fn twemproxy_redis_pool_counts_times_and_logs_slow_requests() {
    let backends = [redis(), redis()];
    let servers: Vec<String> = backends.iter().map(|b| format!("\"127.0.0.1:{}:1\"", b.port)).collect();
    let toml = format!(
        "[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\nservers = [{}]\n\
         {SLOW}slowlog_keys = \"shown\"\n",
        servers.join(", ")
    );
    let keys: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml, io, "puerta.toml", &[]);
        let mut c = RawResp::connect(px.port());
        let _ = c.cmd(&[b"DEL", b"k0", b"k1", b"k2", b"k3", b"k4", b"k5"]);
        redis_traffic(&mut c, &keys);
        let slow_server = px.ring().pick(b"slowkey").unwrap() as usize;
        slowed_get(&mut c, backends[slow_server].port, "slowkey");
        assert_redis_counts(&|n, l| px.metric(n, l), "alpha", io);

        let (us, args) = proxy_slowlog_get(&mut c);
        assert!(us >= 150_000, "{io}");
        assert_eq!(args, [b"GET".to_vec(), b"slowkey".to_vec()], "{io}: slowlog_keys = \"shown\"");
        let e = admin_slow_get(px.admin, "alpha");
        assert_eq!(e["args"][1], "slowkey", "{io}");
        // Shown keys of every length read back whole (short ones are noted
        // as two words and rebuilt when read).
        for key in ["s", "slo", "slowk", "slowkey-sixteen!", "slowkey-seventeen", "slowkey-far-longer-than-the-words"] {
            let server = px.ring().pick(key.as_bytes()).unwrap() as usize;
            slowed_get(&mut c, backends[server].port, key);
            let (_, args) = proxy_slowlog_get(&mut c);
            assert_eq!(args[1], key.as_bytes(), "{io}");
        }
        assert_eq!(e["backend"], format!("127.0.0.1:{}", backends[slow_server].port), "{io}: {e}");
        assert_eq!(c.cmd(&[b"SLOWLOG", b"RESET"]), Reply::Status(b"OK".to_vec()));
        assert_eq!(c.cmd(&[b"SLOWLOG", b"LEN"]), Reply::Int(0), "{io}: reset on every core");
        let _ = c.cmd(&[b"DEL", b"k0", b"k1", b"k2", b"k3", b"k4", b"k5"]);
    }
}

#[test]
fn basic_metrics_detail_counts_but_does_not_time() {
    let backend = redis();
    let toml = format!(
        "[server]\nmetrics_detail = \"basic\"\n[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\n\
         mode = \"redis\"\nservers = [\"127.0.0.1:{}:1\"]\n{SLOW}",
        backend.port
    );
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml, io, "puerta.toml", &[]);
        let mut c = RawResp::connect(px.port());
        slowed_get(&mut c, backend.port, "slowkey");
        for _ in 0..9 {
            let _ = c.cmd(&[b"GET", b"x"]);
        }
        let l = "pool=\"alpha\",command=\"GET\"";
        assert_eq!(px.metric("puerta_command_requests_total", l), 10.0, "{io}");
        assert_eq!(px.metric("puerta_request_duration_seconds_count", l), 0.0, "{io}: no timing in basic");
        assert_eq!(px.metric("puerta_backend_duration_seconds_count", "pool=\"alpha\""), 0.0, "{io}");
        assert_eq!(c.cmd(&[b"SLOWLOG", b"LEN"]), Reply::Int(0), "{io}: no slow log without timing");
    }
}

/// One memcached request and its reply, read up to `end`.
fn mc(s: &mut BufReader<TcpStream>, req: &str, end: &str) -> String {
    s.get_mut().write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    while !out.ends_with(end) {
        let mut line = String::new();
        assert!(s.read_line(&mut line).unwrap() > 0, "memcached reply cut short: {out:?}");
        out.push_str(&line);
        if end == "\r\n" {
            break;
        }
    }
    out
}

#[test]
fn memcache_pool_counts_commands_and_error_classes() {
    let backend = memcached();
    let toml = format!(
        "[[pool]]\nname = \"mc\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"memcache\"\n\
         servers = [\"127.0.0.1:{}:1\"]\n",
        backend.port
    );
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml, io, "puerta.toml", &[]);
        let s = TcpStream::connect(("127.0.0.1", px.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut s = BufReader::new(s);
        for i in 0..10 {
            assert_eq!(mc(&mut s, &format!("set k{i} 0 0 1\r\nv\r\n"), "\r\n"), "STORED\r\n");
        }
        for i in 0..15 {
            mc(&mut s, &format!("get k{}\r\n", i % 10), "END\r\n");
        }
        for _ in 0..2 {
            mc(&mut s, "get k0 k1 k2\r\n", "END\r\n");
            let r = mc(&mut s, "incr k0 1\r\n", "\r\n");
            assert!(r.starts_with("CLIENT_ERROR"), "{r}");
        }
        let l = |c: &str| format!("pool=\"mc\",command=\"{c}\"");
        let req = |c: &str| px.metric("puerta_command_requests_total", &l(c));
        assert_eq!((req("set"), req("get"), req("incr")), (10.0, 17.0, 2.0), "{io}");
        let class = format!("{},class=\"CLIENT_ERROR\"", l("incr"));
        assert_eq!(px.metric("puerta_command_errors_total", &class), 2.0, "{io}");
        assert_eq!(px.metric("puerta_command_errors_total", &l("get")), 0.0, "{io}");
        let count = |c: &str| px.metric("puerta_request_duration_seconds_count", &l(c));
        assert_eq!((count("set"), count("get"), count("incr")), (10.0, 17.0, 2.0), "{io}");
        assert!(px.metric("puerta_backend_duration_seconds_count", "pool=\"mc\"") >= 29.0, "{io}");
    }
}

#[test]
fn cluster_pool_counts_times_and_answers_slowlog() {
    let cluster = Cluster::start();
    let keys: Vec<String> = (0..6).map(|i| format!("{{t}}k{i}")).collect();
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, SLOW);
        let mut c = px.client();
        let mut del = vec!["DEL"];
        del.extend(keys.iter().map(String::as_str));
        let _ = c.pipeline(&[cmd(&del)]);
        redis_traffic(&mut c, &keys);
        let owner = cluster.owner_of(puerta::route::keyslot(b"slowkey"));
        slowed_get(&mut c, owner, "slowkey");
        assert_redis_counts(&|n, l| px.puerta.metric(n, l), "c", io);
        let (_, args) = proxy_slowlog_get(&mut c);
        assert_eq!(args.len(), 2, "{io}: {args:?}");
        // Hashed by default; a short key is noted as words and hashed only
        // when read, a long one hashed up front: both as `key_hash` says.
        let hashed = |k: &[u8]| format!("#{:016x}", puerta::obs::slowlog::key_hash(k)).into_bytes();
        assert_eq!(args[1], hashed(b"slowkey"), "{io}: keys are hashed by default");
        let e = admin_slow_get(px.puerta.admin, "c");
        assert_eq!(e["backend"], format!("127.0.0.1:{owner}"), "{io}: {e}");
        let long = "slowkey-longer-than-sixteen-bytes";
        slowed_get(&mut c, cluster.owner_of(puerta::route::keyslot(long.as_bytes())), long);
        let (_, args) = proxy_slowlog_get(&mut c);
        assert_eq!(args[1], hashed(long.as_bytes()), "{io}: a long key");
        let _ = c.pipeline(&[cmd(&del)]);
    }
}

#[test]
fn mongos_pool_counts_and_logs_slow_commands() {
    let s = Standin::start("a");
    for io in drivers() {
        let listen = free_port();
        let p = Puerta::start(&mongos_config(listen, &[("a", s.port)], SLOW), io);
        p.wait_ready();
        let mut m = Mongo::connect(listen);
        m.hello("obs");
        for _ in 0..10 {
            m.command(doc! {"ping": 1, "$db": "admin"}).unwrap();
        }
        m.command(doc! {"slow": 0.3, "$db": "admin"}).unwrap();
        // ok: 0 replies count by codeName, a listed one or "other".
        for name in ["DuplicateKey", "DuplicateKey", "SomeForgedName"] {
            let r = m.command(doc! {"fail": name, "$db": "admin"}).unwrap();
            assert_eq!(r.get_str("codeName").ok(), Some(name));
        }
        let l = |c: &str| format!("pool=\"mongo\",command=\"{c}\"");
        common::wait_until("mongo observations recorded", Duration::from_secs(5), || {
            p.metric("puerta_request_duration_seconds_count", &l("other")) >= 1.0
        });
        assert_eq!(p.metric("puerta_command_requests_total", &l("ping")), 10.0, "{io}");
        assert_eq!(p.metric("puerta_request_duration_seconds_count", &l("ping")), 10.0, "{io}");
        assert_eq!(p.metric("puerta_command_requests_total", &l("other")), 4.0, "{io}: forged names are other");
        let e = |class: &str| p.metric("puerta_command_errors_total", &format!("{},class=\"{class}\"", l("other")));
        assert_eq!((e("DuplicateKey"), e("other")), (2.0, 1.0), "{io}: ok: 0 by codeName");
        assert_eq!(p.metric("puerta_command_errors_total", &format!("{},class=\"other\"", l("ping"))), 0.0, "{io}");
        // Bytes: every ping request and reply, whole messages.
        assert!(p.metric("puerta_command_request_bytes_total", &l("ping")) >= 10.0 * 16.0, "{io}");
        assert!(p.metric("puerta_command_reply_bytes_total", &l("ping")) >= 10.0 * 16.0, "{io}");
        let (_, body) = p.get("/slowlog");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let entries = v["pools"][0]["entries"].as_array().unwrap();
        assert!(
            entries.iter().any(|e| e["args"][0] == "slow" && e["duration_us"].as_u64() >= Some(250_000)),
            "{io}: {body}"
        );
        assert_eq!(p.metric("puerta_slowlog_entries_total", "pool=\"mongo\""), 1.0, "{io}");
    }
}

#[test]
fn hot_keys_lists_the_hottest_keys_per_pool() {
    let backend = redis();
    let toml = format!(
        "[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\n\
         servers = [\"127.0.0.1:{}:1\"]\nhot_keys = true\nslowlog_keys = \"shown\"\n",
        backend.port
    );
    for io in drivers() {
        let px = PuertaTwem::start_with(&toml, io, "puerta.toml", &[]);
        let mut c = RawResp::connect(px.port());
        let mut batch = Vec::new();
        for i in 0..600 {
            // "hot" gets a third of the requests, 400 other keys one each.
            let k = if i % 3 == 0 { "hot".to_string() } else { format!("cold{i}") };
            batch.push(cmd(&["GET", &k]));
        }
        c.pipeline(&batch);
        // Each worker publishes on its stats tick (250 ms).
        let mut top = serde_json::Value::Null;
        common::wait_until("hot keys published", Duration::from_secs(5), || {
            let (_, body) = http("GET", px.admin, "/hotkeys").unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            top = v["pools"][0]["keys"][0].clone();
            top["key"] == "hot"
        });
        assert!(top["count"].as_u64() >= Some(200), "{io}: {top}");
    }
}
