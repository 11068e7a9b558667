//! The process's file-descriptor budget: raising RLIMIT_NOFILE at start,
//! deriving the process-wide client limit from it as nutcracker does, and
//! the count of clients held against that limit.
//!
//! nutcracker (`core_calc_connections`): max clients = the soft limit −
//! the server connections (`server_connections` × servers, plus one
//! listener, per pool) − 32 reserved descriptors; a client accepted past it
//! is closed at once (`proxy_accept`). Puerta does the same, per worker
//! (each worker has its own listeners and backend connections), and counts
//! a tcp or mongos client twice: it holds a backend connection of its own.
//! `max_client_connections` stays a per-pool cap below this one.
//!
//! Owner: `main` derives the limit once at start; workers take and give back
//! units at accept and close (the one place, with the per-pool counts, where
//! workers write shared state); admin reads both numbers.
//! Invariant: `open` counts exactly the units of clients admitted and not
//! yet closed, so it never exceeds `limit` for longer than one admission.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{Config, Mode, PoolConfig};

/// Descriptors kept back for everything but clients and backends: std
/// streams, the log, admin and stats connections, health probes, cluster
/// topology fetches (nutcracker's `RESERVED_FDS`).
pub const RESERVED_FDS: u64 = 32;
/// Each worker's own descriptors: its wake eventfd and its io_uring ring or
/// epoll instance.
const PER_WORKER_FDS: u64 = 2;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft
/// limit in force afterwards (`u64::MAX` for unlimited). Why: a proxy holds
/// a descriptor per client and per backend connection, and the common soft
/// default (1024) would refuse clients long before memory runs out.
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Ok(if lim.rlim_cur == libc::RLIM_INFINITY { u64::MAX } else { lim.rlim_cur })
}

/// Units a client of `pool` takes from the budget: 2 for tcp and mongos
/// (its own backend connection), 1 for multiplexed pools.
pub fn client_units(pool: &PoolConfig) -> u64 {
    match pool.mode {
        Mode::Tcp | Mode::Mongos => 2,
        Mode::Redis | Mode::Memcache | Mode::RedisCluster => 1,
    }
}

/// Descriptors the workers hold for anything but clients: per worker, one
/// listener per pool, the multiplexed pools' backend connections
/// (`server_connections` per server; `node_connections` per seed node of a
/// cluster, an estimate: the map may name more), and its own two.
pub fn server_fds(cfg: &Config, workers: usize) -> u64 {
    let per_worker: u64 = cfg
        .pools
        .iter()
        .map(|p| {
            let servers = p.servers.len() as u64;
            let conns = match (&p.shard, &p.cluster) {
                (Some(s), _) => u64::from(s.server_connections.max(1)).saturating_mul(servers),
                (None, Some(c)) => u64::from(c.node_connections.max(1)).saturating_mul(servers),
                (None, None) => 0,
            };
            conns.saturating_add(1)
        })
        .fold(PER_WORKER_FDS, u64::saturating_add);
    per_worker.saturating_mul(workers as u64)
}

/// The process-wide client limit for a soft limit of `nofile`: what is left
/// after the servers' descriptors and the reserve (0 when nothing is).
pub fn client_limit(cfg: &Config, workers: usize, nofile: u64) -> u64 {
    nofile.saturating_sub(server_fds(cfg, workers)).saturating_sub(RESERVED_FDS)
}

/// Clients held against the derived limit, by all workers together.
#[derive(Debug)]
pub struct ClientBudget {
    limit: AtomicU64,
    open: AtomicU64,
}

impl Default for ClientBudget {
    /// No limit (tests and tools that start no listener).
    fn default() -> Self {
        ClientBudget::new(u64::MAX)
    }
}

impl ClientBudget {
    pub fn new(limit: u64) -> Self {
        ClientBudget { limit: AtomicU64::new(limit), open: AtomicU64::new(0) }
    }

    /// Takes `units` for a new client; false (nothing taken) when that
    /// would pass the limit.
    pub fn try_take(&self, units: u64) -> bool {
        let before = self.open.fetch_add(units, Ordering::Relaxed);
        if before.saturating_add(units) > self.limit.load(Ordering::Relaxed) {
            self.open.fetch_sub(units, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives back what `try_take` took for a client that closed.
    pub fn give_back(&self, units: u64) {
        self.open.fetch_sub(units, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml: &str) -> Config {
        crate::config::parse(toml, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn the_limit_is_nofile_less_server_connections_listeners_and_the_reserve() {
        let c = cfg("[[pool]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nmode = \"redis\"\nserver_connections = 3\n\
             servers = [\"127.0.0.1:2:1\", \"127.0.0.1:3:1\"]\n\
             [[pool]]\nname = \"t\"\nlisten = \"127.0.0.1:4\"\nmode = \"tcp\"\nservers = [\"127.0.0.1:5\"]\n");
        // Per worker: redis 3 x 2 + 1 listener, tcp 0 + 1 listener, 2 own.
        assert_eq!(server_fds(&c, 1), 10);
        assert_eq!(server_fds(&c, 4), 40);
        assert_eq!(client_limit(&c, 4, 1024), 1024 - 40 - 32);
        assert_eq!(client_limit(&c, 4, 50), 0, "too few descriptors: nothing left, no wrap");
        assert_eq!(client_limit(&c, 4, u64::MAX), u64::MAX - 72);
        assert_eq!(client_units(&c.pools[0]), 1);
        assert_eq!(client_units(&c.pools[1]), 2);
    }

    #[test]
    fn the_budget_refuses_past_the_limit_and_takes_back_what_closed() {
        let b = ClientBudget::new(5);
        assert!(b.try_take(2));
        assert!(b.try_take(2));
        assert!(!b.try_take(2), "2 + 2 + 2 > 5");
        assert_eq!(b.open(), 4, "a refusal takes nothing");
        assert!(b.try_take(1));
        assert!(!b.try_take(1));
        b.give_back(2);
        assert!(b.try_take(2));
        assert_eq!((b.open(), b.limit()), (5, 5));
        assert!(ClientBudget::default().try_take(u64::MAX / 2), "the default is unlimited");
    }
}
