//! RESP2 encoding helpers: arrays of bulk strings (sub-requests for fan-out,
//! AUTH/SELECT on connect) and the small replies Puerta writes itself.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::num::put_i64;

/// Appends `*<n>\r\n` or `$<n>\r\n` style headers.
pub fn put_header(out: &mut BytesMut, prefix: u8, n: i64) {
    out.put_u8(prefix);
    put_i64(out, n);
    out.put_slice(b"\r\n");
}

/// Appends one bulk string.
pub fn put_bulk(out: &mut BytesMut, arg: &[u8]) {
    put_header(out, b'$', arg.len() as i64);
    out.put_slice(arg);
    out.put_slice(b"\r\n");
}

/// Encodes a command as an array of bulk strings.
pub fn command<'a>(args: impl ExactSizeIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    put_header(&mut out, b'*', args.len() as i64);
    for a in args {
        put_bulk(&mut out, a);
    }
    out.freeze()
}

/// `:<n>\r\n`
pub fn integer(n: i64) -> Bytes {
    let mut out = BytesMut::with_capacity(24);
    put_header(&mut out, b':', n);
    out.freeze()
}

/// `-<text>\r\n`; `text` carries its own prefix word (`ERR ...`, `NOAUTH ...`).
pub fn error(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len().saturating_add(3));
    out.put_u8(b'-');
    // A CR or LF inside would end the line early and desync the client.
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.put_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_and_replies() {
        let args: [&[u8]; 2] = [b"GET", b"k"];
        assert_eq!(&command(args.into_iter())[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(&integer(-3)[..], b":-3\r\n");
        assert_eq!(&error("ERR a\r\nb")[..], b"-ERR a  b\r\n");
    }
}
