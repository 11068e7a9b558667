//! Whether a reply reports a failed command: its top-level `ok` and, when
//! `ok` is 0, its `codeName`, read from a captured prefix of the body
//! without decoding (or needing) the whole document.
//!
//! Sans-IO over the body bytes a `Framer` captured. Invariants: nothing
//! here panics or allocates on malformed or cut-short input; the walk stops
//! at the first element it cannot read whole, so a reply whose `ok` lies
//! past the captured prefix reads as no failure. Servers put `ok` first in
//! an error reply (`{ok: 0, errmsg, code, codeName, ...}`), so an error is
//! seen within a short prefix; `codeName` follows `errmsg`, so a very long
//! message can leave it unread (the caller then counts "other").

use super::header::{OP_MSG, OP_REPLY};
use super::walk::{string, walk};

/// What a reply says about its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// `ok` is not 0, or could not be read.
    Ok,
    /// `ok: 0`, with its `codeName` when read.
    Failed(Option<&'a str>),
}

/// The reply's outcome from its (captured) body.
pub fn outcome(op_code: i32, body: &[u8]) -> Outcome<'_> {
    let doc_at = match op_code {
        // flagBits, then section kind 0 (the body document) first.
        OP_MSG if body.get(4) == Some(&0) => 5,
        // responseFlags, cursorID, startingFrom, numberReturned, documents.
        OP_REPLY => 20,
        _ => return Outcome::Ok,
    };
    let mut ok = None;
    let mut code_name = None;
    walk(body, doc_at, |key, ty, value| match key {
        b"ok" => {
            ok = Some(is_zero(ty, value));
            true
        }
        b"codeName" if ty == 0x02 => {
            code_name = string(value);
            ok.is_none()
        }
        _ => true,
    });
    match ok {
        Some(true) => Outcome::Failed(code_name),
        _ => Outcome::Ok,
    }
}

/// Whether a numeric or boolean `ok` is 0 (false for other types).
fn is_zero(ty: u8, v: &[u8]) -> bool {
    match (ty, v.len()) {
        (0x01, 8) => v.try_into().is_ok_and(|a| f64::from_le_bytes(a) == 0.0),
        (0x10, 4) | (0x12, 8) | (0x08, 1) => v.iter().all(|&c| c == 0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::mongo::command::tests::op_msg_body;
    use bson::{doc, Document};

    fn op_reply_body(d: &Document) -> Vec<u8> {
        let mut v = vec![0u8; 20];
        d.to_writer(&mut v).unwrap();
        v
    }

    #[test]
    fn ok_zero_is_a_failure_with_its_code_name() {
        let err = doc! {"ok": 0.0, "errmsg": "E11000 duplicate key", "code": 11000, "codeName": "DuplicateKey"};
        assert_eq!(outcome(OP_MSG, &op_msg_body(0, &err)), Outcome::Failed(Some("DuplicateKey")));
        assert_eq!(outcome(OP_REPLY, &op_reply_body(&err)), Outcome::Failed(Some("DuplicateKey")));
        // ok as int32, int64 or bool; codeName before ok; no codeName.
        assert_eq!(outcome(OP_MSG, &op_msg_body(0, &doc! {"ok": 0i32})), Outcome::Failed(None));
        assert_eq!(outcome(OP_MSG, &op_msg_body(0, &doc! {"ok": 0i64, "codeName": "X"})), Outcome::Failed(Some("X")));
        assert_eq!(outcome(OP_MSG, &op_msg_body(0, &doc! {"codeName": "Y", "ok": false})), Outcome::Failed(Some("Y")));
        // Success, wherever ok sits, after nested documents and arrays.
        let found = doc! {"cursor": {"firstBatch": [{"a": 1}, {"b": "x"}], "id": 0i64}, "ok": 1.0};
        assert_eq!(outcome(OP_MSG, &op_msg_body(0, &found)), Outcome::Ok);
        assert_eq!(outcome(OP_MSG, &op_msg_body(0, &doc! {"ok": 1i32, "codeName": "Z"})), Outcome::Ok);
    }

    #[test]
    fn cut_short_or_malformed_bodies_read_as_ok_and_never_panic() {
        let err = op_msg_body(0, &doc! {"errmsg": "m".repeat(100), "ok": 0.0, "codeName": "DuplicateKey"});
        for cut in 0..err.len() {
            // ok appears only once the prefix holds it whole.
            let got = outcome(OP_MSG, &err[..cut]);
            assert!(got == Outcome::Ok || matches!(got, Outcome::Failed(_)), "{cut}");
        }
        assert_eq!(outcome(OP_MSG, &err[..40]), Outcome::Ok, "ok past the prefix");
        assert_eq!(outcome(OP_MSG, &err), Outcome::Failed(Some("DuplicateKey")));
        // Lengths that point anywhere, unknown types, garbage.
        for junk in
            [&[0u8; 3][..], &[0, 0, 0, 0, 0, 9, 9, 9, 9, 0x02, b'o', b'k', 0, 0xff, 0xff, 0xff, 0x7f], &[0xff; 64]]
        {
            assert_eq!(outcome(OP_MSG, junk), Outcome::Ok);
            assert_eq!(outcome(OP_REPLY, junk), Outcome::Ok);
        }
        assert_eq!(outcome(2012, &err), Outcome::Ok, "compressed: not looked into");
    }
}
