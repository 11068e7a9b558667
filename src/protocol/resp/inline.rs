//! Inline commands (`PING\r\n`, `SET k "a b"\n`): Redis's own splitting
//! rules (`sdssplitargs`), so a telnet user gets what redis-server gives.
//!
//! Arguments are separated by C `isspace` bytes; an unquoted argument ends
//! only at a space, tab, CR or LF (so `a\x0cb` is one argument, as in Redis). `"..."` understands `\"`, `\\`,
//! `\n`, `\r`, `\t`, `\b`, `\a` and `\xHH`; `'...'` understands only `\'`.
//! A closing quote must be followed by whitespace or the end of the line.

use crate::protocol::ProtoError;

/// C's `isspace`: what `sdssplitargs` skips between arguments and wants
/// after a closing quote. Unlike Rust's `is_ascii_whitespace` it includes
/// the vertical tab.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What ends an unquoted argument in `sdssplitargs`: a narrower set than
/// `is_space` (a form feed or vertical tab is part of the argument).
fn ends_arg(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Splits one inline line (without its line ending, and without NUL bytes,
/// which the caller refuses) into arguments.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtoError> {
    let mut args = Vec::new();
    let mut rest = line;
    loop {
        while let Some((&c, tail)) = rest.split_first() {
            if !is_space(c) {
                break;
            }
            rest = tail;
        }
        if rest.is_empty() {
            return Ok(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                match rest {
                    [] => return Err(ProtoError::Quotes),
                    [b'\\', b'x', h, l, tail @ ..] if hex(*h).is_some() && hex(*l).is_some() => {
                        let (h, l) = (hex(*h).unwrap_or(0), hex(*l).unwrap_or(0));
                        cur.push(h << 4 | l);
                        rest = tail;
                    }
                    [b'\\', c, tail @ ..] => {
                        cur.push(match c {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => *other,
                        });
                        rest = tail;
                    }
                    [b'"', tail @ ..] => {
                        rest = after_quote(tail)?;
                        break;
                    }
                    [c, tail @ ..] => {
                        cur.push(*c);
                        rest = tail;
                    }
                }
            } else if in_sq {
                match rest {
                    [] => return Err(ProtoError::Quotes),
                    [b'\\', b'\'', tail @ ..] => {
                        cur.push(b'\'');
                        rest = tail;
                    }
                    [b'\'', tail @ ..] => {
                        rest = after_quote(tail)?;
                        break;
                    }
                    [c, tail @ ..] => {
                        cur.push(*c);
                        rest = tail;
                    }
                }
            } else {
                match rest {
                    [] => break,
                    [c, ..] if ends_arg(*c) => break,
                    [b'"', tail @ ..] => {
                        in_dq = true;
                        rest = tail;
                    }
                    [b'\'', tail @ ..] => {
                        in_sq = true;
                        rest = tail;
                    }
                    [c, tail @ ..] => {
                        cur.push(*c);
                        rest = tail;
                    }
                }
            }
        }
        args.push(cur);
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// What follows a closing quote: it must end the argument (a space or
/// the end), as in Redis's `sdssplitargs`.
fn after_quote(tail: &[u8]) -> Result<&[u8], ProtoError> {
    match tail.first() {
        Some(&c) if !is_space(c) => Err(ProtoError::Quotes),
        _ => Ok(tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_args(s.as_bytes()).unwrap().into_iter().map(|a| String::from_utf8(a).unwrap()).collect()
    }

    #[test]
    fn splits_like_redis() {
        assert_eq!(split("  set  k   v "), ["set", "k", "v"]);
        assert_eq!(split(r#"set k "a b\n\x41""#), ["set", "k", "a b\nA"]);
        assert_eq!(split(r"set k 'it\'s'"), ["set", "k", "it's"]);
        assert_eq!(split(r#"set k """#), ["set", "k", ""]);
        assert!(split("").is_empty());
    }

    #[test]
    fn whitespace_is_c_isspace() {
        // Redis 7.0: `ECHO a\x0cb` echoes "a\x0cb"; `ECHO "a"\x0bb` has 3 args.
        assert_eq!(split("ECHO a\x0cb"), ["ECHO", "a\x0cb"]);
        assert_eq!(split("PING\x0bx"), ["PING\x0bx"]);
        assert_eq!(split("ECHO \"a\"\x0bb"), ["ECHO", "a", "b"]);
        assert_eq!(split("\x0b\x0cGET\x0bk"), ["GET\x0bk"]);
        assert_eq!(split(r#"a"b c" d"#), ["ab c", "d"], "a quote may open mid-argument");
        assert_eq!(split(r#""\x4g""#), ["x4g"], "not a hex escape: the backslash goes");
    }

    #[test]
    fn rejects_unbalanced_quotes() {
        for bad in [r#"set k "abc"#, "set k 'abc", r#"set k "a"b"#, "set k 'a'b"] {
            assert_eq!(split_args(bad.as_bytes()), Err(ProtoError::Quotes), "{bad}");
        }
    }
}
