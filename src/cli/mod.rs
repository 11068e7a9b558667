//! Command-line interface (clap): `puerta [run] -c FILE`, `puerta check -c FILE`,
//! `puerta bench ...` (its flags live in `puerta::bench::args`).
//!
//! Owns only argument parsing; `main.rs` acts on the result.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod nutcracker;
pub mod nutcracker_run;

/// `--help` footer: the same binary also takes nutcracker's flags.
const NUTCRACKER_NOTE: &str = "\
nutcracker (twemproxy 0.5.0) flags are accepted too, e.g. `puerta -c nutcracker.yml`,
`puerta -t -c FILE`, `puerta -d -p PIDFILE -o LOGFILE -s 22222 -a 0.0.0.0 -c FILE`.
They are recognised by -t -d -D -V -p -o -s -a -i -m, `-v N` with a number, or
`-c` naming a .yml/.yaml file; `puerta -V -h` lists them. -m (mbuf size) is accepted
and ignored: Puerta reads into a ring of fixed 16 KiB buffers per worker.";

#[derive(Debug, Parser)]
#[command(
    name = "puerta",
    version,
    about = "Thread-per-core proxy for Redis, memcached and MongoDB",
    after_help = NUTCRACKER_NOTE
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default when no subcommand is given).
    Run(RunArgs),
    /// Validate a config file, print a summary, exit 0 (valid) or 2 (invalid).
    Check {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Load generator and tail-latency analyzer (see `puerta bench --help`).
    Bench(Box<puerta::bench::BenchArgs>),
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Config file (TOML).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level or tracing filter (overrides `server.log`), e.g. debug.
    #[arg(short = 'v', long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// I/O driver (overrides `server.io`).
    #[arg(long = "io", value_enum)]
    pub io: Option<IoArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum IoArg {
    Auto,
    Uring,
    Epoll,
}
