//! `puerta` entry point: parse flags, validate config, start the threads.
//!
//! Two command lines reach the same server: Puerta's own (`puerta [run] -c
//! FILE`, `puerta check`) and nutcracker's (`-c -t -d -p -o -v -s -a -i -m
//! -V -D -h`, parsed in `cli::nutcracker` and run by `cli::nutcracker_run`).
//! Both end in `serve`. Order matters: the config is validated and every
//! listener and the admin and stats ports are bound *before* any worker
//! starts, so a bad file or a busy port exits non-zero with nothing
//! running. With `-d` the process daemonizes after validating the config
//! and before starting any thread.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use mimalloc::MiMalloc;

use puerta::compat::logging::{self, LogControl};
use puerta::compat::{fatal, signals};
use puerta::config::{self, Config, IoMode, Workers};
use puerta::control::{Control, ControlState, DriverKind, Shared};
use puerta::fdlimit;
use puerta::route::SnapshotCell;
use puerta::stats::{HealthStats, WorkerStats};

mod cli;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Turns transparent huge pages off for this process before `main` (and
/// before any allocation touches a page): mimalloc advises its arenas
/// MADV_HUGEPAGE, so with THP on every worker heap costs whole 2 MiB pages
/// for a few KiB of live data (16 MiB of a 22 MiB RSS at start with
/// `workers = 2`). Puerta's heap is many small per-connection objects,
/// where huge pages only waste memory. `MIMALLOC_ALLOW_THP` (any value)
/// leaves the choice to mimalloc, whose default is THP on.
extern "C" fn thp_off() {
    // libc's getenv, not std's: it allocates nothing, so no heap page is
    // touched before the flag is set.
    // SAFETY: a NUL-terminated name; before `main` no thread changes the
    // environment. prctl takes no pointers here.
    unsafe {
        if libc::getenv(c"MIMALLOC_ALLOW_THP".as_ptr()).is_null() {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

#[used]
#[link_section = ".init_array"]
static THP_OFF: extern "C" fn() = thp_off;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if cli::nutcracker::is_nutcracker(&argv) {
        return cli::nutcracker_run::run(argv);
    }
    let cli = <cli::Cli as clap::Parser>::parse_from(argv);
    match cli.command {
        Some(cli::Command::Check { config }) => check(&config),
        Some(cli::Command::Run(args)) => run(args),
        Some(cli::Command::Bench(args)) => puerta::bench::main(*args),
        None => run(cli.run),
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            // Loading already checked that certificates are readable and
            // that each key matches its certificate; a date is checked here
            // only (a running proxy keeps serving with a warning).
            let expired = config::expired_certificates(&cfg);
            if !expired.is_empty() {
                for (pool, problem) in expired {
                    eprintln!("{}: pool {pool:?}: tls.cert: {problem}", path.display());
                }
                return ExitCode::from(2);
            }
            // Not println!: a closed stdout (`puerta check | head -1`) is
            // the reader's choice, not a reason to panic.
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "{}: ok\n{}", path.display(), cfg.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: cli::RunArgs) -> ExitCode {
    let Some(path) = args.config else {
        eprintln!("puerta: no config file given; use -c FILE (see --help)");
        return ExitCode::from(2);
    };
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let filter = args.log_level.clone().unwrap_or_else(|| cfg.server.log.clone());
    let log = match logging::init(&filter, None) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let io = args.io.map(io_mode).unwrap_or(cfg.server.io);
    let admin = cfg.server.admin;
    serve(cfg, &path, io, log, Ports { admin: Some(admin), stats: None })
}

pub(crate) fn io_mode(arg: cli::IoArg) -> IoMode {
    match arg {
        cli::IoArg::Auto => IoMode::Auto,
        cli::IoArg::Uring => IoMode::Uring,
        cli::IoArg::Epoll => IoMode::Epoll,
    }
}

/// Reports a startup failure on stderr and in the log (after `-d`, stderr
/// is /dev/null and the log file is all there is).
pub(crate) fn fail(msg: &str) {
    eprintln!("puerta: {msg}");
    tracing::error!("{msg}");
}

/// The HTTP ports a process opens besides its pools.
pub(crate) struct Ports {
    /// The admin port: always with Puerta's command line, only with
    /// `--admin` with nutcracker's (so several instances share a host).
    pub admin: Option<SocketAddr>,
    /// nutcracker's stats port (`-s`, `-a`): JSON, and `/metrics`.
    pub stats: Option<SocketAddr>,
}

/// Starts workers, control, and the ports `ports` names, then waits for
/// the workers to drain.
pub(crate) fn serve(cfg: Config, path: &Path, io: IoMode, log: LogControl, ports: Ports) -> ExitCode {
    fatal::install_panic_hook();
    if let Err(e) = log.dup_fd().and_then(fatal::install) {
        fail(&format!("cannot install the SIGSEGV handler: {e}"));
        return ExitCode::from(1);
    }
    let nofile = match fdlimit::raise_nofile() {
        Ok(n) => n,
        Err(e) => {
            fail(&format!("cannot read RLIMIT_NOFILE: {e}"));
            return ExitCode::from(1);
        }
    };
    let driver = match io {
        IoMode::Epoll => DriverKind::Epoll,
        IoMode::Uring | IoMode::Auto if puerta::worker::uring_available() => DriverKind::Uring,
        IoMode::Uring => {
            fail("io = \"uring\" requested but io_uring is not available on this kernel");
            return ExitCode::from(1);
        }
        IoMode::Auto => {
            tracing::warn!("io_uring is not available (setup failed); using the epoll driver");
            DriverKind::Epoll
        }
    };

    // Only the CPUs this process may use; must be read before any pinning.
    let usable = core_affinity::get_core_ids().unwrap_or_default();
    let workers = match cfg.server.workers {
        Workers::Count(n) => n,
        Workers::Auto => usable.len().max(1),
    };
    let cpus: Vec<Option<core_affinity::CoreId>> = (0..workers)
        .map(|i| match &cfg.server.cpus {
            Some(list) => list.get(i).map(|&id| core_affinity::CoreId { id }),
            None if usable.is_empty() => None,
            None => Some(usable[i % usable.len()]),
        })
        .collect();

    let client_limit = match puerta::worker::failpoint::no_client_limit() {
        true => u64::MAX,
        false => fdlimit::client_limit(&cfg, workers, nofile),
    };
    let server_fds = fdlimit::server_fds(&cfg, workers);
    if client_limit == 0 {
        tracing::warn!(
            max_fds = nofile,
            server_fds,
            "RLIMIT_NOFILE leaves no descriptor for clients: every client will be closed at accept"
        );
    }
    tracing::info!(
        max_fds = nofile,
        client_limit,
        server_fds,
        reserved = fdlimit::RESERVED_FDS,
        "process-wide client limit (tcp and mongos clients count twice)"
    );

    let Ports { admin: admin_addr, stats } = ports;
    let (st, first) = match ControlState::bootstrap(cfg, workers, driver) {
        Ok(x) => x,
        Err(e) => {
            fail(&e.to_string());
            return ExitCode::from(1);
        }
    };
    let (tx, rx) = crossbeam_channel::bounded(1024);
    // Handlers go in before anything listens: a SIGTERM that arrives while
    // the admin port or the workers start must drain, not kill the process
    // (the default action). Messages wait in the channel for the control
    // thread.
    if let Err(e) = signals::spawn(tx.clone(), log) {
        fail(&format!("cannot install signal handlers: {e}"));
        return ExitCode::from(1);
    }
    let shared = Arc::new(Shared {
        cell: SnapshotCell::new(first),
        workers: (0..workers).map(|_| Arc::new(WorkerStats::default())).collect(),
        health: HealthStats::default(),
        driver,
        started: Instant::now(),
        control: tx.clone(),
        clients: fdlimit::ClientBudget::new(client_limit),
    });
    // Ports are bound before the workers start (a taken port fails startup
    // before anything serves) and served once they run (a worker that
    // cannot set up is named as such, not hidden behind an admin error).
    let admin_listener = match admin_addr.map(|addr| (addr, puerta::admin::bind(addr))) {
        None => None,
        Some((_, Ok(l))) => Some(l),
        Some((addr, Err(e))) => {
            fail(&format!("cannot listen on admin address {addr}: {e}"));
            return ExitCode::from(1);
        }
    };
    let stats_listener = match stats.map(|addr| (addr, puerta::admin::nutstats::bind(addr))) {
        None => None,
        Some((_, Ok(l))) => Some(l),
        Some((addr, Err(e))) => {
            fail(&format!("cannot listen on stats address {addr}: {e}"));
            return ExitCode::from(1);
        }
    };
    let workers_running = match puerta::worker::spawn(&shared, &cpus) {
        Ok(w) => w,
        Err(e) => {
            fail(&format!("cannot start workers: {e}"));
            return ExitCode::from(1);
        }
    };
    if let Some(l) = admin_listener {
        if let Err(e) = puerta::admin::spawn_on(l, shared.clone()) {
            fail(&format!("cannot serve the admin address: {e}"));
            return ExitCode::from(1);
        }
    }
    if let Some(l) = stats_listener {
        if let Err(e) = puerta::admin::nutstats::spawn_on(l, shared.clone()) {
            fail(&format!("cannot serve the stats address: {e}"));
            return ExitCode::from(1);
        }
    }
    let wake_fds = workers_running.handles.iter().map(|h| h.wake_fd).collect();
    let control = Control::new(st, shared.clone(), rx, wake_fds);
    if let Err(e) = std::thread::Builder::new().name("puerta-control".into()).spawn(move || control.run()) {
        fail(&format!("cannot start control thread: {e}"));
        return ExitCode::from(1);
    }
    let pinned: Vec<String> = cpus.iter().map(|c| c.map_or("-".into(), |c| c.id.to_string())).collect();
    tracing::info!(driver = driver.as_str(), workers, cpus = %pinned.join(","), admin = %admin_addr.map_or("off".to_owned(), |a| a.to_string()),
        config = %path.display(), version = env!("CARGO_PKG_VERSION"), "puerta started");

    // A worker that fails ends the process at once, non-zero, so that a
    // supervisor restarts it: never a half-alive process (DESIGN §5).
    match workers_running.wait() {
        Ok(()) => {
            tracing::info!("all workers drained; exiting");
            ExitCode::SUCCESS
        }
        Err(e) => {
            fail(&format!("{e}; exiting"));
            ExitCode::from(1)
        }
    }
}
