//! Building a `Snapshot` from a validated config and the current health.
//!
//! Owner: the control thread. Invariants: stat ids are assigned once per
//! pool name and per (pool, backend name) and never reused; a pool whose
//! `listen` address is unchanged keeps its listener sockets (clients queued
//! in the accept backlog survive a reload); the build either fully succeeds
//! or changes nothing that a worker can see.

use std::collections::HashMap;
use std::sync::Arc;

use super::listeners;
use super::DriverKind;
use crate::config::{Config, ListenAddr};
use crate::route::{Listener, PoolSnapshot, SlotMap, Snapshot};
use crate::stats::{MAX_BACKENDS, MAX_POOLS};

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("pool {pool}: cannot listen on {addr}: {source}")]
    Bind {
        pool: String,
        addr: ListenAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("more than {max} distinct {what} over the process lifetime; restart to reset")]
    TooMany { what: &'static str, max: usize },
}

/// Stable counter indices, append-only.
#[derive(Debug, Default)]
pub struct StatIds {
    pools: HashMap<String, usize>,
    backends: HashMap<(String, String), usize>,
}

impl StatIds {
    pub fn pool(&mut self, name: &str) -> Result<usize, BuildError> {
        let n = self.pools.len();
        if let Some(&id) = self.pools.get(name) {
            return Ok(id);
        }
        if n >= MAX_POOLS {
            return Err(BuildError::TooMany { what: "pools", max: MAX_POOLS });
        }
        self.pools.insert(name.to_string(), n);
        Ok(n)
    }

    pub fn backend(&mut self, pool: &str, backend: &str) -> Result<usize, BuildError> {
        let n = self.backends.len();
        let key = (pool.to_string(), backend.to_string());
        if let Some(&id) = self.backends.get(&key) {
            return Ok(id);
        }
        if n >= MAX_BACKENDS {
            return Err(BuildError::TooMany { what: "backends", max: MAX_BACKENDS });
        }
        self.backends.insert(key, n);
        Ok(n)
    }
}

/// Inputs to a build besides the config.
pub struct BuildCtx<'a> {
    pub epoch: u64,
    pub draining: bool,
    pub workers: usize,
    pub driver: DriverKind,
    pub prev: Option<&'a Snapshot>,
    /// Health by backend stat id; missing = up.
    pub up: &'a dyn Fn(usize) -> bool,
    /// The current slot map of a redis_cluster pool, by pool name.
    pub cluster: &'a dyn Fn(&str) -> Option<Arc<SlotMap>>,
}

pub fn build(cfg: Arc<Config>, ids: &mut StatIds, ctx: &BuildCtx<'_>) -> Result<Snapshot, BuildError> {
    let user_limits = user_limits(&cfg, ctx);
    let mut pools = Vec::with_capacity(cfg.pools.len());
    let mut all_listeners = Vec::with_capacity(cfg.pools.len());
    let mut plain_listeners = Vec::with_capacity(cfg.pools.len());
    for pc in &cfg.pools {
        let stat_id = ids.pool(&pc.name)?;
        if !ctx.draining {
            all_listeners.push(pool_listeners(pc, ctx)?);
            plain_listeners.push(pool_plain_listeners(pc, ctx)?);
        }
        let clients = ctx.prev.and_then(|s| s.pool_by_name(&pc.name)).map(|p| p.clients.clone()).unwrap_or_default();
        let sids = pc.servers.iter().map(|s| ids.backend(&pc.name, &s.name)).collect::<Result<Vec<_>, _>>()?;
        let mut pool = PoolSnapshot::new(pc.clone(), stat_id, &sids, ctx.up, clients);
        if pc.cluster.is_some() {
            // Before the first successful refresh: an empty map, so the
            // session answers CLUSTERDOWN rather than guessing.
            pool.cluster = Some((ctx.cluster)(&pc.name).unwrap_or_default());
        }
        if pc.limits.per_ip.is_some() {
            // The same counts and shares across a reload (clients stay
            // connected), unless the worker count changed.
            let prev = ctx.prev.and_then(|s| s.pool_by_name(&pc.name)).and_then(|p| p.ip_limits.clone());
            let keep = prev.filter(|l| l.workers() == ctx.workers.max(1));
            pool.ip_limits = Some(keep.unwrap_or_else(|| Arc::new(crate::limit::PoolLimits::new(ctx.workers))));
        }
        if pc.users.is_some() {
            pool.user_limits = user_limits.clone();
        }
        pools.push(Arc::new(pool));
    }
    Ok(Snapshot {
        epoch: ctx.epoch,
        draining: ctx.draining,
        config: cfg,
        pools,
        listeners: all_listeners,
        plain_listeners,
        user_limits,
    })
}

/// The users' limits and counters: the previous snapshot's when neither
/// the users (names, order, limits) nor the worker count changed, so a
/// reload keeps their buckets; else new ones that carry the counters of
/// the users kept (`limit::users`).
fn user_limits(cfg: &Config, ctx: &BuildCtx<'_>) -> Option<Arc<crate::limit::UserLimits>> {
    if cfg.users.is_empty() {
        return None;
    }
    let users: Vec<_> = cfg.users.iter().map(|u| (u.user.name.clone(), u.limits)).collect();
    let prev = ctx.prev.and_then(|s| s.user_limits.as_ref());
    if let Some(p) = prev.filter(|p| p.same(&users, ctx.workers)) {
        return Some(p.clone());
    }
    let now = std::time::Instant::now();
    Some(Arc::new(crate::limit::UserLimits::new(users, ctx.workers, now, prev.map(|p| &**p))))
}

/// The pool's per-worker listeners: the previous snapshot's when the pool
/// still listens on the same socket, else freshly bound.
fn pool_listeners(pc: &crate::config::PoolConfig, ctx: &BuildCtx<'_>) -> Result<Vec<Arc<Listener>>, BuildError> {
    let reuse = ctx.prev.and_then(|s| {
        let i = s.pools.iter().position(|p| p.cfg.listen.same_socket(&pc.listen))?;
        s.listeners.get(i).filter(|l| l.len() == ctx.workers).cloned()
    });
    let backlog = pc.shard.as_ref().map_or(listeners::BACKLOG, |s| s.backlog.min(i32::MAX as u32) as i32);
    let err = |source| BuildError::Bind { pool: pc.name.clone(), addr: pc.listen.clone(), source };
    match (&pc.listen, reuse) {
        // A kept unix socket takes a changed `perm` in place.
        (ListenAddr::Unix { path, perm }, Some(l)) => listeners::chmod(path, *perm).map(|()| l).map_err(err),
        (_, Some(l)) => Ok(l),
        (ListenAddr::Tcp(addr), None) => listeners::bind(*addr, ctx.workers, ctx.driver, backlog).map_err(err),
        (ListenAddr::Unix { path, perm }, None) => {
            listeners::bind_unix(path, *perm, ctx.workers, ctx.driver, backlog).map_err(err)
        }
    }
}

/// A TLS pool's `plain_listen` sockets: the previous snapshot's when some
/// pool already had that address, else freshly bound; none without one.
fn pool_plain_listeners(pc: &crate::config::PoolConfig, ctx: &BuildCtx<'_>) -> Result<Vec<Arc<Listener>>, BuildError> {
    let Some(addr) = pc.tls.plain_listen else { return Ok(Vec::new()) };
    let reuse = ctx.prev.and_then(|s| {
        let i = s.pools.iter().position(|p| p.cfg.tls.plain_listen == Some(addr))?;
        s.plain_listeners.get(i).filter(|l| l.len() == ctx.workers).cloned()
    });
    if let Some(l) = reuse {
        return Ok(l);
    }
    let backlog = pc.shard.as_ref().map_or(listeners::BACKLOG, |s| s.backlog.min(i32::MAX as u32) as i32);
    listeners::bind_as(addr, ctx.workers, ctx.driver, backlog, true).map_err(|source| BuildError::Bind {
        pool: pc.name.clone(),
        addr: ListenAddr::Tcp(addr),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn config(listen: SocketAddr, servers: &[&str]) -> Arc<Config> {
        Arc::new(Config {
            source: "t.toml".into(),
            server: ServerSettings {
                workers: Workers::Count(2),
                cpus: None,
                io: IoMode::Epoll,
                admin: "127.0.0.1:0".parse().unwrap(),
                admin_token: None,
                log: "info".into(),
                shutdown_timeout: Duration::from_secs(1),
                max_buffered_bytes: Some(crate::config::DEFAULT_MAX_BUFFERED_BYTES),
                metrics_detail: Default::default(),
                wait: Default::default(),
            },
            pools: vec![PoolConfig {
                balance: Balance::ClientIp,
                ..PoolConfig::with_defaults(
                    "p",
                    listen,
                    servers
                        .iter()
                        .map(|s| ServerSpec {
                            addr: s.parse().unwrap(),
                            weight: 1,
                            name: s.to_string(),
                            host: String::new(),
                        })
                        .collect(),
                )
            }],
            users: Vec::new(),
        })
    }

    fn free_addr() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    #[test]
    fn build_binds_one_listener_per_worker_and_marks_health() {
        let listen = free_addr();
        let cfg = config(listen, &["127.0.0.1:7001", "127.0.0.1:7002"]);
        let mut ids = StatIds::default();
        let down = |sid: usize| sid != 1;
        let ctx = BuildCtx {
            epoch: 1,
            draining: false,
            workers: 2,
            driver: DriverKind::Epoll,
            prev: None,
            up: &down,
            cluster: &|_| None,
        };
        let s = build(cfg.clone(), &mut ids, &ctx).unwrap();
        let p = &s.pools[0];
        let ls = &s.listeners[0];
        assert_eq!(ls.len(), 2);
        assert_ne!(ls[0].id, ls[1].id);
        assert_eq!(ls[0].socket.local_addr().unwrap().as_socket(), Some(listen));
        assert_eq!(p.healthy, vec![0], "backend with stat id 1 is down");
        assert_eq!(p.affinity.lookup(b"any"), Some(0));

        // A rebuild keeps listeners, stat ids and the shared client count.
        let all_up = |_: usize| true;
        let ctx2 = BuildCtx { epoch: 2, prev: Some(&s), up: &all_up, ..ctx };
        let s2 = build(cfg, &mut ids, &ctx2).unwrap();
        assert_eq!(s2.epoch, 2);
        assert_eq!(s2.listeners[0][0].id, ls[0].id);
        // A draining snapshot holds no listeners, so they close.
        let ctx3 = BuildCtx { epoch: 3, draining: true, prev: Some(&s2), up: &all_up, ..ctx };
        assert!(build(s2.config.clone(), &mut ids, &ctx3).unwrap().listeners.is_empty());
        assert!(Arc::ptr_eq(&s2.pools[0].clients, &p.clients));
        assert_eq!(s2.pools[0].backends[1].stat_id, 1);
        assert_eq!(s2.pools[0].healthy, vec![0, 1]);
    }

    #[test]
    fn bind_conflict_is_an_error_naming_the_pool() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = config(taken.local_addr().unwrap(), &["127.0.0.1:7001"]);
        let up = |_: usize| true;
        let ctx = BuildCtx {
            epoch: 1,
            draining: false,
            workers: 1,
            driver: DriverKind::Epoll,
            prev: None,
            up: &up,
            cluster: &|_| None,
        };
        let err = build(cfg, &mut StatIds::default(), &ctx).unwrap_err().to_string();
        assert!(err.starts_with("pool p: cannot listen on 127.0.0.1:"), "{err}");
    }

    #[test]
    fn a_unix_listener_is_kept_across_rebuilds_and_its_file_removed_when_the_pool_moves() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("puerta-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.sock"), dir.join("b.sock"));
        let with_listen = |listen: ListenAddr| {
            let mut c = (*config(free_addr(), &["127.0.0.1:7001"])).clone();
            c.pools[0].listen = listen;
            Arc::new(c)
        };
        let up = |_: usize| true;
        let ctx = BuildCtx {
            epoch: 1,
            draining: false,
            workers: 2,
            driver: DriverKind::Epoll,
            prev: None,
            up: &up,
            cluster: &|_| None,
        };
        let mut ids = StatIds::default();
        let s1 = build(with_listen(ListenAddr::Unix { path: a.clone(), perm: Some(0o600) }), &mut ids, &ctx).unwrap();
        let ls = &s1.listeners[0];
        assert_eq!(ls.len(), 2, "one copy per worker");
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        // Same path, new permissions: the same sockets, chmod applied.
        let ctx2 = BuildCtx { epoch: 2, prev: Some(&s1), ..ctx };
        let s2 = build(with_listen(ListenAddr::Unix { path: a.clone(), perm: Some(0o666) }), &mut ids, &ctx2).unwrap();
        assert_eq!(s2.listeners[0][0].id, ls[0].id);
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o666);
        // Another path: a new socket; the old file goes with its last holder.
        let ctx3 = BuildCtx { epoch: 3, prev: Some(&s2), ..ctx };
        let s3 = build(with_listen(ListenAddr::Unix { path: b.clone(), perm: None }), &mut ids, &ctx3).unwrap();
        assert_ne!(s3.listeners[0][0].id, ls[0].id);
        drop((s1, s2));
        assert!(!a.exists() && b.exists());
        drop(s3);
        assert!(!b.exists());
    }
}
