//! The MongoDB wire protocol, as far as a message-aware relay needs it:
//! framing from the 16-byte header, the command name and `$db` of a
//! request, whether a reply reports `ok: 0`, handshake metadata, and the
//! health probe's hello.
//!
//! Invariant: nothing here rewrites a message; parsers borrow bytes and
//! report what they saw.

pub mod command;
pub mod frame;
pub mod header;
pub mod probe;
pub mod reply;
mod walk;

pub use command::{command_index, hello_meta, parse_request, HelloMeta, Request, COMMANDS};
pub use frame::{Frame, Framer};
pub use header::{FrameError, Header, DEFAULT_MAX_MESSAGE, OPCODE_NAMES};
