//! The protocol layer's error enum: what went wrong in a byte stream.
//!
//! Every variant is final for the connection that produced it (a stream
//! cannot be re-synchronised after a framing error). The `Display` text of
//! client-side variants is what Redis itself says after `-ERR `, so a client
//! sees familiar words before the connection closes.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    #[error("Protocol error: expected '{expected}', got '{got}'")]
    Expected { expected: char, got: char },
    #[error("Protocol error: invalid multibulk length")]
    ArrayLen,
    #[error("Protocol error: invalid bulk length")]
    BulkLen,
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    #[error("Protocol error: unbalanced quotes in request")]
    Quotes,
    /// An empty line, `*0` or a negative count in a twemproxy pool, where
    /// nutcracker closes the client (Redis skips them).
    #[error("Protocol error: empty request")]
    EmptyRequest,
    #[error("Protocol error: expected CRLF after bulk data")]
    MissingCrlf,
    /// A request (or the part declared so far) is larger than the pool's
    /// `max_request_bytes`.
    #[error("Protocol error: request larger than max_request_bytes ({max})")]
    TooLarge { max: usize },
    /// A backend reply started with a byte that is no RESP2 type.
    #[error("Protocol error: invalid reply type byte {0:#04x}")]
    ReplyType(u8),
    #[error("Protocol error: invalid integer")]
    Integer,
    /// A reply nested deeper than a control-plane parser accepts.
    #[error("Protocol error: reply nested too deeply")]
    TooDeep,
    /// Memcached: a command line that does not parse (`CLIENT_ERROR`).
    #[error("bad command line format")]
    McBadLine,
    /// Memcached: a key over 250 bytes.
    #[error("key too long")]
    McKeyTooLong,
    /// Memcached: a command nutcracker does not know, or a known one with
    /// a token count memcached refuses (memcached answers both `ERROR`).
    #[error("unknown command")]
    McUnknown,
    /// Memcached: a data block not followed by CRLF.
    #[error("bad data chunk")]
    McBadData,
    /// Memcached: incr/decr with a delta that is not a u64.
    #[error("invalid numeric delta argument")]
    McDelta,
    /// Memcached: touch with an exptime that is not an i32.
    #[error("invalid exptime argument")]
    McExptime,
    /// Memcached: a data block over the pool's `max_item_bytes`; the text
    /// is memcached's own (`SERVER_ERROR object too large for cache`).
    #[error("object too large for cache")]
    McTooLarge { max: usize },
    /// Memcached: a command line (other than get/gets) over 2048 bytes.
    #[error("line too long")]
    McLineTooLong,
}
