//! Thin, checked wrappers over the socket syscalls the drivers need.
//!
//! Owns no state. Failures on best-effort calls (TCP_NODELAY, shutdown) are
//! ignored on purpose: the connection's own reads and writes will surface
//! any real problem.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

pub fn raw(x: &impl AsRawFd) -> RawFd {
    x.as_raw_fd()
}

pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe {
        libc::close(fd);
    }
}

pub fn shutdown_write(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: plain syscall on an fd we own.
        unsafe {
            libc::shutdown(fd, libc::SHUT_WR);
        }
    }
}

pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: valid pointer and length for an int option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// What nutcracker sets on a client accepted by a redis/memcache pool:
/// TCP_NODELAY always, SO_KEEPALIVE when the pool has `tcpkeepalive`.
/// Both drivers call this; on a unix socket client both are harmless.
pub fn mux_client_options(fd: RawFd, tcpkeepalive: bool) {
    set_nodelay(fd);
    if tcpkeepalive {
        set_keepalive(fd);
    }
}

/// SO_KEEPALIVE (nutcracker's `tcpkeepalive`, on client connections).
fn set_keepalive(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: valid pointer and length for an int option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A new TCP socket for `addr`'s family, with TCP_NODELAY. `blocking`
/// sockets are what io_uring wants; epoll needs non-blocking ones.
pub fn tcp_socket(addr: &SocketAddr, blocking: bool) -> io::Result<RawFd> {
    let domain = socket2::Domain::for_address(*addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM.cloexec(), Some(socket2::Protocol::TCP))?;
    s.set_nodelay(true)?;
    if !blocking {
        s.set_nonblocking(true)?;
    }
    Ok(s.into_raw_fd())
}

/// The peer address of a connected socket, if the kernel still knows it.
pub fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: zeroed storage is valid; the kernel fills at most `len` bytes.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return None;
        }
        socket2::SockAddr::new(ss, len).as_socket()
    }
}

/// The local address of a connected socket (the listener's address as the
/// client dialled it), for PROXY headers.
pub fn local_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: zeroed storage is valid; the kernel fills at most `len` bytes.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return None;
        }
        socket2::SockAddr::new(ss, len).as_socket()
    }
}

/// An eventfd used by the control thread to wake an idle worker. Blocking,
/// because io_uring honours O_NONBLOCK on reads and would complete at once
/// with EAGAIN; the epoll driver switches it with `set_nonblocking`.
/// A backend reply buffer is given at least this much room per read.
pub const RX_SPARE: usize = 16 * 1024;

/// Reads from `fd` straight into `rx`'s spare capacity (grown to at least
/// `RX_SPARE`), extending it by what was read; returns that count and the
/// room the read had (a short read emptied the socket).
pub fn read_into(fd: RawFd, rx: &mut bytes::BytesMut) -> io::Result<(usize, usize)> {
    if rx.capacity() - rx.len() < RX_SPARE {
        rx.reserve(RX_SPARE);
    }
    let spare = rx.spare_capacity_mut();
    let room = spare.len();
    // SAFETY: `spare` is writable memory of `room` bytes owned by `rx`.
    let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), room) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = (n as usize).min(room);
    // SAFETY: the kernel initialized the first `n` bytes of the spare room.
    unsafe { rx.set_len(rx.len() + n) };
    Ok((n, room))
}

pub fn eventfd() -> io::Result<RawFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// Drains an eventfd (epoll driver).
pub fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64.
    unsafe {
        libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8);
    }
}

pub fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use super::mux_client_options;

    fn int_opt(fd: i32, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut v: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid pointers and length for an int option.
        let rc = unsafe { libc::getsockopt(fd, level, name, &mut v as *mut _ as *mut libc::c_void, &mut len) };
        assert_eq!(rc, 0, "getsockopt");
        v
    }

    #[test]
    fn tcpkeepalive_sets_so_keepalive_on_an_accepted_client_and_only_then() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        for tcpkeepalive in [false, true] {
            let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (accepted, _) = l.accept().unwrap();
            let fd = accepted.as_raw_fd();
            assert_eq!(int_opt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0, "off after accept");
            mux_client_options(fd, tcpkeepalive);
            assert_eq!(int_opt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE) != 0, tcpkeepalive);
            assert_ne!(int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), 0);
        }
        // A unix socket client: nothing to set, nothing breaks.
        let (a, mut b) = UnixStream::pair().unwrap();
        mux_client_options(a.as_raw_fd(), true);
        std::io::Write::write_all(&mut b, b"x").unwrap();
        let mut buf = [0u8; 1];
        std::io::Read::read_exact(&mut &a, &mut buf).unwrap();
        assert_eq!(&buf, b"x");
    }
}
