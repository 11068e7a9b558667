//! Small RESP replies the cluster session writes itself.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::resp::encode::{self, put_bulk, put_header};
use crate::protocol::resp::{Reply, ReplyKind};

pub(super) const OK: &[u8] = b"+OK\r\n";
pub(super) const QUEUED: &[u8] = b"+QUEUED\r\n";
pub(super) const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";

/// An error reply (`text` carries its own prefix word).
pub(super) fn err(text: &str) -> Reply {
    Reply { raw: encode::error(text), kind: ReplyKind::Error }
}

/// A bulk string reply.
pub(super) fn bulk(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    put_bulk(&mut out, data);
    out.freeze()
}

/// An array of already encoded elements.
pub(super) fn array<'a>(items: impl ExactSizeIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    put_header(&mut out, b'*', items.len() as i64);
    for i in items {
        out.put_slice(i);
    }
    out.freeze()
}

/// Redis's wrong-arity error for `name`.
pub(super) fn arity(name: &[u8]) -> Bytes {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    encode::error(&format!("ERR wrong number of arguments for '{lower}' command"))
}
