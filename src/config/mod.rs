//! Configuration: TOML file structs (serde) -> validated `Config`.
//!
//! Owns the two config layers described in STYLE.md §8: `file` holds the
//! serde structs with defaults, `types` the validated runtime values, and
//! `validate` (with `pool`, `addr`, `duration`) converts one into the other.
//! `span` maps a problem's key path back to a line. The pipeline is:
//! text -> `toml_edit` (syntax, spans) -> serde (shape, defaults) ->
//! validation (values, all problems at once) -> `Config`. nutcracker YAML
//! (`yaml`, `yaml_tree`) enters the same pipeline at the serde step.
//! Invariant: `load` either returns a fully valid `Config` or an error that
//! names the file, the line, the key path and the problem. It never panics
//! on file content.

mod addr;
mod cluster;
mod cluster_pool;
mod duration;
mod file;
mod file_de;
mod limits;
mod mongo;
mod obs;
mod pool;
mod ratelimit;
mod span;
mod summary;
mod tls;
mod twem;
mod twem_pool;
mod types;
mod users;
mod validate;
mod wait;
mod yaml;
mod yaml_tree;

#[cfg(test)]
mod ratelimit_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod twem_tests;

pub use cluster::{ClusterCommands, ClusterConfig, ReadFrom};
/// Duration text ("500ms", "10s", ...), shared with `puerta bench`'s flags.
pub(crate) use duration::parse as parse_duration;
pub use limits::{OutputLimit, DEFAULT_CLIENT_QUEUE_LIMIT, DEFAULT_MAX_BUFFERED_BYTES};
pub use obs::{MetricsDetail, ObsConfig};
pub use ratelimit::{PerIp, RateLimits};
pub use tls::{expired as expired_certificates, PoolTls, DEFAULT_HANDSHAKE_TIMEOUT};
pub use twem::*;
pub use types::*;
pub use wait::WaitPolicy;

use std::path::Path;

use toml_edit::ImDocument;

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
    Invalid { file: String, line: usize, key: String, problem: String },
    /// Several independent problems, reported together.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

/// Reads and validates a config file. `Config.source` is `path` as given.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let src =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Io { file: path.display().to_string(), source })?;
    parse(&src, path)
}

/// Validates config text; `file` names it in errors and in `Config.source`.
/// nutcracker YAML (by extension or content, see `is_nutcracker_yaml`) is
/// read as such; anything else is Puerta's TOML.
pub fn parse(src: &str, file: &Path) -> Result<Config, ConfigError> {
    if yaml::is_yaml(file, src) {
        return yaml::parse(src, file);
    }
    let name = file.display().to_string();
    let invalid = |line, key: String, problem: String| ConfigError::Invalid { file: name.clone(), line, key, problem };

    // Syntax first, with toml_edit: it keeps the spans that validation
    // errors need later, and its errors carry a span of their own.
    let doc = ImDocument::parse(src).map_err(|e| {
        let line = e.span().map_or(1, |s| span::line_of(src, s.start));
        // toml_edit splits "what" and "expected what" over lines; one line
        // keeps `file:line: key: problem` greppable.
        let message = e.message().lines().map(str::trim).collect::<Vec<_>>().join("; ");
        invalid(line, "(syntax)".to_owned(), message)
    })?;

    let raw = file::deserialize(src).map_err(|e| {
        let line = e.line.unwrap_or_else(|| e.path.line_in(&doc));
        invalid(line, key_text(&e.path), e.problem)
    })?;

    validate::validate(raw, file).map_err(|problems| {
        let mut errors: Vec<ConfigError> =
            problems.into_iter().map(|p| invalid(p.path.line_in(&doc), key_text(&p.path), p.problem)).collect();
        // Validation order is server-then-pools; file order reads better.
        errors.sort_by_key(|e| match e {
            ConfigError::Invalid { line, .. } => *line,
            _ => 0,
        });
        match errors.len() {
            // Unreachable by construction (validate only fails with a
            // problem), but a wrong message beats a panic on user input.
            0 => invalid(1, "(file)".to_owned(), "invalid, reason unknown (a puerta bug)".to_owned()),
            1 => errors.remove(0),
            _ => ConfigError::Many(errors),
        }
    })
}

/// True when `load` would read `path` (with content `src`) as nutcracker
/// YAML: a `.yml`/`.yaml` name, or text starting with a bare `name:` key.
/// Such files carry no `[server]` settings; the command line supplies them.
pub fn is_nutcracker_yaml(path: &Path, src: &str) -> bool {
    yaml::is_yaml(path, src)
}

/// The key column of an error; a problem with the file as a whole has none.
fn key_text(path: &span::KeyPath) -> String {
    if path.is_root() {
        "(file)".to_owned()
    } else {
        path.to_string()
    }
}
