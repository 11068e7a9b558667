//! RESP2: client requests (multibulk arrays and inline commands), backend
//! replies, the twemproxy command table, and fan-out split/merge.
//!
//! Everything here is sans-IO. Decoders are incremental: fed a growing
//! `BytesMut`, they return `Ok(None)` until a whole frame is there and keep
//! their place in between, so a frame split at any byte boundary costs one
//! pass over its bytes.

pub mod command;
pub mod encode;
pub mod fanout;
mod inline;
pub mod names;
pub mod reply;
pub mod request;
pub mod scripts;
pub mod value;

pub use command::{lookup, Check, Kind, Merge, Spec};
pub use fanout::{merge_replies, split, Fragment, SplitError, DEFAULT_MAX_KEYS_PER_REQUEST};
pub use reply::{Reply, ReplyDecoder, ReplyKind};
pub use request::{Request, RequestDecoder, DEFAULT_MAX_REQUEST_BYTES};
