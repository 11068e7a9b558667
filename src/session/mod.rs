//! Sans-IO connection state machines: events in, intents out, time passed in.
//!
//! Nothing here owns a socket or reads a clock, so both I/O drivers run the
//! same machines and the tests drive them with simulated time.

pub mod acl;
pub mod cluster;
pub mod cluster_pool;
pub mod handshake;
pub mod info;
pub mod mongo;
pub mod mux;
pub mod outbuf;
pub mod pool_session;
pub mod ratelimit;
pub mod shard;
pub mod tcp;
mod tcp_types;

pub use cluster_pool::ClusterPoolSession;
pub use pool_session::{PoolSession, PoolUpdate};
pub use shard::ShardSession;
pub use tcp::{CloseReason, Intent, Limits, Side, TcpSession};
