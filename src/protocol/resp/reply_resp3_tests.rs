//! RESP3 framing: every type, attributes as prefixes, pushes as their own
//! frames, at every split point of the stream.

use bytes::BytesMut;

use super::{Reply, ReplyDecoder, ReplyKind};
use crate::protocol::ProtoError;

fn all(dec: &mut ReplyDecoder, buf: &mut BytesMut) -> Vec<Reply> {
    let mut out = Vec::new();
    while let Some(r) = dec.decode(buf).unwrap() {
        out.push(r);
    }
    out
}

/// One frame of each RESP3 kind, with the kind it must get.
const FRAMES: &[(&[u8], ReplyKind)] = &[
    (b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n*2\r\n_\r\n#t\r\n", ReplyKind::Map(2)),
    (b"~3\r\n:1\r\n,3.5\r\n(12345678901234567890\r\n", ReplyKind::Set(3)),
    (b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", ReplyKind::Push(3)),
    (b"_\r\n", ReplyKind::Null),
    (b",-inf\r\n", ReplyKind::Double),
    (b"#f\r\n", ReplyKind::Boolean(false)),
    (b"(-1\r\n", ReplyKind::BigNumber),
    (b"=15\r\ntxt:Some string\r\n", ReplyKind::Verbatim),
    (b"!21\r\nSYNTAX invalid syntax\r\n", ReplyKind::BlobError),
    // An attribute is a prefix of the value it annotates: one frame, the
    // value's kind, nested values inside the attribute included.
    (b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n:9\r\n", ReplyKind::Array(2)),
    // An attribute inside an aggregate is not one of its elements.
    (b"*2\r\n:1\r\n|1\r\n+ttl\r\n:3\r\n:2\r\n", ReplyKind::Array(2)),
    (b"|0\r\n+OK\r\n", ReplyKind::Status),
    (b"%0\r\n", ReplyKind::Map(0)),
    (b">0\r\n", ReplyKind::Push(0)),
];

#[test]
fn every_resp3_kind_at_every_boundary() {
    let stream: Vec<u8> = FRAMES.iter().flat_map(|(f, _)| f.to_vec()).collect();
    let whole = all(&mut ReplyDecoder::default(), &mut BytesMut::from(&stream[..]));
    let kinds: Vec<ReplyKind> = whole.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, FRAMES.iter().map(|(_, k)| *k).collect::<Vec<_>>());
    for (r, (f, _)) in whole.iter().zip(FRAMES) {
        assert_eq!(&r.raw[..], *f, "frame boundaries");
    }
    for cut in 0..=stream.len() {
        let mut dec = ReplyDecoder::default();
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut got = all(&mut dec, &mut buf);
        buf.extend_from_slice(&stream[cut..]);
        got.extend(all(&mut dec, &mut buf));
        assert_eq!(got, whole, "split at {cut}");
    }
}

#[test]
fn pushes_and_errors_are_classified() {
    let mut buf = BytesMut::from(&b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n!3\r\nERR\r\n-ERR x\r\n"[..]);
    let got = all(&mut ReplyDecoder::default(), &mut buf);
    assert!(got[0].is_push() && !got[0].is_error());
    assert!(got[1].is_error() && got[2].is_error());
    assert!(!got[1].is_push());
}

#[test]
fn bad_resp3_is_an_error() {
    for (bad, e) in [
        (&b"#x\r\n"[..], ProtoError::ReplyType(b'#')),
        (b"_x\r\n", ProtoError::ReplyType(b'_')),
        (b",\r\n", ProtoError::ReplyType(b',')),
        (b"%-1\r\n", ProtoError::ArrayLen),
        (b"%4294967296\r\n", ProtoError::ArrayLen),
        (b"|-1\r\n", ProtoError::ArrayLen),
        (b"=-1\r\n", ProtoError::BulkLen),
        (b"!1099511627777\r\n", ProtoError::BulkLen),
        (b"=3\r\nabcd\r\n", ProtoError::MissingCrlf),
    ] {
        assert_eq!(ReplyDecoder::default().decode(&mut BytesMut::from(bad)), Err(e), "{bad:?}");
    }
}

#[test]
fn largest_map_count_does_not_overflow() {
    // 2 * u32::MAX elements are counted in u64; the frame just waits.
    let mut buf = BytesMut::from(&b"%4294967295\r\n:1\r\n"[..]);
    assert_eq!(ReplyDecoder::default().decode(&mut buf), Ok(None));
}
