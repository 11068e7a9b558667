//! A top-level walk over a BSON document's elements that decodes nothing:
//! keys and values come out as byte slices, for the per-message readers
//! (`reply::outcome`, `command::parse_request`'s `$db`), which look for one
//! or two keys and must not pay for UTF-8 checks of every key and string
//! the way `bson::RawDocument::get` does.
//!
//! Sans-IO over borrowed bytes. Invariants: nothing here panics or
//! allocates; an element is handed out only when it lies whole inside the
//! slice; the walk stops at the first element it cannot size.

pub(crate) fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// Length of the int32-length-prefixed value at `b[v]`, plus `extra`.
fn prefixed(b: &[u8], v: usize, extra: usize) -> Option<usize> {
    i32_at(b, v).and_then(|n| usize::try_from(n).ok()).and_then(|n| n.checked_add(extra))
}

/// Length of the NUL-terminated string at `b[v]`, its NUL included.
fn cstring_len(b: &[u8], v: usize) -> Option<usize> {
    memchr::memchr(0, b.get(v..)?).and_then(|n| n.checked_add(1))
}

/// Calls `f(key, type, value bytes)` for each top-level element of the
/// document at `b[at]` that lies whole inside `b`, until `f` returns false
/// or an element cannot be read.
pub(crate) fn walk<'a>(b: &'a [u8], at: usize, mut f: impl FnMut(&'a [u8], u8, &'a [u8]) -> bool) {
    let Some(mut i) = at.checked_add(4) else { return };
    loop {
        let Some(&ty) = b.get(i) else { return };
        if ty == 0 {
            return;
        }
        let Some(rest) = b.get(i.saturating_add(1)..) else { return };
        let Some(klen) = memchr::memchr(0, rest) else { return };
        let key = &rest[..klen];
        let Some(v) = i.checked_add(klen).and_then(|v| v.checked_add(2)) else { return };
        let len = match ty {
            0x01 | 0x09 | 0x11 | 0x12 => Some(8),
            0x07 => Some(12),
            0x08 => Some(1),
            0x0A | 0x06 | 0x7F | 0xFF => Some(0),
            0x10 => Some(4),
            0x13 => Some(16),
            // string, JS code, symbol: int32 length then bytes.
            0x02 | 0x0D | 0x0E => prefixed(b, v, 4),
            // document, array, code with scope: the int32 length counts itself.
            0x03 | 0x04 | 0x0F => prefixed(b, v, 0),
            // binary: int32 length, subtype byte, bytes.
            0x05 => prefixed(b, v, 5),
            // DBPointer: a string, then a 12-byte ObjectId.
            0x0C => prefixed(b, v, 16),
            // regex: pattern and options, two C strings.
            0x0B => cstring_len(b, v).and_then(|p| p.checked_add(cstring_len(b, v.checked_add(p)?)?)),
            _ => None,
        };
        let Some(end) = len.and_then(|n| v.checked_add(n)) else { return };
        let Some(value) = b.get(v..end) else { return };
        if !f(key, ty, value) {
            return;
        }
        i = end;
    }
}

/// A BSON string value: int32 length (NUL counted), bytes, NUL.
pub(crate) fn string(v: &[u8]) -> Option<&str> {
    let body = v.get(4..v.len().checked_sub(1)?)?;
    std::str::from_utf8(body).ok()
}

/// The string value of top-level `key` in the whole document `doc`;
/// `None` when absent, not a string, or past an element that cannot be
/// read.
pub(crate) fn get_str<'a>(doc: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let mut found = None;
    walk(doc, 0, |k, ty, v| {
        if k != key {
            return true;
        }
        found = if ty == 0x02 { string(v) } else { None };
        false
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Bson, Document, Regex};

    fn bytes(d: &Document) -> Vec<u8> {
        let mut v = Vec::new();
        d.to_writer(&mut v).unwrap();
        v
    }

    /// Every BSON type before the key: the walk sizes each one as `bson`
    /// does, so the key after them is found.
    #[test]
    fn finds_a_key_after_every_type() {
        let d = doc! {
            "f": 1.5, "s": "x", "d": {"a": 1}, "a": [1, 2], "b": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2, 3] }),
            "u": Bson::Undefined, "o": bson::oid::ObjectId::new(), "t": true, "dt": bson::DateTime::now(), "n": Bson::Null,
            "re": Bson::RegularExpression(Regex { pattern: "a.*b".into(), options: "i".into() }),
            "js": Bson::JavaScriptCode("f()".into()),
            "jss": Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope { code: "g()".into(), scope: doc! {"x": 1} }),
            "i": 7i32, "ts": Bson::Timestamp(bson::Timestamp { time: 1, increment: 2 }), "l": 9i64,
            "dec": Bson::Decimal128(bson::Decimal128::from_bytes([1; 16])), "min": Bson::MinKey, "max": Bson::MaxKey,
            "$db": "shop",
        };
        let b = bytes(&d);
        assert_eq!(get_str(&b, b"$db"), Some("shop"));
        assert_eq!(get_str(&b, b"s"), Some("x"));
        assert_eq!(get_str(&b, b"i"), None, "not a string");
        assert_eq!(get_str(&b, b"nope"), None);
        let mut keys = 0;
        walk(&b, 0, |_, _, _| {
            keys += 1;
            true
        });
        assert_eq!(keys, d.len());
    }

    #[test]
    fn cut_short_and_lying_lengths_never_panic() {
        let b = bytes(&doc! {"find": "users", "filter": {"a": "b"}, "$db": "shop"});
        for cut in 0..b.len() {
            let got = get_str(&b[..cut], b"$db");
            assert!(got.is_none() || got == Some("shop"), "{cut}");
        }
        for junk in [&[0xffu8; 32][..], &[9, 0, 0, 0, 0x02, b'k', 0, 0xff, 0xff, 0xff, 0x7f], &[]] {
            assert_eq!(get_str(junk, b"k"), None);
        }
    }
}
