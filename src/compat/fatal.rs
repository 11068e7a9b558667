//! What the process says as it dies: SIGSEGV, as nutcracker's
//! `signal_handler` does, and panics.
//!
//! - SIGSEGV: a handler writes `signal 11 (SIGSEGV) received, core dumping`
//!   to the log, then restores the default action and re-raises, so the
//!   kernel dumps a core as it would have without Puerta's handler.
//! - A panic is logged with its thread, location and a backtrace, and
//!   aborts the process (DESIGN §5: a worker that dies takes the process
//!   with it).
//!
//! Owns one descriptor, `LOG_FD`: a duplicate of the log's, made at
//! startup. Invariant: the signal handler calls only async-signal-safe
//! functions (`write`, `signal`, `raise`) and reads only that atomic; it
//! never allocates, locks or formats. When SIGHUP reopens the log file,
//! `redirect` points the same descriptor number at the new file with
//! `dup2`, atomically, so the handler never sees a closed or reused fd.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The duplicate of the log descriptor the handler writes to; -1 before
/// `install`.
static LOG_FD: AtomicI32 = AtomicI32::new(-1);

/// nutcracker's wording (`nc_signal.c`), with the newline its log adds.
const SEGV_LINE: &[u8] = b"signal 11 (SIGSEGV) received, core dumping\n";

extern "C" fn on_segv(_sig: libc::c_int) {
    let fd = LOG_FD.load(Ordering::Relaxed);
    // SAFETY: write, signal and raise are async-signal-safe (POSIX
    // signal-safety(7)); `SEGV_LINE` is static.
    unsafe {
        if fd >= 0 {
            let _ = libc::write(fd, SEGV_LINE.as_ptr().cast(), SEGV_LINE.len());
        }
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        // Delivered once the handler returns (the signal is blocked while
        // it runs), now with the default action: the core dump. A real
        // fault also re-faults on return, with the same effect.
        libc::raise(libc::SIGSEGV);
    }
}

/// Keeps `log` (a duplicate of the log's descriptor) for the handler and
/// installs the SIGSEGV handler. Call after daemonizing (which points
/// stderr at /dev/null) and once only.
pub fn install(log: OwnedFd) -> io::Result<()> {
    LOG_FD.store(log.into_raw_fd(), Ordering::Relaxed);
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe
    // (see the module invariant). SA_ONSTACK: a stack overflow faults on
    // the guard page, and Rust gives every thread an alternate stack.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_segv as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Points the handler's descriptor at `file` (the log, reopened).
pub fn redirect(file: &impl AsRawFd) -> io::Result<()> {
    let fd = LOG_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: dup2 onto a descriptor this module owns; atomic for readers.
    if unsafe { libc::dup2(file.as_raw_fd(), fd) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes every panic fatal, in every build profile: it is logged (thread,
/// location, message, backtrace) and the process aborts. Why: a worker
/// that died alone would leave its SO_REUSEPORT listener open with nobody
/// accepting on it (a share of new clients hang), leak its descriptors,
/// and /ready would still say ready. Release builds also set
/// `panic = "abort"`; the hook makes debug and test builds behave the
/// same and gets the report into the log file.
pub fn install_panic_hook() {
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
