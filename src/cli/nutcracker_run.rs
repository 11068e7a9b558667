//! nutcracker's command line in action: `-t`, `-V`, `-D`, `-h`, and a
//! server started with `-d -p -o -v -s -a` (flags parsed in
//! `cli::nutcracker`).
//!
//! Owns nothing past startup. Differences from Puerta's own command line:
//! exit codes follow nutcracker (0, or 1 for any error), and the admin
//! port opens only with `--admin`: the stats port (`-s`) serves nutcracker's
//! JSON and Prometheus `/metrics`, so instances on one host need one port
//! each.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;

use puerta::compat::daemon::{self, PidFile};
use puerta::compat::describe::describe_stats;
use puerta::compat::logging;
use puerta::config::{self, Config, Workers};

use super::nutcracker::NutArgs;
use crate::{fail, io_mode, serve, Ports};

/// The nutcracker command line. Exit codes follow nutcracker: 0, or 1 for
/// any error (bad flags, bad config, cannot start).
pub(crate) fn run(argv: Vec<OsString>) -> ExitCode {
    let args = match <NutArgs as clap::Parser>::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            eprint!("{}", NutArgs::help_text());
            return ExitCode::from(1);
        }
    };
    let version = version_line();
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
    let admin = match apply_flags(&mut cfg, &args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("puerta: {e}");
            return ExitCode::from(1);
        }
    };
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
    serve(cfg, &path, io, log, Ports { admin, stats: Some(stats) })
}

/// Settings nutcracker's flags (and Puerta's long-only additions) carry.
/// A nutcracker YAML file has no `[server]` table, so these fill it; for a
/// TOML file they override it. Returns the admin address: `--admin`'s, or
/// none (a TOML `[server] admin` does not open it in this mode, so that
/// several instances can run on one host, as nutcracker's do).
fn apply_flags(cfg: &mut Config, args: &NutArgs) -> Result<Option<SocketAddr>, String> {
    let admin = match &args.admin {
        Some(admin) => {
            let addr = admin.parse().map_err(|_| format!("--admin: expected host:port, got {admin:?}"))?;
            cfg.server.admin = addr;
            Some(addr)
        }
        None => None,
    };
    if let Some(n) = args.workers {
        cfg.server.workers = Workers::Count(n as usize);
    }
    Ok(admin)
}

/// What `-V` prints first: nutcracker's line, which tools parse, with
/// Puerta's own version after it.
pub(crate) fn version_line() -> String {
    format!("This is nutcracker-0.5.0 (puerta {})", env!("CARGO_PKG_VERSION"))
}
