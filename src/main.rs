//! `puerta` entry point: parse flags, validate config, start the threads.
//!
//! Order matters: the config is validated and every listener and the admin
//! port are bound *before* any worker starts, so a bad file or a busy port
//! exits non-zero with nothing running.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use mimalloc::MiMalloc;

use puerta::config::{self, IoMode, Workers};
use puerta::control::{Control, ControlMsg, ControlState, DriverKind, Shared};
use puerta::route::SnapshotCell;
use puerta::stats::{HealthStats, WorkerStats};

mod cli;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let cli = <cli::Cli as clap::Parser>::parse();
    match cli.command {
        Some(cli::Command::Check { config }) => check(&config),
        Some(cli::Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            println!("{}: ok", path.display());
            println!("{}", cfg.summary());
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
    if let Some(why) = unserved_pool(&cfg) {
        eprintln!("puerta: {why}");
        return ExitCode::from(2);
    }
    let filter = args.log_level.clone().unwrap_or_else(|| cfg.server.log.clone());
    let env_filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: invalid log filter {filter:?}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    let io = match args.io {
        Some(cli::IoArg::Auto) => IoMode::Auto,
        Some(cli::IoArg::Uring) => IoMode::Uring,
        Some(cli::IoArg::Epoll) => IoMode::Epoll,
        None => cfg.server.io,
    };
    let driver = match io {
        IoMode::Epoll => DriverKind::Epoll,
        IoMode::Uring | IoMode::Auto if puerta::worker::uring_available() => DriverKind::Uring,
        IoMode::Uring => {
            eprintln!("puerta: io = \"uring\" requested but io_uring is not available on this kernel");
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

    let admin_addr = cfg.server.admin;
    let (st, first) = match ControlState::bootstrap(cfg, workers, driver) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("puerta: {e}");
            return ExitCode::from(1);
        }
    };
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let shared = Arc::new(Shared {
        cell: SnapshotCell::new(first),
        workers: (0..workers).map(|_| Arc::new(WorkerStats::default())).collect(),
        health: HealthStats::default(),
        driver,
        started: Instant::now(),
        control: tx.clone(),
    });
    if let Err(e) = puerta::admin::spawn(admin_addr, shared.clone()) {
        eprintln!("puerta: cannot listen on admin address {admin_addr}: {e}");
        return ExitCode::from(1);
    }
    let handles = match puerta::worker::spawn(&shared, &cpus) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("puerta: cannot start workers: {e}");
            return ExitCode::from(1);
        }
    };
    let wake_fds = handles.iter().map(|h| h.wake_fd).collect();
    let control = Control::new(st, shared.clone(), rx, wake_fds);
    if let Err(e) = std::thread::Builder::new().name("puerta-control".into()).spawn(move || control.run()) {
        eprintln!("puerta: cannot start control thread: {e}");
        return ExitCode::from(1);
    }
    if let Err(e) = spawn_signal_thread(tx) {
        eprintln!("puerta: cannot install signal handlers: {e}");
        return ExitCode::from(1);
    }
    let pinned: Vec<String> = cpus.iter().map(|c| c.map_or("-".into(), |c| c.id.to_string())).collect();
    tracing::info!(driver = driver.as_str(), workers, cpus = %pinned.join(","), admin = %admin_addr,
        config = %path.display(), version = env!("CARGO_PKG_VERSION"), "puerta started");

    for h in handles {
        let _ = h.join.join();
    }
    tracing::info!("all workers drained; exiting");
    ExitCode::SUCCESS
}

/// Redis and memcache pools validate (so `check` and `-t` accept them) but
/// the request engine that serves them is not part of this build; running
/// them as tcp pools would scatter keys, so startup refuses instead.
// TODO(engine merge): remove once the worker serves Mode::Redis/Memcache.
fn unserved_pool(cfg: &config::Config) -> Option<String> {
    let p = cfg.pools.iter().find(|p| p.mode != config::Mode::Tcp)?;
    Some(format!("pool {}: mode {} is validated but not served by this build yet", p.name, p.mode.as_str()))
}

/// SIGHUP reloads; SIGTERM/SIGINT drain and exit. SIGPIPE is ignored so a
/// client that vanishes mid-write costs an EPIPE, not the process.
fn spawn_signal_thread(tx: crossbeam_channel::Sender<ControlMsg>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // SAFETY: setting a signal disposition to SIG_IGN is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("puerta-signals".into()).spawn(move || {
        for sig in signals.forever() {
            let msg = match sig {
                SIGHUP => {
                    tracing::info!("SIGHUP: reloading config");
                    ControlMsg::Reload { reply: None }
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
