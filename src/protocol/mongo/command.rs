//! What a request is: opcode, command name (the first key of the command
//! document) and `$db`, read without decoding the whole document.
//!
//! Sans-IO over the body bytes a `Framer` captured. Invariants: nothing
//! here panics or allocates on malformed input; a body that is cut short
//! (`Frame::truncated`) still yields the command name when the first key is
//! inside the captured prefix, and `$db` only when the whole command
//! document is.

use bson::RawDocument;

use super::header::{OP_COMPRESSED, OP_MSG, OP_QUERY};
use super::walk::{self, i32_at};

/// A request as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Request<'a> {
    pub op_code: i32,
    /// OP_MSG flagBits (0 for other opcodes).
    pub flags: u32,
    /// The command name; `None` for OP_COMPRESSED or unparsable bodies.
    pub command: Option<&'a str>,
    pub db: Option<&'a str>,
    /// The whole command document, when it was captured whole.
    pub doc: Option<&'a RawDocument>,
}

/// The NUL-terminated UTF-8 string at `at`, and where the next field
/// starts; `None` if there is no NUL inside `b`.
fn cstr_at(b: &[u8], at: usize) -> Option<(&str, usize)> {
    let rest = b.get(at..)?;
    let end = memchr0(rest)?;
    Some((std::str::from_utf8(&rest[..end]).ok()?, at.checked_add(end)?.checked_add(1)?))
}

fn memchr0(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == 0)
}

/// The first key of the BSON document starting at `b[at]`, and the whole
/// document if it lies inside `b`.
fn first_key(b: &[u8], at: usize) -> (Option<&str>, Option<&RawDocument>) {
    let Some(len) = i32_at(b, at) else { return (None, None) };
    // `i32_at` read 4 bytes at `at`, so `at + 4` is inside `b`.
    let (type_at, key_at) = (at.saturating_add(4), at.saturating_add(5));
    let name = match b.get(type_at) {
        Some(0) | None => None,
        Some(_) => cstr_at(b, key_at).map(|(k, _)| k),
    };
    let doc = usize::try_from(len)
        .ok()
        .and_then(|l| b.get(at..at.checked_add(l)?))
        .and_then(|d| RawDocument::from_bytes(d).ok());
    (name, doc)
}

/// Parses a client request's body (as captured).
pub fn parse_request(op_code: i32, body: &[u8]) -> Request<'_> {
    let mut r = Request { op_code, ..Request::default() };
    match op_code {
        OP_MSG => {
            let Some(flags) = i32_at(body, 0) else { return r };
            r.flags = flags as u32;
            // Section 0 (kind byte 0) is the command; drivers put it first.
            if body.get(4) != Some(&0) {
                return r;
            }
            let (name, doc) = first_key(body, 5);
            r.command = name;
            r.doc = doc;
            // A byte walk, not `RawDocument::get_str`: that checks the
            // UTF-8 of every key and string before `$db` (drivers put it
            // last), a third of the relay's instructions per message.
            r.db = doc.and_then(|d| walk::get_str(d.as_bytes(), b"$db"));
        }
        OP_QUERY => {
            // flags, fullCollectionName, numberToSkip, numberToReturn, query.
            let Some((coll, at)) = cstr_at(body, 4) else { return r };
            r.db = coll.split('.').next();
            let (name, doc) = first_key(body, at.saturating_add(8));
            // A legacy query wraps the command as {$query: {...}} at times.
            r.command = name;
            r.doc = doc;
            if name == Some("$query") {
                if let Some(inner) = doc.and_then(|d| d.get_document("$query").ok()) {
                    r.command = inner.iter().next().and_then(|e| e.ok()).map(|(k, _)| k);
                    r.doc = Some(inner);
                }
            }
        }
        OP_COMPRESSED => {}
        _ => {}
    }
    r
}

/// OP_MSG flagBits of a reply body, 0 when absent.
pub fn msg_flags(op_code: i32, body: &[u8]) -> u32 {
    if op_code == OP_MSG {
        i32_at(body, 0).map_or(0, |f| f as u32)
    } else {
        0
    }
}

/// Driver metadata from a connection handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HelloMeta {
    pub app_name: Option<String>,
    pub driver_name: Option<String>,
}

pub fn is_hello(command: &str) -> bool {
    matches!(command, "hello" | "isMaster" | "ismaster")
}

/// `client.application.name` and `client.driver.name` of a hello.
pub fn hello_meta(req: &Request<'_>) -> Option<HelloMeta> {
    if !req.command.is_some_and(is_hello) {
        return None;
    }
    let client = req.doc?.get_document("client").ok()?;
    let sub = |k: &str| client.get_document(k).ok().and_then(|d| d.get_str("name").ok()).map(str::to_owned);
    Some(HelloMeta { app_name: sub("application"), driver_name: sub("driver") })
}

/// Commands counted by name; everything else is counted as "other".
pub const COMMANDS: [&str; 28] = [
    "other",
    "hello",
    "isMaster",
    "ping",
    "find",
    "getMore",
    "killCursors",
    "aggregate",
    "count",
    "distinct",
    "insert",
    "update",
    "delete",
    "findAndModify",
    "bulkWrite",
    "createIndexes",
    "dropIndexes",
    "listIndexes",
    "listCollections",
    "listDatabases",
    "create",
    "drop",
    "endSessions",
    "commitTransaction",
    "abortTransaction",
    "saslStart",
    "saslContinue",
    "buildInfo",
];

/// Index into `COMMANDS`; `ismaster` folds into `isMaster`.
pub fn command_index(name: Option<&str>) -> usize {
    let Some(name) = name else { return 0 };
    let name = if name == "ismaster" { "isMaster" } else { name };
    COMMANDS.iter().position(|c| *c == name).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bson::{doc, Document};

    pub(crate) fn op_msg_body(flags: u32, d: &Document) -> Vec<u8> {
        let mut v = flags.to_le_bytes().to_vec();
        v.push(0);
        d.to_writer(&mut v).unwrap();
        v
    }

    #[test]
    fn op_msg_command_and_db() {
        let b = op_msg_body(0, &doc! {"find": "users", "filter": {"a": 1}, "$db": "shop"});
        let r = parse_request(OP_MSG, &b);
        assert_eq!((r.command, r.db, r.flags), (Some("find"), Some("shop"), 0));
        assert_eq!(command_index(r.command), 4);
        // Truncated: the name survives, $db does not.
        let r = parse_request(OP_MSG, &b[..16]);
        assert_eq!((r.command, r.db), (Some("find"), None));
        // Garbage never panics.
        for n in 0..b.len() {
            let _ = parse_request(OP_MSG, &b[..n]);
        }
        assert_eq!(parse_request(OP_MSG, &[1, 0, 0, 0, 1]).command, None);
    }

    #[test]
    fn op_query_is_master_and_hello_meta() {
        let d = doc! {"isMaster": 1, "client": {"application": {"name": "billing"}, "driver": {"name": "PyMongo", "version": "4"}}};
        let mut b = 0i32.to_le_bytes().to_vec();
        b.extend_from_slice(b"admin.$cmd\0");
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&(-1i32).to_le_bytes());
        d.to_writer(&mut b).unwrap();
        let r = parse_request(OP_QUERY, &b);
        assert_eq!((r.command, r.db), (Some("isMaster"), Some("admin")));
        let m = hello_meta(&r).unwrap();
        assert_eq!(m.app_name.as_deref(), Some("billing"));
        assert_eq!(m.driver_name.as_deref(), Some("PyMongo"));

        let b = op_msg_body(0, &doc! {"hello": 1, "client": {"driver": {"name": "nodejs"}}, "$db": "admin"});
        let m = hello_meta(&parse_request(OP_MSG, &b)).unwrap();
        assert_eq!((m.app_name, m.driver_name.as_deref()), (None, Some("nodejs")));
        let b = op_msg_body(0, &doc! {"ping": 1, "$db": "admin"});
        assert_eq!(hello_meta(&parse_request(OP_MSG, &b)), None);
    }

    /// BSON lengths and C strings that lie: negative, past the end, near
    /// i32::MAX, unterminated. Nothing panics and nothing is read past the
    /// captured bytes.
    #[test]
    fn lying_lengths_and_unterminated_strings() {
        let good = op_msg_body(0, &doc! {"find": "users", "$db": "shop"});
        for len in [-1i32, 0, 4, 5, i32::MAX, i32::MIN, good.len() as i32] {
            let mut b = good.clone();
            b[5..9].copy_from_slice(&len.to_le_bytes());
            let r = parse_request(OP_MSG, &b);
            assert_eq!(r.command, Some("find"), "the name needs no length ({len})");
            assert_eq!(r.doc, None, "a document whose length lies is not a document ({len})");
        }
        // A key with no NUL after it, in OP_MSG and OP_QUERY.
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 40, 0, 0, 0, 2, b'f', b'i']);
        assert_eq!(parse_request(OP_MSG, &b).command, None);
        let mut q = 0i32.to_le_bytes().to_vec();
        q.extend_from_slice(b"admin.$cmd");
        assert_eq!(parse_request(OP_QUERY, &q), Request { op_code: OP_QUERY, ..Request::default() });
        q.push(0);
        q.extend_from_slice(&[0; 7]);
        assert_eq!(parse_request(OP_QUERY, &q).command, None, "query document cut short");
        assert_eq!(msg_flags(OP_MSG, &[1, 2, 3]), 0);
    }

    #[test]
    fn compressed_has_no_command_and_names_fold() {
        assert_eq!(parse_request(OP_COMPRESSED, &[0; 9]).command, None);
        assert_eq!(command_index(Some("ismaster")), command_index(Some("isMaster")));
        assert_eq!(command_index(Some("frobnicate")), 0);
        assert_eq!(msg_flags(OP_MSG, &2u32.to_le_bytes()), 2);
    }
}
