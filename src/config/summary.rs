//! `Config::summary`: the text `puerta check` prints for a valid file.
//!
//! Read-only formatting of an already validated `Config`. It shows resolved
//! values (addresses after DNS, defaults filled in), so a user can see what
//! Puerta will actually do, not just what the file says. Durations are
//! written in the file's own syntax so they can be pasted back.

use std::fmt::Write;

use super::duration::format as dur;
use super::types::{Config, Mode, PoolConfig, Workers};

impl Config {
    /// A one-screen summary: process settings, then one block per pool.
    pub fn summary(&self) -> String {
        let s = &self.server;
        let workers = match s.workers {
            Workers::Auto => "auto".to_owned(),
            Workers::Count(n) => n.to_string(),
        };
        let cpus = match &s.cpus {
            None => "any".to_owned(),
            Some(list) => list.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
        };
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that
        // reason, not out of carelessness.
        let _ = writeln!(out, "config {}", self.source.display());
        let _ = writeln!(
            out,
            "server: io {}, workers {workers}, cpus {cpus}, admin {}, log {:?}, shutdown {}",
            s.io.as_str(),
            s.admin,
            s.log,
            dur(s.shutdown_timeout),
        );
        let _ = writeln!(out, "{} pool(s):", self.pools.len());
        for pool in &self.pools {
            pool_summary(&mut out, pool);
        }
        if !self.users.is_empty() {
            let _ = writeln!(out, "{} user(s):", self.users.len());
        }
        for u in &self.users {
            let limits = match u.limits {
                None => "no limits".to_owned(),
                Some(l) => format!(
                    "limits requests {}, bytes {}, burst {}",
                    l.requests.map_or("unlimited".to_owned(), |r| format!("{r}/s")),
                    l.bytes.map_or("unlimited".to_owned(), |b| format!("{b} B/s")),
                    l.burst
                ),
            };
            let pools = u.pools.as_ref().map_or("every pool".to_owned(), |p| p.join(","));
            let _ = writeln!(out, "  {}: {pools}; {limits}", u.user.name);
        }
        out
    }
}

fn pool_summary(out: &mut String, p: &PoolConfig) {
    let idle = p.idle_timeout.map_or("off".to_owned(), dur);
    let max = p.max_client_connections.map_or("unlimited".to_owned(), |n| n.to_string());
    let h = &p.health;
    let _ = writeln!(
        out,
        "  pool {}: {} listen {}, {}, {} server(s)",
        p.name,
        p.mode.as_str(),
        p.listen,
        // Sharded pools place keys; `balance` only applies to tcp pools.
        if p.shard.is_some() {
            "keys placed by distribution".to_owned()
        } else if p.cluster.is_some() {
            "keys routed by slot; servers are seeds".to_owned()
        } else {
            format!("balance {}", p.balance.as_str())
        },
        p.servers.len(),
    );
    for s in &p.servers {
        let _ = writeln!(out, "    {} weight {} name {:?}", s.addr, s.weight, s.name);
    }
    let _ = writeln!(out, "    timeouts: connect {}, idle {idle}; max clients {max}", dur(p.connect_timeout),);
    if let Some(sh) = &p.shard {
        let tag = sh.hash_tag.map_or("none".to_owned(), |t| String::from_utf8_lossy(&t).into_owned());
        let timeout = sh.timeout.map_or("forever".to_owned(), dur);
        let flush = match (p.mode, sh.allow_flush) {
            (Mode::Memcache, true) => ", flush_all allowed",
            (Mode::Memcache, false) => ", flush_all refused",
            _ => "",
        };
        let _ = writeln!(
            out,
            "    shard: hash {}, distribution {}, hash_tag {tag}, timeout {timeout}, server_connections {}, \
             auto_eject_hosts {} (limit {}, retry {}), unsupported {}{flush}",
            sh.hash.as_str(),
            sh.distribution.as_str(),
            sh.server_connections,
            sh.auto_eject_hosts,
            sh.server_failure_limit,
            dur(sh.server_retry_timeout),
            sh.unsupported.as_str(),
        );
    }
    // Cluster node health comes from CLUSTER NODES, not from probes.
    if p.cluster.is_none() {
        let _ = writeln!(
            out,
            "    health: every {}, timeout {}, rise {}, fall {}",
            dur(h.check_interval),
            dur(h.check_timeout),
            h.rise,
            h.fall,
        );
    }
    if let Some(ip) = p.limits.per_ip {
        let or_off = |v: Option<f64>, unit: &str| v.map_or("unlimited".to_string(), |v| format!("{v}{unit}/s"));
        let _ = writeln!(
            out,
            "    per_ip: connections {}, requests {}, bytes {}, burst {}; on_limit {}",
            ip.connections.map_or("unlimited".to_string(), |n| n.to_string()),
            or_off(ip.rate.requests, ""),
            or_off(ip.rate.bytes, " B"),
            ip.rate.burst,
            p.limits.on_limit.as_str(),
        );
    }
    if let Some(c) = &p.cluster {
        let users: Vec<&str> = c.client_auth.iter().map(|(u, _)| u.as_str()).collect();
        let _ = writeln!(
            out,
            "    cluster: refresh {}, read_from {}, max_redirects {}, node_connections {}, pinned {} (idle {}), \
             request_timeout {}, retries {} (backoff {}), backend auth {}, client auth {}, cluster commands {}, \
             flush {}, scripts {}",
            dur(c.refresh_interval),
            c.read_from.as_str(),
            c.max_redirects,
            c.node_connections,
            c.pinned_connections,
            c.pinned_idle,
            c.request_timeout.map_or("off".to_owned(), dur),
            c.max_retries,
            dur(c.retry_backoff),
            match (&c.username, &c.password) {
                (Some(u), Some(_)) => format!("user {u:?}"),
                (None, Some(_)) => "password".to_owned(),
                _ => "none".to_owned(),
            },
            if users.is_empty() { "none".to_owned() } else { users.join(",") },
            c.cluster_commands.as_str(),
            if c.allow_flush { "allowed" } else { "refused" },
            if c.allow_scripts { "allowed" } else { "refused" },
        );
    }
    if let Some(m) = &p.mongo {
        let _ = writeln!(
            out,
            "    mongos: affinity {}, require_mongos {}, min_wire_version {}, max_message_bytes {}, \
             close_on_unhealthy {}, proxy_protocol {}, slow_op_threshold {}",
            m.affinity.as_str(),
            m.require_mongos,
            m.min_wire_version,
            m.max_message_bytes,
            m.close_on_unhealthy,
            m.proxy_protocol.map_or("off", |v| v.as_str()),
            m.slow_op_threshold.map_or("off".to_owned(), dur),
        );
    }
}
