//! Memcached ASCII protocol, the subset nutcracker 0.5.0 speaks: get, gets,
//! set, add, replace, append, prepend, cas, delete, incr, decr, touch, quit
//! and version, with `noreply`; plus `stats` (answered locally) and
//! `flush_all` (to every server, when the pool allows it; `local`).
//!
//! Sans-IO like `resp`: incremental decoders over a `BytesMut` that split
//! whole frames off without copying, and a fan-out that splits a multi-key
//! get per server and merges the VALUE blocks back, in the client's key
//! order, under one END.

pub mod fanout;
mod line;
pub mod local;
pub mod reply;
pub mod request;

pub use fanout::{merge_gets, split_get};
pub use reply::{McReply, McReplyDecoder, McReplyKind};
pub use request::{McCmd, McRequest, McRequestDecoder, DEFAULT_MAX_ITEM_BYTES, MAX_ITEM_BYTES_LIMIT};

/// Longest key memcached accepts.
pub const MAX_KEY: usize = 250;
