//! The `obs` families of `/metrics`: request and backend latency
//! histograms, per-command counters and slow log entries, per pool.
//!
//! Owns nothing: merges every core's `obs::PoolObs` of each pool of the
//! current snapshot on scrape. Invariants: label values come from the
//! bounded lists of `obs::classes` (commands, error classes) or the config
//! (pool and backend names, escaped); a command or backend with nothing
//! recorded is left out, so a pool without traffic adds no series; each
//! family is written whole before the next (the format's rule).

use super::metrics::{escape, Out};
use crate::config::Mode;
use crate::control::Shared;
use crate::obs::{classes, HistSnap, Kind, PoolObs, BOUNDS_US, MAX_POOL_BACKENDS, NCLASS, NCMD};
use crate::route::Snapshot;

/// One command's counters merged over cores.
#[derive(Default, Clone, Copy)]
struct Cmd {
    requests: u64,
    request_bytes: u64,
    reply_bytes: u64,
    errors: [u64; NCLASS],
    hist: HistSnap,
}

struct Pool {
    name: String,
    kind: Kind,
    cmds: Vec<Cmd>,
    backends: Vec<(String, HistSnap)>,
    slow_total: u64,
}

fn kind_of(mode: Mode) -> Option<Kind> {
    match mode {
        Mode::Redis | Mode::RedisCluster => Some(Kind::Redis),
        Mode::Memcache => Some(Kind::Memcache),
        Mode::Mongos => Some(Kind::Mongo),
        // No request boundaries: nothing is timed.
        Mode::Tcp => None,
    }
}

fn merge(shared: &Shared, stat_id: usize, name: &str, kind: Kind) -> Pool {
    let mut cmds = vec![Cmd::default(); NCMD];
    let mut backends = vec![HistSnap::default(); MAX_POOL_BACKENDS];
    let mut names: Vec<String> = Vec::new();
    let mut slow_total = 0u64;
    let cores = shared.workers.iter().filter_map(|w| w.obs.get(stat_id));
    for o in cores {
        let o: &PoolObs = o;
        for (c, (src, h)) in cmds.iter_mut().zip(o.cmds.iter().zip(o.hist.iter())) {
            c.requests = c.requests.wrapping_add(src.requests.get());
            c.request_bytes = c.request_bytes.wrapping_add(src.request_bytes.get());
            c.reply_bytes = c.reply_bytes.wrapping_add(src.reply_bytes.get());
            for (e, s) in c.errors.iter_mut().zip(&src.errors) {
                *e = e.wrapping_add(s.get());
            }
            c.hist.merge(&h.snap());
        }
        for (b, h) in backends.iter_mut().zip(o.backends.iter()) {
            b.merge(&h.snap());
        }
        // Slots are the session's server indexes; any core's name will do
        // (every core names them alike from the same snapshot).
        for (i, n) in o.backend_names().into_iter().enumerate() {
            if names.len() <= i {
                names.resize(i + 1, String::new());
            }
            if names[i].is_empty() {
                names[i] = n;
            }
        }
        slow_total = slow_total.wrapping_add(o.slow_total.get());
    }
    let backends = backends
        .into_iter()
        .enumerate()
        .filter(|(_, h)| h.count() > 0)
        .map(|(i, h)| (names.get(i).filter(|n| !n.is_empty()).cloned().unwrap_or_else(|| format!("#{i}")), h))
        .collect();
    Pool { name: escape(name), kind, cmds, backends, slow_total }
}

fn histogram(m: &mut Out, family: &str, labels: &str, h: &HistSnap) {
    let bucket = format!("{family}_bucket");
    for (le, c) in BOUNDS_US.iter().zip(h.cumulative()) {
        m.sample(&bucket, &format!("{labels},le=\"{}\"", *le as f64 / 1e6), c);
    }
    m.sample(&bucket, &format!("{labels},le=\"+Inf\""), h.count());
    m.sample(&format!("{family}_sum"), labels, h.sum_us as f64 / 1e6);
    m.sample(&format!("{family}_count"), labels, h.count());
}

pub(super) fn render_metrics(m: &mut Out, shared: &Shared, snap: &Snapshot) {
    let pools: Vec<Pool> =
        snap.pools.iter().filter_map(|p| Some(merge(shared, p.stat_id, &p.cfg.name, kind_of(p.cfg.mode)?))).collect();
    if pools.is_empty() {
        return;
    }
    // (pool, command label, counters) of every command that saw a request.
    let rows = || {
        pools.iter().flat_map(|p| {
            p.cmds.iter().enumerate().filter(|(_, c)| c.requests > 0 || c.hist.count() > 0).map(move |(i, c)| {
                let name = classes::command_name(p.kind, i).unwrap_or("other");
                (format!("pool=\"{}\",command=\"{}\"", p.name, escape(name)), c)
            })
        })
    };
    m.family(
        "request_duration_seconds",
        "histogram",
        "Request latency, from its last byte parsed to its reply queued to the client (metrics_detail = \"full\").",
    );
    for (labels, c) in rows() {
        histogram(m, "request_duration_seconds", &labels, &c.hist);
    }
    m.family("backend_duration_seconds", "histogram", "Backend round trip, from the request sent to its reply read.");
    for p in &pools {
        for (b, h) in &p.backends {
            histogram(m, "backend_duration_seconds", &format!("pool=\"{}\",backend=\"{}\"", p.name, escape(b)), h);
        }
    }
    type Field = fn(&Cmd) -> u64;
    let counters: [(&str, &str, Field); 3] = [
        ("command_requests_total", "Requests decoded, by command.", |c| c.requests),
        ("command_request_bytes_total", "Request bytes decoded, by command.", |c| c.request_bytes),
        ("command_reply_bytes_total", "Reply bytes queued to clients, by command.", |c| c.reply_bytes),
    ];
    for (family, help, field) in counters {
        m.family(family, "counter", help);
        for (labels, c) in rows() {
            m.sample(family, &labels, field(c));
        }
    }
    m.family("command_errors_total", "counter", "Error replies by command and class (fixed list, else \"other\").");
    for (labels, c) in rows() {
        for (class, &n) in classes::CLASSES.iter().zip(&c.errors).filter(|(_, &n)| n > 0) {
            m.sample("command_errors_total", &format!("{labels},class=\"{class}\""), n);
        }
    }
    m.family("slowlog_entries_total", "counter", "Requests added to the slow log (over slow_op_threshold).");
    for p in &pools {
        m.sample("slowlog_entries_total", &format!("pool=\"{}\"", p.name), p.slow_total);
    }
}
