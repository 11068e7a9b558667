//! The admin HTTP port: metrics, liveness, readiness, stats and reload.
//!
//! Owns nothing. It reads `Shared` (the snapshot cell and single-writer
//! counters, loads only); it never writes a counter or publishes a snapshot,
//! and no worker ever waits on it.
//!
//! Files: `metrics`, `json`, `ready` (readiness decision), `totals`
//! (cross-worker sums).

pub mod json;
pub mod metrics;
mod ready;
mod totals;

#[cfg(test)]
mod fixture;

pub use ready::readiness;
