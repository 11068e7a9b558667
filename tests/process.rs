//! Process-level behaviour: `puerta check`, startup failures, SO_REUSEPORT
//! listeners per worker, and CPU pinning.

mod common;

use std::process::Command;

use common::*;

fn puerta() -> Command {
    Command::new(env!("CARGO_BIN_EXE_puerta"))
}

#[test]
fn check_accepts_the_example_and_rejects_a_bad_file_precisely() {
    let ok = puerta().args(["check", "-c", "config/tcp.toml"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("tcp"));

    let dir = tmpdir();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\nservers = [\"127.0.0.1:6379\"]\nbalance = \"fastest\"\n",
    )
    .unwrap();
    let out = puerta().args(["check", "-c", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5: pool[0].balance:"), "{err}");
    assert!(err.contains("fastest"), "{err}");

    // Running with the same file fails the same way before anything starts,
    // with or without the `run` subcommand.
    for args in [&["-c"][..], &["run", "-c"][..]] {
        let out = puerta().args(args).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:5: pool[0].balance:"), "{args:?}");
    }
}

#[test]
fn busy_listen_port_fails_startup() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tmpdir();
    let cfg = dir.join("p.toml");
    let admin = free_port();
    std::fs::write(&cfg, tcp_config(port, &[6379], "", "").replace("{admin}", &admin.to_string())).unwrap();
    let out = puerta().args(["-c", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}

/// Counts LISTEN sockets on `port` in /proc/net/tcp.
fn listeners_on(port: u16) -> usize {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let needle = format!(":{port:04X} ");
    tcp.lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").ends_with(&needle)))
        .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
        .count()
}

#[test]
fn two_workers_share_the_port_and_are_pinned() {
    let r = redis();
    let listen = free_port();
    let p = Puerta::start(&tcp_config(listen, &[r.port], "", ""), drivers()[0]);
    p.wait_ready();
    assert_eq!(listeners_on(listen), 2, "one SO_REUSEPORT listener per worker");
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut pinned = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{}/task", p.proc.pid())).unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm")).unwrap();
        if comm.trim().starts_with("puerta-w") {
            let status = std::fs::read_to_string(t.join("status")).unwrap();
            let cpus = status
                .lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .unwrap()
                .split(':')
                .nth(1)
                .unwrap()
                .trim()
                .to_string();
            pinned.push((comm.trim().to_string(), cpus));
        }
    }
    pinned.sort();
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    if ncpu >= 2 {
        assert!(pinned.iter().all(|(_, c)| !c.contains(',') && !c.contains('-')), "each worker on one CPU: {pinned:?}");
        assert_ne!(pinned[0].1, pinned[1].1, "workers on distinct CPUs: {pinned:?}");
    }
}

/// Makes syscall `nr` fail with ENOSYS in the child, as seccomp in a
/// container or an old kernel would (a BPF filter installed just before
/// exec; it applies to the child only).
fn deny_syscall(cmd: &mut Command, nr: libc::c_long) {
    use std::os::unix::process::CommandExt;
    // Classic BPF opcodes (linux/filter.h): LD|W|ABS, JMP|JEQ|K, RET|K.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let deny = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & 0xffff);
    let insns = [
        // seccomp_data.nr is at offset 0.
        libc::sock_filter { code: LD_W_ABS, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: JEQ_K, jt: 0, jf: 1, k: nr as u32 },
        libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: deny },
        libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
    ];
    // SAFETY: between fork and exec only async-signal-safe prctl calls run;
    // the closure owns its copy of `insns`.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog { len: insns.len() as u16, filter: insns.as_ptr() as *mut libc::sock_filter };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn without_io_uring(cmd: &mut Command) {
    deny_syscall(cmd, libc::SYS_io_uring_setup);
}

#[test]
fn auto_picks_io_uring_here_and_falls_back_to_epoll_with_a_warning() {
    let r = redis();
    let listen = free_port();
    let cfg = tcp_config(listen, &[r.port], "", "");
    // `io = "auto"` (the config default): io_uring wherever the kernel has it.
    let want = if drivers().contains(&"uring") { "io_uring" } else { "epoll" };
    let p = Puerta::start_with(&cfg, &[], |_| {});
    p.wait_ready();
    assert_eq!(p.metric("puerta_io_driver", &format!("driver=\"{want}\"")), 1.0, "{}", p.log());
    // The start line is written just after the workers report ready.
    let line = format!("puerta started driver=\"{want}\"");
    wait_until("the log to name the driver", std::time::Duration::from_secs(10), || p.log().contains(&line));
    drop(p);

    // The same with io_uring_setup refused: epoll, a warning, and traffic.
    let p = Puerta::start_with(&cfg, &[], without_io_uring);
    p.wait_ready();
    assert_eq!(p.metric("puerta_io_driver", "driver=\"epoll\""), 1.0);
    let log = p.log();
    assert!(log.contains("WARN") && log.contains("io_uring is not available"), "{log}");
    let mut c = Resp::connect(listen).unwrap();
    assert_eq!(c.cmd(&["PING"]).unwrap(), "PONG");
    drop(p);

    // Forcing io_uring where it is refused fails startup (exit 1) clearly.
    let dir = tmpdir();
    let path = dir.join("p.toml");
    std::fs::write(&path, cfg.replace("{admin}", &free_port().to_string())).unwrap();
    let mut cmd = puerta();
    cmd.args(["-c", path.to_str().unwrap(), "--io", "uring"]);
    without_io_uring(&mut cmd);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("io_uring is not available"), "{err}");
}

#[test]
fn version_and_log_level_flags() {
    let out = puerta().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("puerta {}", env!("CARGO_PKG_VERSION")));
    // A bad -v filter is a usage error before anything starts.
    let out = puerta().args(["-c", "config/tcp.toml", "-v", "puerta=[bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    // `check` exits 0 for every shipped example of a served mode.
    for f in ["config/tcp.toml", "config/mongos.toml"] {
        let out = puerta().args(["check", "-c", f]).output().unwrap();
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn check_survives_a_closed_stdout() {
    use std::os::fd::FromRawFd;
    // A pipe whose read end is already closed: every write gets EPIPE,
    // as with `puerta check -c FILE | head -1` once head exits.
    let mut fds = [0i32; 2];
    // SAFETY: pipe fills two fds; we own both and close the read end.
    let write_end = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        std::fs::File::from_raw_fd(fds[1])
    };
    let out = puerta().args(["check", "-c", "config/tcp.toml"]).stdout(write_end).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn a_worker_that_cannot_set_up_fails_startup() {
    // epoll_create1 refused: every epoll worker fails to build its poll.
    // Startup must fail (exit 1, naming the worker), not run without it.
    let dir = tmpdir();
    let path = dir.join("p.toml");
    std::fs::write(&path, tcp_config(free_port(), &[6379], "", "").replace("{admin}", &free_port().to_string()))
        .unwrap();
    let mut cmd = puerta();
    cmd.args(["-c", path.to_str().unwrap(), "--io", "epoll"]);
    deny_syscall(&mut cmd, libc::SYS_epoll_create1);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot start workers: worker ") && err.contains("epoll driver setup failed"), "{err}");
}
