//! What the control thread, the workers and admin share, so that none of
//! them imports another for it: the process-wide `Shared` block, the
//! messages to the control thread (`ControlMsg`), the driver choice
//! (`DriverKind`) and the eventfd signal that wakes a worker.
//!
//! Owner: `main` builds `Shared` once and every thread holds an `Arc` of
//! it. Invariant: apart from single-writer counters and the snapshot cell
//! (one writer, the control thread), everything here is read-only after
//! start.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::route::SnapshotCell;
use crate::stats::{HealthStats, WorkerStats};

/// The I/O driver the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    Uring,
    Epoll,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Uring => "io_uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

/// Messages to the control thread.
#[derive(Debug)]
pub enum ControlMsg {
    /// Re-read the config file; reply with a summary or the reason it failed.
    Reload { reply: Option<Sender<Result<String, String>>> },
    /// A worker saw a backend refuse or die; probe it now.
    BackendFailed { pool_stat_id: usize, backend_stat_id: usize },
    /// A worker's connection to a backend succeeded or it answered; ends
    /// the backend's failure streak for `auto_eject_hosts`.
    BackendOk { pool_stat_id: usize, backend_stat_id: usize },
    /// A worker's report about a redis_cluster pool (a MOVED it followed,
    /// a node it could not reach); reports are merged into one refresh.
    Cluster { pool_stat_id: usize, report: crate::route::ClusterReport },
    /// SIGTERM/SIGINT: publish a draining snapshot.
    Shutdown,
}

/// State shared read-only (apart from single-writer counters) by all threads.
#[derive(Debug)]
pub struct Shared {
    pub cell: SnapshotCell,
    /// One block per worker, indexed by worker id.
    pub workers: Vec<Arc<WorkerStats>>,
    pub health: HealthStats,
    pub driver: DriverKind,
    pub started: Instant,
    pub control: Sender<ControlMsg>,
    /// The process-wide client limit derived from RLIMIT_NOFILE and the
    /// clients held against it (`fdlimit`).
    pub clients: crate::fdlimit::ClientBudget,
}

/// Wakes the worker whose eventfd is `fd` (a new snapshot to load).
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64.
    unsafe {
        libc::write(fd, &one as *const u64 as *const libc::c_void, 8);
    }
}
