//! Routing: snapshots, backend choice, client affinity and key placement
//! (nutcracker's ketama / modula / random rings).
//!
//! Pure data and decisions; never imports `worker` or `control` and never
//! does I/O, so every routing rule is unit-testable.

pub mod affinity;
pub mod balance;
pub mod ketama;
pub mod ring;
pub mod snapshot;

pub use ring::ShardRing;
pub use snapshot::{BackendState, Listener, PoolSnapshot, Snapshot, SnapshotCell};
