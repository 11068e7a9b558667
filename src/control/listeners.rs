//! Binding a pool's listeners: per-worker SO_REUSEPORT sockets for a TCP
//! address, or one unix socket shared by every worker (nutcracker's
//! `listen: /path/to.sock 0666`).
//!
//! The control thread binds every listener before it publishes a snapshot,
//! so an address in use fails the reload (or startup) cleanly instead of
//! failing inside a worker. With TCP each worker gets its own socket on the
//! port, so the kernel spreads new connections across cores. SO_REUSEPORT
//! does not apply to unix sockets: there is one socket, and each worker's
//! `Listener` holds a dup of its fd (the kernel hands each connection to one
//! of the workers waiting in accept).
//!
//! Invariant: a unix socket file is removed only by the `SocketFile` guard of
//! the bind that created it, and only while the path still names that same
//! socket (so a later bind of the same path is never unlinked by an older
//! listener closing).

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::DriverKind;
use crate::route::Listener;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Listen backlog of tcp and mongos pool listeners (redis/memcache pools
/// use their `backlog` key).
pub const BACKLOG: i32 = 1024;

/// Binds `n` listeners on `addr`. Sockets for the io_uring driver stay
/// blocking (the ring does its own waiting); epoll needs non-blocking ones.
pub fn bind(addr: SocketAddr, n: usize, driver: DriverKind, backlog: i32) -> io::Result<Vec<Arc<Listener>>> {
    bind_as(addr, n, driver, backlog, false)
}

/// `bind`, for a TLS pool's `plain_listen` when `plain` is set: its
/// clients speak plaintext whatever the pool's `tls`.
pub fn bind_as(
    addr: SocketAddr,
    n: usize,
    driver: DriverKind,
    backlog: i32,
    plain: bool,
) -> io::Result<Vec<Arc<Listener>>> {
    (0..n)
        .map(|_| {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), Some(Protocol::TCP))?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.set_nodelay(true)?;
            s.set_nonblocking(driver == DriverKind::Epoll)?;
            s.bind(&addr.into())?;
            s.listen(backlog)?;
            Ok(Arc::new(Listener { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), socket: s, guard: None, plain }))
        })
        .collect()
}

/// Binds the unix socket `path` once and returns `n` listeners on it (the
/// first owns the socket, the others hold dups). Like nutcracker, a socket
/// file left at `path` (by a crashed run) is removed first and `perm` is
/// applied with chmod after the bind; unlike nutcracker, anything at `path`
/// that is not a socket is left alone and the bind fails.
pub fn bind_unix(
    path: &Path,
    perm: Option<u32>,
    n: usize,
    driver: DriverKind,
    backlog: i32,
) -> io::Result<Vec<Arc<Listener>>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the path exists and is not a socket"));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let s = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    s.set_nonblocking(driver == DriverKind::Epoll)?;
    s.bind(&SockAddr::unix(path)?)?;
    // From here on the file is ours: the guard removes it on any failure.
    let guard = Arc::new(SocketFile::new(path)?);
    chmod(path, perm)?;
    s.listen(backlog)?;
    let mut sockets = Vec::with_capacity(n);
    for _ in 1..n.max(1) {
        sockets.push(s.try_clone()?);
    }
    sockets.insert(0, s);
    let guard: Arc<dyn std::fmt::Debug + Send + Sync> = guard;
    Ok(sockets
        .into_iter()
        .map(|socket| {
            Arc::new(Listener {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                socket,
                guard: Some(guard.clone()),
                plain: false,
            })
        })
        .collect())
}

/// Applies a pool's unix socket permissions (nutcracker's `perm`; none
/// keeps what the umask gave).
pub fn chmod(path: &Path, perm: Option<u32>) -> io::Result<()> {
    match perm {
        Some(p) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(p)),
        None => Ok(()),
    }
}

/// A unix socket file this process created; removed when dropped (the last
/// listener sharing it closed: a reload moved the pool, or shutdown).
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn new(path: &Path) -> io::Result<SocketFile> {
        let m = std::fs::symlink_metadata(path)?;
        Ok(SocketFile { path: path.to_path_buf(), dev: m.dev(), ino: m.ino() })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let same = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if same {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), err = %e, "cannot remove the unix socket file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("puerta-listeners-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("s.sock")
    }

    #[test]
    fn unix_listeners_share_one_socket_apply_perm_and_remove_the_file_last() {
        let path = tmp("share");
        // A stale socket from an earlier run is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        let ls = bind_unix(&path, Some(0o600), 2, DriverKind::Uring, 16).unwrap();
        assert_eq!(ls.len(), 2);
        assert_ne!(ls[0].id, ls[1].id);
        assert_ne!(ls[0].socket.as_raw_fd(), ls[1].socket.as_raw_fd());
        let m = std::fs::metadata(&path).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        // A client connected to the path is accepted on either copy.
        let mut c = UnixStream::connect(&path).unwrap();
        let (mut a, _) = ls[1].socket.accept().unwrap();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        a.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
        let [first, second]: [Arc<Listener>; 2] = ls.try_into().unwrap();
        drop(first);
        assert!(path.exists(), "one copy still listens");
        drop(second);
        assert!(!path.exists(), "the last copy removes the file");
    }

    #[test]
    fn an_older_guard_does_not_remove_a_newer_bind_of_the_same_path() {
        let path = tmp("rebind");
        let old = bind_unix(&path, None, 1, DriverKind::Epoll, 16).unwrap();
        let new = bind_unix(&path, None, 1, DriverKind::Epoll, 16).unwrap();
        drop(old);
        assert!(path.exists());
        assert!(UnixStream::connect(&path).is_ok());
        drop(new);
        assert!(!path.exists());
    }

    #[test]
    fn a_path_that_is_not_a_socket_is_left_alone() {
        let path = tmp("file");
        std::fs::write(&path, b"data").unwrap();
        let err = bind_unix(&path, None, 1, DriverKind::Epoll, 16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
    }
}
