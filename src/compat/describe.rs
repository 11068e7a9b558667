//! `-D` / `--describe-stats`: nutcracker's description of its stats, word
//! for word, so tools that read it see the same fields the stats port
//! serves.

/// Pool-level stats: (name, description).
pub const POOL_STATS: [(&str, &str); 6] = [
    ("client_eof", "# eof on client connections"),
    ("client_err", "# errors on client connections"),
    ("client_connections", "# active client connections"),
    ("server_ejects", "# times backend server was ejected"),
    ("forward_error", "# times we encountered a forwarding error"),
    ("fragments", "# fragments created from a multi-vector request"),
];

/// Server-level stats: (name, description).
pub const SERVER_STATS: [(&str, &str); 13] = [
    ("server_eof", "# eof on server connections"),
    ("server_err", "# errors on server connections"),
    ("server_timedout", "# timeouts on server connections"),
    ("server_connections", "# active server connections"),
    ("server_ejected_at", "timestamp when server was ejected in usec since epoch"),
    ("requests", "# requests"),
    ("request_bytes", "total request bytes"),
    ("responses", "# responses"),
    ("response_bytes", "total response bytes"),
    ("in_queue", "# requests in incoming queue"),
    ("in_queue_bytes", "current request bytes in incoming queue"),
    ("out_queue", "# requests in outgoing queue"),
    ("out_queue_bytes", "current request bytes in outgoing queue"),
];

/// Positions in `POOL_STATS` / `SERVER_STATS` of the fields Puerta fills
/// from its own counters (the rest wait for the request engine's).
pub const POOL_CLIENT_CONNECTIONS: usize = 2;
pub const POOL_SERVER_EJECTS: usize = 3;
pub const SERVER_CONNECTIONS: usize = 3;
pub const SERVER_EJECTED_AT: usize = 4;

/// The text `nutcracker -D` prints after its version lines.
pub fn describe_stats() -> String {
    let mut out = String::from("pool stats:\n");
    for (name, what) in POOL_STATS {
        out.push_str(&format!("  {name:<20}\"{what}\"\n"));
    }
    out.push_str("\nserver stats:\n");
    for (name, what) in SERVER_STATS {
        out.push_str(&format!("  {name:<20}\"{what}\"\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_positions_name_the_right_fields() {
        assert_eq!(POOL_STATS[POOL_CLIENT_CONNECTIONS].0, "client_connections");
        assert_eq!(POOL_STATS[POOL_SERVER_EJECTS].0, "server_ejects");
        assert_eq!(SERVER_STATS[SERVER_CONNECTIONS].0, "server_connections");
        assert_eq!(SERVER_STATS[SERVER_EJECTED_AT].0, "server_ejected_at");
    }

    #[test]
    fn matches_nutcracker_layout() {
        let text = describe_stats();
        assert!(text.starts_with("pool stats:\n  client_eof          \"# eof on client connections\"\n"));
        assert!(text.contains("\n\nserver stats:\n  server_eof          \"# eof on server connections\"\n"));
        assert!(text.ends_with("  out_queue_bytes     \"current request bytes in outgoing queue\"\n"));
        assert_eq!(text.lines().count(), 2 + 6 + 13 + 1);
    }
}
