//! Configuration: TOML file structs (serde) -> validated `Config`.
//!
//! Owns the two config layers described in STYLE.md §8: `file` holds the
//! serde structs with defaults, `types` the validated runtime values.
//! Invariant: `load` either returns a fully valid `Config` or an error that
//! names the file, the line, the key path and the problem. It never panics
//! on file content.

mod addr;
mod duration;
mod span;
mod types;

pub use types::*;

use std::path::Path;

/// A configuration problem, always pointing at its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {key}: {problem}")]
    Invalid {
        file: String,
        line: usize,
        key: String,
        problem: String,
    },
    /// Several independent problems, reported together.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let _ = path;
    todo!("config loader")
}
