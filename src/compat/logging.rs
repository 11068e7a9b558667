//! Logging setup shared by both command lines: a tracing filter that can be
//! changed at run time (SIGTTIN / SIGTTOU step it up and down, as
//! nutcracker's do) and an optional log file that SIGHUP reopens, so
//! logrotate's "move, then HUP" works as it does with nutcracker.
//!
//! Owner: the process; `LogControl` is handed to the signal thread.
//! Invariant: a write goes either to the file open at that moment or, after
//! a failed reopen, to the old handle; a log line is never split.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// The verbosity ladder SIGTTIN climbs and SIGTTOU descends.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// nutcracker's `-v N` (0..11, default 5 = notice) as a tracing level:
/// up to 3 (emerg..err) is error, 4 warn, 5-6 (notice, info) info, 7
/// debug, 8 and up (verb..pverb) trace.
pub fn nutcracker_level(n: u32) -> &'static str {
    match n {
        0..=3 => "error",
        4 => "warn",
        5 | 6 => "info",
        7 => "debug",
        _ => "trace",
    }
}

type SetFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Run-time control over logging, used by the signal thread.
pub struct LogControl {
    set_filter: SetFilter,
    level: AtomicUsize,
    file: Option<(PathBuf, Arc<Mutex<File>>)>,
}

impl LogControl {
    /// SIGHUP: reopens the log file at its path (a no-op for stderr).
    pub fn reopen(&self) -> io::Result<()> {
        let Some((path, shared)) = &self.file else { return Ok(()) };
        let fresh = open_append(path)?;
        // The SIGSEGV handler's copy follows the file too.
        super::fatal::redirect(&fresh)?;
        match shared.lock() {
            Ok(mut f) => *f = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// A new descriptor for the current log (the file, or stderr), for
    /// writers that cannot take the lock (`fatal`).
    pub fn dup_fd(&self) -> io::Result<std::os::fd::OwnedFd> {
        match &self.file {
            Some((_, shared)) => {
                let f = shared.lock().map_err(|_| io::Error::other("log file lock poisoned"))?;
                Ok(f.try_clone()?.into())
            }
            None => std::io::stderr().as_fd().try_clone_to_owned(),
        }
    }

    /// SIGTTIN: one step more verbose. Returns the new level.
    pub fn raise(&self) -> &'static str {
        self.step(1)
    }

    /// SIGTTOU: one step less verbose. Returns the new level.
    pub fn lower(&self) -> &'static str {
        self.step(-1)
    }

    fn step(&self, by: isize) -> &'static str {
        let now = self.level.load(Ordering::Relaxed) as isize;
        let next = (now + by).clamp(0, LEVELS.len() as isize - 1) as usize;
        self.level.store(next, Ordering::Relaxed);
        let level = LEVELS[next];
        if let Err(e) = (self.set_filter)(level) {
            tracing::error!("cannot change log level: {e}");
        }
        level
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes whole log lines to the current log file.
struct FileWriter(Arc<Mutex<File>>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().map_err(|_| io::Error::other("log file lock poisoned"))?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.lock().map_err(|_| io::Error::other("log file lock poisoned"))?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Installs the global subscriber: `filter` (a tracing directive), writing
/// to `file` (appended, created if missing) or else to stderr.
pub fn init(filter: &str, file: Option<&Path>) -> Result<LogControl, String> {
    let env = EnvFilter::try_new(filter).map_err(|e| format!("invalid log filter {filter:?}: {e}"))?;
    let (layer, handle) = reload::Layer::<EnvFilter, Registry>::new(env);
    let set_filter: SetFilter = Box::new(move |level: &str| {
        let f = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(f).map_err(|e| e.to_string())
    });
    let level = AtomicUsize::new(LEVELS.iter().position(|l| *l == filter).unwrap_or(2));
    let registry = tracing_subscriber::registry().with(layer);
    let file = match file {
        Some(path) => {
            let f = open_append(path).map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            let shared = Arc::new(Mutex::new(f));
            let writer = shared.clone();
            let out = fmt::layer().with_ansi(false).with_writer(move || FileWriter(writer.clone()));
            registry.with(out).try_init().map_err(|e| e.to_string())?;
            Some((path.to_path_buf(), shared))
        }
        None => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry
                .with(fmt::layer().with_ansi(ansi).with_writer(io::stderr))
                .try_init()
                .map_err(|e| e.to_string())?;
            None
        }
    };
    Ok(LogControl { set_filter, level, file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nutcracker_verbosity_maps_onto_tracing_levels() {
        assert_eq!(nutcracker_level(0), "error");
        assert_eq!(nutcracker_level(4), "warn");
        assert_eq!(nutcracker_level(5), "info");
        assert_eq!(nutcracker_level(7), "debug");
        assert_eq!(nutcracker_level(11), "trace");
    }

    #[test]
    fn ladder_steps_and_clamps() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let c = LogControl {
            set_filter: Box::new(move |l| {
                s.lock().unwrap().push(l.to_owned());
                Ok(())
            }),
            level: AtomicUsize::new(2),
            file: None,
        };
        assert_eq!(c.raise(), "debug");
        assert_eq!(c.raise(), "trace");
        assert_eq!(c.raise(), "trace", "clamped at the top");
        for _ in 0..6 {
            c.lower();
        }
        assert_eq!(c.lower(), "error", "clamped at the bottom");
        assert_eq!(seen.lock().unwrap()[..2], ["debug".to_owned(), "trace".to_owned()]);
        assert!(c.reopen().is_ok(), "stderr has nothing to reopen");
    }

    #[test]
    fn reopen_follows_a_moved_file() {
        let dir = std::env::temp_dir().join(format!("puerta-log-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.log");
        let shared = Arc::new(Mutex::new(open_append(&path).unwrap()));
        let c = LogControl {
            set_filter: Box::new(|_| Ok(())),
            level: AtomicUsize::new(2),
            file: Some((path.clone(), shared.clone())),
        };
        FileWriter(shared.clone()).write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.join("p.log.1")).unwrap();
        c.reopen().unwrap();
        FileWriter(shared).write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("p.log.1")).unwrap(), "one\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
