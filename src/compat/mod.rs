//! nutcracker (twemproxy 0.5.0) process compatibility: the pieces behind
//! its command-line flags that are not config.
//!
//! - `describe`: the `-D` stats description text;
//! - `logging`: the `-o` log file (reopened on SIGHUP, as nutcracker does)
//!   and the `-v` / SIGTTIN / SIGTTOU verbosity ladder;
//! - `daemon`: `-d` (double fork, setsid) and the `-p` pid file;
//! - `signals`: HUP, TTIN, TTOU, INT and TERM, logged in nutcracker's words;
//! - `fatal`: SIGSEGV (log line, then a core dump) and the panic hook.
//!
//! Owns nothing at runtime beyond the log file handle and its duplicate
//! for the SIGSEGV handler. Flag parsing itself
//! lives in the binary (`src/cli/nutcracker.rs`).

pub mod daemon;
pub mod describe;
pub mod fatal;
pub mod logging;
pub mod signals;
