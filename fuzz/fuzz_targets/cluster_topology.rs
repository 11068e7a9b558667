//! Cluster topology replies and redirect errors on arbitrary bytes: the
//! RESP value parser, CLUSTER SLOTS and CLUSTER NODES parsers, the
//! redirect classifier and the slot map builder never panic, and a built
//! map only names masters it holds.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use puerta::control::cluster::topology::shards;
use puerta::protocol::cluster::{classify, parse_nodes, parse_slots};
use puerta::protocol::resp::value;
use puerta::route::SlotMap;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let nodes = std::str::from_utf8(data).ok().and_then(|t| parse_nodes(t).ok()).unwrap_or_default();
    let Ok(v) = value::parse(&Bytes::copy_from_slice(data)) else { return };
    let Ok(slots) = parse_slots(&v) else { return };
    let asked = "127.0.0.1:7000".parse().unwrap();
    let map = SlotMap::build(shards(&slots, &nodes, asked, &|_, _| None));
    for slot in [0u16, 1, 8191, 16383] {
        if let Some(m) = map.master_of(slot) {
            assert!(map.node(m).is_some());
        }
    }
    for &m in map.shards() {
        assert!(map.lowest_slot(m).is_some());
    }
});
