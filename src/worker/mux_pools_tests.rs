//! `MuxPools` without a driver: when a retired session may be dropped.

use std::sync::Arc;
use std::time::Instant;

use super::mux_pools::{MuxEntry, MuxPools};
use crate::config::{Mode, PoolConfig, ServerSpec, ShardConfig};
use crate::route::PoolSnapshot;
use crate::session::mux::{ClientClose, MuxIntent};

fn redis_pool() -> Arc<PoolSnapshot> {
    let server =
        ServerSpec { addr: "127.0.0.1:6379".parse().unwrap(), weight: 1, name: "r".into(), host: String::new() };
    let cfg = PoolConfig {
        mode: Mode::Redis,
        shard: Some(ShardConfig::default()),
        ..PoolConfig::with_defaults("p", "127.0.0.1:7000".parse().unwrap(), vec![server])
    };
    Arc::new(PoolSnapshot::new(cfg, 0, &[0], &|_| true, Arc::default()))
}

/// A pool removed by reload: its session is retired and closes its idle
/// client, which leaves the session's own count at once; the driver has
/// not yet applied the `CloseClient`, so it still holds the socket. The
/// entry must stay until it has: dropped now, the socket would never be
/// closed (a leaked descriptor and client count) and a new entry in the
/// same slot would receive its events.
#[test]
fn a_retired_entry_is_kept_while_a_close_client_is_pending() {
    let mut pools = MuxPools::default();
    let mut e = MuxEntry::new(redis_pool(), Instant::now()).unwrap();
    let id = e.session.add_client(None);
    assert_eq!(e.set_client_sock(id, 7), None);
    pools.entries.push(Some(e));
    let e = pools.get_mut(0).unwrap();
    e.retired = true;
    e.session.set_draining();
    assert_eq!(e.session.client_count(), 0, "the session forgot the client");
    pools.reap();
    let e = pools.get_mut(0).expect("kept: the driver still holds the client's socket");
    // The driver's flush applies the intent: the socket is closed...
    assert_eq!(e.session.poll_intent(), Some(MuxIntent::CloseClient(id, ClientClose::Shutdown)));
    assert_eq!(e.clear_client_sock(id), 7);
    // ...and only then is the entry dropped.
    pools.reap();
    assert!(pools.is_empty());
}
