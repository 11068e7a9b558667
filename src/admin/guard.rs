//! Who may use the admin port: the bearer token and the browser
//! cross-origin check.
//!
//! Owns nothing; pure decisions over a parsed request head, so every case is
//! unit-tested without a socket.
//!
//! Why a browser check at all: the admin port binds loopback, but a browser
//! on the same host is a client on loopback too. Any web page can make it
//! send a "simple" cross-origin request (a form or `fetch` with
//! `text/plain` and no custom header) without a CORS preflight; the page
//! cannot read the answer, but the POST still happens. `POST /reload` from
//! such a page is a CSRF. Current browsers mark every such request with
//! `Origin` (always on a cross-origin POST) and `Sec-Fetch-Site`; curl,
//! Prometheus and scripts send neither. So: a POST that carries either and
//! is not from this port's own origin is refused, token or no token. A
//! browser cannot attach `Authorization: Bearer` cross-origin without a
//! preflight, which this port never approves, so the token stops CSRF by
//! itself; the origin check is what protects a port without one.
//!
//! Invariant: the token comparison takes the same time wherever the first
//! differing byte is (it depends only on the lengths).

use std::net::SocketAddr;

use super::http::Request;
use super::AdminError;
use crate::config::AdminToken;

/// The port's access policy, fixed at startup.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    token: Option<AdminToken>,
}

impl Guard {
    pub fn new(token: Option<AdminToken>) -> Self {
        Guard { token }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Without a token everyone may; with one, the request must carry
    /// `Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235).
    pub fn authorize(&self, req: &Request<'_>) -> Result<(), AdminError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let offered = req.authorization.and_then(bearer).ok_or(AdminError::Unauthorized)?;
        if constant_time_eq(offered, token.as_bytes()) {
            Ok(())
        } else {
            Err(AdminError::Unauthorized)
        }
    }
}

/// The credentials of `Bearer <credentials>`, or `None` for another scheme.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(value.get(7..)?.trim_ascii_start())
}

/// Equality whose running time depends on the lengths only, so a client
/// timing its 401s learns nothing about where its guess went wrong.
fn constant_time_eq(offered: &[u8], secret: &[u8]) -> bool {
    // Both lengths fit a usize; their XOR is non-zero iff they differ.
    let mut diff = offered.len() ^ secret.len();
    for (i, &s) in secret.iter().enumerate() {
        // Past the end of `offered`, compare against 0 (already a mismatch
        // by length), so the loop always runs `secret.len()` times.
        let o = offered.get(i).copied().unwrap_or(0);
        diff |= usize::from(o ^ s);
    }
    std::hint::black_box(diff) == 0
}

/// Refuses a request that a browser sent on behalf of another origin (see
/// the module header). `local` is the address the connection arrived on:
/// the admin's own origin is `http://<local>` (and `http://localhost:<port>`
/// on loopback). It is taken from the socket, not from the `Host` header,
/// so a DNS-rebound name (`http://evil.example:9090` resolving to 127.0.0.1)
/// is still another origin.
pub fn same_origin(req: &Request<'_>, local: Option<SocketAddr>) -> Result<(), AdminError> {
    if let Some(site) = req.fetch_site {
        // `same-origin`: a page of this port; `none`: the user typed the URL
        // or used a bookmark. `same-site` includes other ports of the same
        // host, which are other origins (another local web app).
        let site = site.trim_ascii();
        if !site.eq_ignore_ascii_case(b"same-origin") && !site.eq_ignore_ascii_case(b"none") {
            return Err(AdminError::CrossOrigin);
        }
    }
    if let Some(origin) = req.origin {
        let origin = origin.trim_ascii();
        let Some(local) = local else {
            // Cannot tell our own origin: refuse what a browser sent.
            return Err(AdminError::CrossOrigin);
        };
        if !own_origins(local).iter().any(|own| origin.eq_ignore_ascii_case(own.as_bytes())) {
            return Err(AdminError::CrossOrigin);
        }
    }
    Ok(())
}

/// On a port bound to loopback, the `Host` a request names must be
/// loopback too (`localhost`, `127.x.y.z` or `[::1]`, any port), or absent
/// (HTTP/1.0). Why: a page on `http://evil.example:9090` whose name the
/// attacker re-points at 127.0.0.1 (DNS rebinding) is same-origin for the
/// browser, so it could read `/metrics` and `/stats`; its requests still
/// carry `Host: evil.example:9090`. A port bound elsewhere is reached by
/// whatever name the operator chose, so it is not checked.
pub fn loopback_host(req: &Request<'_>, local: Option<SocketAddr>) -> Result<(), AdminError> {
    let (Some(local), Some(host)) = (local, req.host) else { return Ok(()) };
    if !local.ip().is_loopback() {
        return Ok(());
    }
    let host = host.trim_ascii();
    // Strip a `:port`: after the `]` of an IPv6 literal, else at the first
    // colon (a name or IPv4 literal has none of its own).
    let end = if host.starts_with(b"[") {
        host.iter().position(|&b| b == b']').map_or(host.len(), |i| i.saturating_add(1))
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    let name = host.get(..end).unwrap_or(host);
    let name = std::str::from_utf8(name).unwrap_or("");
    let ok = name.eq_ignore_ascii_case("localhost")
        || name == "[::1]"
        || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    if ok {
        Ok(())
    } else {
        Err(AdminError::ForeignHost)
    }
}

/// The origins a page served from this port itself would send.
fn own_origins(local: SocketAddr) -> Vec<String> {
    // `SocketAddr`'s Display brackets IPv6 (`[::1]:9090`) as a URL needs.
    let mut own = vec![format!("http://{local}")];
    if local.ip().is_loopback() {
        own.push(format!("http://localhost:{}", local.port()));
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::http::parse_head;

    fn head(extra: &str) -> String {
        format!("POST /reload HTTP/1.1\r\nHost: 127.0.0.1:9090\r\n{extra}\r\n")
    }

    fn guard(token: &str) -> Guard {
        Guard::new(Some(AdminToken::new(token).unwrap()))
    }

    #[test]
    fn token_required_accepted_and_refused() {
        let ok = |g: &Guard, extra: &str| g.authorize(&parse_head(head(extra).as_bytes()).unwrap()).is_ok();
        assert!(ok(&Guard::default(), ""), "no token configured: open");
        let g = guard("s3cret-Token");
        assert!(!ok(&g, ""), "missing");
        assert!(ok(&g, "Authorization: Bearer s3cret-Token\r\n"));
        assert!(ok(&g, "authorization: bearer   s3cret-Token \r\n"), "scheme case and spaces");
        for bad in ["Bearer s3cret-Toke", "Bearer s3cret-Token2", "Bearer S3cret-Token", "Basic czNjcmV0", "Bearer", ""]
        {
            assert!(!ok(&g, &format!("Authorization: {bad}\r\n")), "{bad:?}");
        }
        let err = g.authorize(&parse_head(head("").as_bytes()).unwrap()).unwrap_err();
        assert_eq!(err.status(), Some(401));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        // Lengths that differ only above the low byte.
        assert!(!constant_time_eq(&[0u8; 259], &[0u8; 3]));
    }

    #[test]
    fn cross_origin_browser_posts_are_refused() {
        let local: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let check = |extra: &str| same_origin(&parse_head(head(extra).as_bytes()).unwrap(), Some(local));
        // curl and scripts send neither header.
        assert!(check("").is_ok());
        for own in ["http://127.0.0.1:9090", "http://localhost:9090", "HTTP://LOCALHOST:9090"] {
            assert!(check(&format!("Origin: {own}\r\nSec-Fetch-Site: same-origin\r\n")).is_ok(), "{own}");
        }
        assert!(check("Sec-Fetch-Site: none\r\n").is_ok(), "typed into the address bar");
        for bad in [
            "Origin: http://evil.example\r\n",
            "Origin: null\r\n",
            // Another port of the same host is another origin.
            "Origin: http://127.0.0.1:8080\r\n",
            "Origin: https://127.0.0.1:9090\r\n",
            // DNS rebinding: the page's own name, pointing at us.
            "Origin: http://evil.example:9090\r\n",
            "Sec-Fetch-Site: cross-site\r\n",
            "Sec-Fetch-Site: same-site\r\n",
            "Origin: http://127.0.0.1:9090\r\nSec-Fetch-Site: cross-site\r\n",
        ] {
            let err = check(bad).unwrap_err();
            assert_eq!(err.status(), Some(403), "{bad:?}");
        }
        let v6: SocketAddr = "[::1]:9090".parse().unwrap();
        let req = head("Origin: http://[::1]:9090\r\n");
        assert!(same_origin(&parse_head(req.as_bytes()).unwrap(), Some(v6)).is_ok());
    }

    #[test]
    fn a_rebound_host_name_is_refused_on_loopback_only() {
        let check = |host: &str, local: &str| {
            let req = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n");
            loopback_host(&parse_head(req.as_bytes()).unwrap(), Some(local.parse().unwrap()))
        };
        for ok in ["127.0.0.1:9090", "127.0.0.1", "localhost:9090", "LOCALHOST", "127.8.9.10:1", "[::1]:9090", "[::1]"]
        {
            assert!(check(ok, "127.0.0.1:9090").is_ok(), "{ok}");
        }
        for bad in ["evil.example:9090", "evil.example", "10.0.0.1:9090", "localhost.evil.example", "[::2]:9090", ""] {
            assert_eq!(check(bad, "127.0.0.1:9090").unwrap_err().status(), Some(403), "{bad:?}");
        }
        assert!(check("proxy.internal:9090", "10.1.2.3:9090").is_ok(), "only loopback ports are checked");
        let no_host = parse_head(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        assert!(loopback_host(&no_host, Some("127.0.0.1:9090".parse().unwrap())).is_ok(), "HTTP/1.0");
    }

    #[test]
    fn duplicate_access_headers_are_400() {
        for dup in ["Authorization: Bearer a\r\nAuthorization: Bearer b\r\n", "Origin: a\r\norigin: a\r\n"] {
            let err = parse_head(head(dup).as_bytes()).unwrap_err();
            assert_eq!(err.status(), Some(400), "{dup:?}");
        }
    }
}
