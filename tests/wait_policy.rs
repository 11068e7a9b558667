//! Issue 14: the `[server]` wait keys (`wait_batch`, `wait_batch_us`,
//! `wait_batch_after`, `busy_poll_us`) change how a worker waits, never what it serves. Under
//! each, both drivers answer pipelined and concurrent clients correctly; a
//! lone request under a huge batch is answered after the bound, not after
//! the idle timeout; and an idle worker that busy-polls or batches does not
//! spin.

mod common;

use std::time::{Duration, Instant};

use common::twem::{command, RawResp, Reply};
use common::twem_puerta::PuertaTwem;
use common::{drivers, redis};

/// The policies tried: batched waits, busy poll, both.
const POLICIES: [&str; 4] = [
    "wait_batch = 16\nwait_batch_us = 50\n",
    "wait_batch = 64\nwait_batch_us = 100\nwait_batch_after = 8\n",
    "busy_poll_us = 200\n",
    "wait_batch = 1024\nwait_batch_us = 2000\nbusy_poll_us = 100\n",
];

fn config(server: &str, a: u16, b: u16) -> String {
    format!(
        "[server]\n{server}[[pool]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{{listen}}\"\nmode = \"redis\"\n\
         servers = [\"127.0.0.1:{a}:1 a\", \"127.0.0.1:{b}:1 b\"]\n"
    )
}

/// Utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields, the 12th and 13th after it.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn every_wait_policy_serves_pipelined_and_concurrent_clients() {
    let (a, b) = (redis(), redis());
    for policy in POLICIES {
        for io in drivers() {
            let px = PuertaTwem::start_with(&config(policy, a.port, b.port), io, "puerta.toml", &[]);
            let port = px.port();
            let clients: Vec<_> = (0..8)
                .map(|c| {
                    std::thread::spawn(move || {
                        let mut r = RawResp::connect(port);
                        for i in 0..50 {
                            let (k, v) = (format!("w{c}:{i}"), format!("v{c}:{i}"));
                            assert_eq!(r.cmd(&[b"SET", k.as_bytes(), v.as_bytes()]), Reply::Status(b"OK".to_vec()));
                        }
                        // Pipelined: 50 GETs in one write.
                        let keys: Vec<String> = (0..50).map(|i| format!("w{c}:{i}")).collect();
                        let cmds: Vec<Vec<u8>> = keys.iter().map(|k| command(&[b"GET", k.as_bytes()])).collect();
                        let replies = r.pipeline(&cmds);
                        for (i, got) in replies.into_iter().enumerate() {
                            assert_eq!(got, Reply::Bulk(Some(format!("v{c}:{i}").into_bytes())));
                        }
                    })
                })
                .collect();
            for h in clients {
                h.join().unwrap_or_else(|_| panic!("{io}, {policy:?}: a client failed"));
            }
        }
    }
}

#[test]
fn a_lone_request_waits_for_the_bound_not_for_the_batch_and_idle_workers_sleep() {
    let (a, b) = (redis(), redis());
    // 1024 completions never come from one client: each wait must end at
    // 2 ms with the one it has (20 requests, a few waits each: well under
    // a second; a wait that held out for the batch would take the 1 s idle
    // timeout every time).
    let policy = "wait_batch = 1024\nwait_batch_us = 2000\n";
    for io in drivers() {
        let px = PuertaTwem::start_with(&config(policy, a.port, b.port), io, "puerta.toml", &[]);
        let mut r = RawResp::connect(px.port());
        assert_eq!(r.cmd(&[b"SET", b"lone", b"1"]), Reply::Status(b"OK".to_vec()));
        let t = Instant::now();
        for _ in 0..20 {
            assert_eq!(r.cmd(&[b"GET", b"lone"]), Reply::Bulk(Some(b"1".to_vec())), "{io}");
        }
        assert!(t.elapsed() < Duration::from_secs(3), "{io}: 20 lone GETs took {:?}", t.elapsed());
    }
    // Idle, neither batching nor a busy poll keeps the CPU busy: a worker
    // that polled or woke every few microseconds would burn ~1 s per s.
    for policy in POLICIES {
        for io in drivers() {
            let px = PuertaTwem::start_with(&config(policy, a.port, b.port), io, "puerta.toml", &[]);
            std::thread::sleep(Duration::from_millis(300));
            let pid = px.proc.child.id();
            let before = cpu_ticks(pid);
            std::thread::sleep(Duration::from_secs(1));
            let used = cpu_ticks(pid) - before;
            assert!(used < 30, "{io}, {policy:?}: idle for 1 s used {used} ticks");
        }
    }
}
