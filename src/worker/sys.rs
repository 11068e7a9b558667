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

/// SO_KEEPALIVE (nutcracker's `tcpkeepalive`, on client connections).
pub fn set_keepalive(fd: RawFd) {
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
pub fn eventfd() -> io::Result<RawFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// Wakes the worker behind `fd`. An EAGAIN (counter saturated) still wakes.
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64.
    unsafe {
        libc::write(fd, &one as *const u64 as *const libc::c_void, 8);
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
