//! Routing: snapshots, backend choice and client affinity.
//!
//! Pure data and decisions; never imports `worker` or `control` and never
//! does I/O, so every routing rule is unit-testable.

pub mod affinity;
pub mod balance;
pub mod snapshot;

pub use snapshot::{BackendState, Listener, PoolSnapshot, Snapshot, SnapshotCell};
