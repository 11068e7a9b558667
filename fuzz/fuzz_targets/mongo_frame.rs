//! MongoDB framing and OP_MSG parsing on arbitrary bytes: no panic, and a
//! stream split into arbitrary chunks frames exactly as when fed whole
//! (same messages, same captured bodies, same error, same boundary state).
#![no_main]
use libfuzzer_sys::fuzz_target;
use puerta::protocol::mongo::command::{hello_meta, parse_request};
use puerta::protocol::mongo::probe::parse_reply;
use puerta::protocol::mongo::{Framer, Header};
use puerta::session::mongo::MongoTracker;
use puerta::session::Side;
use std::time::Instant;

type Seen = Vec<(Header, Vec<u8>, bool)>;

fn run(data: &[u8], cuts: &[usize], capture: usize) -> (Seen, Option<String>, bool) {
    let mut f = Framer::new(4096, capture);
    let mut seen = Vec::new();
    let mut err = None;
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        let c = c.clamp(last, data.len());
        let r = f.feed(&data[last..c], |fr| {
            let req = parse_request(fr.header.op_code, fr.body);
            let _ = hello_meta(&req);
            seen.push((fr.header, fr.body.to_vec(), fr.truncated));
        });
        if let Err(e) = r {
            err = Some(e.to_string());
            break;
        }
        last = c;
    }
    (seen, err, f.at_boundary())
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else { return };
    let capture = [0usize, 4, 16, 1 << 14][(seed & 3) as usize];
    let step = 1 + (seed >> 2) as usize;
    let cuts: Vec<usize> = (step..data.len()).step_by(step).collect();
    let whole = run(data, &[], capture);
    let split = run(data, &cuts, capture);
    assert_eq!(whole, split, "chunking changed framing");

    let _ = parse_reply(data);
    let mut t = MongoTracker::new(4096);
    let now = Instant::now();
    let (a, b) = data.split_at(data.len() / 2);
    let _ = t.handle_data(Side::Client, a, now);
    let _ = t.handle_data(Side::Backend, b, now);
    let _ = t.at_boundary();
});
