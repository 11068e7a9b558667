//! Failpoints: faults a test switches on with `PUERTA_FAILPOINT=<name>`
//! (a comma-separated list), so the end-to-end tests can prove what happens
//! when a worker dies although no input can make one die any more.
//!
//! They exist in debug builds only (`debug_assertions`): in a release build
//! `on_accept` is an empty inline function and the variable is never read,
//! so a production process cannot be told to crash by its environment.
//!
//! Names:
//! - `worker_panic_on_accept`: the worker that accepts a client panics;
//! - `worker_error_on_accept`: its driver's `run` returns an error;
//! - `no_client_limit`: no process-wide client limit (`fdlimit`), so a
//!   test can run the process out of descriptors and see what accept does
//!   then (the limit is the first defence, the accept backoff the second).

use std::io;

/// Called by both drivers for every client they accept, before admission.
/// `Err` asks the driver to stop with that error (see `WorkerCore::fatal`).
#[cfg(debug_assertions)]
pub fn on_accept() -> io::Result<()> {
    if enabled("worker_panic_on_accept") {
        panic!("failpoint worker_panic_on_accept");
    }
    if enabled("worker_error_on_accept") {
        return Err(io::Error::other("failpoint worker_error_on_accept"));
    }
    Ok(())
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn on_accept() -> io::Result<()> {
    Ok(())
}

/// True when the derived client limit is switched off.
#[cfg(debug_assertions)]
pub fn no_client_limit() -> bool {
    enabled("no_client_limit")
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn no_client_limit() -> bool {
    false
}

/// Whether `name` is listed in `PUERTA_FAILPOINT` (read once per process).
#[cfg(debug_assertions)]
fn enabled(name: &str) -> bool {
    static LIST: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let list = LIST.get_or_init(|| {
        let v = std::env::var("PUERTA_FAILPOINT").unwrap_or_default();
        v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
    });
    list.iter().any(|n| n == name)
}
