//! INFO through the proxy, for both Redis pool modes: a `# Proxy` section
//! of Puerta's own fields, then the first server's INFO text for the
//! sections the client asked for, where Puerta overrides the fields it
//! knows better and sums `# Keyspace` over every server (twemproxy) or
//! master (cluster).
//!
//! Overridden: `connected_clients` and `total_commands_processed` (the
//! pool's clients and decoded commands over the whole process: the serving
//! session's live figures plus the other workers' as they last published
//! them, at most one stats tick old), and `cluster_enabled` (1 in cluster mode, so clients that
//! check it before using a startup node accept Puerta; 0 in twemproxy
//! mode). Everything else is the first server's.
//!
//! Pure text functions: no I/O, no clock.

use crate::protocol::resp::Request;

/// Puerta's own values for one INFO reply.
#[derive(Debug, Clone)]
pub struct ProxyFields {
    /// `twemproxy` or `redis_cluster`.
    pub mode: &'static str,
    pub cluster: bool,
    pub clients: u64,
    pub commands: u64,
    /// Mode-specific `# Proxy` lines, `name:value` without CRLF.
    pub extra: Vec<String>,
}

/// Whether the request asks for `section` (INFO with no argument, or
/// `default`, `all`, `everything`, or the section's name).
fn wants(req: &Request, section: &str, default_too: bool) -> bool {
    if req.argc() <= 1 {
        return default_too;
    }
    req.args().skip(1).any(|a| {
        a.eq_ignore_ascii_case(section.as_bytes())
            || a.eq_ignore_ascii_case(b"all")
            || a.eq_ignore_ascii_case(b"everything")
            || (default_too && a.eq_ignore_ascii_case(b"default"))
    })
}

/// The merged INFO text. `texts[0]` is the first server's reply to the
/// client's INFO; every text's `# Keyspace` lines are summed.
pub fn render(req: &Request, p: &ProxyFields, texts: &[String]) -> String {
    let mut out = String::new();
    if wants(req, "proxy", true) {
        out.push_str("# Proxy\r\nproxy:puerta\r\n");
        out.push_str(&format!("puerta_version:{}\r\nproxy_mode:{}\r\n", env!("CARGO_PKG_VERSION"), p.mode));
        for l in &p.extra {
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
    }
    let first = texts.first().map(String::as_str).unwrap_or("");
    let mut in_keyspace = false;
    let mut sections = String::new();
    for line in first.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# ") {
            in_keyspace = name.eq_ignore_ascii_case("keyspace");
            if in_keyspace {
                continue;
            }
        }
        if in_keyspace {
            continue;
        }
        let over = |field: &str, v: u64| line.starts_with(field).then(|| format!("{field}{v}"));
        let line = over("connected_clients:", p.clients)
            .or_else(|| over("total_commands_processed:", p.commands))
            .or_else(|| over("cluster_enabled:", u64::from(p.cluster)))
            .unwrap_or_else(|| line.to_owned());
        sections.push_str(&line);
        sections.push_str("\r\n");
    }
    let body = sections.trim_end();
    if !body.is_empty() {
        out.push_str(body);
        out.push_str("\r\n\r\n");
    }
    if wants(req, "keyspace", true) {
        out.push_str("# Keyspace\r\n");
        for (db, keys, expires, avg) in keyspace_sum(texts) {
            out.push_str(&format!("{db}:keys={keys},expires={expires},avg_ttl={avg}\r\n"));
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push_str("\r\n");
    out
}

/// `dbN:keys=..,expires=..,avg_ttl=..` summed over `texts` (avg_ttl
/// weighted by keys), in order of first appearance.
fn keyspace_sum(texts: &[String]) -> Vec<(String, u64, u64, u128)> {
    let mut dbs: Vec<(String, u64, u64, u128)> = Vec::new();
    for t in texts {
        for line in t.lines() {
            let Some((db, rest)) = line.split_once(':').filter(|(d, _)| d.starts_with("db")) else { continue };
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(k))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (keys, expires, ttl) = (field("keys="), field("expires="), field("avg_ttl="));
            let weighted = u128::from(ttl).saturating_mul(u128::from(keys));
            match dbs.iter_mut().find(|d| d.0 == db) {
                Some(d) => {
                    d.1 = d.1.saturating_add(keys);
                    d.2 = d.2.saturating_add(expires);
                    d.3 = d.3.saturating_add(weighted);
                }
                None => dbs.push((db.to_owned(), keys, expires, weighted)),
            }
        }
    }
    for d in &mut dbs {
        d.3 = d.3.checked_div(u128::from(d.1)).unwrap_or(0);
    }
    dbs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &[&str]) -> Request {
        Request::from_args(args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>().into_iter())
    }

    const A: &str = "# Server\r\nredis_version:7.0.15\r\n\r\n# Clients\r\nconnected_clients:3\r\n\r\n\
                     # Stats\r\ntotal_commands_processed:99\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n\r\n\
                     # Keyspace\r\ndb0:keys=10,expires=1,avg_ttl=30\r\n";
    const B: &str = "# Keyspace\r\ndb0:keys=30,expires=2,avg_ttl=10\r\ndb1:keys=1,expires=0,avg_ttl=0\r\n";

    #[test]
    fn overrides_and_sums() {
        let p = ProxyFields { mode: "redis_cluster", cluster: true, clients: 2, commands: 7, extra: vec![] };
        let t = render(&req(&["INFO"]), &p, &[A.into(), B.into()]);
        assert!(t.starts_with("# Proxy\r\nproxy:puerta\r\n"), "{t}");
        assert!(t.contains("redis_version:7.0.15\r\n"), "{t}");
        assert!(t.contains("connected_clients:2\r\n") && t.contains("total_commands_processed:7\r\n"), "{t}");
        assert!(t.contains("cluster_enabled:1\r\n"), "{t}");
        assert!(
            t.ends_with("# Keyspace\r\ndb0:keys=40,expires=3,avg_ttl=15\r\ndb1:keys=1,expires=0,avg_ttl=0\r\n"),
            "{t}"
        );
        assert_eq!(t.matches("# Keyspace").count(), 1);
    }

    #[test]
    fn one_section() {
        let p = ProxyFields { mode: "twemproxy", cluster: false, clients: 1, commands: 1, extra: vec![] };
        let t = render(&req(&["INFO", "server"]), &p, &["# Server\r\nredis_version:7.0.15\r\n".into()]);
        assert_eq!(t, "# Server\r\nredis_version:7.0.15\r\n");
        let t = render(&req(&["info", "keyspace"]), &p, &[B.into(), B.into()]);
        assert_eq!(t, "# Keyspace\r\ndb0:keys=60,expires=4,avg_ttl=10\r\ndb1:keys=2,expires=0,avg_ttl=0\r\n");
        let t = render(&req(&["INFO", "proxy"]), &p, &[String::new()]);
        assert!(t.starts_with("# Proxy\r\n") && t.contains("proxy_mode:twemproxy\r\n") && !t.contains("Keyspace"));
    }
}
