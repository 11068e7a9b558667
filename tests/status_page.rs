//! The status page (`GET /` on the admin port) in a real headless Chromium,
//! against the real `puerta` binary serving a twemproxy-style redis pool
//! over two redis-servers and a redis_cluster pool over a 3+3 test
//! cluster, with traffic running.
//!
//! Asserts what an operator relies on: pools and backends appear; the
//! numbers move between refreshes; a killed backend turns "ejected" (redis
//! pool, `server_failure_limit = 1`) and a killed cluster node "down"
//! within what its pool kind allows; the console shows no JavaScript
//! error; with `admin_token` the page asks for the token and then works.
//! Under both I/O drivers (the page reads counters the data plane keeps).
//! The last run writes docs/status-page.png, the README's screenshot.

#[path = "status_page/browser.rs"]
mod browser;
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use browser::Browser;
use common::cluster::Cluster;
use common::{drivers, free_port, redis, tcp_config, Proc, Puerta, Resp};
use serde_json::Value;

/// SETs and GETs on `port` until stopped; reconnects after errors (a
/// killed backend may close the connection).
fn traffic(port: u16, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    thread::spawn(move || {
        let mut sent = 0u64;
        let mut conn = None;
        while !stop.load(Ordering::Relaxed) {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match Resp::connect(port) {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                },
            };
            let key = format!("k{}", sent % 997);
            let ok = c.cmd(&["SET", &key, "v"]).is_ok() && c.cmd(&["GET", &key]).is_ok();
            if !ok {
                conn = None;
            }
            sent += 2;
            // A steady trickle: the page must show it, the CPU need not.
            thread::sleep(Duration::from_millis(2));
        }
        sent
    })
}

fn config(twem: u16, r1: &Proc, r2: &Proc, cl: u16, cluster: &Cluster) -> String {
    let seeds: Vec<String> = cluster.seeds().iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"2s\"\n\n\
         [[pool]]\nname = \"twem\"\nlisten = \"127.0.0.1:{twem}\"\nmode = \"redis\"\n\
         servers = [\"127.0.0.1:{}:1 r1\", \"127.0.0.1:{}:1 r2\"]\ntimeout = 500\n\
         auto_eject_hosts = true\nserver_failure_limit = 1\nserver_retry_timeout = 60000\n\n\
         [[pool]]\nname = \"cluster\"\nlisten = \"127.0.0.1:{cl}\"\nmode = \"redis_cluster\"\nservers = [{}]\n",
        r1.port,
        r2.port,
        seeds.join(", ")
    )
}

/// JS: the text of a pool's figure, or null.
fn fig(pool: &str, id: &str) -> String {
    format!("const e = document.querySelector('section[data-pool=\"{pool}\"] [data-fig=\"{id}\"] .v'); return e ? e.textContent : null;")
}

/// JS: the `data-state` of a backend row (by address), or null.
fn state(pool: &str, addr: &str) -> String {
    format!("const e = document.querySelector('section[data-pool=\"{pool}\"] tr[data-backend=\"{addr}\"]'); return e ? e.dataset.state : null;")
}

/// JS: how many rows a pool's backends table has.
fn rows(pool: &str) -> String {
    format!("return document.querySelectorAll('section[data-pool=\"{pool}\"] table.backends tbody tr').length;")
}

fn no_console_errors(b: &mut Browser, when: &str) {
    let errors: Vec<_> = b.console().into_iter().filter(|(level, _)| level == "SEVERE").collect();
    assert!(errors.is_empty(), "{when}: JavaScript console errors: {errors:?}");
}

/// One Puerta under `io`, the page loaded, the checks; `last` also kills a
/// cluster replica and takes the screenshot.
fn run(b: &mut Browser, cluster: &mut Cluster, io: &str, last: bool) {
    let (r1, r2) = (redis(), redis());
    let (twem, cl) = (free_port(), free_port());
    let p = Puerta::start(&config(twem, &r1, &r2, cl, cluster), io);
    p.wait_ready();
    let stop = Arc::new(AtomicBool::new(false));
    let load = [traffic(twem, stop.clone()), traffic(cl, stop.clone())];

    b.open(&format!("http://127.0.0.1:{}/", p.admin));
    let within = Duration::from_secs(10);
    b.wait_for("both pools shown", within, "return document.querySelectorAll('section.pool').length;", |v| v == 2);
    b.wait_for("twem backends", within, &rows("twem"), |v| v == 2);
    let nodes = cluster.nodes.len() as u64;
    b.wait_for("cluster nodes", within, &rows("cluster"), |v| v.as_u64() == Some(nodes));
    b.wait_for(
        "three shards",
        within,
        "return document.querySelectorAll('section[data-pool=\"cluster\"] table.slots tbody tr').length;",
        |v| v == 3,
    );
    for r in [&r1, &r2] {
        let addr = format!("127.0.0.1:{}", r.port);
        assert_eq!(b.eval(&state("twem", &addr)), "up", "{io}: {addr} up at first");
    }

    // The numbers move between refreshes, and a rate appears.
    for pool in ["twem", "cluster"] {
        let (first, _) = b.wait_for("a request count", within, &fig(pool, "requests"), |v| {
            v.as_str().is_some_and(|s| s != "-" && s != "0")
        });
        b.wait_for("the count to move", Duration::from_secs(5), &fig(pool, "requests"), |v| *v != first);
        b.wait_for("a request rate", Duration::from_secs(5), &fig(pool, "rps"), |v| {
            v.as_str().and_then(|s| s.parse::<f64>().ok()).is_some_and(|r| r > 0.0)
        });
    }

    // A dead redis pool server is ejected after one failure
    // (server_failure_limit = 1): the page says so within its 1 s refresh
    // plus the time traffic takes to hit it.
    let dead = format!("127.0.0.1:{}", r2.port);
    drop(r2);
    let (_, took) =
        b.wait_for("the killed server ejected", Duration::from_secs(5), &state("twem", &dead), |v| v == "ejected");
    eprintln!("{io}: killed redis server shown ejected after {took:?}");
    assert_eq!(b.eval(&state("twem", &format!("127.0.0.1:{}", r1.port))), "up");

    if last {
        // A cluster node is down once the cluster flags it (pfail after
        // cluster-node-timeout, 2 s here) and the next topology refresh
        // (5 s cadence) brings that to the snapshot.
        let master = cluster.master_ports()[0];
        let replica = cluster.replica_ports(master)[0];
        cluster.kill(replica);
        let addr = format!("127.0.0.1:{replica}");
        let (_, took) =
            b.wait_for("the killed cluster replica down", Duration::from_secs(20), &state("cluster", &addr), |v| {
                v == "down"
            });
        eprintln!("{io}: killed cluster replica shown down after {took:?}");
        // One more refresh so the figures on the picture are live.
        thread::sleep(Duration::from_millis(1200));
        let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        b.screenshot(&png);
        assert!(std::fs::metadata(&png).is_ok_and(|m| m.len() > 10_000), "screenshot written");
    }
    no_console_errors(b, io);
    stop.store(true, Ordering::Relaxed);
    for t in load {
        assert!(t.join().expect("traffic thread") > 0);
    }
}

/// With `admin_token`: the page asks once, then shows the pools; the token
/// lives in sessionStorage, so a reload does not ask again.
fn token_prompt(b: &mut Browser) {
    let r = redis();
    let p = Puerta::start(&tcp_config(free_port(), &[r.port], "", "admin_token = \"s3cret-page-token\""), drivers()[0]);
    p.wait_ready();
    b.open(&format!("http://127.0.0.1:{}/", p.admin));
    let within = Duration::from_secs(10);
    b.wait_for("the token form", within, "return !document.getElementById('login').hidden;", |v| v == true);
    assert_eq!(b.eval("return document.querySelectorAll('section.pool').length;"), 0, "no data before the token");
    b.type_into("#token", "s3cret-page-token");
    b.click("#token-submit");
    b.wait_for("the pool after the token", within, "return document.querySelectorAll('section.pool').length;", |v| {
        v == 1
    });
    b.wait_for("its backend up", within, &state("main", &format!("127.0.0.1:{}", r.port)), |v| v == "up");
    b.open(&format!("http://127.0.0.1:{}/", p.admin));
    b.wait_for("no second prompt", within, "return document.querySelectorAll('section.pool').length;", |v| v == 1);
    assert_eq!(b.eval("return document.getElementById('login').hidden;"), Value::Bool(true));
    no_console_errors(b, "token");
}

#[test]
fn status_page_in_a_headless_browser() {
    let Some(mut b) = Browser::start() else { return };
    let start = Instant::now();
    let mut cluster = Cluster::start();
    eprintln!("cluster up after {:?}", start.elapsed());
    let ios = drivers();
    for (i, io) in ios.iter().enumerate() {
        run(&mut b, &mut cluster, io, i + 1 == ios.len());
    }
    token_prompt(&mut b);
    eprintln!("status page test took {:?}", start.elapsed());
}
