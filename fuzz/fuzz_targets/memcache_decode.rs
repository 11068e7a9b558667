//! memcached request and reply decoders on arbitrary bytes: no panic, and a
//! two-piece feed gives the same frames (or error) as a whole feed. Frames
//! tile the consumed input exactly.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use puerta::protocol::memcache::{McReplyDecoder, McRequestDecoder};

fn requests(parts: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut dec = McRequestDecoder::new(1 << 16, 1 << 12);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in parts {
        buf.extend_from_slice(p);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(r)) => {
                    for i in 0..r.nkeys() {
                        assert!(!r.key(i).is_empty() && r.key(i).len() <= 250);
                    }
                    out.push(r.raw().to_vec())
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fn replies(parts: &[&[u8]], retrieval: bool) -> (Vec<Vec<u8>>, bool) {
    let mut dec = McReplyDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in parts {
        buf.extend_from_slice(p);
        loop {
            match dec.decode(&mut buf, retrieval) {
                Ok(Some(r)) => {
                    for i in 0..r.blocks.len() {
                        let (key, block) = r.block(i).unwrap();
                        assert!(block.starts_with(b"VALUE ") && !key.is_empty());
                    }
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
    let Some((&ctl, rest)) = data.split_first() else { return };
    let cut = ((ctl >> 1) as usize).min(rest.len());
    let (a, b) = rest.split_at(cut);

    let whole = requests(&[rest]);
    assert_eq!(requests(&[a, b]), whole);
    assert!(rest.starts_with(&whole.0.concat()));

    let retrieval = ctl & 1 == 1;
    let whole = replies(&[rest], retrieval);
    assert_eq!(replies(&[a, b], retrieval), whole);
    assert!(rest.starts_with(&whole.0.concat()));
});
