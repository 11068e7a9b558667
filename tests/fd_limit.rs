//! Running out of file descriptors degrades, it does not spin (DESIGN §5):
//! - past the client limit derived from RLIMIT_NOFILE (nutcracker's
//!   rule: the limit − server connections − 32), a new client is accepted
//!   and closed at once, counted in /metrics;
//! - when accept fails anyway (EMFILE), both drivers pause accepting with a
//!   backoff timer, log a line a second at most, stay off the CPU, count it
//!   in /metrics, and serve again once descriptors are back.

mod common;

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use common::*;

fn config(listen: u16, redis: u16) -> String {
    format!(
        "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nlog = \"info\"\n\n\
         [[pool]]\nname = \"r\"\nlisten = \"127.0.0.1:{listen}\"\nmode = \"redis\"\n\
         servers = [\"127.0.0.1:{redis}:1\"]\n"
    )
}

/// User plus system CPU time the process used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which ends at the last ')'; utime and
    // stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split(' ').skip(11).take(2).map(|v| v.parse().unwrap()).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis((f[0] + f[1]) * 1000 / hz)
}

/// Sends PING until it is answered PONG (an error reply, e.g. a backend
/// connect refused for lack of descriptors, is retried), within `limit`.
fn pong_within(c: &mut Resp, limit: Duration) -> Result<(), String> {
    let end = Instant::now() + limit;
    loop {
        let r = c.cmd(&["PING"]).map_err(|e| e.to_string())?;
        if r == "PONG" {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(r);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts Puerta with RLIMIT_NOFILE at `n` (soft and hard, so the start-up
/// raise changes nothing) and `failpoint` set.
fn start_limited(port: u16, redis: u16, io: &str, n: u64, failpoint: &str) -> Puerta {
    Puerta::start_with(&config(port, redis), &["--io", io], |cmd| {
        cmd.env("PUERTA_FAILPOINT", failpoint);
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

#[test]
fn out_of_descriptors_pauses_accepts_logs_little_stays_off_the_cpu_and_recovers() {
    let redis = redis();
    for io in drivers() {
        let port = free_port();
        // The reproduction: 48 descriptors, 60 idle clients. The
        // derived client limit would close the extra clients at accept, so
        // it is switched off (debug builds only) to reach EMFILE.
        let p = start_limited(port, redis.port, io, 48, "no_client_limit");
        let pid = p.proc.pid();
        // Both workers open their backend connection while there is room.
        let mut warm: Vec<Resp> = (0..4).map(|_| Resp::connect(port).unwrap()).collect();
        for c in &mut warm {
            pong_within(c, Duration::from_secs(5)).unwrap();
        }
        drop(warm);
        wait_until("warm-up clients closed", Duration::from_secs(5), || {
            p.metric("puerta_client_connections", "") == 0.0
        });
        let lines_before = p.log().lines().count();
        let cpu_before = cpu_time(pid);
        let t0 = Instant::now();
        let idle: Vec<Resp> = (0..60).map(|_| Resp::connect(port).unwrap()).collect();
        std::thread::sleep(Duration::from_secs(3));
        let (cpu, wall) = (cpu_time(pid) - cpu_before, t0.elapsed());
        let log = p.log();
        let new_lines: Vec<&str> = log.lines().skip(lines_before).collect();
        eprintln!("{io}: {} new log lines, {cpu:?} CPU in {wall:?}", new_lines.len());
        // A spinning accept costs a core per worker and a line per try
        // (millions); paused, a line a second per worker at most.
        assert!(new_lines.len() <= 20, "{io}: {} log lines in {wall:?}:\n{}", new_lines.len(), new_lines.join("\n"));
        assert!(cpu < wall / 5, "{io}: {cpu:?} of CPU in {wall:?}");
        assert!(new_lines.iter().any(|l| l.contains("accept failed") && l.contains("refused=")), "{io}: {new_lines:?}");
        // The idle clients leave: descriptors come back as Puerta accepts
        // and closes what queued, and a new client is served.
        drop(idle);
        let mut c = Resp::connect(port).unwrap();
        pong_within(&mut c, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{io}: {e}"));
        // Read now that descriptors are back (admin needs one too).
        assert!(p.metric("puerta_accept_exhausted_total", "") >= 1.0, "{io}: counted in /metrics");
    }
}

#[test]
fn past_the_derived_client_limit_a_client_is_closed_at_once() {
    let redis = redis();
    for io in drivers() {
        let port = free_port();
        // 64 descriptors: 2 workers hold 2 each, a listener and a backend
        // connection each (8 in all); 32 are reserved: 24 clients.
        let p = start_limited(port, redis.port, io, 64, "");
        assert_eq!(p.metric("puerta_client_limit", ""), 24.0, "{io}");
        assert!(p.log().contains("client_limit=24"), "{io}: the limit is logged at start");
        let mut served = Vec::new();
        for _ in 0..24 {
            let mut c = Resp::connect(port).unwrap();
            pong_within(&mut c, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{io}: {e}"));
            served.push(c);
        }
        // The 25th and later are closed at once, without a reply.
        for i in 0..6 {
            let mut c = Resp::connect(port).unwrap();
            assert!(c.is_closed(), "{io}: client {} past the limit left open", 25 + i);
        }
        let rejected = "reason=\"client_limit\"";
        assert_eq!(p.metric("puerta_client_rejected_total", rejected), 6.0, "{io}");
        assert_eq!(p.metric("puerta_accept_exhausted_total", ""), 0.0, "{io}: the limit kept accept from failing");
        // A client that leaves makes room for one more.
        drop(served.pop());
        wait_until("a client slot freed", Duration::from_secs(5), || p.metric("puerta_client_connections", "") == 23.0);
        let mut c = Resp::connect(port).unwrap();
        pong_within(&mut c, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{io}: {e}"));
        // The twice-served workers still answer everyone they hold.
        for c in &mut served {
            pong_within(c, Duration::from_secs(5)).unwrap();
        }
    }
}
