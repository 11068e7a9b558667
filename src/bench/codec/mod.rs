//! Sans-IO request encoders and reply decoders for the bench, one module
//! per protocol. Encoders write an `Op` straight into a connection's write
//! buffer; decoders take the front of the read buffer and say what the
//! reply meant for the request it answers.
//!
//! Reply *framing* reuses Puerta's own decoders (`protocol::resp`,
//! `protocol::memcache`, `protocol::mongo::header`): they are sans-IO and
//! tested against real servers. The bench never imports `worker`,
//! `session` or `control`, so it cannot share the proxy's bugs in what it
//! measures.
//!
//! Invariant: a decoder consumes exactly one whole reply when it returns
//! `Ok(Some(_))`, nothing when it returns `Ok(None)`, and an `Err` means
//! the stream cannot be resynchronised (the connection is closed).

pub mod memcache;
pub mod mongo;
pub mod redis;

use std::net::SocketAddr;

use bytes::BytesMut;

use super::args::Protocol;
use super::keys::Values;
use super::workload::{Op, Template};

/// What one reply meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A write or command succeeded.
    Ok,
    /// A read found its key, with the value every write of that key stores.
    Hit,
    /// A read found nothing.
    Miss,
    /// A read found its key holding a different value.
    Mismatch,
    /// The server answered with an error.
    ServerError,
    /// Redis Cluster: the slot lives at `addr` now.
    Moved { slot: u16, addr: SocketAddr },
    /// Redis Cluster: ask `addr` this once.
    Ask { slot: u16, addr: SocketAddr },
    /// The reply to an `ASKING` (not a measured request).
    Ignore,
}

/// Request bytes for one thread: the parts of the workload encoders need.
#[derive(Debug, Clone)]
pub struct Wire {
    pub protocol: Protocol,
    pub prefix: std::sync::Arc<[u8]>,
    pub keys: u64,
    pub values: std::sync::Arc<Values>,
    pub template: Option<std::sync::Arc<Template>>,
    pub mongo_db: String,
    pub mongo_coll: String,
}

impl Wire {
    /// Appends `op` to `out`; `req_id` is the MongoDB requestID (ignored by
    /// the others).
    pub fn encode(&self, op: &Op, req_id: i32, out: &mut Vec<u8>) {
        match self.protocol {
            Protocol::Redis => redis::encode(self, op, out),
            Protocol::Memcache => memcache::encode(self, op, out),
            Protocol::Mongo => mongo::encode(self, op, req_id, out),
        }
    }
}

/// Per-connection reply decoder state.
#[derive(Debug)]
pub enum Decoder {
    Redis(crate::protocol::resp::ReplyDecoder),
    Memcache(crate::protocol::memcache::McReplyDecoder),
    Mongo,
}

/// Why a reply stream broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Frame(#[from] crate::protocol::ProtoError),
    #[error("mongo: {0}")]
    Mongo(String),
}

impl Decoder {
    pub fn new(p: Protocol) -> Decoder {
        match p {
            Protocol::Redis => Decoder::Redis(Default::default()),
            Protocol::Memcache => Decoder::Memcache(Default::default()),
            Protocol::Mongo => Decoder::Mongo,
        }
    }

    /// Decodes the reply to `op` (sent with `req_id`) from the front of `buf`.
    pub fn decode(
        &mut self,
        wire: &Wire,
        buf: &mut BytesMut,
        op: &Op,
        req_id: i32,
    ) -> Result<Option<Outcome>, DecodeError> {
        match self {
            Decoder::Redis(d) => redis::decode(d, wire, buf, op),
            Decoder::Memcache(d) => memcache::decode(d, wire, buf, op),
            Decoder::Mongo => mongo::decode(buf, op, req_id),
        }
    }
}

#[cfg(test)]
pub(crate) fn test_wire(protocol: Protocol) -> Wire {
    Wire {
        protocol,
        prefix: std::sync::Arc::from(&b"k:"[..]),
        keys: 100,
        values: std::sync::Arc::new(Values::new(3, 3)),
        template: None,
        mongo_db: "db".into(),
        mongo_coll: "c".into(),
    }
}
