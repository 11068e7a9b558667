//! RESP request and reply decoders on arbitrary bytes: no panic, and
//! feeding the same bytes in two pieces (split where the first byte says)
//! yields exactly the frames (or the error) of feeding them whole. Every
//! request frame re-decodes to itself; reply frames tile the consumed input.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use puerta::protocol::resp::{ReplyDecoder, Request, RequestDecoder};

fn requests(parts: &[&[u8]]) -> (Vec<Request>, bool) {
    let mut dec = RequestDecoder::new(1 << 16);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in parts {
        buf.extend_from_slice(p);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fn replies(parts: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut dec = ReplyDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in parts {
        buf.extend_from_slice(p);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(r)) => {
                    let _ = r.elements();
                    out.push(r.raw.to_vec())
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let cut = (cut as usize).min(rest.len());
    let (a, b) = rest.split_at(cut);

    let whole = requests(&[rest]);
    assert_eq!(requests(&[a, b]), whole);
    for r in &whole.0 {
        let again = requests(&[&r.raw()[..]]);
        assert_eq!(again.0.len(), 1);
        assert_eq!(&again.0[0], r);
    }

    let whole = replies(&[rest]);
    assert_eq!(replies(&[a, b]), whole);
    let joined: Vec<u8> = whole.0.concat();
    assert!(rest.starts_with(&joined));
});
