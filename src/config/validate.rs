//! Layer 2: file structs -> validated `Config`, collecting every problem.
//!
//! Owns the rules: ranges, enum names, durations, uniqueness across pools.
//! Each check that does not depend on another's result runs even after an
//! earlier one failed, so one `puerta check` lists everything to fix.
//! Problems carry a `KeyPath`, not a line: this layer never sees the text,
//! and `mod.rs` maps paths to lines. Invariant: `Ok` only when there are
//! no problems at all, so nothing downstream re-validates.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::duration;
use super::file::{ConfigFile, Scalar, ServerFile};
use super::pool;
use super::span::KeyPath;
use super::twem::ListenAddr;
use super::types::{AdminToken, Config, IoMode, ServerSettings, Workers};

/// One thing wrong with the file, at a key path relative to some table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub path: KeyPath,
    pub problem: String,
}

/// Accumulates problems while a conversion carries on past them.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, path: KeyPath, problem: impl Into<String>) {
        self.0.push(Problem { path, problem: problem.into() });
    }

    /// Records `result`'s error under `path` and turns it into an `Option`.
    pub(crate) fn check<T>(&mut self, path: KeyPath, result: Result<T, String>) -> Option<T> {
        result.map_err(|problem| self.add(path, problem)).ok()
    }

    /// Takes in problems found relative to the table at `base`.
    pub(crate) fn absorb(&mut self, base: &KeyPath, other: Problems) {
        for p in other.0 {
            self.add(p.path.under(base), p.problem);
        }
    }

    /// `Ok(value)` only if nothing was recorded.
    pub(crate) fn finish<T>(self, value: Option<T>) -> Result<T, Vec<Problem>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

/// Validates the whole file. `source` is recorded as `Config.source`.
pub(crate) fn validate(file: ConfigFile, source: &Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Problems::default();
    let root = KeyPath::root();

    let server_path = root.key("server");
    let server = match ServerSettings::try_from(file.server) {
        Ok(s) => Some(s),
        Err(list) => {
            problems.absorb(&server_path, Problems(list));
            None
        }
    };

    let pool_path = root.key("pool");
    if file.pool.is_empty() {
        problems.add(pool_path.clone(), "expected at least one [[pool]] table, got none");
    }
    let mut pools = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut listens = HashMap::new();
    if let Some(s) = &server {
        listens.insert(ListenAddr::Tcp(s.admin), server_path.key("admin"));
    }
    for (i, raw) in file.pool.iter().enumerate() {
        let base = pool_path.index(i);
        let mut own = Problems::default();
        let dir = source.parent().unwrap_or(Path::new("."));
        let (listen, pool) = pool::convert(raw, dir, &mut own);
        problems.absorb(&base, own);
        // Compared as written, so a duplicate is reported even when the
        // name is also malformed or the pool has other problems.
        if let Some(name) = raw.name.as_deref() {
            match names.get(name) {
                Some(first) => problems.add(
                    base.key("name"),
                    format!("expected a unique pool name, got {name:?} (also pool[{first}].name)"),
                ),
                None => {
                    names.insert(name, i);
                }
            }
        }
        if let Some(addr) = listen {
            // A unix path is one socket whatever its permissions.
            let addr = match addr {
                ListenAddr::Unix { path, .. } => ListenAddr::Unix { path, perm: None },
                tcp => tcp,
            };
            if let Some(first) = listens.get(&addr) {
                problems
                    .add(base.key("listen"), format!("expected a unique listen address, got {addr} (also {first})"));
            } else {
                listens.insert(addr, base.key("listen"));
            }
        }
        if let Some(addr) = pool.as_ref().and_then(|p| p.tls.plain_listen) {
            let addr = ListenAddr::Tcp(addr);
            if let Some(first) = listens.get(&addr) {
                problems.add(
                    base.key("plain_listen"),
                    format!("expected a unique listen address, got {addr} (also {first})"),
                );
            } else {
                listens.insert(addr, base.key("plain_listen"));
            }
        }
        pools.extend(pool);
    }

    let users = super::users::convert(&file.user, &file.pool, &mut problems);
    super::users::attach(&users, &file.pool, &mut pools, &mut problems);
    let config = server.map(|server| Config { source: source.to_path_buf(), server, pools, users });
    problems.finish(config)
}

impl TryFrom<ServerFile> for ServerSettings {
    type Error = Vec<Problem>;

    /// Converts `[server]`; problem paths are relative to it ("workers").
    fn try_from(file: ServerFile) -> Result<Self, Vec<Problem>> {
        let mut p = Problems::default();
        let key = |k: &str| KeyPath::root().key(k);

        let workers = p.check(key("workers"), workers(&file.workers));
        let cpus = match &file.cpus {
            None => Some(None),
            Some(list) => cpus(list, workers, &mut p).map(Some),
        };
        let io = p.check(
            key("io"),
            pick(&file.io, &[("auto", IoMode::Auto), ("uring", IoMode::Uring), ("epoll", IoMode::Epoll)]),
        );
        let admin = p.check(key("admin"), super::addr::resolve(&file.admin));
        let admin_token = p.check(key("admin_token"), file.admin_token.as_deref().map(AdminToken::new).transpose());
        let log = p.check(key("log"), log_filter(&file.log));
        let shutdown_timeout = p.check(key("shutdown_timeout"), duration(&file.shutdown_timeout));
        let max_buffered_bytes = p.check(key("max_buffered_bytes"), max_buffered(&file.max_buffered_bytes));
        let metrics_detail = p.check(key("metrics_detail"), super::obs::metrics_detail(&file.metrics_detail));
        let wait = super::wait::policy(&mut p, &file);

        let settings = (|| {
            Some(ServerSettings {
                workers: workers?,
                cpus: cpus?,
                io: io?,
                admin: admin?,
                admin_token: admin_token?,
                log: log?,
                shutdown_timeout: shutdown_timeout?,
                max_buffered_bytes: max_buffered_bytes?,
                metrics_detail: metrics_detail?,
                wait: wait?,
            })
        })();
        p.finish(settings)
    }
}

/// A byte size, or "off" / 0 for no cap.
fn max_buffered(v: &Scalar) -> Result<Option<u64>, String> {
    match v {
        Scalar::Text(t) if t == "off" => Ok(None),
        v => super::limits::size(v).map(|n| (n > 0).then_some(n)),
    }
}

fn workers(v: &Scalar) -> Result<Workers, String> {
    match v {
        Scalar::Text(s) if s == "auto" => Ok(Workers::Auto),
        Scalar::Int(n) if *n >= 1 => Ok(Workers::Count(usize::try_from(*n).unwrap_or(usize::MAX))),
        other => Err(format!(r#"expected "auto" or an integer >= 1, got {other}"#)),
    }
}

/// Checks the CPU list; `workers` is `None` when it was itself invalid, in
/// which case the length rule cannot be judged and is skipped.
fn cpus(list: &[i64], workers: Option<Workers>, p: &mut Problems) -> Option<Vec<usize>> {
    let path = KeyPath::root().key("cpus");
    if list.is_empty() {
        p.add(path, "expected at least one CPU index, got an empty list");
        return None;
    }
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, &cpu) in list.iter().enumerate() {
        let Ok(cpu) = usize::try_from(cpu) else {
            p.add(path.index(i), format!("expected a CPU index >= 0, got {cpu}"));
            continue;
        };
        // Two workers on one CPU would defeat thread-per-core, so a repeat
        // is almost certainly a typo.
        if let Some(first) = seen.insert(cpu, i) {
            p.add(path.index(i), format!("expected each CPU once, got {cpu} again (also cpus[{first}])"));
        }
        out.push(cpu);
    }
    if let Some(Workers::Count(n)) = workers {
        if list.len() < n {
            p.add(path, format!("expected at least {n} CPUs for workers = {n}, got {}", list.len()));
            return None;
        }
    }
    (out.len() == list.len()).then_some(out)
}

fn log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!(r#"expected a tracing filter like "info" or "puerta=debug", got {text:?} ({e})"#))
}

/// Looks `text` up in `table`, naming every accepted word on failure.
pub(crate) fn pick<T: Copy>(text: &str, table: &[(&str, T)]) -> Result<T, String> {
    table.iter().find(|(name, _)| *name == text).map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        format!("expected one of {}, got {text:?}", names.join(", "))
    })
}

/// An integer in `min..=max`.
pub(crate) fn int_in(n: i64, min: i64, max: i64) -> Result<i64, String> {
    if n < min {
        Err(format!("expected an integer >= {min}, got {n}"))
    } else if n > max {
        Err(format!("expected an integer <= {max}, got {n}"))
    } else {
        Ok(n)
    }
}

/// Any duration, zero included.
pub(crate) fn duration(v: &Scalar) -> Result<Duration, String> {
    match v {
        Scalar::Int(n) => u64::try_from(*n).ok().map(Duration::from_millis),
        Scalar::Text(s) => duration::parse(s),
    }
    .ok_or_else(|| format!("expected {}, got {v}", duration::EXPECTED))
}

/// A duration > 0, for timeouts and intervals where zero would mean
/// "fail instantly" or "spin".
pub(crate) fn positive_duration(v: &Scalar) -> Result<Duration, String> {
    match duration(v)? {
        d if d.is_zero() => Err(format!("expected a duration > 0, got {v}")),
        d => Ok(d),
    }
}

/// A duration that may be switched off with "off", "none" or zero.
pub(crate) fn optional_duration(v: &Scalar) -> Result<Option<Duration>, String> {
    let d = match v {
        Scalar::Int(n) => u64::try_from(*n).ok().map(|ms| (ms > 0).then(|| Duration::from_millis(ms))),
        Scalar::Text(s) => duration::parse_optional(s),
    };
    d.ok_or_else(|| format!(r#"expected {} or "off", got {v}"#, duration::EXPECTED))
}
