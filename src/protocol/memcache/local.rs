//! The memcached commands a pool answers itself or merges whole: `stats`
//! (Puerta's own counters in memcached's `STAT name value` form) and the
//! reply of a `flush_all` sent to every server.
//!
//! Pure formatting: the values come from the caller (the worker reads its
//! counters and clock), so the wire form is tested without a session.

use bytes::{BufMut, Bytes, BytesMut};

use super::reply::{McReply, McReplyKind};

/// `flush_all` on a pool with `allow_flush = false` (nutcracker refuses it
/// too, by closing the connection).
pub const FLUSH_REFUSED: &[u8] = b"SERVER_ERROR flush_all is refused by this Puerta pool (allow_flush = false)\r\n";

/// `STAT name value\r\n` per entry, then `END\r\n`, as memcached's `stats`.
/// An entry with a control byte (or a name with a space; never one of
/// Puerta's) is left out rather than allowed to break the framing.
pub fn stats_reply(stats: &[(&str, String)]) -> Bytes {
    let mut out = BytesMut::new();
    for (name, value) in stats {
        let control = |b: u8| b < 0x20 || b == 0x7f;
        if name.is_empty() || name.bytes().any(|b| control(b) || b == b' ') || value.bytes().any(control) {
            continue;
        }
        out.put_slice(b"STAT ");
        out.put_slice(name.as_bytes());
        out.put_u8(b' ');
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"END\r\n");
    out.freeze()
}

/// The client's reply to a `flush_all` every server answered: `OK` when
/// all said OK, else the first other answer, in server order.
pub fn merge_flush(parts: &[&McReply]) -> Bytes {
    match parts.iter().find(|r| r.kind != McReplyKind::Ok) {
        Some(r) => r.raw.clone(),
        None => Bytes::from_static(b"OK\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(s: &'static str, kind: McReplyKind) -> McReply {
        McReply { raw: Bytes::from_static(s.as_bytes()), kind, blocks: Vec::new() }
    }

    #[test]
    fn stats_in_memcached_form() {
        let got = stats_reply(&[("pid", "42".into()), ("version", "puerta-1.2.3".into()), ("bad", "a\r\nb".into())]);
        assert_eq!(&got[..], b"STAT pid 42\r\nSTAT version puerta-1.2.3\r\nEND\r\n");
        assert_eq!(&stats_reply(&[])[..], b"END\r\n");
    }

    #[test]
    fn flush_is_ok_only_when_every_server_is() {
        let ok = reply("OK\r\n", McReplyKind::Ok);
        let err = reply("SERVER_ERROR Connection refused\r\n", McReplyKind::Error);
        let other = reply("ERROR\r\n", McReplyKind::Error);
        assert_eq!(&merge_flush(&[&ok, &ok])[..], b"OK\r\n");
        assert_eq!(&merge_flush(&[&ok, &err, &other])[..], b"SERVER_ERROR Connection refused\r\n");
        assert_eq!(&merge_flush(&[&other, &err])[..], b"ERROR\r\n");
    }
}
