//! The io_uring driver: one ring per worker, multishot accept and recv, a
//! provided buffer ring, batched submissions, linked connect timeouts and
//! per-connection deadline timers (`timer`).
//!
//! Owner: one worker thread owns the ring, the buffer ring, every socket it
//! accepted or opened, and each connection's buffers. Invariants:
//! - every SQE that references a connection's memory (send buffers, the
//!   connect sockaddr) is counted in `Conn::ops`; a connection's fds are
//!   closed and its memory freed only when that count is back to zero;
//! - user_data carries a `Tag` (`tag.rs`), the slot *and* its generation,
//!   so a late completion for a freed slot is recognised and ignored (its
//!   buffer still recycled);
//! - the snapshot is swapped only at the top of a loop pass.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

mod conn;
mod linger;
mod listen;
mod mux;
mod mux_close;
mod mux_connect;
mod mux_recv;
mod relay;
mod submit;
mod tag;
mod timer;
mod wait;

use crate::session::CloseReason;
use crate::worker::bufring::BufRing;
use crate::worker::core::WorkerCore;
use crate::worker::linger::LingerList;
use crate::worker::mux_drive::MuxIo;
use crate::worker::mux_pools::MuxPools;
use crate::worker::relay::RelayIo;
use crate::worker::slab::Slab;
use listen::Armed;
use tag::Tag;

/// How often multiplexed sessions copy their counters to the stats block.
const TICK: Duration = Duration::from_millis(250);

/// Provided buffers per worker and their size: at most 1024 x 16 KiB =
/// 16 MiB, of which `BUF_INITIAL` are handed to the kernel at start; the
/// ring doubles when the kernel runs out (`bufring.rs`).
const BUF_ENTRIES: u16 = 1024;
const BUF_INITIAL: u16 = 16;
const BUF_SIZE: usize = 16 * 1024;

pub struct UringDriver {
    // Field order matters for Drop: the ring goes before the buffer memory.
    ring: IoUring,
    bufs: BufRing,
    core: WorkerCore,
    conns: Slab<conn::Conn>,
    listeners: Vec<Option<Armed>>,
    wake_fd: RawFd,
    wake_buf: Box<u64>,
    /// The drain deadline's timeout, armed once when draining starts.
    drain_ts: Box<types::Timespec>,
    drain_armed: bool,
    tick_ts: Box<types::Timespec>,
    tick_armed: bool,
    /// The accept pause's resume timer (`listen.rs`).
    accept_resume_ts: Box<types::Timespec>,
    accept_resume_armed: bool,
    cqes: Vec<(u64, i32, u32)>,
    /// Completions reaped by `push` to free the CQ (`submit.rs`), in order;
    /// dispatched at the start of the next batch.
    reaped: Vec<(u64, i32, u32)>,
    /// Sessions of multiplexed (redis/memcache) pools and their sockets.
    mux: MuxPools,
    msocks: Slab<conn::MSock>,
    /// Sockets whose send completed: more may be waiting (see `mux_flush`).
    mux_resend: Vec<u32>,
    /// Lingering TLS clients (slot, generation, deadline), `linger.rs`.
    mux_linger: LingerList,
    mux_sends: Vec<u32>,
    mux_resumes: Vec<u32>,
    /// The armed deadline timer: (deadline, sequence number).
    mux_timer: Option<(Instant, u32)>,
    mux_ts: Box<types::Timespec>,
    /// How to wait (`wait.rs`): `[server]` at start (a reload does not
    /// change it, like the other `[server]` keys).
    wait: crate::config::WaitPolicy,
    /// The kernel takes `min_wait_usec` (cleared at its first EINVAL).
    min_wait_ok: bool,
    idle_ts: Box<types::Timespec>,
    /// Completions the last loop pass handled (`wait.rs`).
    last_pass: usize,
    /// A client's request bytes arrived in this pass (`mux_recv.rs`): the
    /// pass ends with `flush_replies_then_reap` (`wait.rs`).
    pass_requests: bool,
    /// Set only inside `flush_replies_then_reap`: flushes leave dirty
    /// backends for the flush after it (`MuxParts::hold_backends`).
    hold_backends: bool,
}

/// Builds a ring with SINGLE_ISSUER + DEFER_TASKRUN, falling back to a
/// plain ring on kernels without them.
pub fn new_ring() -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_single_issuer().setup_defer_taskrun().setup_cqsize(16384).setup_submit_all();
    match b.build(2048) {
        Ok(r) => Ok(r),
        Err(_) => IoUring::builder().setup_cqsize(16384).build(2048),
    }
}

impl UringDriver {
    pub fn new(core: WorkerCore, wake_fd: RawFd) -> io::Result<Self> {
        let ring = new_ring()?;
        let bufs = BufRing::new(&ring, BUF_ENTRIES, BUF_SIZE, 0, BUF_INITIAL)?;
        // SINGLE_ISSUER and DEFER_TASKRUN are set together or not at all.
        tracing::debug!(
            worker = core.id,
            single_issuer_defer_taskrun = ring.params().is_setup_single_issuer(),
            "io_uring ring ready"
        );
        let min_wait_ok = ring.params().is_feature_min_timeout();
        let wait = core.snap.config.server.wait;
        if wait.batched() && !min_wait_ok {
            tracing::warn!(worker = core.id, "io_uring: the kernel lacks min_wait_usec (6.12+); wait_batch is off");
        }
        Ok(UringDriver {
            ring,
            bufs,
            core,
            conns: Slab::default(),
            listeners: Vec::new(),
            wake_fd,
            wake_buf: Box::new(0),
            drain_ts: Box::new(types::Timespec::new()),
            drain_armed: false,
            tick_ts: Box::new(types::Timespec::from(TICK)),
            tick_armed: false,
            accept_resume_ts: Box::new(types::Timespec::new()),
            accept_resume_armed: false,
            cqes: Vec::with_capacity(1024),
            reaped: Vec::new(),
            mux: MuxPools::default(),
            msocks: Slab::default(),
            mux_resend: Vec::new(),
            mux_linger: LingerList::default(),
            mux_sends: Vec::new(),
            mux_resumes: Vec::new(),
            mux_timer: None,
            mux_ts: Box::new(types::Timespec::new()),
            wait,
            min_wait_ok,
            idle_ts: Box::new(types::Timespec::from(wait::IDLE_WAKE)),
            last_pass: 0,
            pass_requests: false,
            hold_backends: false,
        })
    }

    /// Runs until the worker has drained after shutdown.
    pub fn run(mut self) -> io::Result<()> {
        self.arm_wake();
        self.apply_snapshot(Instant::now());
        let mut stalls = submit::Stalls::default();
        loop {
            // A worker that cannot go on says so; `main` then exits.
            if let Some(e) = self.core.fatal.take() {
                return Err(e);
            }
            let now = Instant::now();
            if self.core.refresh(now) {
                self.apply_snapshot(now);
            }
            if self.core.drain_done(now) {
                self.close_all(CloseReason::Shutdown);
                self.mux_close_all(now);
                if self.conns.is_empty() && self.mux_idle() {
                    return Ok(());
                }
            }
            self.bufs.publish();
            // Completions `push` reaped to make room are this batch's first;
            // with some in hand, the loop must not sleep.
            let want = usize::from(self.reaped.is_empty());
            match self.wait_for_events(want) {
                Ok(_) => {}
                // A signal: the wait blocked until then, no spin.
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // EBUSY: completions wait to be reaped, just below. EAGAIN:
                // the kernel lacks memory for now. Both are retried, but
                // only so long without a completion (`submit::Stalls`).
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => stalls.stalled(e)?,
                Err(e) => return Err(e),
            }
            self.cqes.clear();
            self.cqes.append(&mut self.reaped);
            self.cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            if !self.cqes.is_empty() {
                stalls.progressed();
            }
            let now = Instant::now();
            // A snapshot published while we waited (a reload answered just
            // before a client connected) must route this batch's accepts.
            if self.core.refresh(now) {
                self.apply_snapshot(now);
            }
            self.dispatch_cqes(now);
            let mut handled = self.cqes.len();
            if std::mem::take(&mut self.pass_requests) {
                handled += self.flush_replies_then_reap(now);
            }
            self.mux_flush(now);
            self.last_pass = handled;
        }
    }

    /// A new snapshot: listeners, mongos retirements, multiplexed sessions.
    fn apply_snapshot(&mut self, now: Instant) {
        // Sessions first: arming a listener may accept at once (epoll takes
        // what queued before it registered), and a client needs its session.
        self.mux.sync(&self.core, now);
        self.sync_listeners();
        self.retire_sessions(now);
        self.arm_drain_timer(now);
        self.arm_tick();
        self.mux_flush(now);
    }

    /// Handles every completion collected in `cqes`, in order.
    fn dispatch_cqes(&mut self, now: Instant) {
        for i in 0..self.cqes.len() {
            let (u, res, flags) = self.cqes[i];
            self.dispatch(u, res, flags, now);
        }
    }

    fn dispatch(&mut self, u: u64, res: i32, flags: u32, now: Instant) {
        let Some((tag, slot, gen)) = Tag::decode(u) else { return };
        if matches!(tag, Tag::Recv(_) | Tag::MuxRecv) && res == -libc::ENOBUFS && self.bufs.grow() {
            // Published at the loop top, before the re-armed recv is
            // submitted.
            tracing::debug!(worker = self.core.id, buffers = self.bufs.live(), "provided buffer ring grown");
        }
        match tag {
            Tag::MuxRecv => self.mux_on_recv(slot, gen, res, flags, now),
            Tag::MuxSend => self.mux_on_send(slot, gen, res, now),
            Tag::MuxConnect => self.mux_on_connect(slot, gen, res, now),
            Tag::MuxPark => self.mux_on_park(slot, gen),
            Tag::Accept => self.on_accept(slot as usize, res, flags, now),
            Tag::Recv(side) => self.on_recv(slot, gen, side, res, flags, now),
            Tag::Send(side) => self.on_send(slot, gen, side, res, now),
            Tag::Connect => self.on_connect(slot, gen, res, now),
            Tag::LinkTimeout => self.op_done(slot, gen),
            Tag::Wake => self.arm_wake(),
            Tag::Timer => self.on_timer(slot, gen, now),
            Tag::Tick => self.on_tick(now),
            Tag::MuxTimer => self.mux_tick(Some(slot), now),
            Tag::AcceptResume => self.on_accept_resume(now),
            // The loop top checks the drain deadline; a cancel needs nothing.
            Tag::Drain | Tag::Cancel => {}
        }
    }

    fn arm_wake(&mut self) {
        let buf = (&mut *self.wake_buf) as *mut u64 as *mut u8;
        let e = opcode::Read::new(types::Fd(self.wake_fd), buf, 8).build().user_data(Tag::Wake.bare());
        self.push(e);
    }

    /// Multiplexed pools' stats tick: their sessions keep nutcracker's
    /// counters themselves and copy them to the worker's stats block here
    /// (deadlines have their own timer). Re-armed only while such pools
    /// exist, so a tcp/mongos-only worker sleeps until an event.
    fn on_tick(&mut self, now: Instant) {
        self.tick_armed = false;
        self.mux_tick(None, now);
        self.arm_tick();
    }

    fn arm_tick(&mut self) {
        if self.tick_armed || (self.mux.is_empty() && self.mux_linger.is_empty()) {
            return;
        }
        self.tick_armed = true;
        let e = opcode::Timeout::new(&*self.tick_ts).build().user_data(Tag::Tick.bare());
        self.push(e);
    }

    fn close_all(&mut self, reason: CloseReason) {
        let now = Instant::now();
        for slot in self.conns.slots() {
            if let Some(c) = self.conns.get_mut(slot) {
                c.r.session.close(reason);
                self.pump(slot, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use io_uring::IoUring;

    #[test]
    fn ring_uses_single_issuer_and_defer_taskrun_where_the_kernel_has_them() {
        let mut b = IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder();
        b.setup_single_issuer().setup_defer_taskrun();
        let kernel_has_them = b.build(8).is_ok();
        match super::new_ring() {
            // The crate exposes SINGLE_ISSUER only; `new_ring` requests both
            // flags in one build, so one implies the other.
            Ok(r) => assert_eq!(r.params().is_setup_single_issuer(), kernel_has_them),
            Err(e) => assert!(!kernel_has_them, "the kernel takes the flags but new_ring failed: {e}"),
        }
    }
}
