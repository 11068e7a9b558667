//! Address text: `host:port` for listeners and `host:port[:weight] [name]`
//! for backends (nutcracker's server syntax).
//!
//! Owns splitting and name resolution; knows nothing of keys or files. Errors
//! are the "expected ..., got ..." text for the caller to attach to a key.
//! Invariant: a returned address has a non-zero port, and a returned
//! `ServerSpec` has weight >= 1 and a non-empty name.

use std::net::{SocketAddr, ToSocketAddrs};

use super::twem::{ListenAddr, KETAMA_DEFAULT_PORT};
use super::types::ServerSpec;

const HOST_PORT: &str = "host:port";
const SERVER_SYNTAX: &str = "host:port[:weight] [name]";

/// Resolves `host:port` (or `[v6]:port`) text to one socket address.
pub(crate) fn resolve(text: &str) -> Result<SocketAddr, String> {
    let bad = || format!("expected {HOST_PORT}, got {text:?}");
    let (host, port) = split_host(text.trim()).ok_or_else(bad)?;
    if port.contains(':') {
        return Err(bad());
    }
    resolve_parts(host, port, text)
}

/// Parses one `servers` entry, e.g. `"127.0.0.1:6379:1 redis-1"`.
pub(crate) fn parse_server(text: &str) -> Result<ServerSpec, String> {
    let bad = || format!("expected {SERVER_SYNTAX}, got {text:?}");
    let trimmed = text.trim();
    let (addr_text, name) = match trimmed.split_once(char::is_whitespace) {
        Some((addr, name)) => (addr, Some(name.trim())),
        None => (trimmed, None),
    };
    if name.is_some_and(|n| n.contains(char::is_whitespace)) {
        return Err(bad());
    }
    let (host, rest) = split_host(addr_text).ok_or_else(bad)?;
    let (port, weight) = match rest.split_once(':') {
        Some((port, weight)) => (port, Some(weight)),
        None => (rest, None),
    };
    let weight = match weight {
        None => 1,
        Some(w) => match w.parse::<u32>() {
            Ok(0) => return Err(format!("expected weight >= 1, got 0 in {text:?}")),
            Ok(w) => w,
            Err(_) => return Err(format!("expected an integer weight, got {w:?} in {text:?}")),
        },
    };
    let addr = resolve_parts(host, port, text)?;
    // The default name is the address as written (not as resolved), so a
    // hash ring keyed on names stays put when DNS answers change; that is
    // also what nutcracker does.
    let written = match weight_suffix(addr_text, rest) {
        Some(cut) => &addr_text[..cut],
        None => addr_text,
    };
    Ok(ServerSpec { addr, weight, name: name.unwrap_or(written).to_owned(), host: host.to_owned() })
}

/// Like `parse_server`, with nutcracker's default name: an unnamed server
/// on port 11211 is named by its host alone (libmemcached compatibility),
/// which changes where ketama puts its points.
pub(crate) fn parse_server_twem(text: &str) -> Result<ServerSpec, String> {
    let mut spec = parse_server(text)?;
    let named = text.split_whitespace().nth(1).is_some();
    if !named && spec.addr.port() == KETAMA_DEFAULT_PORT {
        if let Some((host, _)) = spec.name.rsplit_once(':') {
            spec.name = host.to_owned();
        }
    }
    Ok(spec)
}

/// A pool's `listen`: `host:port`, or nutcracker's unix socket form
/// `/path/to.sock [octal-permissions]`.
pub(crate) fn listen(text: &str) -> Result<ListenAddr, String> {
    let t = text.trim();
    if !t.starts_with('/') {
        return resolve(t).map(ListenAddr::Tcp);
    }
    let (path, perm) = match t.rsplit_once(' ') {
        None => (t, None),
        Some((path, perm)) => match u32::from_str_radix(perm, 8) {
            Ok(p) if p <= 0o777 => (path.trim_end(), Some(p)),
            _ => return Err(format!("expected octal permissions like 0666 after the socket path, got {perm:?}")),
        },
    };
    Ok(ListenAddr::Unix { path: path.into(), perm })
}

/// Byte offset in `addr_text` where a `:weight` suffix starts, if any.
fn weight_suffix(addr_text: &str, after_host: &str) -> Option<usize> {
    after_host.contains(':').then(|| addr_text.rfind(':')).flatten()
}

/// Splits `host:rest` or `[v6]:rest`. IPv6 must be bracketed, as in URLs,
/// because otherwise its colons collide with the port and weight ones.
fn split_host(text: &str) -> Option<(&str, &str)> {
    let (host, rest) = match text.strip_prefix('[') {
        Some(inner) => {
            let (host, after) = inner.split_once(']')?;
            (host, after.strip_prefix(':')?)
        }
        None => text.split_once(':')?,
    };
    (!host.is_empty()).then_some((host, rest))
}

fn resolve_parts(host: &str, port: &str, text: &str) -> Result<SocketAddr, String> {
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 => p,
        // Port 0 would let every worker's SO_REUSEPORT listener pick its own
        // ephemeral port, and a backend on port 0 cannot be reached.
        _ => return Err(format!("expected a port 1-65535, got {port:?} in {text:?}")),
    };
    let unresolvable = |why: String| format!("expected a resolvable host, got {host:?} ({why})");
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(|e| unresolvable(e.to_string()))?.collect();
    // Prefer IPv4: `localhost` resolves to ::1 first on some systems and to
    // 127.0.0.1 first on others (gai.conf), and configs written for
    // nutcracker expect the IPv4 loopback.
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| unresolvable("no addresses".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address literal")
    }

    #[test]
    fn resolves_ip_hostname_and_bracketed_v6() {
        assert_eq!(resolve("127.0.0.1:6380"), Ok(addr("127.0.0.1:6380")));
        assert_eq!(resolve("localhost:6380"), Ok(addr("127.0.0.1:6380")));
        assert_eq!(resolve("[::1]:6380"), Ok(addr("[::1]:6380")));
    }

    #[test]
    fn rejects_missing_or_bad_ports() {
        assert_eq!(resolve("127.0.0.1"), Err(r#"expected host:port, got "127.0.0.1""#.to_owned()));
        assert_eq!(resolve("127.0.0.1:1:2"), Err(r#"expected host:port, got "127.0.0.1:1:2""#.to_owned()));
        assert_eq!(resolve("127.0.0.1:0"), Err(r#"expected a port 1-65535, got "0" in "127.0.0.1:0""#.to_owned()));
        assert!(resolve("::1:6379").is_err());
    }

    #[test]
    fn server_defaults_weight_1_and_name_as_written() {
        let s = parse_server("localhost:6379").expect("valid");
        assert_eq!((s.addr, s.weight, s.name.as_str()), (addr("127.0.0.1:6379"), 1, "localhost:6379"));
        let s = parse_server("127.0.0.1:6379:3").expect("valid");
        assert_eq!((s.weight, s.name.as_str()), (3, "127.0.0.1:6379"));
        let s = parse_server("[::1]:6379:2  redis-1 ").expect("valid");
        assert_eq!((s.addr, s.weight, s.name.as_str()), (addr("[::1]:6379"), 2, "redis-1"));
    }

    #[test]
    fn twem_names_drop_port_11211_unless_named() {
        let s = parse_server_twem("127.0.0.1:11211:1").expect("valid");
        assert_eq!(s.name, "127.0.0.1");
        let s = parse_server_twem("127.0.0.1:11211:1 mc-1").expect("valid");
        assert_eq!(s.name, "mc-1");
        let s = parse_server_twem("localhost:6379:2").expect("valid");
        assert_eq!(s.name, "localhost:6379");
    }

    #[test]
    fn listen_takes_host_port_or_unix_path_with_permissions() {
        assert_eq!(listen("127.0.0.1:22121"), Ok(ListenAddr::Tcp(addr("127.0.0.1:22121"))));
        assert_eq!(listen("/tmp/x.sock"), Ok(ListenAddr::Unix { path: "/tmp/x.sock".into(), perm: None }));
        assert_eq!(listen("/tmp/x.sock 0666"), Ok(ListenAddr::Unix { path: "/tmp/x.sock".into(), perm: Some(0o666) }));
        assert!(listen("/tmp/x.sock 999").is_err());
        assert!(listen("nohost").is_err());
    }

    #[test]
    fn server_syntax_errors_say_what_was_expected() {
        let err = |s: &str| parse_server(s).expect_err("invalid input");
        assert_eq!(err("127.0.0.1"), r#"expected host:port[:weight] [name], got "127.0.0.1""#);
        assert_eq!(err("127.0.0.1:6379:0"), r#"expected weight >= 1, got 0 in "127.0.0.1:6379:0""#);
        assert_eq!(err("127.0.0.1:6379:x"), r#"expected an integer weight, got "x" in "127.0.0.1:6379:x""#);
        assert_eq!(err("127.0.0.1:1 a b"), r#"expected host:port[:weight] [name], got "127.0.0.1:1 a b""#);
        assert_eq!(err(":6379"), r#"expected host:port[:weight] [name], got ":6379""#);
    }
}
