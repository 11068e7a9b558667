//! What a memcache pool answers to `stats`: Puerta's own counters under
//! memcached's names, for client libraries' health checks and dashboards.
//!
//! Owns nothing: like the rest of admin it loads the single-writer
//! counters of `Shared` (summed over workers, one worker tick stale at
//! most) and reads the clock; the session calls the returned closure and
//! formats the reply (`protocol::memcache::local`). Only values Puerta
//! really has are listed: no item, slab or hit counts, which live in the
//! servers (ask them directly).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::totals::PoolTotals;
use crate::control::Shared;
use crate::session::mux::LocalStats;

/// The `stats` source of the pool with `stat_id`; `max_clients` is its
/// `max_client_connections`, when it has one.
pub fn source(shared: Arc<Shared>, stat_id: usize, max_clients: Option<usize>) -> LocalStats {
    Arc::new(move || collect(&shared, stat_id, max_clients))
}

fn collect(shared: &Shared, stat_id: usize, max_clients: Option<usize>) -> Vec<(&'static str, String)> {
    let t = PoolTotals::sum(&shared.workers, stat_id);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (user, system) = rusage();
    let mut out = vec![
        ("pid", std::process::id().to_string()),
        ("uptime", shared.started.elapsed().as_secs().to_string()),
        ("time", now.to_string()),
        ("version", format!("puerta-{}", env!("CARGO_PKG_VERSION"))),
        ("pointer_size", usize::BITS.to_string()),
        ("rusage_user", user),
        ("rusage_system", system),
    ];
    if let Some(max) = max_clients {
        out.push(("max_connections", max.to_string()));
    }
    let rejected = t.rejected_max_connections.wrapping_add(t.rejected_no_backend).wrapping_add(t.rejected_client_limit);
    out.extend([
        ("curr_connections", t.client_connections.to_string()),
        ("total_connections", t.client_connections_total.to_string()),
        ("rejected_connections", rejected.to_string()),
        ("bytes_read", t.bytes_in.to_string()),
        ("bytes_written", t.bytes_out.to_string()),
        ("threads", shared.workers.len().to_string()),
    ]);
    out
}

/// The process's user and system CPU time as memcached prints them
/// (`seconds.microseconds`).
fn rusage() -> (String, String) {
    // SAFETY: a zeroed rusage is valid, and getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return ("0.000000".into(), "0.000000".into());
    }
    let tv = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::super::fixture;

    #[test]
    fn counts_the_pool_over_every_worker() {
        let f = fixture::standard();
        let pool = &f.shared.workers[0].pools[fixture::POOL_STAT];
        pool.client_conns.add(2);
        pool.client_conns_total.add(5);
        f.shared.workers[1].pools[fixture::POOL_STAT].client_conns_total.add(1);
        f.shared.workers[1].pools[fixture::POOL_STAT].bytes_in.add(40);
        f.shared.workers[0].pools[fixture::POOL_STAT].rejected_max_conns.add(3);
        let stats = (super::source(f.shared.clone(), fixture::POOL_STAT, Some(9)))();
        let get = |k: &str| stats.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        assert_eq!(get("pid"), std::process::id().to_string());
        assert_eq!(get("curr_connections"), "2");
        assert_eq!(get("total_connections"), "6");
        assert_eq!(get("rejected_connections"), "3");
        assert_eq!(get("bytes_read"), "40");
        assert_eq!(get("bytes_written"), "0");
        assert_eq!(get("max_connections"), "9");
        assert_eq!(get("threads"), f.shared.workers.len().to_string());
        assert_eq!(get("pointer_size"), "64");
        assert!(get("rusage_user").contains('.'));
    }
}
