//! nutcracker's stats port: one JSON document per connection, then close,
//! with nutcracker 0.5.0's field names, nesting and layout. Connections are
//! served by the admin port's loop (`server.rs`), concurrently and with a
//! write deadline.
//!
//! The same port serves Prometheus: a connection whose first bytes, within
//! `SNIFF_WINDOW` of accept, are `GET ` is answered as HTTP (`/metrics`,
//! with the admin port's token and `Host` checks); any other connection
//! gets the JSON after that window, as from nutcracker. So several
//! instances per host need no admin port each.
//!
//! Owns nothing: `collect` reads the snapshot and single-writer counters
//! (loads only) into a `NutStats` value, and `render` is a pure formatter,
//! so the document's shape is unit-tested without sockets. Every field is
//! a real counter: connections from the worker gauges, ejections from the
//! control thread, the rest from the sessions (`admin::twem`), each found
//! by its nutcracker name in the `stats::mux` tables.
//!
//! Shape (nutcracker's): top-level `service source version uptime timestamp
//! total_connections curr_connections`, then one object per pool holding
//! `client_eof client_err client_connections server_ejects forward_error
//! fragments` and one object per server, keyed by the server's name, with
//! the thirteen server fields. Servers are listed in nutcracker's order
//! (sorted by name: shorter first, then bytewise).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::guard::Guard;
use super::http::Request;
use super::server::{Reply, Server, Service};

use super::totals::{BackendTotals, PoolTotals};
use super::twem::{PoolTwem, ServerTwem};
use crate::compat::describe::{POOL_STATS, SERVER_STATS};
use crate::control::Shared;
use crate::stats::mux::{POOL_ROWS, SERVER_ROWS};
use crate::stats::table::json_row;

/// One pool's stats; `pool` values follow `POOL_STATS` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NutPool {
    pub name: String,
    pub pool: [u64; POOL_STATS.len()],
    pub servers: Vec<NutServer>,
}

/// One server's stats; `values` follow `SERVER_STATS` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NutServer {
    pub name: String,
    pub values: [u64; SERVER_STATS.len()],
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NutStats {
    pub source: String,
    pub version: String,
    pub uptime_secs: u64,
    pub timestamp_secs: u64,
    pub total_connections: u64,
    pub curr_connections: u64,
    pub pools: Vec<NutPool>,
}

fn quote(s: &str) -> String {
    // A str always serializes; the fallback only guards the impossible.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// nutcracker's exact layout: `"k":v, ` between fields, `"pool": {` ...
/// `}` with no space before the next pool, and a trailing newline.
pub fn render(s: &NutStats) -> String {
    let mut out = format!(
        "{{\"service\":\"nutcracker\", \"source\":{}, \"version\":{}, \"uptime\":{}, \"timestamp\":{}, \
         \"total_connections\":{}, \"curr_connections\":{}",
        quote(&s.source),
        quote(&s.version),
        s.uptime_secs,
        s.timestamp_secs,
        s.total_connections,
        s.curr_connections
    );
    for (i, p) in s.pools.iter().enumerate() {
        out.push_str(if i == 0 { ", " } else { "," });
        out.push_str(&format!("{}: {{", quote(&p.name)));
        let fields: Vec<String> = POOL_STATS.iter().zip(p.pool).map(|((k, _), v)| format!("\"{k}\":{v}")).collect();
        out.push_str(&fields.join(", "));
        for (j, srv) in p.servers.iter().enumerate() {
            out.push_str(if j == 0 { ", " } else { "," });
            let fields: Vec<String> =
                SERVER_STATS.iter().zip(srv.values).map(|((k, _), v)| format!("\"{k}\":{v}")).collect();
            out.push_str(&format!("{}: {{{}}}", quote(&srv.name), fields.join(", ")));
        }
        out.push('}');
    }
    out.push_str("}\n");
    out
}

/// Reads the current snapshot and counters.
pub fn collect(shared: &Shared) -> NutStats {
    let snap = shared.cell.load();
    let (mut total, mut curr) = (0u64, 0u64);
    let mut pools = Vec::with_capacity(snap.pools.len());
    for p in &snap.pools {
        let pt = PoolTotals::sum(&shared.workers, p.stat_id);
        total = total.wrapping_add(pt.client_connections_total);
        curr = curr.wrapping_add(pt.client_connections);
        let mut ejects = 0u64;
        let mut servers: Vec<NutServer> = p
            .backends
            .iter()
            .map(|b| {
                let bt = BackendTotals::sum(&shared.workers, &shared.health, b.stat_id);
                total = total.wrapping_add(bt.connections_total);
                curr = curr.wrapping_add(bt.connections);
                let at = |c: &[crate::stats::Counter]| c.get(b.stat_id).map_or(0, |c| c.get());
                ejects = ejects.wrapping_add(at(&shared.health.ejects));
                let t = ServerTwem::sum(&shared.workers, b.stat_id);
                let values = SERVER_STATS.map(|(field, _)| match field {
                    "server_connections" => bt.connections,
                    "server_ejected_at" => at(&shared.health.ejected_at_us),
                    _ => json_row(SERVER_ROWS, field).map_or(0, |r| (r.get)(&t)),
                });
                NutServer { name: b.spec.name.clone(), values }
            })
            .collect();
        servers.sort_by(|a, b| a.name.len().cmp(&b.name.len()).then_with(|| a.name.cmp(&b.name)));
        let t = PoolTwem::sum(&shared.workers, p.stat_id);
        let pool = POOL_STATS.map(|(field, _)| match field {
            "client_connections" => pt.client_connections,
            "server_ejects" => ejects,
            _ => json_row(POOL_ROWS, field).map_or(0, |r| (r.get)(&t)),
        });
        pools.push(NutPool { name: p.cfg.name.clone(), pool, servers });
    }
    let timestamp_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    NutStats {
        source: hostname(),
        version: format!("puerta-{}", env!("CARGO_PKG_VERSION")),
        uptime_secs: shared.started.elapsed().as_secs(),
        timestamp_secs,
        total_connections: total,
        curr_connections: curr,
        pools,
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Binds `addr` and serves the stats JSON on a thread of its own, with the
/// admin port's connection loop: concurrent, at most
/// `server::MAX_CONNECTIONS` at once, each closed once written or at the
/// write deadline, so a client that never reads holds nothing up.
///
/// Like nutcracker's, the JSON has no access control (it takes no request
/// to carry a token); bind it to loopback or a private address. `/metrics`
/// here is guarded like the admin port's (`[server] admin_token`).
/// `bind` first (before the workers start, so a taken port fails startup
/// before anything serves), then `spawn_on`.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

pub fn spawn_on(listener: TcpListener, shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "nutcracker stats listening");
    }
    let guard = Guard::new(shared.cell.load().config.server.admin_token.clone());
    let server = Server::new(listener, StatsPort { shared, guard, last: None })?;
    thread::Builder::new().name("puerta-nutstats".to_owned()).spawn(move || server.run())
}

/// How long after accept a request line may take to start: an HTTP
/// client sends it at once, and a nutcracker stats reader, which sends
/// nothing, waits this much longer for its JSON.
pub const SNIFF_WINDOW: Duration = Duration::from_millis(20);

struct StatsPort {
    shared: Arc<Shared>,
    guard: Guard,
    /// The last document and when it was rendered: connections whose
    /// windows end together (a burst) share one copy, as they shared one
    /// when the document went out at accept. A document can be megabytes.
    last: Option<(Instant, Bytes)>,
}

impl Service for StatsPort {
    /// Like nutcracker: write the document, close.
    fn greeting(&mut self) -> Option<Bytes> {
        match &self.last {
            Some((at, doc)) if at.elapsed() < SNIFF_WINDOW => Some(doc.clone()),
            _ => {
                let doc = Bytes::from(render(&collect(&self.shared)));
                // Timed from the end: a large document can take longer
                // to render than the window itself.
                self.last = Some((Instant::now(), doc.clone()));
                Some(doc)
            }
        }
    }

    fn sniff(&self) -> Option<Duration> {
        Some(SNIFF_WINDOW)
    }

    /// Over the limit, close: a stats reader expects JSON or nothing.
    fn busy(&self) -> Option<Bytes> {
        None
    }

    /// An HTTP client (it sent `GET ` in time): `/metrics`, else 404.
    fn respond(&mut self, req: &Request<'_>, local: Option<SocketAddr>) -> Reply {
        super::route_stats_port(&self.shared, &self.guard, req, local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_nutcracker_byte_for_byte() {
        let srv = |name: &str| NutServer { name: name.to_owned(), values: [0; 13] };
        let mut pool = [0; 6];
        pool[crate::compat::describe::POOL_CLIENT_CONNECTIONS] = 1;
        let s = NutStats {
            source: "vm".into(),
            version: "0.5.0".into(),
            uptime_secs: 1,
            timestamp_secs: 1795603984,
            total_connections: 6,
            curr_connections: 2,
            pools: vec![
                NutPool { name: "beta".into(), pool: [0; 6], servers: vec![srv("127.0.0.1:11299")] },
                NutPool { name: "alpha".into(), pool, servers: vec![srv("named"), srv("127.0.0.1:6399")] },
            ],
        };
        let zeros = "\"server_eof\":0, \"server_err\":0, \"server_timedout\":0, \"server_connections\":0, \
                     \"server_ejected_at\":0, \"requests\":0, \"request_bytes\":0, \"responses\":0, \
                     \"response_bytes\":0, \"in_queue\":0, \"in_queue_bytes\":0, \"out_queue\":0, \"out_queue_bytes\":0";
        // Captured from nutcracker 0.5.0's stats port.
        let expected = format!(
            "{{\"service\":\"nutcracker\", \"source\":\"vm\", \"version\":\"0.5.0\", \"uptime\":1, \
             \"timestamp\":1795603984, \"total_connections\":6, \"curr_connections\":2, \"beta\": \
             {{\"client_eof\":0, \"client_err\":0, \"client_connections\":0, \"server_ejects\":0, \
             \"forward_error\":0, \"fragments\":0, \"127.0.0.1:11299\": {{{zeros}}}}},\"alpha\": \
             {{\"client_eof\":0, \"client_err\":0, \"client_connections\":1, \"server_ejects\":0, \
             \"forward_error\":0, \"fragments\":0, \"named\": {{{zeros}}},\"127.0.0.1:6399\": {{{zeros}}}}}}}\n"
        );
        assert_eq!(render(&s), expected);
        let v: serde_json::Value = serde_json::from_str(&render(&s)).unwrap();
        assert_eq!(v["alpha"]["named"]["out_queue_bytes"], 0);
    }

    /// Every nutcracker field is filled by a table row or one of the
    /// fields `collect` fills itself, and every row's field exists.
    #[test]
    fn every_field_has_a_source() {
        let own_pool = ["client_connections", "server_ejects"];
        let own_server = ["server_connections", "server_ejected_at"];
        for (f, _) in POOL_STATS {
            assert!(own_pool.contains(&f) ^ json_row(POOL_ROWS, f).is_some(), "pool field {f}");
        }
        for (f, _) in SERVER_STATS {
            assert!(own_server.contains(&f) ^ json_row(SERVER_ROWS, f).is_some(), "server field {f}");
        }
        for r in POOL_ROWS.iter().filter_map(|r| r.json) {
            assert!(POOL_STATS.iter().any(|(f, _)| *f == r), "{r} is no nutcracker pool field");
        }
        for r in SERVER_ROWS.iter().filter_map(|r| r.json) {
            assert!(SERVER_STATS.iter().any(|(f, _)| *f == r), "{r} is no nutcracker server field");
        }
    }
}
