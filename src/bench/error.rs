//! The bench tool's error enum: what stops a `puerta bench` run before or
//! outside the load itself.
//!
//! Failures *during* the load (refused connections, timeouts, error replies)
//! are never errors of this kind: they are counted by `record::ErrKind` and
//! reported, so a broken target gives a report, not an abort.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    /// A flag value that parses but makes no sense; exit 2.
    #[error("{flag}: {problem}")]
    Flag { flag: &'static str, problem: String },
    /// `--cluster`: the first target did not give a usable CLUSTER SLOTS map.
    #[error("--cluster: cannot read CLUSTER SLOTS from {target}: {problem}")]
    ClusterSlots { target: String, problem: String },
    /// An output file (`--json`, `--csv`, `--hdr`, `--plot`) could not be written.
    #[error("cannot write {what} {path}: {problem}")]
    Output { what: &'static str, path: String, problem: String },
    #[error("cannot start load thread: {0}")]
    Thread(std::io::Error),
}

impl BenchError {
    pub fn flag(flag: &'static str, problem: impl Into<String>) -> BenchError {
        BenchError::Flag { flag, problem: problem.into() }
    }

    /// Exit status: 2 for bad flags (like clap's own usage errors), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            BenchError::Flag { .. } => 2,
            _ => 1,
        }
    }
}
