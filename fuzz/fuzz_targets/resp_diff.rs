//! Differential: Puerta's RESP request decoder against a model of Redis
//! 7.0's `processInputBuffer` (`processMultibulkBuffer`,
//! `processInlineBuffer`, `string2ll` and `sdssplitargs`, with strchr's
//! stop at NUL), written independently of Puerta's code.
//!
//! Property: every request Puerta returns is one Redis would run, with the
//! same arguments, ending at the same byte of the client's stream; Puerta
//! may refuse what Redis takes, never the reverse. Requests are fed whole
//! and in two pieces (split where the first byte says); an odd first byte
//! builds the input from `PIECES` instead of taking it raw.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use puerta::protocol::resp::RequestDecoder;

const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
const PROTO_MAX_BULK_LEN: i64 = 512 * 1024 * 1024;
const INT_MAX: i64 = i32::MAX as i64;

/// Redis's util.c string2ll, step by step as written there.
fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let mut p = 0;
    let negative = s[0] == b'-';
    if negative {
        p += 1;
        if p == s.len() {
            return None;
        }
    }
    let mut v: u64 = match s[p] {
        c @ b'1'..=b'9' => u64::from(c - b'0'),
        _ => return None,
    };
    p += 1;
    while p < s.len() && s[p].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(u64::from(s[p] - b'0'))?;
        p += 1;
    }
    if p < s.len() {
        return None;
    }
    if negative {
        if v > (i64::MAX as u64) + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// strchr from `at`: the first `c` before a NUL (the buffer's end is one).
fn strchr(buf: &[u8], at: usize, c: u8) -> Option<usize> {
    buf[at..].iter().position(|&b| b == c || b == 0).map(|i| at + i).filter(|&i| buf[i] == c)
}

fn isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// sds.c sdssplitargs over a line with no NUL inside; `None` on
/// unbalanced quotes.
fn sdssplitargs(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut p = 0;
    let mut args = Vec::new();
    loop {
        while at(p) != 0 && isspace(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(args);
        }
        let (mut inq, mut insq, mut done) = (false, false, false);
        let mut cur = Vec::new();
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\' && at(p + 1) == b'x' && at(p + 2).is_ascii_hexdigit() && at(p + 3).is_ascii_hexdigit() {
                    let h = |x: u8| (x as char).to_digit(16).unwrap_or(0) as u8;
                    cur.push(h(at(p + 2)) * 16 + h(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    cur.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !isspace(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !isspace(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => cur.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(cur);
    }
}

/// The commands Redis would run from `buf`, each with the stream position
/// after it, up to the first protocol error or incomplete request.
fn redis(buf: &[u8]) -> Vec<(Vec<Vec<u8>>, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    'next: while pos < buf.len() {
        if buf[pos] == b'*' {
            let Some(nl) = strchr(buf, pos, b'\r') else { break };
            if nl + 1 >= buf.len() {
                break; // the byte after CR has not arrived
            }
            let Some(ll) = string2ll(&buf[pos + 1..nl]).filter(|&ll| ll <= INT_MAX) else { break };
            pos = nl + 2; // whatever the byte after CR is
            if ll <= 0 {
                continue;
            }
            let mut argv = Vec::new();
            for _ in 0..ll {
                if pos >= buf.len() {
                    break 'next;
                }
                let Some(nl) = strchr(buf, pos, b'\r') else { break 'next };
                if nl + 1 >= buf.len() || buf[pos] != b'$' {
                    break 'next;
                }
                let Some(len) = string2ll(&buf[pos + 1..nl]).filter(|l| (0..=PROTO_MAX_BULK_LEN).contains(l)) else {
                    break 'next;
                };
                pos = nl + 2;
                let len = len as usize;
                if buf.len() - pos < len + 2 {
                    break 'next;
                }
                argv.push(buf[pos..pos + len].to_vec());
                pos += len + 2; // the two bytes after the data, unchecked
            }
            out.push((argv, pos));
        } else {
            let Some(nl) = strchr(buf, pos, b'\n') else { break };
            let mut end = nl;
            if end != pos && buf[end - 1] == b'\r' {
                end -= 1;
            }
            // Over 64 KiB it could not have waited for the newline.
            if nl - pos > PROTO_INLINE_MAX_SIZE {
                break;
            }
            let Some(argv) = sdssplitargs(&buf[pos..end]) else { break };
            pos = nl + 1;
            if !argv.is_empty() {
                out.push((argv, pos));
            }
        }
    }
    out
}

/// Puerta's requests, each with the stream position after it.
fn puerta(parts: &[&[u8]]) -> Vec<(Vec<Vec<u8>>, usize)> {
    let mut dec = RequestDecoder::new(1 << 16);
    let mut buf = BytesMut::new();
    let (mut fed, mut out) = (0, Vec::new());
    for p in parts {
        buf.extend_from_slice(p);
        fed += p.len();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(r)) => out.push((r.args().map(<[u8]>::to_vec).collect(), fed - buf.len())),
                Ok(None) => break,
                // Final: the client is closed.
                Err(_) => return out,
            }
        }
    }
    out
}

/// Pieces a blind mutator would rarely spell: headers at every boundary
/// `string2ll` and Redis's limits care about, line ends, quotes, escapes.
const PIECES: &[&[u8]] = &[
    b"*", b"$", b"\r\n", b"\r", b"\n", b"\0", b" ", b"\t", b"\x0b", b"\x0c", b"\"", b"'", b"\\", b"\\x41",
    b"0", b"1", b"2", b"3", b"4", b"9", b"00", b"01", b"03", b"-0", b"-1", b"-2", b"+1", b"+3", b" 1",
    b"2147483647", b"2147483648", b"536870912", b"536870913", b"1048576", b"1048577",
    b"9223372036854775807", b"9223372036854775808", b"-9223372036854775808", b"-9223372036854775809",
    b"12345678901234567890", b"123456789012345678901", b"GET", b"PING", b"k", b"abc",
];

/// Structured input: each byte picks a piece, or stands for itself.
fn generate(ops: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &op in ops {
        match PIECES.get(usize::from(op)) {
            Some(p) => out.extend_from_slice(p),
            None => out.push(op),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let generated;
    let rest = if ctl & 1 == 1 {
        generated = generate(rest);
        &generated[..]
    } else {
        rest
    };
    let cut = ctl >> 1;
    let model = redis(rest);
    let (a, b) = rest.split_at((cut as usize).min(rest.len()));
    for got in [puerta(&[rest]), puerta(&[a, b])] {
        for (i, (argv, end)) in got.iter().enumerate() {
            let Some((m_argv, m_end)) = model.get(i) else {
                panic!("Puerta ran request {i} {argv:?} that Redis refuses")
            };
            assert_eq!(argv, m_argv, "request {i} arguments");
            assert_eq!(end, m_end, "request {i} ends elsewhere");
        }
    }
});
