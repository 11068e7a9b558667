//! Inline commands (`PING\r\n`, `SET k "a b"\n`): Redis's own splitting
//! rules (`sdssplitargs`), so a telnet user gets what redis-server gives.
//!
//! Arguments are split on ASCII whitespace. `"..."` understands `\"`, `\\`,
//! `\n`, `\r`, `\t`, `\b`, `\a` and `\xHH`; `'...'` understands only `\'`.
//! A closing quote must be followed by whitespace or the end of the line.

use crate::protocol::ProtoError;

/// Splits one inline line (without its line ending) into arguments.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtoError> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Ok(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                if i >= n {
                    return Err(ProtoError::Quotes);
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        cur.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < n {
                    cur.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtoError::Quotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else if in_sq {
                if i >= n {
                    return Err(ProtoError::Quotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtoError::Quotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else {
                if i >= n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
                i += 1;
            }
        }
        args.push(cur);
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
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
    fn rejects_unbalanced_quotes() {
        for bad in [r#"set k "abc"#, "set k 'abc", r#"set k "a"b"#, "set k 'a'b"] {
            assert_eq!(split_args(bad.as_bytes()), Err(ProtoError::Quotes), "{bad}");
        }
    }
}
