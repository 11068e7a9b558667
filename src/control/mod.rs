//! The control thread: health checks, reloads and snapshot publication.
//!
//! Owner of topology and health. It is the only writer of snapshots; workers
//! and admin talk to it only by `ControlMsg`. Invariant: a snapshot is
//! published whole, after the config it came from validated and every
//! listener it names was bound.

pub mod build;
pub mod cluster;
pub mod eject;
pub mod health;
pub mod listeners;
pub mod mongo_probe;
mod run;

#[cfg(test)]
mod eject_tests;

pub use run::{Control, ControlState};

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
