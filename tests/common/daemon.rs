//! Puerta started with nutcracker's `-d -p PIDFILE`: the foreground process
//! returns at once and the daemon is found by its pid file.
//!
//! The daemon is not our child, so `Proc` cannot reap it: `Daemon` kills it
//! (SIGKILL) when dropped, unless the test saw it exit (`forget`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::wait_until;

pub struct Daemon {
    pid: Option<i32>,
}

impl Daemon {
    /// Runs `puerta ARGS` (which must include `-d` and `-p pid_file`),
    /// checks the foreground exit, and waits for the pid file.
    pub fn start(args: &[&str], pid_file: &Path) -> Daemon {
        let o = Command::new(env!("CARGO_BIN_EXE_puerta")).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "the foreground process returns at once: {o:?}");
        // The file can exist before the daemon has written its pid into it.
        let read = || std::fs::read_to_string(pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok());
        wait_until("pid file with a pid", Duration::from_secs(10), || read().is_some());
        Daemon { pid: read() }
    }

    pub fn pid(&self) -> i32 {
        self.pid.unwrap_or(0)
    }

    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid {
            // SAFETY: signalling the daemon this handle started.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// The daemon exited by itself: nothing to kill on drop.
    pub fn forget(&mut self) {
        self.pid = None;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}
