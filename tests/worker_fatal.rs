//! A worker that dies takes the process with it (DESIGN §5): the process
//! exits non-zero at once, so a supervisor restarts it, instead of running
//! half-alive with a dead worker's SO_REUSEPORT listener queueing clients
//! nobody accepts.
//!
//! No input can kill a worker any more, so the death is injected with a
//! failpoint that exists only in debug builds (`PUERTA_FAILPOINT`, see
//! `worker::failpoint`); the tests run the debug binary.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::*;

fn config(listen: u16, backend: u16, workers: usize) -> String {
    tcp_config(listen, &[backend], "", "").replace("workers = 2", &format!("workers = {workers}"))
}

/// Waits up to `limit` for the child to exit.
fn exit_within(p: &mut Puerta, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(status) = p.proc.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_worker_that_dies_ends_the_process_non_zero_under_both_drivers() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_port = backend.local_addr().unwrap().port();
    let cases = [("worker_panic_on_accept", 1), ("worker_panic_on_accept", 2), ("worker_error_on_accept", 2)];
    for io in drivers() {
        for (failpoint, workers) in cases {
            let what = format!("{io}, {workers} worker(s), {failpoint}");
            let port = free_port();
            let mut p = Puerta::start_with(&config(port, backend_port, workers), &["--io", io], |c| {
                c.env("PUERTA_FAILPOINT", failpoint);
            });
            // Whichever worker the kernel hands this client to fails.
            let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let status = exit_within(&mut p, Duration::from_secs(10))
                .unwrap_or_else(|| panic!("{what}: the process is still running with a dead worker"));
            assert!(!status.success(), "{what}: exited with {status}");
            let log = p.log();
            if failpoint == "worker_panic_on_accept" {
                // Aborted, with the panic in the log: thread, place, message.
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(status.signal(), Some(libc::SIGABRT), "{what}: {status}");
                assert!(log.contains("panic: failpoint worker_panic_on_accept"), "{what}: {log}");
                assert!(log.contains("puerta-w") && log.contains("src/worker/failpoint.rs"), "{what}: {log}");
            } else {
                assert_eq!(status.code(), Some(1), "{what}");
                assert!(log.contains("failpoint worker_error_on_accept"), "{what}: {log}");
            }
        }
    }
}
