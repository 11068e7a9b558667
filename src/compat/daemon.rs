//! `-d` and `-p`: become a daemon the way nutcracker's `nc_daemonize` does
//! (fork, setsid, fork again, chdir /, umask 0, stdio to /dev/null), and
//! write or remove the pid file.
//!
//! Invariant: `daemonize` must run before any thread is spawned; forking a
//! multi-threaded process keeps only the calling thread.

use std::io;
use std::path::{Path, PathBuf};

/// Detaches from the terminal. Returns only in the final daemon process;
/// the parents exit 0 at once.
pub fn daemonize() -> io::Result<()> {
    // SAFETY: called before any other thread exists (see module invariant);
    // fork, setsid, chdir, umask, open and dup2 are plain syscalls.
    unsafe {
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() == -1 {
            return Err(io::Error::last_os_error());
        }
        // The session leader's SIGHUP on exit must not kill the grandchild.
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        // Back to the default, so the signal thread can claim SIGHUP.
        libc::signal(libc::SIGHUP, libc::SIG_DFL);
        if libc::chdir(c"/".as_ptr()) == -1 {
            return Err(io::Error::last_os_error());
        }
        libc::umask(0);
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            if libc::dup2(fd, target) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        if fd > libc::STDERR_FILENO {
            libc::close(fd);
        }
    }
    Ok(())
}

/// A written pid file, removed again when dropped (clean exit).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid and a newline to `path`.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile { path: path.to_path_buf() })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_holds_our_pid_and_is_removed_on_drop() {
        let path = std::env::temp_dir().join(format!("puerta-pid-test-{}", std::process::id()));
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        drop(pf);
        assert!(!path.exists());
    }
}
