//! The epoll driver's read and write loops for multiplexed pools.
//!
//! Owner: the epoll worker (an `impl` block of `EpollDriver`; the rest of
//! the glue is `mux.rs`).
//! Invariants:
//! - edge-triggered: a socket's loop runs until the socket would block,
//!   or a short read shows it empty (unless the peer hung up, when it
//!   reads on to the EOF), so no readiness is ever lost;
//! - a plaintext backend reads into its own buffer (`ESock::rx`) and the
//!   session frames replies there; clients and TLS backends read into the
//!   worker's one scratch buffer, so a client owns no receive buffer;
//! - an idle plaintext backend (no data between two periodic ticks, no
//!   partial reply held) releases its buffer (`mux_release_idle_rx`), so
//!   an idle backend connection, like an idle client, holds none;
//! - a write goes straight from the session's slice and reports exactly
//!   the bytes the kernel took.

use std::io::{self, Read, Write};
use std::time::Instant;

use super::EpollDriver;
use crate::session::outbuf::Tx;
use crate::worker::mux_pools::MKind;
use crate::worker::sys;
use crate::worker::tls_backend;
use crate::worker::tls_io;

impl EpollDriver {
    pub(super) fn mux_read(&mut self, slot: u32, now: Instant) {
        loop {
            let Some(s) = self.msocks.get_mut(slot) else { return };
            let Some(e) = self.mux.entries.get_mut(s.entry as usize).and_then(|e| e.as_mut()) else { return };
            if !s.readable {
                return;
            }
            if let MKind::Client(id) = s.kind {
                if !e.session.wants_client_read(id) {
                    if !s.paused {
                        s.paused = true;
                        e.paused.push(id);
                    }
                    return;
                }
            }
            let (entry, kind) = (s.entry as usize, s.kind);
            if let (MKind::Backend(b), None) = (kind, s.tls.as_deref()) {
                let rx = s.rx.get_or_insert_with(Default::default);
                match sys::read_into(sys::raw(&s.stream), rx) {
                    Ok((0, _)) => {}
                    Ok((n, room)) => {
                        s.rx_used = true;
                        if n < room && !s.hup {
                            s.readable = false;
                        }
                        e.session.handle_backend_rx(b, rx, now);
                        continue;
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        s.readable = false;
                        return;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => {
                        s.readable = false;
                        let errno = err.raw_os_error().unwrap_or(libc::EIO);
                        return self.mux_backend_gone(slot, entry, b, Some(errno), now);
                    }
                }
                s.readable = false;
                return self.mux_backend_gone(slot, entry, b, None, now);
            }
            match s.stream.read(&mut self.scratch) {
                Ok(0) => {
                    s.readable = false;
                    match kind {
                        MKind::Client(id) => {
                            if let Some(t) = s.tls.as_deref() {
                                tls_io::client_gone(t, &self.core.stats.tls);
                            }
                            e.session.handle_client_eof(id)
                        }
                        MKind::Backend(b) => self.mux_backend_gone(slot, entry, b, None, now),
                    }
                    return;
                }
                Ok(n) => {
                    // A short read emptied the socket; new bytes raise a new
                    // edge. After a hang-up, read on to the EOF.
                    if n < self.scratch.len() && !s.hup {
                        s.readable = false;
                    }
                    match kind {
                        MKind::Client(id) => {
                            let data = &self.scratch[..n];
                            match s.tls.as_deref_mut() {
                                None => e.session.handle_client_data(id, data, now),
                                Some(t) => tls_io::client_data(t, &mut *e.session, id, data, now, &self.core.stats.tls),
                            }
                            self.core.count_bytes(&e.pool, n, 0);
                            self.pass_requests = true;
                        }
                        MKind::Backend(b) => match s.tls.as_deref_mut() {
                            None => e.session.handle_backend_data(b, &self.scratch[..n], now),
                            Some(t) => {
                                let stats = &self.core.stats.tls_backend;
                                let step = tls_backend::data(t, &mut *e.session, b, &self.scratch[..n], now, stats);
                                if self.mux_backend_tls_step(slot, entry, b, step, now) {
                                    return;
                                }
                            }
                        },
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    s.readable = false;
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let errno = err.raw_os_error().unwrap_or(libc::EIO);
                    s.readable = false;
                    match kind {
                        MKind::Client(id) => {
                            if let Some(t) = s.tls.as_deref() {
                                tls_io::client_gone(t, &self.core.stats.tls);
                            }
                            e.session.handle_client_error(id, errno)
                        }
                        MKind::Backend(b) => self.mux_backend_gone(slot, entry, b, Some(errno), now),
                    }
                    return;
                }
            }
        }
    }

    /// Writes what the session has queued for `slot` until it is all out or
    /// the socket would block.
    pub(super) fn mux_write(&mut self, slot: u32, now: Instant) {
        loop {
            let Some(s) = self.msocks.get_mut(slot) else { return };
            if !s.writable || !s.connected {
                return;
            }
            let (entry, kind) = (s.entry as usize, s.kind);
            let Some(e) = self.mux.entries.get_mut(entry).and_then(|e| e.as_mut()) else { return };
            let buf = match (kind, s.tls.as_deref_mut()) {
                (MKind::Client(id), None) => e.session.poll_client_transmit(id),
                (MKind::Client(id), Some(t)) => tls_io::client_transmit(t, &mut *e.session, id, now).map(Tx::Slice),
                (MKind::Backend(b), None) => e.session.poll_backend_transmit(b),
                (MKind::Backend(b), Some(t)) => tls_backend::transmit(t, &mut *e.session, b, now).map(Tx::Slice),
            };
            let Some(buf) = buf else { return };
            let res = s.stream.write(&buf);
            let n = *res.as_ref().unwrap_or(&0);
            match kind {
                MKind::Client(id) => {
                    match s.tls.as_deref_mut() {
                        None => e.session.handle_client_sent(id, n, now),
                        Some(t) => t.advance(n),
                    }
                    self.core.count_bytes(&e.pool, 0, n);
                }
                MKind::Backend(b) => match s.tls.as_deref_mut() {
                    None => e.session.handle_backend_sent(b, n, now),
                    Some(t) => t.advance(n),
                },
            }
            match res {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    s.writable = false;
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let errno = err.raw_os_error().unwrap_or(libc::EIO);
                    match kind {
                        MKind::Client(id) => e.session.handle_client_error(id, errno),
                        MKind::Backend(b) => self.mux_backend_gone(slot, entry, b, Some(errno), now),
                    }
                    return;
                }
            }
        }
    }

    /// At the periodic tick: releases the receive buffer of every plaintext
    /// backend that read nothing since the last tick and holds no partial
    /// reply (nothing is in flight into it: reads are synchronous).
    pub(super) fn mux_release_idle_rx(&mut self) {
        let mut released = false;
        for s in self.msocks.iter_mut() {
            if !std::mem::take(&mut s.rx_used) && s.rx.as_deref().is_some_and(|rx| rx.is_empty()) {
                s.rx = None;
                released = true;
            }
        }
        if released {
            crate::purge::released();
        }
    }
}
