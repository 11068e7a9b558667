//! The per-client footprint of the session: an idle client costs its
//! `Client` (boxed, behind one pointer in the session's table) and nothing
//! else, so the struct sizes bound the memory of idle connections.

use std::mem::size_of;

use super::client::{Client, Slot};
use crate::session::outbuf::OutBuf;

#[test]
fn per_client_structs_stay_small() {
    let (client, slot, out) = (size_of::<Client>(), size_of::<Slot>(), size_of::<OutBuf>());
    let entry = size_of::<Option<Box<Client>>>();
    eprintln!("size_of: Client {client} B, table entry {entry} B, Slot {slot} B, OutBuf {out} B");
    // 208, plus one pointer for the proxy user (`Option<Arc<User>>`)
    // and one for per-IP limit state (`Client::rate`).
    assert!(client <= 224, "Client is {client} bytes");
    assert!(entry <= 8, "a table entry is a pointer");
    assert!(out <= 8, "an OutBuf is a pointer until it sends");
}
