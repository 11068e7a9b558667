//! One memcached command line: tokens and fields, validated exactly as
//! memcached 1.6's `process_command_ascii` would, or refused.
//!
//! Puerta accepts a subset of what memcached accepts, and where both
//! accept they agree on the data block's length; that agreement is what
//! keeps one client's bytes from running as commands on a shared backend
//! connection (command smuggling). Rules, per memcached 1.6:
//! - tokens are separated by spaces only (`tokenize_command`); a NUL ends
//!   memcached's view of the line early, so Puerta refuses any control
//!   byte in a line (memcached takes them inside keys; Puerta does not);
//! - the token counts are `WANT_TOKENS_OR`'s: `set k f e b [noreply]`,
//!   `cas k f e b c [noreply]`, `incr k d [noreply]`, `touch k e
//!   [noreply]`, `delete k [0] [noreply]`; memcached ignores a last token
//!   that is not `noreply` where Puerta refuses it;
//! - flags are a u32 (`safe_strtoul`), exptime an i32 (`safe_strtol`),
//!   the data length a non-negative i32 within `max_item_bytes`, the cas
//!   unique and the incr/decr delta u64 (`safe_strtoull`); Puerta takes
//!   plain digits only, where memcached also takes `+`, whitespace and
//!   values that wrap into 32 bits (`set k 0 0 -4294967295` stores 1 byte);
//! - `flush_all [delay] [noreply]`: delay an i32 (`safe_strtol`);
//!   `stats` is taken only without arguments (Puerta answers it itself);
//! - a key is at most 250 bytes (`KEY_MAX_LENGTH`).

use super::request::McCmd;
use super::MAX_KEY;
use crate::protocol::num::{parse_i32, parse_u32, parse_u64};
use crate::protocol::ProtoError;

/// What a valid line asks for: keys as `(start, end)` offsets into the
/// line, `noreply`, and the data block length for storage commands.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Line {
    pub cmd: McCmd,
    pub keys: Vec<(u32, u32)>,
    pub noreply: bool,
    pub data: Option<usize>,
}

/// Parses a command line (without its `\r\n` or `\n`). `max_item_bytes`
/// bounds a storage command's data block.
pub(super) fn parse_line(line: &[u8], max_item_bytes: usize) -> Result<Line, ProtoError> {
    if line.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(ProtoError::McBadLine);
    }
    // Offsets are u32; the caller caps lines far below that.
    let toks: Vec<(usize, usize)> = tokens(line).collect();
    let tok = |k: usize| toks.get(k).map(|&(s, e)| &line[s..e]);
    let cmd = tok(0).and_then(McCmd::parse).ok_or(ProtoError::McUnknown)?;
    let n = toks.len();
    // `noreply` may stand at `at` (the position after the fixed fields).
    let noreply = |at: usize| -> Result<bool, ProtoError> {
        if n == at {
            Ok(false)
        } else if Some(n) == at.checked_add(1) && tok(at) == Some(b"noreply") {
            Ok(true)
        } else {
            Err(ProtoError::McBadLine)
        }
    };
    let field = |k: usize, parse: fn(&[u8]) -> bool, err: ProtoError| match tok(k) {
        Some(t) if parse(t) => Ok(()),
        _ => Err(err),
    };
    let flags_exptime = || -> Result<(), ProtoError> {
        field(2, |t| parse_u32(t).is_some(), ProtoError::McBadLine)?;
        field(3, |t| parse_i32(t).is_some(), ProtoError::McBadLine)
    };
    let length = || -> Result<usize, ProtoError> {
        let len = tok(4).and_then(parse_i32).ok_or(ProtoError::McBadLine)?;
        // memcached: `vlen < 0 || vlen > INT_MAX - 2` is a bad line.
        let len = usize::try_from(len).map_err(|_| ProtoError::McBadLine)?;
        if len > max_item_bytes {
            return Err(ProtoError::McTooLarge { max: max_item_bytes });
        }
        Ok(len)
    };
    let (nkeys, noreply, data) = match cmd {
        McCmd::Get | McCmd::Gets if n >= 2 => (n.saturating_sub(1), false, None),
        McCmd::Quit | McCmd::Version | McCmd::Stats if n == 1 => (0, false, None),
        McCmd::FlushAll if n <= 3 => {
            // `flush_all`, `flush_all noreply`, `flush_all D`, `flush_all D noreply`.
            let delay = n >= 2 && !(n == 2 && tok(1) == Some(b"noreply"));
            if delay {
                field(1, |t| parse_i32(t).is_some(), ProtoError::McBadLine)?;
            }
            (0, noreply(if delay { 2 } else { 1 })?, None)
        }
        McCmd::Cas if n == 6 || n == 7 => {
            flags_exptime()?;
            let len = length()?;
            field(5, |t| parse_u64(t).is_some(), ProtoError::McBadLine)?;
            (1, noreply(6)?, Some(len))
        }
        c if c.is_storage() && c != McCmd::Cas && (n == 5 || n == 6) => {
            flags_exptime()?;
            (1, noreply(5)?, Some(length()?))
        }
        McCmd::Delete if (2..=4).contains(&n) => {
            // `delete <key> [0] [noreply]`: the old hold time must be 0.
            let at = if tok(2) == Some(b"0") { 3 } else { 2 };
            (1, noreply(at)?, None)
        }
        McCmd::Incr | McCmd::Decr if n == 3 || n == 4 => {
            field(2, |t| parse_u64(t).is_some(), ProtoError::McDelta)?;
            (1, noreply(3)?, None)
        }
        McCmd::Touch if n == 3 || n == 4 => {
            field(2, |t| parse_i32(t).is_some(), ProtoError::McExptime)?;
            (1, noreply(3)?, None)
        }
        // memcached answers a wrong token count with a bare ERROR.
        _ => return Err(ProtoError::McUnknown),
    };
    let mut keys = Vec::with_capacity(nkeys);
    for &(s, e) in toks.iter().skip(1).take(nkeys) {
        if e.saturating_sub(s) > MAX_KEY {
            return Err(ProtoError::McKeyTooLong);
        }
        let (s, e) = (u32::try_from(s), u32::try_from(e));
        keys.push((s.map_err(|_| ProtoError::McBadLine)?, e.map_err(|_| ProtoError::McBadLine)?));
    }
    Ok(Line { cmd, keys, noreply, data })
}

/// `(start, end)` of each space-separated token, as `tokenize_command`
/// finds them (runs of spaces are one separator; no other byte is one).
fn tokens(line: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = line.get(at..)?;
        let start = at.checked_add(rest.iter().position(|&b| b != b' ')?)?;
        let len = line.get(start..)?.iter().position(|&b| b == b' ').unwrap_or(line.len().saturating_sub(start));
        at = start.checked_add(len)?;
        Some((start, at))
    })
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
