//! `max_keys_per_request` in the cluster session: a request naming more
//! keys gets an error naming the limit and the connection stays; one at the
//! limit splits per slot, whatever the number of slots it spans.

use std::collections::HashSet;

use super::tests::{cmd, H};
use crate::route::keyslot;

const LIMIT: &[u8] = b"-ERR too many keys in request (max_keys_per_request = 100000)\r\n";

#[test]
fn too_many_keys_is_an_error_and_the_connection_stays() {
    let mut h = H::default3();
    let c = h.client();
    let keys: Vec<String> = (0..100_001).map(|i| format!("k{i}")).collect();
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    h.send(c, &mget);
    assert_eq!(h.take(c), LIMIT);
    // Routed (not split) commands count their keys too.
    let mut sunion = vec!["SUNION"];
    sunion.extend(keys.iter().map(String::as_str));
    h.send(c, &sunion);
    assert_eq!(h.take(c), LIMIT);
    assert!(h.conns.is_empty(), "nothing was sent anywhere");
    h.send(c, &["PING"]);
    assert_eq!(h.take(c), b"+PONG\r\n", "the connection stays open and in sync");

    // At the limit: one part per slot, for the 16144 slots these keys span.
    mget.pop();
    h.send_raw(c, &cmd(&mget));
    let slots: HashSet<u16> = keys[..100_000].iter().map(|k| keyslot(k.as_bytes())).collect();
    assert!(slots.len() > 16_000, "{}", slots.len());
    assert_eq!(h.s.stats().fragments, slots.len() as u64);
    let sent: usize = [1, 2, 3].iter().map(|&p| h.written_to(p).windows(4).filter(|w| w == b"MGET").count()).sum();
    assert_eq!(sent, slots.len());
}
