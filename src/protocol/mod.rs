//! Sans-IO wire protocols: bytes in, parsed frames and decisions out.
//!
//! Owns nothing at runtime: decoders hold only their own resume state, and
//! never touch a socket or a clock. Puerta forwards messages unchanged and
//! only looks at them. Invariants shared by the RESP and memcached decoders:
//! - `Ok(None)` means "incomplete": nothing was consumed and the caller
//!   appends more bytes and calls again; the decoder resumes where it
//!   stopped instead of re-scanning the frame from its start;
//! - an `Err` is final for the connection (the stream cannot be re-synced);
//! - a decoded frame is split off the front of the caller's `BytesMut`
//!   without copying, and its arguments are ranges into that frame.
//!
//! `protocol` never imports `worker`, `control` or `session`.

#![deny(clippy::arithmetic_side_effects)]

pub mod cluster;
pub mod command;
pub mod error;
pub mod memcache;
pub mod mongo;
pub mod num;
pub mod proxy;
pub mod resp;

pub use error::ProtoError;
