//! The io_uring driver's listeners: one multishot accept per listener the
//! snapshot gives this worker, and what happens to an accepted socket.
//!
//! Owner: the worker's `UringDriver` (an `impl` block of it). Invariants:
//! - at most one accept op per listener is in the kernel (`armed`);
//! - while the worker's accept backoff is paused (descriptors ran out, see
//!   `worker::accept_backoff`), no accept is armed: a failed multishot
//!   accept ends with a final CQE (or is cancelled, should the kernel keep
//!   it going), and only the resume timer (`Tag::AcceptResume`, one at a
//!   time) arms the listeners again. Re-arming at once is what used to
//!   spin: the connection still queued fails again immediately.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use io_uring::{cqueue, opcode, types};

use super::conn::Conn;
use super::tag::Tag;
use super::UringDriver;
use crate::route::{Listener, PoolSnapshot};
use crate::session::Side;
use crate::worker::sys;
use crate::worker::{mongo, relay_tls};

/// A listener this worker has (or had) a multishot accept armed on.
pub(super) struct Armed {
    pool: Arc<PoolSnapshot>,
    listener: Arc<Listener>,
    armed: bool,
    /// A cancel of the armed accept was sent (backoff): none more.
    cancel_sent: bool,
    /// No longer wanted: cancelled, dropped once its last CQE arrives.
    retired: bool,
}

impl UringDriver {
    /// Arms accepts on listeners the snapshot wants and cancels the rest.
    pub(super) fn sync_listeners(&mut self) {
        let wanted = self.core.wanted_listeners();
        for i in 0..self.listeners.len() {
            let Some(a) = self.listeners[i].as_mut() else {
                continue;
            };
            match wanted.iter().find(|(_, l)| l.id == a.listener.id) {
                Some((p, _)) => a.pool = p.clone(), // same socket, newer pool view
                None if !a.retired => {
                    a.retired = true;
                    let target = Tag::Accept.ud(i as u32, 0);
                    let e = opcode::AsyncCancel::new(target).build().user_data(Tag::Cancel.bare());
                    self.push(e);
                }
                None => {}
            }
        }
        for (p, l) in wanted {
            if !self.listeners.iter().flatten().any(|a| a.listener.id == l.id) {
                let a = Armed { pool: p, listener: l, armed: false, cancel_sent: false, retired: false };
                let idx = match self.listeners.iter().position(Option::is_none) {
                    Some(i) => {
                        self.listeners[i] = Some(a);
                        i
                    }
                    None => {
                        self.listeners.push(Some(a));
                        self.listeners.len() - 1
                    }
                };
                self.arm_accept(idx);
            }
        }
    }

    fn arm_accept(&mut self, idx: usize) {
        if self.core.accept_paused(Instant::now()) {
            return; // the resume timer arms it
        }
        let Some(a) = self.listeners[idx].as_mut() else {
            return;
        };
        a.armed = true;
        a.cancel_sent = false;
        let fd = types::Fd(sys::raw(&*a.listener));
        let e = opcode::AcceptMulti::new(fd).flags(libc::SOCK_CLOEXEC).build().user_data(Tag::Accept.ud(idx as u32, 0));
        self.push(e);
    }

    pub(super) fn on_accept(&mut self, idx: usize, res: i32, flags: u32, now: Instant) {
        let Some(a) = self.listeners.get_mut(idx).and_then(|a| a.as_mut()) else {
            if res >= 0 {
                sys::close(res);
            }
            return;
        };
        let (pool, plain) = (a.pool.clone(), a.listener.plain);
        let retired = a.retired;
        if !cqueue::more(flags) {
            a.armed = false;
            if retired {
                self.listeners[idx] = None;
            }
        }
        if res < 0 {
            if res != -libc::ECANCELED && self.core.handle_accept_error(&pool.cfg.name, -res, now) {
                self.pause_accepts(now);
            }
        } else if retired {
            sys::close(res);
        } else {
            self.core.handle_accepted();
            self.start_session(pool, res, plain, now);
        }
        if let Some(a) = self.listeners.get(idx).and_then(|a| a.as_ref()) {
            if !a.armed && !a.retired {
                self.arm_accept(idx);
            }
        }
    }

    /// Descriptors ran out: stops every armed accept (a multishot accept
    /// that failed has normally ended already) and arms the resume timer.
    fn pause_accepts(&mut self, now: Instant) {
        for i in 0..self.listeners.len() {
            let Some(a) = self.listeners[i].as_mut().filter(|a| a.armed && !a.cancel_sent && !a.retired) else {
                continue;
            };
            a.cancel_sent = true;
            let target = Tag::Accept.ud(i as u32, 0);
            self.push(opcode::AsyncCancel::new(target).build().user_data(Tag::Cancel.bare()));
        }
        let Some(at) = self.core.accept_resume_at() else { return };
        if self.accept_resume_armed {
            return;
        }
        self.accept_resume_armed = true;
        *self.accept_resume_ts = types::Timespec::from(at.saturating_duration_since(now));
        let e = opcode::Timeout::new(&*self.accept_resume_ts).build().user_data(Tag::AcceptResume.bare());
        self.push(e);
    }

    /// The resume timer fired: arms every listener again (or waits on, if
    /// the pause is somehow not over).
    pub(super) fn on_accept_resume(&mut self, now: Instant) {
        self.accept_resume_armed = false;
        self.core.poll_accept_resume(now);
        if self.core.accept_paused(now) {
            return self.pause_accepts(now);
        }
        for idx in 0..self.listeners.len() {
            if self.listeners[idx].as_ref().is_some_and(|a| !a.armed && !a.retired) {
                self.arm_accept(idx);
            }
        }
    }

    fn start_session(&mut self, pool: Arc<PoolSnapshot>, fd: RawFd, plain: bool, now: Instant) {
        if crate::worker::mux_pools::is_mux(&pool) {
            return self.mux_accept(&pool, fd, plain, now);
        }
        let Ok(tls) = relay_tls::accept(&pool, plain, now, &self.core.stats.tls) else {
            sys::close(fd);
            return;
        };
        let peer = if mongo::needs_peer(&pool) { sys::peer_addr(fd) } else { None };
        let key = mongo::balance_key(&pool, peer);
        // Per-IP connections first: a client it refuses takes nothing else.
        let Ok(rate) = self.core.admit_ip(&pool, peer) else {
            sys::close(fd);
            return;
        };
        let backend = match self.core.admit(&pool, &key) {
            Ok(b) => b,
            Err(reason) => {
                tracing::debug!(pool = %pool.cfg.name, ?reason, "client rejected at accept");
                sys::close(fd);
                return;
            }
        };
        sys::set_nodelay(fd);
        let mut session = self.core.open_session(&pool, peer, || sys::local_addr(fd), now);
        if let Some(rate) = rate {
            session.set_rate(rate);
        }
        let deferred = session.awaiting_route();
        let mut conn = Conn::new(pool, key, backend, fd, session);
        conn.r.tls[Side::Client as usize] = tls;
        let slot = self.conns.insert(conn);
        if !deferred {
            self.connect(slot);
        }
        self.pump(slot, now);
    }
}
