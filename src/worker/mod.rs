//! Data-plane workers: one pinned thread per core, each with its own event
//! loop (io_uring, or epoll as the fallback), listeners and backend sockets.
//!
//! Owner: each worker thread owns everything it creates; the only shared
//! state it touches is its own stats block (single writer) and, at accept
//! and close only, a pool's client count. Invariant: a worker builds its ring
//! *inside* its thread, after pinning, so SINGLE_ISSUER holds.

mod bufring;
mod conn;
pub mod core;
mod epoll;
pub mod mongo;
pub mod mux_pools;
pub mod sys;
mod uring;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::control::{DriverKind, Shared};

/// True when this kernel lets us set up a ring with a provided buffer ring,
/// i.e. everything the io_uring driver needs.
pub fn uring_available() -> bool {
    match uring::new_ring() {
        Ok(ring) => bufring::BufRing::new(&ring, 2, 64, 0).is_ok(),
        Err(_) => false,
    }
}

/// A running worker: its thread and the eventfd that wakes it.
pub struct WorkerHandle {
    pub join: JoinHandle<()>,
    pub wake_fd: RawFd,
}

/// Starts `shared.workers.len()` workers. `cpus[i]` is the core worker `i`
/// pins to (`None`: not pinned).
pub fn spawn(shared: &Arc<Shared>, cpus: &[Option<core_affinity::CoreId>]) -> io::Result<Vec<WorkerHandle>> {
    let mut out = Vec::new();
    for id in 0..shared.workers.len() {
        let wake_fd = sys::eventfd()?;
        let shared = shared.clone();
        let cpu = cpus.get(id).copied().flatten();
        let join = std::thread::Builder::new().name(format!("puerta-w{id}")).spawn(move || {
            if let Some(core) = cpu {
                if !core_affinity::set_for_current(core) {
                    tracing::warn!(worker = id, cpu = core.id, "could not pin worker");
                }
            }
            let driver = shared.driver;
            let core = self::core::WorkerCore::new(id, shared);
            let res = match driver {
                DriverKind::Uring => uring::UringDriver::new(core, wake_fd).and_then(|d| d.run()),
                DriverKind::Epoll => epoll::EpollDriver::new(core, wake_fd).and_then(|d| d.run()),
            };
            match res {
                Ok(()) => tracing::debug!(worker = id, "worker stopped"),
                Err(e) => tracing::error!(worker = id, err = %e, "worker failed"),
            }
        })?;
        out.push(WorkerHandle { join, wake_fd });
    }
    Ok(out)
}
