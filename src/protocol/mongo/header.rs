//! The 16-byte MongoDB message header and opcodes.
//!
//! Invariant: a `Header` handed out by `Header::parse` has passed the length
//! checks: `16 <= length <= max`, so a framer can trust `body_len`.

/// `OP_REPLY`: legacy reply to OP_QUERY.
pub const OP_REPLY: i32 = 1;
/// `OP_QUERY`: legacy; only hello/isMaster on `admin.$cmd` today.
pub const OP_QUERY: i32 = 2004;
/// `OP_COMPRESSED`: wraps another opcode.
pub const OP_COMPRESSED: i32 = 2012;
/// `OP_MSG`: every command since 3.6.
pub const OP_MSG: i32 = 2013;

pub const HEADER_LEN: usize = 16;
/// mongos's own limit (`maxMessageSizeBytes`).
pub const DEFAULT_MAX_MESSAGE: u32 = 48_000_000;

/// OP_MSG flagBits.
pub const FLAG_CHECKSUM: u32 = 1;
pub const FLAG_MORE_TO_COME: u32 = 1 << 1;
pub const FLAG_EXHAUST_ALLOWED: u32 = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Whole message length, header included.
    pub length: u32,
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: i32,
}

/// Why a message header was refused; the connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("messageLength {0} is shorter than the 16-byte header")]
    Short(i32),
    #[error("messageLength {length} exceeds max_message_bytes {max}")]
    Oversized { length: i32, max: u32 },
}

impl Header {
    /// Parses and checks a header; `None` if fewer than 16 bytes are given.
    pub fn parse(b: &[u8], max: u32) -> Option<Result<Header, FrameError>> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        let [l0, l1, l2, l3, q0, q1, q2, q3, r0, r1, r2, r3, o0, o1, o2, o3] = *b;
        let length = i32::from_le_bytes([l0, l1, l2, l3]);
        let i = |w: [u8; 4]| i32::from_le_bytes(w);
        if length < HEADER_LEN as i32 {
            return Some(Err(FrameError::Short(length)));
        }
        if length as u32 > max {
            return Some(Err(FrameError::Oversized { length, max }));
        }
        let (request_id, response_to, op_code) = (i([q0, q1, q2, q3]), i([r0, r1, r2, r3]), i([o0, o1, o2, o3]));
        Some(Ok(Header { length: length as u32, request_id, response_to, op_code }))
    }

    /// Body bytes after the header (0 for a hand-built header shorter than
    /// the header itself; `parse` never returns one).
    pub fn body_len(&self) -> usize {
        (self.length as usize).saturating_sub(HEADER_LEN)
    }

    /// Appends the encoded header.
    pub fn write(&self, out: &mut Vec<u8>) {
        for v in [self.length as i32, self.request_id, self.response_to, self.op_code] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Opcode families counted in stats, in a fixed order.
pub const OPCODE_NAMES: [&str; 5] = ["op_msg", "op_query", "op_compressed", "op_reply", "other"];

/// Index into `OPCODE_NAMES`.
pub fn opcode_index(op: i32) -> usize {
    match op {
        OP_MSG => 0,
        OP_QUERY => 1,
        OP_COMPRESSED => 2,
        OP_REPLY => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(len: i32, op: i32) -> Vec<u8> {
        let mut v = Vec::new();
        Header { length: len as u32, request_id: 7, response_to: 3, op_code: op }.write(&mut v);
        v
    }

    #[test]
    fn parses_round_trip() {
        let h = Header::parse(&raw(40, OP_MSG), 100).unwrap().unwrap();
        assert_eq!(h, Header { length: 40, request_id: 7, response_to: 3, op_code: OP_MSG });
        assert_eq!(h.body_len(), 24);
        assert!(Header::parse(&raw(40, OP_MSG)[..15], 100).is_none());
    }

    #[test]
    fn short_and_oversized_are_errors() {
        assert_eq!(Header::parse(&raw(15, OP_MSG), 100).unwrap(), Err(FrameError::Short(15)));
        assert_eq!(Header::parse(&raw(-1, OP_MSG), 100).unwrap(), Err(FrameError::Short(-1)));
        assert_eq!(
            Header::parse(&raw(101, OP_MSG), 100).unwrap(),
            Err(FrameError::Oversized { length: 101, max: 100 })
        );
        assert!(Header::parse(&raw(100, OP_MSG), 100).unwrap().is_ok());
        assert!(Header::parse(&raw(16, OP_MSG), 100).unwrap().is_ok());
    }

    /// messageLength at 0, the limit, limit + 1, negative and huge, with
    /// mongos's own limit (48,000,000).
    #[test]
    fn message_length_boundaries() {
        let max = DEFAULT_MAX_MESSAGE;
        let at = |len: i32| Header::parse(&raw(len, OP_MSG), max).unwrap();
        assert_eq!(at(0), Err(FrameError::Short(0)));
        assert_eq!(at(i32::MIN), Err(FrameError::Short(i32::MIN)));
        assert_eq!(at(48_000_000).map(|h| h.body_len()), Ok(48_000_000 - 16));
        assert_eq!(at(48_000_001), Err(FrameError::Oversized { length: 48_000_001, max }));
        assert_eq!(at(i32::MAX), Err(FrameError::Oversized { length: i32::MAX, max }));
        // A hand-built header shorter than a header has no body, no wrap.
        assert_eq!(Header { length: 3, ..Header::default() }.body_len(), 0);
    }
}
