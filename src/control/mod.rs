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

// Re-exported so admin, main and tests keep their `control::` paths;
// workers import them from `crate::shared`.
pub use crate::shared::{ControlMsg, DriverKind, Shared};
