//! Routing: snapshots, backend choice, client affinity and key placement
//! (nutcracker's ketama / modula / random rings, Redis Cluster slots).
//!
//! Pure data and decisions; never imports `worker` or `control` and never
//! does I/O, so every routing rule is unit-testable.

pub mod affinity;
pub mod balance;
pub mod ketama;
pub mod keyslot;
pub mod ring;
pub mod slotmap;
pub mod snapshot;

pub use keyslot::{keyslot, slot_of, SlotOf, SLOTS};
pub use ring::ShardRing;
pub use slotmap::{ClusterReport, SlotMap};
pub use snapshot::{BackendState, Listener, PoolSnapshot, Snapshot, SnapshotCell};
