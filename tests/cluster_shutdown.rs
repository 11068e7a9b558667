//! Client churn and shutdown of a redis_cluster pool through the real
//! `puerta` binary, under both I/O drivers:
//! - thousands of short-lived clients (connect, one request, close) leave
//!   no socket behind: a client the session closes in the same batch in
//!   which a new client takes its index used to keep its fd open forever,
//!   and then hold the worker's drain open (SIGTERM never finished);
//! - SIGTERM exits within `shutdown_timeout` (plus slack) after that churn
//!   and even when every node of the cluster died first.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::cluster_load::Client;
use common::cluster_puerta::{cmd, ClusterProxy};
use common::{drivers, wait_until};

/// `ClusterProxy` sets `shutdown_timeout = "2s"`; the rest is slack for a
/// loaded 2-core machine.
const EXIT_WITHIN: Duration = Duration::from_secs(12);
const CHURN_THREADS: usize = 8;
const CHURN_PER_THREAD: usize = 400;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Connect, one PING, read its reply, close; `CHURN_PER_THREAD` times on
/// each of `CHURN_THREADS` threads.
fn churn(port: u16) {
    let threads: Vec<_> = (0..CHURN_THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..CHURN_PER_THREAD {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
                    let mut got = [0u8; 7];
                    s.read_exact(&mut got).unwrap();
                    assert_eq!(&got, b"+PONG\r\n");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn wait_exit(px: &mut ClusterProxy, io: &str) -> Duration {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(px.puerta.proc.pid() as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = px.puerta.proc.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < EXIT_WITHIN,
            "{io}: still running {EXIT_WITHIN:?} after SIGTERM; log:\n{}",
            px.puerta.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{io}: exit {status:?}; log:\n{}", px.puerta.log());
    start.elapsed()
}

#[test]
fn churned_clients_leave_no_socket_and_sigterm_exits() {
    let cluster = Cluster::start_with(3, 0, 2000);
    for io in drivers() {
        let mut px = ClusterProxy::start(&cluster, io, "");
        let pid = px.puerta.proc.pid();
        // Node connections open first, so the baseline counts them.
        assert_eq!(Client::connect(px.port).unwrap().pipeline(&[cmd(&["PING"])]).unwrap()[0].raw[..], b"+PONG\r\n"[..]);
        std::thread::sleep(Duration::from_millis(300));
        let before = open_fds(pid);
        churn(px.port);
        // Every churned client is closed on both ends: the fd count comes
        // back to the baseline (a little slack for a node connection).
        let mut now = 0;
        wait_until(&format!("{io}: puerta's fds back to about {before}"), Duration::from_secs(10), || {
            now = open_fds(pid);
            now <= before + 2
        });
        println!("{io}: {} clients churned, fds {before} before, {now} after", CHURN_THREADS * CHURN_PER_THREAD);
        let took = wait_exit(&mut px, io);
        println!("{io}: exited {:.2}s after SIGTERM", took.as_secs_f64());
    }
}

#[test]
fn sigterm_exits_even_when_every_node_died_first() {
    for io in drivers() {
        let mut cluster = Cluster::start_with(3, 0, 2000);
        let mut px = ClusterProxy::start(&cluster, io, "");
        // Traffic to every master, so each worker holds node connections.
        {
            let mut c = Client::connect(px.port).unwrap();
            let cmds: Vec<Vec<u8>> = (0..300).map(|i| cmd(&["SET", &format!("k{i}"), "v"])).collect();
            let replies = c.pipeline(&cmds).unwrap();
            assert!(replies.iter().all(|r| &r.raw[..] == b"+OK\r\n"), "{io}: every SET answered +OK");
        }
        // A second client stays connected through the shutdown.
        let idle = Client::connect(px.port).unwrap();
        for port in cluster.master_ports() {
            cluster.kill(port);
        }
        // Let the workers notice the dead nodes and start reconnecting.
        std::thread::sleep(Duration::from_millis(500));
        let took = wait_exit(&mut px, io);
        drop(idle);
        println!("{io}: exited {:.2}s after SIGTERM with every node dead", took.as_secs_f64());
    }
}
