//! nutcracker's command line, accepted by the same `puerta` binary so it
//! can replace `/usr/sbin/nutcracker` without changing a unit file:
//! `-c -t -d -p -o -v -s -a -i -m -V -D -h` with nutcracker's long forms
//! and defaults.
//!
//! Owns only parsing and detection; `cli/nutcracker_run.rs` acts on the
//! result. A binary invoked as `nutcracker` (a link or a copy under that
//! name) is always in this mode, `--version` included. Otherwise detection
//! is by flags nutcracker has and Puerta's own CLI lacks, or `-c` naming a
//! `.yml`/`.yaml` file; `puerta run|check|bench ...` never matches.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::cli::IoArg;

/// nutcracker's defaults (`nc.c`).
pub const DEFAULT_CONF: &str = "/etc/nutcracker/nutcracker.yml";
pub const DEFAULT_STATS_PORT: u16 = 22222;
pub const DEFAULT_STATS_ADDR: &str = "0.0.0.0";
pub const DEFAULT_STATS_INTERVAL_MS: u64 = 30_000;
pub const DEFAULT_MBUF_SIZE: usize = 16_384;

const HELP: &str = "\
Usage: puerta [-?hVdDt] [-v verbosity level] [-o output file]
              [-c conf file] [-s stats port] [-a stats addr]
              [-i stats interval] [-p pid file] [-m mbuf size]

nutcracker (twemproxy 0.5.0) compatible options:
  -h, --help             : this help
  -V, --version          : show version and exit
  -t, --test-conf        : test configuration for syntax errors and exit
  -d, --daemonize        : run as a daemon
  -D, --describe-stats   : print stats description and exit
  -v, --verbose=N        : set logging level (default: 5, min: 0, max: 11);
                           0-3 error, 4 warn, 5-6 info, 7 debug, 8-11 trace
  -o, --output=S         : set logging file (default: stderr); SIGHUP reopens it
  -c, --conf-file=S      : set configuration file (default: /etc/nutcracker/nutcracker.yml);
                           nutcracker YAML, or a Puerta TOML file
  -s, --stats-port=N     : set stats monitoring port (default: 22222)
  -a, --stats-addr=S     : set stats monitoring ip (default: 0.0.0.0)
  -i, --stats-interval=N : set stats aggregation interval in msec (default: 30000 msec);
                           accepted; Puerta's stats are summed live on each request
  -p, --pid-file=S       : set pid file (default: none)
  -m, --mbuf-size=N      : set size of mbuf chunk in bytes (default: 16384 bytes);
                           accepted and ignored: Puerta reads into a ring of fixed
                           16 KiB buffers per worker (nutcracker's default mbuf size)

Puerta additions (long options only):
  --admin=ADDR           : open the admin HTTP port (metrics, /ready, /reload) at ADDR
                           (default: none; the stats port serves /metrics too)
  --io=auto|uring|epoll  : I/O driver (default: auto)
  --workers=N            : worker threads (default: one per usable CPU)

Signals: HUP reopens the log file and reloads the configuration (nutcracker
only reopens the log); TTIN / TTOU raise / lower the log level; TERM / INT
drain and exit; SEGV logs a line and dumps core. Each is logged as
nutcracker does (\"signal 21 (SIGTTIN) received, up logging level\").
";

/// nutcracker's flags, plus a few long-only Puerta additions.
#[derive(Debug, Parser)]
#[command(name = "puerta", disable_help_flag = true, disable_version_flag = true)]
pub struct NutArgs {
    #[arg(short = 'h', long = "help")]
    pub help: bool,
    #[arg(short = 'V', long = "version")]
    pub version: bool,
    #[arg(short = 't', long = "test-conf")]
    pub test_conf: bool,
    #[arg(short = 'd', long = "daemonize")]
    pub daemonize: bool,
    #[arg(short = 'D', long = "describe-stats")]
    pub describe_stats: bool,
    #[arg(short = 'v', long = "verbose", value_name = "N", value_parser = clap::value_parser!(u32).range(0..=11))]
    pub verbose: Option<u32>,
    #[arg(short = 'o', long = "output", value_name = "S")]
    pub output: Option<PathBuf>,
    #[arg(short = 'c', long = "conf-file", value_name = "S", default_value = DEFAULT_CONF)]
    pub conf_file: PathBuf,
    #[arg(short = 's', long = "stats-port", value_name = "N", default_value_t = DEFAULT_STATS_PORT)]
    pub stats_port: u16,
    #[arg(short = 'a', long = "stats-addr", value_name = "S", default_value = DEFAULT_STATS_ADDR)]
    pub stats_addr: String,
    #[arg(short = 'i', long = "stats-interval", value_name = "N", default_value_t = DEFAULT_STATS_INTERVAL_MS)]
    pub stats_interval: u64,
    #[arg(short = 'p', long = "pid-file", value_name = "S")]
    pub pid_file: Option<PathBuf>,
    #[arg(short = 'm', long = "mbuf-size", value_name = "N", default_value_t = DEFAULT_MBUF_SIZE)]
    pub mbuf_size: usize,
    #[arg(long = "admin", value_name = "ADDR")]
    pub admin: Option<String>,
    #[arg(long = "io", value_enum)]
    pub io: Option<IoArg>,
    #[arg(long = "workers", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
}

impl NutArgs {
    pub fn help_text() -> &'static str {
        HELP
    }
}

/// Short flags only nutcracker has (each may start a bundle like `-dt`).
const SHORT_ONLY: &str = "tdDVposaim";
/// Long flags only nutcracker has.
const LONG_ONLY: [&str; 11] = [
    "--test-conf",
    "--daemonize",
    "--describe-stats",
    "--verbose",
    "--output",
    "--conf-file",
    "--stats-port",
    "--stats-addr",
    "--stats-interval",
    "--pid-file",
    "--mbuf-size",
];
/// Puerta's subcommands: their arguments are never nutcracker's.
const SUBCOMMANDS: [&str; 4] = ["run", "check", "bench", "help"];

/// The program name that always means nutcracker mode.
const NUTCRACKER: &str = "nutcracker";

/// Whether `argv` (program name first) is a nutcracker-style invocation.
pub fn is_nutcracker(argv: &[OsString]) -> bool {
    let invoked_as = argv.first().map(std::path::Path::new).and_then(|p| p.file_name());
    if invoked_as.is_some_and(|name| name == NUTCRACKER) {
        return true;
    }
    let args: Vec<&str> = argv.iter().skip(1).filter_map(|a| a.to_str()).collect();
    if args.first().is_some_and(|a| SUBCOMMANDS.contains(a)) {
        return false;
    }
    let yaml = |s: &str| s.ends_with(".yml") || s.ends_with(".yaml");
    args.iter().enumerate().any(|(i, a)| {
        let next = args.get(i + 1).copied().unwrap_or("");
        if let Some(long) = a.strip_prefix("--") {
            let name = format!("--{}", long.split('=').next().unwrap_or(""));
            return LONG_ONLY.contains(&name.as_str());
        }
        let Some(short) = a.strip_prefix('-') else { return false };
        match short.chars().next() {
            Some(c) if SHORT_ONLY.contains(c) => true,
            // `-c file.yml` / `-cfile.yml`: nutcracker's config format.
            Some('c') => yaml(&short[1..]) || (short.len() == 1 && yaml(next)),
            // nutcracker's `-v N` is a number; Puerta's `-v` takes a level.
            Some('v') => {
                let value = if short.len() > 1 { &short[1..] } else { next };
                !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nut(args: &[&str]) -> bool {
        let argv: Vec<OsString> = std::iter::once("puerta").chain(args.iter().copied()).map(OsString::from).collect();
        is_nutcracker(&argv)
    }

    #[test]
    fn detects_nutcracker_flags_and_leaves_puerta_alone() {
        assert!(nut(&["-t", "-c", "x.toml"]));
        assert!(nut(&["-dt"]));
        assert!(nut(&["-c", "/etc/nutcracker/nutcracker.yml"]));
        assert!(nut(&["-c/etc/n.yaml"]));
        assert!(nut(&["-v", "7", "-c", "x.toml"]));
        assert!(nut(&["-V"]));
        assert!(nut(&["--stats-port=2222"]));
        assert!(nut(&["--conf-file", "x"]));
        assert!(!nut(&["-c", "config/tcp.toml"]));
        assert!(!nut(&["-c", "config/tcp.toml", "-v", "debug", "--io", "epoll"]));
        assert!(!nut(&["run", "-c", "x.yml"]));
        assert!(!nut(&["check", "-c", "x.yml"]));
        assert!(!nut(&["bench", "-t", "5"]));
        assert!(!nut(&["--version"]));
        assert!(!nut(&[]));
    }

    #[test]
    fn the_name_nutcracker_means_nutcracker_mode() {
        let argv = |name: &str, args: &[&str]| -> Vec<OsString> {
            std::iter::once(name).chain(args.iter().copied()).map(OsString::from).collect()
        };
        assert!(is_nutcracker(&argv("/usr/sbin/nutcracker", &["--version"])));
        assert!(is_nutcracker(&argv("nutcracker", &[])));
        assert!(is_nutcracker(&argv("./nutcracker", &["-c", "config/tcp.toml"])));
        assert!(!is_nutcracker(&argv("/usr/bin/puerta", &["--version"])));
        assert!(!is_nutcracker(&argv("/opt/nutcracker/puerta", &["--version"])));
    }

    #[test]
    fn parses_nutcracker_flags_with_defaults() {
        let a =
            NutArgs::try_parse_from(["puerta", "-c", "n.yml", "-s", "3333", "-dv", "7", "--output=/tmp/l"]).unwrap();
        assert_eq!(a.conf_file, PathBuf::from("n.yml"));
        assert_eq!((a.stats_port, a.stats_addr.as_str()), (3333, "0.0.0.0"));
        assert!(a.daemonize && !a.test_conf);
        assert_eq!(a.verbose, Some(7));
        assert_eq!(a.output, Some(PathBuf::from("/tmp/l")));
        let d = NutArgs::try_parse_from(["puerta", "-t"]).unwrap();
        assert_eq!(d.conf_file, PathBuf::from(DEFAULT_CONF));
        assert_eq!((d.stats_interval, d.mbuf_size, d.pid_file), (30_000, 16_384, None));
        assert!(NutArgs::try_parse_from(["puerta", "-v", "12"]).is_err());
        assert!(NutArgs::try_parse_from(["puerta", "-s", "x"]).is_err());
    }
}
