//! `puerta bench` end to end: the real binary against real redis-server,
//! memcached, a real 3-master cluster, Puerta itself (tcp mode), a
//! mockupdb mongos stand-in, a dead port, a server that never answers,
//! and bad flags. Each run is a second or two of load; what is checked is
//! behaviour (counts add up, values read back, redirects followed,
//! errors counted by kind, exit codes), never speed.

mod common;
mod mongo_support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{cli, Cluster};
use common::twem::memcached;
use common::{free_port, redis, tcp_config, tmpdir, Puerta, Resp};
use serde_json::Value;

/// Runs `puerta bench ARGS`, killing it (and failing) if it runs past 60 s.
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_puerta"))
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("puerta bench {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json_at(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Runs with `--json` and returns (exit code, report, output text).
fn bench_json(args: &[&str]) -> (i32, Value, String) {
    let path = tmpdir().join("report.json");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--json", path.to_str().unwrap()]);
    let o = bench(&all);
    let t = text(&o);
    assert!(path.exists(), "no JSON report written\n{t}");
    (o.status.code().unwrap_or(-1), json_at(&path), t)
}

/// Run `i` of target `t` in a report.
fn run(report: &Value, t: usize, i: usize) -> &Value {
    &report["targets"][t]["runs"][i]
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Every request sent ended as a success or a counted failure.
fn assert_counts_add_up(r: &Value) {
    assert!(n(r, "sent") > 0, "{r}");
    assert_eq!(n(r, "sent"), n(r, "ok") + n(r, "failed"), "{r}");
    let by_kind: u64 = r["errors"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "connect" && *k != "dropped")
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_kind, n(r, "failed"), "{r}");
}

/// The value `puerta bench` stores under key index `i` for a fixed size:
/// lowercase letters starting at 'a' + i % 26.
fn value_of(i: u64, len: usize) -> String {
    (0..len).map(|j| (b'a' + ((i as usize % 26 + j) % 26) as u8) as char).collect()
}

#[test]
fn redis_counts_add_up_and_values_read_back() {
    let r = redis();
    let port = r.port.to_string();
    let target = format!("127.0.0.1:{port}");
    let (code, rep, t) = bench_json(&[
        "-t",
        &target,
        "--prefill",
        "--keys",
        "300",
        "--ratio",
        "9:1",
        "--value-size",
        "12",
        "-c",
        "8",
        "-P",
        "4",
        "-d",
        "1s",
    ]);
    assert_eq!(code, 0, "{t}");
    let run0 = run(&rep, 0, 0);
    assert_counts_add_up(run0);
    assert_eq!(n(run0, "failed"), 0, "{t}");
    // Every key was prefilled, so every GET is a hit with the right value.
    assert_eq!(n(run0, "misses"), 0, "{t}");
    assert!(n(run0, "hits") > n(run0, "ok") / 2, "{t}");
    assert_eq!(run0["errors"]["mismatch"], 0);
    assert!(run0["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(t.contains("prefill 127.0.0.1:") && t.contains("300 of 300 keys"), "{t}");
    let mut c = Resp::connect(r.port).unwrap();
    assert_eq!(c.cmd(&["DBSIZE"]).unwrap(), "300");
    for i in [0u64, 1, 25, 26, 299] {
        assert_eq!(c.cmd(&["GET", &format!("key:{i}")]).unwrap(), value_of(i, 12), "key:{i}");
    }
}

#[test]
fn open_loop_runs_at_the_rate_and_reports_both_latencies() {
    let r = redis();
    let target = format!("127.0.0.1:{}", r.port);
    let (code, rep, t) = bench_json(&["-t", &target, "--rate", "2000", "-d", "1500ms", "-c", "4", "--keys", "50"]);
    assert_eq!(code, 0, "{t}");
    let run0 = run(&rep, 0, 0);
    assert_counts_add_up(run0);
    // 1.5 s at 2000/s is 3000 intended requests; a loaded machine may drop
    // a few past the timeout but never sends more.
    let sent = n(run0, "sent");
    assert!((2500..=3001).contains(&sent), "{sent} sent\n{t}");
    assert_eq!(rep["open_loop"], true);
    assert!(t.contains("service ") && t.contains("coordinated omission"), "{t}");
    let (lat, svc) = (run0["latency_ms"]["p50"].as_f64().unwrap(), run0["service_ms"]["p50"].as_f64().unwrap());
    assert!(lat >= svc && svc > 0.0, "latency from intended time {lat} >= service {svc}");
    let secs = run0["series"].as_array().unwrap();
    assert_eq!(secs.len(), 1, "one whole second in the series: {secs:?}");
}

#[test]
fn memcached_mget_and_values_read_back() {
    let m = memcached();
    let target = format!("127.0.0.1:{}", m.port);
    let (code, rep, t) = bench_json(&[
        "-t",
        &target,
        "--protocol",
        "memcache",
        "--prefill",
        "--keys",
        "100",
        "--value-size",
        "5",
        "-c",
        "4",
        "-d",
        "1s",
    ]);
    assert_eq!(code, 0, "{t}");
    let run0 = run(&rep, 0, 0);
    assert_counts_add_up(run0);
    assert_eq!((n(run0, "failed"), n(run0, "misses")), (0, 0), "{t}");
    let (code, rep, t) = bench_json(&[
        "-t",
        &target,
        "--protocol",
        "memcache",
        "--mget",
        "10",
        "--keys",
        "100",
        "--value-size",
        "5",
        "-d",
        "1s",
        "-c",
        "2",
    ]);
    assert_eq!(code, 0, "{t}");
    assert_counts_add_up(run(&rep, 0, 0));
    // A value written by the bench, read with a plain client.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", m.port)).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"get key:27\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let want = format!("VALUE key:27 0 5\r\n{}\r\nEND\r\n", value_of(27, 5));
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn redis_cluster_routes_by_slot_and_survives_a_slot_migration() {
    let c = Cluster::start();
    let seed = format!("127.0.0.1:{}", c.any_port());
    let masters = c.master_ports();
    assert_eq!(masters.len(), 3);
    let (code, rep, t) = bench_json(&["-t", &seed, "--cluster", "--prefill", "--keys", "600", "-c", "4", "-d", "1s"]);
    assert_eq!(code, 0, "{t}");
    let run0 = run(&rep, 0, 0);
    assert_counts_add_up(run0);
    assert_eq!((n(run0, "failed"), n(run0, "misses"), n(run0, "moved")), (0, 0, 0), "routed right first time\n{t}");
    let sizes: Vec<u64> = masters.iter().map(|&p| cli(p, &["DBSIZE"]).trim().parse().unwrap()).collect();
    assert_eq!(sizes.iter().sum::<u64>(), 600, "each key once, on its slot's master: {sizes:?}");
    assert!(sizes.iter().all(|&s| s > 100), "keys spread over the masters: {sizes:?}");

    // All keys in one slot (a hash tag); move that slot mid-run.
    let slot: u16 = cli(c.any_port(), &["CLUSTER", "KEYSLOT", "{bench}"]).trim().parse().unwrap();
    let from = c.owner_of(slot);
    let to = *masters.iter().find(|&&p| p != from).unwrap();
    let path = tmpdir().join("moved.json");
    let p = path.to_str().unwrap().to_string();
    let args = [
        "-t",
        &seed,
        "--cluster",
        "--prefill",
        "--keys",
        "200",
        "--key-prefix",
        "{bench}:",
        "-c",
        "4",
        "-d",
        "3s",
        "--json",
        &p,
    ];
    let handle = std::thread::spawn({
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        move || bench(&args.iter().map(String::as_str).collect::<Vec<_>>())
    });
    std::thread::sleep(Duration::from_millis(1000));
    c.move_slot(slot, to);
    let o = handle.join().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let rep = json_at(&path);
    let run0 = run(&rep, 0, 0);
    assert_counts_add_up(run0);
    assert_eq!(n(run0, "failed"), 0, "no request lost while the slot moved\n{t}");
    // ASKs happen only if a request lands in the brief MIGRATING window;
    // MOVED always follows the final SETSLOT NODE.
    assert!(n(run0, "moved") > 0, "MOVED followed\n{t}");
    let count = |port: u16| cli(port, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]).trim().to_string();
    assert_eq!((count(to), count(from)), ("200".into(), "0".into()), "every key of the slot on its new owner");
}

#[test]
fn compares_direct_and_through_puerta_with_every_output_file() {
    let r = redis();
    let listen = free_port();
    let px = Puerta::start(&tcp_config(listen, &[r.port], "", ""), "epoll");
    px.wait_ready();
    let dir = tmpdir();
    let file = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let (plot, csv, hdr) = (file("p.svg"), file("r.csv"), file("r.hlog"));
    let direct = format!("direct=127.0.0.1:{}", r.port);
    let proxied = format!("puerta=127.0.0.1:{listen}");
    let (code, rep, t) = bench_json(&[
        "-t", &direct, "-t", &proxied, "--rounds", "2", "-d", "1s", "-c", "4", "--plot", &plot, "--csv", &csv, "--hdr",
        &hdr,
    ]);
    assert_eq!(code, 0, "{t}");
    for ti in 0..2 {
        for round in 0..2 {
            let r = run(&rep, ti, round);
            assert_counts_add_up(r);
            assert_eq!(n(r, "round"), round as u64 + 1);
        }
    }
    // Rounds interleave targets: direct, puerta, direct, puerta.
    let order: Vec<&str> =
        t.lines().filter_map(|l| l.strip_prefix("== ")).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(order, ["direct", "puerta", "direct", "puerta", "comparison"], "{t}");
    let table: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("== comparison")).collect();
    let base = table.iter().find(|l| l.trim_start().starts_with("direct ")).unwrap();
    assert_eq!(base.split_whitespace().nth(2), Some("1.00"), "ratio of the first target to itself\n{t}");
    assert!(table.iter().any(|l| l.trim_start().starts_with("puerta ")), "{t}");
    assert_eq!(rep["targets"][1]["median"]["rounds"], 2);

    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "well-formed SVG");
    assert!(svg.contains("latency by percentile") && svg.contains("throughput") && svg.contains("p99.9"));
    assert!(svg.contains(">\ndirect\n<") || svg.contains(">direct<"), "legend names the targets");
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count(), 5, "header + 2 targets x 2 rounds:\n{csv}");
    assert!(csv.lines().next().unwrap().starts_with("target,addr,round,duration_s,ops_per_sec,sent,ok"));
    let hlog = std::fs::read_to_string(&hdr).unwrap();
    assert!(hlog.lines().any(|l| l.starts_with("Tag=direct,")) && hlog.lines().any(|l| l.starts_with("Tag=puerta,")));
}

#[test]
fn mongo_ping_and_find_by_id_against_a_standin() {
    let s = mongo_support::Standin::start("bench");
    let target = format!("127.0.0.1:{}", s.port);
    let (code, rep, t) =
        bench_json(&["-t", &target, "--protocol", "mongo", "--command", "ping", "-c", "2", "-d", "1s"]);
    assert_eq!(code, 0, "{t}");
    let ping = run(&rep, 0, 0);
    assert_counts_add_up(ping);
    assert_eq!(n(ping, "failed"), 0, "{t}");
    // The stand-in holds _id 0..49: keys 0..99 hit about half the time.
    let (code, rep, t) = bench_json(&["-t", &target, "--protocol", "mongo", "--keys", "100", "-c", "2", "-d", "1s"]);
    assert_eq!(code, 0, "{t}");
    let find = run(&rep, 0, 0);
    assert_counts_add_up(find);
    assert_eq!(n(find, "failed"), 0, "{t}");
    let (hits, misses) = (n(find, "hits"), n(find, "misses"));
    assert_eq!(hits + misses, n(find, "ok"));
    assert!(hits > 0 && misses > 0, "find by _id found some and missed some: {hits} / {misses}");
    assert!(t.contains("p99.99"), "the same report as the other protocols\n{t}");
}

#[test]
fn unreachable_and_silent_targets_are_counted_not_hung() {
    // Nothing listens: connect errors, exit 1, quickly.
    let dead = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let (code, rep, t) = bench_json(&["-t", &dead, "-d", "5s", "-c", "3"]);
    assert_eq!(code, 1, "{t}");
    let r0 = run(&rep, 0, 0);
    assert!(n(&r0["errors"], "connect") >= 3, "{t}");
    assert_eq!(n(r0, "sent"), 0);
    assert!(r0["aborted"].as_str().unwrap().contains("failed to connect"), "{t}");
    assert!(started.elapsed() < Duration::from_secs(5), "gave up before the run length: {:?}", started.elapsed());
    assert!(t.contains("no successful replies from"), "{t}");

    // Accepts connections and never answers: every request times out.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let (code, rep, t) = bench_json(&["-t", &target, "-d", "1s", "-c", "2", "--timeout", "300ms"]);
    assert_eq!(code, 1, "{t}");
    let r0 = run(&rep, 0, 0);
    assert_counts_add_up(r0);
    assert_eq!(n(r0, "ok"), 0);
    assert!(n(&r0["errors"], "timeout") >= 2, "{t}");
    drop(silent);

    // Error replies are server errors, one per request.
    let r = redis();
    let target = format!("127.0.0.1:{}", r.port);
    let (_, rep, t) = bench_json(&["-t", &target, "--command", "NOSUCHCMD {key}", "-d", "1s", "-c", "2"]);
    let r0 = run(&rep, 0, 0);
    assert_counts_add_up(r0);
    assert_eq!(n(&r0["errors"], "server"), n(r0, "sent"), "{t}");
}

#[test]
fn bad_flags_exit_2_with_a_clear_message() {
    for (args, says) in [
        (&["-t", "127.0.0.1:1", "--connections", "0"][..], "--connections"),
        (&["-t", "127.0.0.1:1", "--rate", "lots"], "--rate"),
        (&["-t", "127.0.0.1:1", "--key-dist", "zipf:-2"], "--key-dist"),
        (&["-t", "not-an-address"], "--target"),
        (&["-t", "127.0.0.1:1", "--protocol", "memcache", "--cluster"], "--cluster"),
        (&["-t", "127.0.0.1:1", "--no-such-flag"], "--no-such-flag"),
        (&["-t", "127.0.0.1:1", "--protocol", "smtp"], "smtp"),
        (&[], "--target"),
    ] {
        let o = bench(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(err.contains(says), "{args:?}: stderr names {says}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
