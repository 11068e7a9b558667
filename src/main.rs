//! `puerta` entry point: parse flags, validate config, start the threads.
//!
//! Two command lines reach the same server: Puerta's own (`puerta [run] -c
//! FILE`, `puerta check`) and nutcracker's (`-c -t -d -p -o -v -s -a -i -m
//! -V -D -h`, see `cli_nutcracker`). Order matters: the config is validated
//! and every listener and the admin port are bound *before* any worker
//! starts, so a bad file or a busy port exits non-zero with nothing
//! running. With `-d` the process daemonizes after validating the config
//! and before starting any thread.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use mimalloc::MiMalloc;

use puerta::compat::daemon::{self, PidFile};
use puerta::compat::describe::describe_stats;
use puerta::compat::logging::{self, LogControl};
use puerta::config::{self, Config, IoMode, Workers};
use puerta::control::{Control, ControlMsg, ControlState, DriverKind, Shared};
use puerta::fdlimit;
use puerta::route::SnapshotCell;
use puerta::stats::{HealthStats, WorkerStats};

mod cli;
mod cli_nutcracker;

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
    if cli_nutcracker::is_nutcracker(&argv) {
        return nutcracker_main(argv);
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
    serve(cfg, &path, io, log, None)
}

fn io_mode(arg: cli::IoArg) -> IoMode {
    match arg {
        cli::IoArg::Auto => IoMode::Auto,
        cli::IoArg::Uring => IoMode::Uring,
        cli::IoArg::Epoll => IoMode::Epoll,
    }
}

/// The nutcracker command line. Exit codes follow nutcracker: 0, or 1 for
/// any error (bad flags, bad config, cannot start).
fn nutcracker_main(argv: Vec<std::ffi::OsString>) -> ExitCode {
    use cli_nutcracker::NutArgs;
    let args = match <NutArgs as clap::Parser>::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            eprint!("{}", NutArgs::help_text());
            return ExitCode::from(1);
        }
    };
    let version = format!("This is puerta-{} (nutcracker-0.5.0 compatible)", env!("CARGO_PKG_VERSION"));
    if args.help {
        eprintln!("{version}\n");
        eprint!("{}", NutArgs::help_text());
        return ExitCode::SUCCESS;
    }
    if args.version || args.describe_stats {
        let backend = if puerta::worker::uring_available() { "io_uring" } else { "epoll" };
        eprintln!("{version}\nasync event backend: {backend}\n");
        if args.describe_stats {
            eprint!("{}", describe_stats());
        }
        return ExitCode::SUCCESS;
    }
    let path = args.conf_file.clone();
    let loaded = config::load(&path);
    if args.test_conf {
        return match loaded {
            Ok(_) => {
                eprintln!("nutcracker: configuration file '{}' syntax is ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("nutcracker: configuration file '{}' syntax is invalid", path.display());
                ExitCode::from(1)
            }
        };
    }
    let mut cfg = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = apply_nutcracker_flags(&mut cfg, &args) {
        eprintln!("puerta: {e}");
        return ExitCode::from(1);
    }
    let stats = match args.stats_addr.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, args.stats_port),
        Err(_) => {
            eprintln!("puerta: invalid stats address {}:{}", args.stats_addr, args.stats_port);
            return ExitCode::from(1);
        }
    };
    // Logging is set up before daemonizing (so a bad -o is reported on the
    // terminal) but writes through a file handle, which survives the fork.
    let filter = args.verbose.map(logging::nutcracker_level).unwrap_or(&cfg.server.log).to_owned();
    let log = match logging::init(&filter, args.output.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("puerta: {e}");
            return ExitCode::from(1);
        }
    };
    if args.daemonize {
        if let Err(e) = daemon::daemonize() {
            eprintln!("puerta: cannot daemonize: {e}");
            return ExitCode::from(1);
        }
    }
    let _pid = match args.pid_file.as_deref().map(PidFile::create).transpose() {
        Ok(p) => p,
        Err(e) => {
            fail(&format!("cannot write pid file: {e}"));
            return ExitCode::from(1);
        }
    };
    let io = args.io.map(io_mode).unwrap_or(cfg.server.io);
    serve(cfg, &path, io, log, Some(stats))
}

/// Settings nutcracker's flags (and Puerta's long-only additions) carry.
/// A nutcracker YAML file has no `[server]` table, so these fill it; for a
/// TOML file they override it.
fn apply_nutcracker_flags(cfg: &mut Config, args: &cli_nutcracker::NutArgs) -> Result<(), String> {
    if let Some(admin) = &args.admin {
        cfg.server.admin = admin.parse().map_err(|_| format!("--admin: expected host:port, got {admin:?}"))?;
    }
    if let Some(n) = args.workers {
        cfg.server.workers = Workers::Count(n as usize);
    }
    Ok(())
}

/// Reports a startup failure on stderr and in the log (after `-d`, stderr
/// is /dev/null and the log file is all there is).
fn fail(msg: &str) {
    eprintln!("puerta: {msg}");
    tracing::error!("{msg}");
}

/// Starts workers, control, admin (and the nutcracker stats port when
/// `stats` is given), then waits for the workers to drain.
fn serve(cfg: Config, path: &Path, io: IoMode, log: LogControl, stats: Option<SocketAddr>) -> ExitCode {
    install_panic_hook();
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

    let admin_addr = cfg.server.admin;
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
    if let Err(e) = spawn_signal_thread(tx.clone(), log) {
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
    let admin_listener = match puerta::admin::bind(admin_addr) {
        Ok(l) => l,
        Err(e) => {
            fail(&format!("cannot listen on admin address {admin_addr}: {e}"));
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
    if let Err(e) = puerta::admin::spawn_on(admin_listener, shared.clone()) {
        fail(&format!("cannot serve the admin address {admin_addr}: {e}"));
        return ExitCode::from(1);
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
    tracing::info!(driver = driver.as_str(), workers, cpus = %pinned.join(","), admin = %admin_addr,
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

/// Makes every panic fatal, in every build profile: it is logged (thread,
/// location, message, backtrace) and the process aborts. Why: a worker
/// that died alone would leave its SO_REUSEPORT listener open with nobody
/// accepting on it (a share of new clients hang), leak its descriptors,
/// and /ready would still say ready. Release builds also set
/// `panic = "abort"`; the hook makes debug and test builds behave the
/// same and gets the report into the log file.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let location = info.location().map_or_else(|| "<unknown>".to_owned(), |l| l.to_string());
        let message = info.payload_as_str().unwrap_or("<non-string payload>");
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(thread = name, %location, "panic: {message}; aborting the process\n{backtrace}");
        // The log may be a file: say it on stderr too, briefly.
        eprintln!("puerta: thread '{name}' panicked at {location}: {message}; aborting");
        std::process::abort();
    }));
}

/// SIGHUP reopens the log file (as nutcracker does) and reloads the config;
/// SIGTTIN / SIGTTOU raise / lower the log level; SIGTERM / SIGINT drain
/// and exit. SIGPIPE is ignored so a client that vanishes mid-write costs
/// an EPIPE, not the process.
fn spawn_signal_thread(tx: crossbeam_channel::Sender<ControlMsg>, log: LogControl) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGTTIN, SIGTTOU};
    // SAFETY: setting a signal disposition to SIG_IGN is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM, SIGTTIN, SIGTTOU])?;
    std::thread::Builder::new().name("puerta-signals".into()).spawn(move || {
        for sig in signals.forever() {
            let msg = match sig {
                SIGHUP => {
                    if let Err(e) = log.reopen() {
                        tracing::error!("SIGHUP: cannot reopen the log file: {e}");
                    }
                    tracing::info!("SIGHUP: log file reopened; reloading config");
                    ControlMsg::Reload { reply: None }
                }
                SIGTTIN => {
                    tracing::warn!("SIGTTIN: log level now {}", log.raise());
                    continue;
                }
                SIGTTOU => {
                    tracing::warn!("SIGTTOU: log level now {}", log.lower());
                    continue;
                }
                _ => ControlMsg::Shutdown,
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}
