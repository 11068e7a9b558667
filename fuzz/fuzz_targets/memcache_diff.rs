//! Differential: Puerta's memcached request decoder against a model of
//! memcached 1.6's ASCII front end (`try_read_command_ascii`,
//! `tokenize_command`, `process_command_ascii` and the update, arithmetic,
//! touch, delete and get handlers, with `safe_strtoul`/`safe_strtol`/
//! `safe_strtoull` on top of C's strtoul/strtol/strtoull, as observed on
//! memcached 1.6.18).
//!
//! Property: every request Puerta returns is one memcached would run, it
//! ends at the same byte, names the same keys, and agrees on `noreply`
//! (a disagreement there shifts every later reply on a shared connection).
//! Puerta may refuse what memcached takes, never the reverse. An odd
//! first byte builds the input from `WORDS` (`generate`) instead of taking
//! it raw.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use puerta::protocol::memcache::{McCmd, McRequestDecoder};

const KEY_MAX_LENGTH: usize = 250;
/// memcached closes a connection whose unfinished line passes this,
/// unless it is a multi-get.
const LINE_WAIT_MAX: usize = 2048;
const MAX_TOKENS: usize = 24;
const INT_MAX: i64 = i32::MAX as i64;

/// A request memcached would run: where it ends, its command word, its
/// keys and whether it asked for no reply.
#[derive(Debug, PartialEq)]
struct Ran {
    end: usize,
    cmd: Vec<u8>,
    keys: Vec<Vec<u8>>,
    noreply: bool,
}

fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C's strtoull/strtoll prefix scan: (negative, magnitude or None on
/// overflow, index after the digits); `None` when nothing was converted
/// (endptr == str).
fn c_scan(s: &[u8]) -> Option<(bool, Option<u64>, usize)> {
    let mut i = s.iter().take_while(|&&c| c_isspace(c)).count();
    let mut neg = false;
    if let Some(&c) = s.get(i) {
        if c == b'+' || c == b'-' {
            neg = c == b'-';
            i += 1;
        }
    }
    let digits = s[i.min(s.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut v = Some(0u64);
    for &c in &s[i..i + digits] {
        v = v.and_then(|v| v.checked_mul(10)).and_then(|v| v.checked_add(u64::from(c - b'0')));
    }
    Some((neg, v, i + digits))
}

/// The end check of memcached's safe_* parsers: what follows the number
/// must be whitespace or the token's end (a NUL in memcached's buffer).
fn ends_well(s: &[u8], end: usize) -> bool {
    s.get(end).is_none_or(|&c| c_isspace(c))
}

/// safe_strtoull (and safe_strtoul, whose unsigned long is 64 bits too).
fn safe_strtoull(s: &[u8]) -> Option<u64> {
    let (neg, v, end) = c_scan(s)?;
    let v = v?; // ERANGE
    let v = if neg { v.wrapping_neg() } else { v };
    if !ends_well(s, end) || ((v as i64) < 0 && s.contains(&b'-')) {
        return None;
    }
    Some(v)
}

/// safe_strtoul: the 64-bit value, truncated to 32 bits.
fn safe_strtoul(s: &[u8]) -> Option<u32> {
    safe_strtoull(s).map(|v| v as u32)
}

/// safe_strtol: strtol (64-bit long), truncated to 32 bits.
fn safe_strtol(s: &[u8]) -> Option<i32> {
    let (neg, v, end) = c_scan(s)?;
    let v = v?;
    let l: i64 = if neg {
        if v > 1 << 63 {
            return None; // ERANGE
        }
        0i64.wrapping_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()?
    };
    ends_well(s, end).then_some(l as i32)
}

/// `tokenize_command` over a NUL-terminated command: tokens split on
/// spaces only, at most `MAX_TOKENS - 1` of them; the bool says whether
/// the line went on past the last one (memcached's terminal token).
fn tokenize(cmd: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut toks = Vec::new();
    let (mut s, mut e) = (0, 0);
    while e < cmd.len() {
        if cmd[e] == b' ' {
            if s != e {
                toks.push(&cmd[s..e]);
                if toks.len() == MAX_TOKENS - 1 {
                    return (toks, e + 1 < cmd.len());
                }
            }
            s = e + 1;
        }
        e += 1;
    }
    if s != e {
        toks.push(&cmd[s..e]);
    }
    (toks, false)
}

/// The requests memcached would run from the front of `buf`, in order,
/// up to the first it would not (error, close, unknown, incomplete).
fn memcached(buf: &[u8]) -> Vec<Ran> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let Some(nl) = rest.iter().position(|&c| c == b'\n') else { break };
        // The line may arrive in pieces: past 2048 bytes without a newline
        // memcached closes unless it is a multi-get (<= 100 leading spaces).
        if nl > LINE_WAIT_MAX {
            let sp = rest.iter().take_while(|&&c| c == b' ').count();
            let body = &rest[sp..];
            if sp > 100 || !(body.starts_with(b"get ") || body.starts_with(b"gets ")) {
                break;
            }
        }
        let mut line = &rest[..nl];
        if line.len() > 1 && line.ends_with(b"\r") {
            line = &line[..line.len() - 1];
        }
        // The command is a C string: a NUL ends it.
        let cmd = &line[..line.iter().position(|&c| c == 0).unwrap_or(line.len())];
        let line_end = at + nl + 1;
        let (toks, more) = tokenize(cmd);
        let ntokens = toks.len() + 1;
        if toks.is_empty() || toks[0].len() < 2 {
            break;
        }
        let name = toks[0];
        let noreply_at = |n: usize| n >= 2 && toks.get(n - 2) == Some(&&b"noreply"[..]);
        let key_ok = |k: &[u8]| k.len() <= KEY_MAX_LENGTH;
        let ran = |end: usize, keys: Vec<&[u8]>, noreply: bool| Ran {
            end,
            cmd: name.to_vec(),
            keys: keys.into_iter().map(<[u8]>::to_vec).collect(),
            noreply,
        };
        let r = match name {
            b"get" | b"gets" => {
                // Past MAX_TOKENS memcached tokenizes the rest again: every
                // space-separated word after the command is a key.
                let keys: Vec<&[u8]> = cmd.split(|&c| c == b' ').filter(|t| !t.is_empty()).skip(1).collect();
                if ntokens < 3 || !keys.iter().all(|k| key_ok(k)) {
                    None
                } else {
                    Some(ran(line_end, keys, false))
                }
            }
            b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
                let cas = name == b"cas";
                let want = if cas { [7, 8] } else { [6, 7] };
                if more || !want.contains(&ntokens) || !key_ok(toks[1]) {
                    None
                } else {
                    let fields = (safe_strtoul(toks[2]), safe_strtol(toks[3]), safe_strtol(toks[4]));
                    let cas_ok = !cas || safe_strtoull(toks[5]).is_some();
                    match fields {
                        (Some(_), Some(_), Some(vlen)) if cas_ok && i64::from(vlen) >= 0 && i64::from(vlen) <= INT_MAX - 2 => {
                            // Read (or swallowed, if too large) whole: the
                            // same end either way; then it wants "\r\n".
                            let end = line_end + vlen as usize + 2;
                            if buf.len() < end || &buf[end - 2..end] != b"\r\n" {
                                None
                            } else {
                                Some(ran(end, vec![toks[1]], noreply_at(ntokens)))
                            }
                        }
                        _ => None,
                    }
                }
            }
            b"incr" | b"decr" if !more && (ntokens == 4 || ntokens == 5) => {
                let ok = key_ok(toks[1]) && safe_strtoull(toks[2]).is_some();
                ok.then(|| ran(line_end, vec![toks[1]], noreply_at(ntokens)))
            }
            b"touch" if !more && (ntokens == 4 || ntokens == 5) => {
                let ok = key_ok(toks[1]) && safe_strtol(toks[2]).is_some();
                ok.then(|| ran(line_end, vec![toks[1]], noreply_at(ntokens)))
            }
            b"delete" if !more && (3..=5).contains(&ntokens) => {
                let (valid, noreply) = if ntokens > 3 {
                    let hold_is_zero = toks[2] == b"0";
                    let noreply = noreply_at(ntokens);
                    ((ntokens == 4 && (hold_is_zero || noreply)) || (ntokens == 5 && hold_is_zero && noreply), noreply)
                } else {
                    (true, false)
                };
                (valid && key_ok(toks[1])).then(|| ran(line_end, vec![toks[1]], noreply))
            }
            b"version" => Some(ran(line_end, vec![], false)),
            // `stats` with arguments runs too, but Puerta refuses it.
            b"stats" if ntokens == 2 => Some(ran(line_end, vec![], false)),
            // process_flush_all_command: a delay unless the line is just
            // `flush_all [noreply]`.
            b"flush_all" if !more && (2..=4).contains(&ntokens) => {
                let noreply = noreply_at(ntokens);
                let valid = ntokens == if noreply { 3 } else { 2 } || safe_strtol(toks[1]).is_some();
                valid.then(|| ran(line_end, vec![], noreply))
            }
            // quit closes; anything else is not modelled (Puerta refuses it).
            _ => None,
        };
        match r {
            Some(r) => {
                at = r.end;
                out.push(r);
            }
            None => break,
        }
    }
    out
}

fn word(cmd: McCmd) -> &'static [u8] {
    match cmd {
        McCmd::Get => b"get",
        McCmd::Gets => b"gets",
        McCmd::Set => b"set",
        McCmd::Add => b"add",
        McCmd::Replace => b"replace",
        McCmd::Append => b"append",
        McCmd::Prepend => b"prepend",
        McCmd::Cas => b"cas",
        McCmd::Delete => b"delete",
        McCmd::Incr => b"incr",
        McCmd::Decr => b"decr",
        McCmd::Touch => b"touch",
        McCmd::Quit => b"quit",
        McCmd::Version => b"version",
        McCmd::Stats => b"stats",
        McCmd::FlushAll => b"flush_all",
    }
}

/// Words a blind mutator would rarely spell: commands, `noreply`, every
/// numeric boundary memcached's parsers care about, odd keys.
const WORDS: &[&[u8]] = &[
    b"set", b"add", b"replace", b"append", b"prepend", b"cas", b"get", b"gets", b"incr", b"decr", b"touch",
    b"delete", b"version", b"quit", b"stats", b"flush_all", b"noreply", b"0", b"1", b"2", b"5", b"01", b"-0", b"-1", b"+1", b" 1",
    b"4294967295", b"4294967296", b"2147483645", b"2147483646", b"2147483647", b"2147483648", b"-2147483648",
    b"-2147483649", b"-4294967295", b"-4294967294", b"9223372036854775807", b"9223372036854775808",
    b"-9223372036854775808", b"-9223372036854775809", b"18446744073709551615", b"18446744073709551616",
    b"10000000000000000000", b"4097", b"4096", b"k", b"key", b"k\0", b"k\t", b"k\r", b"HTTP/1.1", b"1\t",
];

/// Structured input: requests built from `WORDS`, so most are
/// well-formed enough to reach the field checks. Each request takes a
/// selector byte, then one byte per field; a storage command gets a data
/// block as long as its length field says (when that is small).
fn generate(ops: &[u8]) -> Vec<u8> {
    let mut it = ops.iter().copied();
    let mut out = Vec::new();
    let word = |b: Option<u8>| WORDS[usize::from(b.unwrap_or(0)) % WORDS.len()];
    while let Some(op) = it.next() {
        let sep: &[u8] = if op & 0x80 != 0 { b"  " } else { b" " };
        let (cmd, fields): (&[u8], usize) = match op & 7 {
            0 => (b"set", 4),
            1 => (b"cas", 5),
            2 => ([&b"add"[..], b"replace", b"append", b"prepend"][usize::from(op >> 3 & 3)], 4),
            3 => ([&b"get"[..], b"gets"][usize::from(op >> 3 & 1)], 1 + usize::from(op >> 4 & 3)),
            4 => ([&b"incr"[..], b"decr", b"touch", b"delete"][usize::from(op >> 3 & 3)], 2),
            5 => (word(it.next()), usize::from(op >> 3 & 7)),
            _ => {
                out.push(it.next().unwrap_or(b'\n'));
                continue;
            }
        };
        out.extend_from_slice(cmd);
        let mut len = None;
        for f in 0..fields {
            let w = word(it.next());
            out.extend_from_slice(sep);
            out.extend_from_slice(w);
            if f == 3 {
                len = std::str::from_utf8(w).ok().and_then(|t| t.parse::<usize>().ok()).filter(|&n| n <= 4097);
            }
        }
        if op & 0x40 != 0 {
            out.extend_from_slice(b" noreply");
        }
        out.extend_from_slice(if op & 0x20 != 0 && op & 7 == 4 { b"\n" } else { b"\r\n" });
        if matches!(op & 7, 0..=2) {
            out.extend(std::iter::repeat_n(b'x', len.unwrap_or(0)));
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    let generated;
    let data = if mode & 1 == 1 {
        generated = generate(rest);
        &generated[..]
    } else {
        rest
    };
    let model = memcached(data);
    let mut dec = McRequestDecoder::new(1 << 16, 1 << 12);
    let mut buf = BytesMut::from(data);
    let mut i = 0;
    while let Ok(Some(r)) = dec.decode(&mut buf) {
        let end = data.len() - buf.len();
        if r.cmd == McCmd::Quit {
            break; // memcached closes; Puerta closes too
        }
        let Some(m) = model.get(i) else {
            panic!("Puerta ran request {i} ({:?}) that memcached refuses", String::from_utf8_lossy(r.raw()))
        };
        assert_eq!(m.end, end, "request {i} ends elsewhere: {:?}", String::from_utf8_lossy(r.raw()));
        assert_eq!(m.cmd, word(r.cmd), "request {i}");
        let keys: Vec<Vec<u8>> = (0..r.nkeys()).map(|k| r.key(k).to_vec()).collect();
        assert_eq!(m.keys, keys, "request {i} keys");
        assert_eq!(m.noreply, r.noreply, "request {i} noreply");
        i += 1;
    }
});
