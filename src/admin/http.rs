//! HTTP/1.x for the admin port: a sans-IO request-head parser and a response
//! encoder.
//!
//! Owns nothing and never touches a socket: `parse_head` takes the bytes read
//! so far, `Response::encode` returns the bytes to write. The connection
//! state machine in `conn.rs` does the I/O.
//!
//! Invariants: parsing never panics on any input; a head longer than
//! `MAX_HEAD` or with more than `MAX_HEADERS` headers is refused rather than
//! buffered; a header that decides access (`Authorization`, `Origin`,
//! `Sec-Fetch-Site`) appears at most once, and `Content-Length` only
//! repeats with the same value; an incomplete head is
//! `AdminError::Incomplete` (its own variant, so "read more" is never
//! confused with an I/O condition).

use super::AdminError;

/// Largest request head we buffer. Admin requests are a request line and a
/// handful of headers; anything bigger is a mistake or an attack.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body we read (and throw away): no endpoint takes a body,
/// but one must be drained so closing the socket does not send an RST that
/// could destroy the response before the client reads it. A larger declared
/// length is answered 413 before any of the body is read.
pub const MAX_BODY: usize = 64 * 1024;
/// Headers per request; more is answered 431 like an oversized head.
const MAX_HEADERS: usize = 32;

/// A parsed request head, borrowing from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'b> {
    pub method: &'b str,
    /// The path with any query string removed.
    pub path: &'b str,
    /// Declared body length (0 when absent).
    pub content_length: usize,
    /// Bytes of the buffer the head took; anything after it is body.
    pub head_len: usize,
    /// The `Authorization` value, as sent.
    pub authorization: Option<&'b [u8]>,
    /// The `Origin` value: a browser's claim of the page that sent this.
    pub origin: Option<&'b [u8]>,
    /// The `Sec-Fetch-Site` value (`same-origin`, `same-site`, `cross-site`
    /// or `none`), sent by current browsers on every request.
    pub fetch_site: Option<&'b [u8]>,
    /// The `Host` value: on a loopback port it must name loopback
    /// (`guard::loopback_host`), which stops DNS rebinding.
    pub host: Option<&'b [u8]>,
}

/// Parses a request head from the bytes received so far.
///
/// Returns `Incomplete` until the blank line ending the head has arrived.
/// Calling it again on a longer buffer is the way to continue: it keeps no
/// state, so a failed partial parse changes nothing.
pub fn parse_head(buf: &[u8]) -> Result<Request<'_>, AdminError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(AdminError::HeadTooLarge { limit: MAX_HEAD })
        }
        Ok(httparse::Status::Partial) => return Err(AdminError::Incomplete),
        Err(httparse::Error::TooManyHeaders) => return Err(AdminError::HeadTooLarge { limit: MAX_HEAD }),
        Err(e) => return Err(AdminError::Malformed(e)),
    };
    // The caller caps its buffer at MAX_HEAD, but the parser must not rely on
    // that to keep the limit.
    if head_len > MAX_HEAD {
        return Err(AdminError::HeadTooLarge { limit: MAX_HEAD });
    }
    // httparse guarantees both are present on Complete; stay total anyway.
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(AdminError::Incomplete);
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);

    let mut content_length: Option<usize> = None;
    let (mut authorization, mut origin, mut fetch_site, mut host) = (None, None, None, None);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked decoding is not worth carrying for endpoints that take
            // no body; ask for Content-Length instead.
            return Err(AdminError::UnsupportedBody);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(AdminError::BadContentLength)?;
            // Two differing lengths is the classic smuggling ambiguity.
            if content_length.is_some_and(|prev| prev != n) {
                return Err(AdminError::BadContentLength);
            }
            content_length = Some(n);
        }
        // Which of two copies would a proxy in front of us have checked?
        // Refuse rather than guess.
        for (name, slot) in [
            ("authorization", &mut authorization),
            ("origin", &mut origin),
            ("sec-fetch-site", &mut fetch_site),
            ("host", &mut host),
        ] {
            if h.name.eq_ignore_ascii_case(name) {
                if slot.is_some() {
                    return Err(AdminError::DuplicateHeader(name));
                }
                *slot = Some(h.value);
            }
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(AdminError::BodyTooLarge { length: content_length, limit: MAX_BODY });
    }
    Ok(Request { method, path, content_length, head_len, authorization, origin, fetch_site, host })
}

/// Content-Length is 1*DIGIT; `usize::from_str` would also take a `+`.
fn parse_length(value: &[u8]) -> Option<usize> {
    let v = value.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A complete response; always sent with `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// One extra header: `Allow` on 405, `WWW-Authenticate` on 401.
    pub header: Option<(&'static str, &'static str)>,
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const JSON: &str = "application/json";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response { status, content_type, body: body.into(), header: None }
    }

    /// A plain-text response; adds the trailing newline `curl` users expect.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response::new(status, TEXT, body)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Response { header: Some(("Allow", allow)), ..Response::text(405, "method not allowed") }
    }

    /// The answer to a failed request, or `None` when there is nobody to
    /// answer (see `AdminError::status`).
    pub fn error(e: &AdminError) -> Option<Self> {
        let status = e.status()?;
        let mut r = Response::text(status, e.to_string());
        if status == 401 {
            // RFC 6750 §3: a 401 names the scheme the client should use.
            r.header = Some(("WWW-Authenticate", "Bearer"));
        }
        Some(r)
    }

    /// The bytes to put on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        out.extend_from_slice(head.as_bytes());
        if let Some((name, value)) = self.header {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Reason phrases for the statuses admin sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_head_with_query_and_body_length() {
        let raw = b"POST /reload?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        let req = parse_head(raw).unwrap();
        let want = Request {
            method: "POST",
            path: "/reload",
            content_length: 3,
            head_len: raw.len() - 3,
            authorization: None,
            origin: None,
            fetch_site: None,
            host: Some(b"a"),
        };
        assert_eq!(req, want);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let raw = b"GET /metrics HTTP/1.0\r\nAccept: */*\r\n\r\n";
        for n in 0..raw.len() {
            assert!(matches!(parse_head(&raw[..n]), Err(AdminError::Incomplete)), "prefix {n}");
        }
        assert_eq!(parse_head(raw).unwrap().path, "/metrics");
    }

    #[test]
    fn oversized_head_is_431() {
        let mut raw = b"GET / HTTP/1.1\r\nX: ".to_vec();
        raw.resize(MAX_HEAD, b'a');
        let err = parse_head(&raw).unwrap_err();
        assert!(matches!(err, AdminError::HeadTooLarge { .. }));
        assert_eq!(err.status(), Some(431));

        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("H{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_head(raw.as_bytes()).unwrap_err().status(), Some(431));
    }

    #[test]
    fn garbage_is_400_never_a_panic() {
        let inputs: [&[u8]; 5] = [
            b"\x00\x01\x02\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"\xff\xfe\xfd",
        ];
        for raw in inputs {
            let err = parse_head(raw).unwrap_err();
            assert_eq!(err.status(), Some(400), "{raw:?} -> {err}");
        }
    }

    #[test]
    fn body_framing_rules() {
        let cases: [(&str, u16); 5] = [
            ("Content-Length: +5", 400),
            ("Content-Length: 5\r\nContent-Length: 6", 400),
            ("Transfer-Encoding: chunked", 400),
            ("Content-Length: 99999999999999999999999", 400),
            ("Content-Length: 1000000", 413),
        ];
        for (header, status) in cases {
            let raw = format!("POST /reload HTTP/1.1\r\n{header}\r\n\r\n");
            assert_eq!(parse_head(raw.as_bytes()).unwrap_err().status(), Some(status), "{header}");
        }
        let same = b"POST /reload HTTP/1.1\r\nContent-Length: 2\r\ncontent-length:  2 \r\n\r\n";
        assert_eq!(parse_head(same).unwrap().content_length, 2);
    }

    #[test]
    fn encode_response() {
        let r = Response::method_not_allowed("POST");
        let wire = String::from_utf8(r.encode()).unwrap();
        assert_eq!(
            wire,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 19\r\nConnection: close\r\nAllow: POST\r\n\r\nmethod not allowed\n"
        );
    }
}
