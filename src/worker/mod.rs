//! Data-plane workers: one pinned thread per core, each with its own event
//! loop (io_uring, or epoll as the fallback), listeners and backend sockets.
//!
//! Owner: each worker thread owns everything it creates; the only shared
//! state it touches is its own stats block (single writer) and, at accept
//! and close only, a pool's client count and the process-wide client
//! budget (`fdlimit`). Invariants: a worker builds its ring *inside* its
//! thread, after pinning, so SINGLE_ISSUER holds; a worker never ends alone
//! while the process runs on: its end is reported on the exit channel
//! (`Workers::wait`), and `main` exits non-zero on the first failure (a
//! panic aborts the process before that, see `main`'s panic hook).
//!
//! Layout: the driver-independent core (`core`, `mux_drive`, `relay`,
//! `slab`, `mux_pools`, `accept*`, `buffer_cap`) and two drivers that
//! mirror each other, `uring/` and `epoll/`, each implementing `MuxIo`
//! (multiplexed pools) and `RelayIo` (tcp/mongos relays).

mod accept;
pub mod accept_backoff;
mod buffer_cap;
mod bufring;
mod client_socks;
pub mod core;
mod epoll;
pub mod failpoint;
pub mod id_hash;
pub mod ip_limits;
mod linger;
pub mod mongo;
pub(crate) mod mux_admit;
mod mux_drive;
pub mod mux_pools;
#[cfg(test)]
mod mux_pools_tests;
mod relay;
mod relay_tls;
mod slab;
pub mod sys;
mod tls_backend;
mod tls_io;
mod uring;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::shared::{DriverKind, Shared};

/// True when this kernel lets us set up a ring with a provided buffer ring,
/// i.e. everything the io_uring driver needs.
pub fn uring_available() -> bool {
    match uring::new_ring() {
        Ok(ring) => bufring::BufRing::new(&ring, 2, 64, 0, 2).is_ok(),
        Err(_) => false,
    }
}

/// A running worker: its thread and the eventfd that wakes it.
pub struct WorkerHandle {
    pub join: JoinHandle<()>,
    pub wake_fd: RawFd,
}

/// The running workers, and the channel on which each reports its end.
pub struct Workers {
    pub handles: Vec<WorkerHandle>,
    exits: crossbeam_channel::Receiver<(usize, Option<io::Error>)>,
}

impl Workers {
    /// Waits until every worker has drained and stopped (`Ok`), or until the
    /// first one fails (`Err` at once, without waiting for the others): a
    /// process with a dead worker must exit rather than run half-alive,
    /// since the kernel keeps queueing a share of new clients on the dead
    /// worker's SO_REUSEPORT listener.
    pub fn wait(self) -> Result<(), WorkerError> {
        let mut left = self.handles.len();
        while left > 0 {
            match self.exits.recv() {
                Ok((_, None)) => left -= 1,
                Ok((worker, Some(source))) => return Err(WorkerError::Failed { worker, source }),
                // Every worker holds a sender until its thread ends.
                Err(_) => break,
            }
        }
        for h in self.handles {
            let _ = h.join.join();
        }
        Ok(())
    }
}

/// Sends the worker's end on the exit channel when its thread ends, however
/// it ends: a driver error, a clean drain, or (in a build where panics
/// unwind and no hook aborts first) a panic.
struct ExitNotice {
    worker: usize,
    tx: crossbeam_channel::Sender<(usize, Option<io::Error>)>,
    outcome: Option<Option<io::Error>>,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or_else(|| Some(io::Error::other("the worker thread panicked")));
        let _ = self.tx.send((self.worker, outcome));
    }
}

/// Why the workers could not start. Startup fails as a whole: a worker
/// that died at setup would leave its SO_REUSEPORT listener in the
/// snapshot, and the kernel would keep queueing its share of clients there
/// with nobody to accept them.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker {worker}: cannot create its wake eventfd: {source}")]
    Eventfd { worker: usize, source: io::Error },
    #[error("worker {worker}: cannot spawn its thread: {source}")]
    Spawn { worker: usize, source: io::Error },
    /// The driver could not set up (an io_uring ring or buffer ring the
    /// kernel refused for this thread although the startup probe passed,
    /// e.g. RLIMIT_MEMLOCK on kernels that charge rings to it).
    #[error("worker {worker}: {driver} driver setup failed: {source} (io = \"epoll\" avoids io_uring)")]
    Setup { worker: usize, driver: &'static str, source: io::Error },
    #[error("worker {worker}: thread ended during setup")]
    Vanished { worker: usize },
    /// A running worker's driver stopped with an error.
    #[error("worker {worker} failed: {source}")]
    Failed { worker: usize, source: io::Error },
}

/// Starts `shared.workers.len()` workers. `cpus[i]` is the core worker `i`
/// pins to (`None`: not pinned). Returns once every worker has built its
/// driver (ring or poll) inside its own thread, or with the first failure.
pub fn spawn(shared: &Arc<Shared>, cpus: &[Option<core_affinity::CoreId>]) -> Result<Workers, WorkerError> {
    let mut out = Vec::new();
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<(usize, Option<io::Error>)>();
    let (exit_tx, exits) = crossbeam_channel::unbounded::<(usize, Option<io::Error>)>();
    for id in 0..shared.workers.len() {
        let wake_fd = sys::eventfd().map_err(|source| WorkerError::Eventfd { worker: id, source })?;
        let shared = shared.clone();
        let cpu = cpus.get(id).copied().flatten();
        let ready = ready_tx.clone();
        let exit_tx = exit_tx.clone();
        let join = std::thread::Builder::new()
            .name(format!("puerta-w{id}"))
            .spawn(move || {
                let mut notice = ExitNotice { worker: id, tx: exit_tx, outcome: None };
                if let Some(core) = cpu {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(worker = id, cpu = core.id, "could not pin worker");
                    }
                }
                let driver = shared.driver;
                let core = self::core::WorkerCore::new(id, shared);
                // Setup happens here, after pinning, so the ring belongs to
                // this thread (SINGLE_ISSUER). `ready` is dropped once sent,
                // so a thread that dies in setup ends `spawn`'s wait too.
                let res = match driver {
                    DriverKind::Uring => uring::UringDriver::new(core, wake_fd).map(Driver::Uring),
                    DriverKind::Epoll => epoll::EpollDriver::new(core, wake_fd).map(Driver::Epoll),
                };
                let driver = match res {
                    Ok(d) => {
                        let _ = ready.send((id, None));
                        d
                    }
                    Err(e) => {
                        let _ = ready.send((id, Some(e)));
                        notice.outcome = Some(None); // `spawn` reports this one
                        return;
                    }
                };
                drop(ready);
                let res = match driver {
                    Driver::Uring(d) => d.run(),
                    Driver::Epoll(d) => d.run(),
                };
                match res {
                    Ok(()) => tracing::debug!(worker = id, "worker stopped"),
                    Err(ref e) => tracing::error!(worker = id, err = %e, "worker failed; the process exits"),
                }
                notice.outcome = Some(res.err());
            })
            .map_err(|source| WorkerError::Spawn { worker: id, source })?;
        out.push(WorkerHandle { join, wake_fd });
    }
    drop(ready_tx);
    drop(exit_tx);
    let driver = shared.driver.as_str();
    let mut started = vec![false; out.len()];
    while started.contains(&false) {
        match ready_rx.recv() {
            Ok((worker, None)) => started[worker] = true,
            Ok((worker, Some(source))) => return Err(WorkerError::Setup { worker, driver, source }),
            Err(_) => {
                let worker = started.iter().position(|&s| !s).unwrap_or(0);
                return Err(WorkerError::Vanished { worker });
            }
        }
    }
    Ok(Workers { handles: out, exits })
}

/// A worker's driver, built in its thread before it reports ready. One
/// lives per worker thread, on its stack, so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Driver {
    Uring(uring::UringDriver),
    Epoll(epoll::EpollDriver),
}
