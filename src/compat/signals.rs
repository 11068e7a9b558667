//! The signals nutcracker handles, handled on a thread of their own and
//! logged in nutcracker's words (`nc_signal.c`: `signal 21 (SIGTTIN)
//! received, up logging level`):
//!
//! - SIGHUP reopens the log file, as nutcracker does, and then reloads the
//!   configuration (Puerta's addition);
//! - SIGTTIN / SIGTTOU raise / lower the log level;
//! - SIGINT / SIGTERM drain and exit;
//! - SIGPIPE is ignored, so a client that vanishes mid-write costs an
//!   EPIPE, not the process.
//!
//! Owns the `signal_hook` iterator; everything else goes to the control
//! thread as a `ControlMsg`. The lines are logged at warn, so they show at
//! every level but `error`.

use std::io;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGTTIN, SIGTTOU};

use super::logging::LogControl;
use crate::control::ControlMsg;

/// nutcracker's log line for `sig`, ending in what it does about it.
pub fn describe(sig: i32) -> String {
    let (name, action) = match sig {
        SIGHUP => ("SIGHUP", ", reopening log file"),
        SIGTTIN => ("SIGTTIN", ", up logging level"),
        SIGTTOU => ("SIGTTOU", ", down logging level"),
        SIGINT => ("SIGINT", ", exiting"),
        SIGTERM => ("SIGTERM", ", exiting"),
        _ => ("?", ""),
    };
    format!("signal {sig} ({name}) received{action}")
}

/// Installs the handlers and starts the thread that acts on them. Call
/// before anything listens: a SIGTERM that arrives while the ports or the
/// workers start must drain, not kill the process (the default action).
pub fn spawn(tx: crossbeam_channel::Sender<ControlMsg>, log: LogControl) -> io::Result<()> {
    // SAFETY: setting a signal disposition to SIG_IGN is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM, SIGTTIN, SIGTTOU])?;
    std::thread::Builder::new().name("puerta-signals".into()).spawn(move || {
        for sig in signals.forever() {
            let msg = match sig {
                SIGHUP => {
                    // Reopened first, so the line lands in the new file.
                    if let Err(e) = log.reopen() {
                        tracing::error!("SIGHUP: cannot reopen the log file: {e}");
                    }
                    tracing::warn!("{}; reloading config", describe(sig));
                    ControlMsg::Reload { reply: None }
                }
                SIGTTIN => {
                    let level = log.raise();
                    tracing::warn!(level, "{}", describe(sig));
                    continue;
                }
                SIGTTOU => {
                    let level = log.lower();
                    tracing::warn!(level, "{}", describe(sig));
                    continue;
                }
                _ => {
                    tracing::warn!("{}", describe(sig));
                    ControlMsg::Shutdown
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_nc_signal_c() {
        assert_eq!(describe(SIGTTIN), "signal 21 (SIGTTIN) received, up logging level");
        assert_eq!(describe(SIGTTOU), "signal 22 (SIGTTOU) received, down logging level");
        assert_eq!(describe(SIGHUP), "signal 1 (SIGHUP) received, reopening log file");
        assert_eq!(describe(SIGTERM), "signal 15 (SIGTERM) received, exiting");
        assert_eq!(describe(SIGINT), "signal 2 (SIGINT) received, exiting");
    }
}
