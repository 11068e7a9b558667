//! Replies as the session handles them: either protocol's frame, the error
//! replies Puerta makes up (backend refused, timed out, died), and the
//! merge that turns a slot's fragment replies into the client's reply.

use bytes::Bytes;

use super::types::Protocol;
use crate::protocol::memcache::local::merge_flush;
use crate::protocol::memcache::{merge_gets, McReply, McReplyKind, McRequest};
use crate::protocol::resp::value::{self, Value};
use crate::protocol::resp::{encode, merge_replies, Merge, Reply, ReplyKind, Request};
use crate::session::info::{render, ProxyFields};

#[derive(Debug, Clone)]
pub(crate) enum AnyReply {
    Resp(Reply),
    Mc(McReply),
}

impl AnyReply {
    pub fn raw(&self) -> &Bytes {
        match self {
            AnyReply::Resp(r) => &r.raw,
            AnyReply::Mc(r) => &r.raw,
        }
    }

    pub fn is_error(&self) -> bool {
        match self {
            AnyReply::Resp(r) => r.is_error(),
            AnyReply::Mc(r) => r.is_error(),
        }
    }
}

/// How a slot's parts become one reply.
#[derive(Debug, Clone)]
pub(crate) enum MergePlan {
    /// One part, passed through.
    Pass,
    Resp {
        merge: Merge,
        nkeys: usize,
    },
    McGet(Box<McRequest>),
    /// memcached `flush_all` sent to every server: OK if all said OK.
    McFlush,
    /// INFO from every server, rendered with the proxy's own fields.
    Info(Box<(Request, ProxyFields)>),
}

impl MergePlan {
    pub fn finish(&self, keys: &[Vec<u32>], parts: &[Option<AnyReply>]) -> Bytes {
        match self {
            MergePlan::Pass => parts.first().and_then(|p| p.as_ref()).map(|p| p.raw().clone()).unwrap_or_default(),
            MergePlan::Resp { merge, nkeys } => {
                let v: Vec<(&[u32], &Reply)> = keys
                    .iter()
                    .zip(parts)
                    .filter_map(|(k, p)| match p {
                        Some(AnyReply::Resp(r)) => Some((&k[..], r)),
                        _ => None,
                    })
                    .collect();
                merge_replies(*merge, *nkeys, &v)
            }
            MergePlan::McGet(req) => {
                let v: Vec<(&[u32], &McReply)> = keys
                    .iter()
                    .zip(parts)
                    .filter_map(|(k, p)| match p {
                        Some(AnyReply::Mc(r)) => Some((&k[..], r)),
                        _ => None,
                    })
                    .collect();
                merge_gets(req, &v)
            }
            MergePlan::McFlush => {
                let v: Vec<&McReply> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Some(AnyReply::Mc(r)) => Some(r),
                        _ => None,
                    })
                    .collect();
                merge_flush(&v)
            }
            MergePlan::Info(info) => {
                let mut texts = Vec::with_capacity(parts.len());
                for p in parts {
                    match p {
                        Some(AnyReply::Resp(r)) if r.is_error() => return r.raw.clone(),
                        Some(AnyReply::Resp(r)) => texts.push(bulk_text(r)),
                        _ => texts.push(String::new()),
                    }
                }
                let (req, fields) = &**info;
                let mut out = bytes::BytesMut::new();
                encode::put_bulk(&mut out, render(req, fields, &texts).as_bytes());
                out.freeze()
            }
        }
    }
}

/// A bulk reply's text (INFO); empty for anything else.
pub(crate) fn bulk_text(r: &Reply) -> String {
    match value::parse(&r.raw) {
        Ok(Value::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    }
}

/// strerror-style text without Rust's " (os error N)" suffix.
pub(crate) fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The error a client sees when forwarding failed with `errno`:
/// `-ERR Connection refused` / `SERVER_ERROR Connection refused`.
pub(super) fn forward_error(proto: Protocol, errno: i32) -> AnyReply {
    let text = strerror(errno);
    match proto {
        Protocol::Redis => AnyReply::Resp(Reply { raw: encode::error(&format!("ERR {text}")), kind: ReplyKind::Error }),
        Protocol::Memcache => AnyReply::Mc(McReply {
            raw: Bytes::from(format!("SERVER_ERROR {text}\r\n")),
            kind: McReplyKind::Error,
            blocks: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_nutcracker() {
        assert_eq!(&forward_error(Protocol::Redis, libc::ECONNREFUSED).raw()[..], b"-ERR Connection refused\r\n");
        assert_eq!(
            &forward_error(Protocol::Memcache, libc::ETIMEDOUT).raw()[..],
            b"SERVER_ERROR Connection timed out\r\n"
        );
    }
}
