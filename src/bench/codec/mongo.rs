//! MongoDB OP_MSG for the bench: `{ping: 1, $db: "admin"}` and
//! `{find: COLL, filter: {_id: K}, limit: 1, singleBatch: true, $db: DB}`,
//! with the BSON written straight into the write buffer (checked against
//! the `bson` crate's own encoding in the tests). Replies are framed by
//! `protocol::mongo::header` and read with `bson`'s raw document types.
//!
//! Invariant: a reply must be an OP_MSG answering the request at the head
//! of the connection's queue (`responseTo` = its requestID); anything else
//! breaks the stream.

use bson::RawDocument;
use bytes::{Buf, BytesMut};

use super::{DecodeError, Outcome, Wire};
use crate::bench::workload::{Op, OpKind};
use crate::protocol::mongo::header::{Header, DEFAULT_MAX_MESSAGE, FLAG_CHECKSUM, HEADER_LEN, OP_MSG};

const BSON_STRING: u8 = 0x02;
const BSON_DOC: u8 = 0x03;
const BSON_BOOL: u8 = 0x08;
const BSON_INT32: u8 = 0x10;
const BSON_INT64: u8 = 0x12;

fn cstring(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn string(out: &mut Vec<u8>, name: &str, v: &str) {
    out.push(BSON_STRING);
    cstring(out, name);
    out.extend_from_slice(&(v.len() as i32 + 1).to_le_bytes());
    cstring(out, v);
}

/// Opens a document; returns where its length goes.
fn open(out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&[0; 4]);
    out.len() - 4
}

/// Closes the document opened at `at`.
fn close(out: &mut Vec<u8>, at: usize) {
    out.push(0);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

pub fn encode(wire: &Wire, op: &Op, req_id: i32, out: &mut Vec<u8>) {
    let start = out.len();
    Header { length: 0, request_id: req_id, response_to: 0, op_code: OP_MSG }.write(out);
    out.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    out.push(0); // section kind 0: the command document
    let doc = open(out);
    if op.kind == OpKind::Ping {
        out.push(BSON_INT32);
        cstring(out, "ping");
        out.extend_from_slice(&1i32.to_le_bytes());
        string(out, "$db", "admin");
    } else {
        string(out, "find", &wire.mongo_coll);
        out.push(BSON_DOC);
        cstring(out, "filter");
        let filter = open(out);
        out.push(BSON_INT64);
        cstring(out, "_id");
        out.extend_from_slice(&(op.key as i64).to_le_bytes());
        close(out, filter);
        out.push(BSON_INT32);
        cstring(out, "limit");
        out.extend_from_slice(&1i32.to_le_bytes());
        out.push(BSON_BOOL);
        cstring(out, "singleBatch");
        out.push(1);
        string(out, "$db", &wire.mongo_db);
    }
    close(out, doc);
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

pub fn decode(buf: &mut BytesMut, op: &Op, req_id: i32) -> Result<Option<Outcome>, DecodeError> {
    let h = match Header::parse(buf, DEFAULT_MAX_MESSAGE) {
        None => return Ok(None),
        Some(Err(e)) => return Err(DecodeError::Mongo(e.to_string())),
        Some(Ok(h)) => h,
    };
    let len = h.length as usize;
    if buf.len() < len {
        return Ok(None);
    }
    if h.op_code != OP_MSG {
        return Err(DecodeError::Mongo(format!("reply opCode {} is not OP_MSG", h.op_code)));
    }
    if h.response_to != req_id {
        return Err(DecodeError::Mongo(format!("responseTo {} does not answer request {req_id}", h.response_to)));
    }
    let out = judge(&buf[HEADER_LEN..len], op).map_err(DecodeError::Mongo)?;
    buf.advance(len);
    Ok(Some(out))
}

/// Reads the section-0 document of an OP_MSG body.
fn judge(body: &[u8], op: &Op) -> Result<Outcome, String> {
    let flags = body.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or("short OP_MSG")?;
    let end = if flags & FLAG_CHECKSUM != 0 { body.len().saturating_sub(4) } else { body.len() };
    if body.get(4) != Some(&0) {
        return Err("reply has no section 0".into());
    }
    let rest = body.get(5..end).ok_or("short OP_MSG")?;
    let doc_len = rest.get(..4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or("short document")?;
    let doc = usize::try_from(doc_len).ok().and_then(|n| rest.get(..n)).ok_or("document overruns the message")?;
    let doc = RawDocument::from_bytes(doc).map_err(|e| e.to_string())?;
    let ok = match doc.get("ok").map_err(|e| e.to_string())? {
        Some(v) => v.as_f64().or(v.as_i32().map(f64::from)).or(v.as_i64().map(|i| i as f64)).unwrap_or(0.0),
        None => 0.0,
    };
    if ok != 1.0 {
        return Ok(Outcome::ServerError);
    }
    if op.kind != OpKind::Find {
        return Ok(Outcome::Ok);
    }
    let first = doc.get_document("cursor").and_then(|c| c.get_array("firstBatch"));
    Ok(match first {
        Ok(batch) if batch.into_iter().next().is_some() => Outcome::Hit,
        Ok(_) => Outcome::Miss,
        Err(_) => Outcome::ServerError,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args::Protocol;
    use crate::bench::codec::test_wire;
    use bson::{doc, Document};

    fn reply(to: i32, d: &Document) -> Vec<u8> {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.push(0);
        d.to_writer(&mut body).unwrap();
        let mut out = Vec::new();
        Header { length: (16 + body.len()) as u32, request_id: 1, response_to: to, op_code: OP_MSG }.write(&mut out);
        out.extend(body);
        out
    }

    #[test]
    fn requests_are_the_documents_bson_would_write() {
        let w = test_wire(Protocol::Mongo);
        for (op, want) in [
            (Op { kind: OpKind::Ping, key: 0 }, doc! {"ping": 1, "$db": "admin"}),
            (
                Op { kind: OpKind::Find, key: 42 },
                doc! {"find": "c", "filter": {"_id": 42i64}, "limit": 1, "singleBatch": true, "$db": "db"},
            ),
        ] {
            let mut out = Vec::new();
            encode(&w, &op, 77, &mut out);
            let h = Header::parse(&out, u32::MAX).unwrap().unwrap();
            assert_eq!((h.length as usize, h.request_id, h.op_code), (out.len(), 77, OP_MSG));
            assert_eq!(&out[16..21], &[0, 0, 0, 0, 0]);
            let mut bytes = Vec::new();
            want.to_writer(&mut bytes).unwrap();
            assert_eq!(&out[21..], &bytes[..], "{op:?}");
        }
    }

    #[test]
    fn replies_are_judged() {
        let find = Op { kind: OpKind::Find, key: 1 };
        let ping = Op { kind: OpKind::Ping, key: 0 };
        let hit = doc! {"cursor": {"id": 0i64, "ns": "db.c", "firstBatch": [{"_id": 1}]}, "ok": 1.0};
        let miss = doc! {"cursor": {"id": 0i64, "ns": "db.c", "firstBatch": []}, "ok": 1.0};
        let mut buf = BytesMut::new();
        for (d, to) in [(&hit, 5), (&miss, 6), (&doc! {"ok": 1}, 7), (&doc! {"ok": 0.0, "errmsg": "x"}, 8)] {
            buf.extend_from_slice(&reply(to, d));
        }
        assert_eq!(decode(&mut buf, &find, 5), Ok(Some(Outcome::Hit)));
        assert_eq!(decode(&mut buf, &find, 6), Ok(Some(Outcome::Miss)));
        assert_eq!(decode(&mut buf, &ping, 7), Ok(Some(Outcome::Ok)));
        assert_eq!(decode(&mut buf, &ping, 8), Ok(Some(Outcome::ServerError)));
        assert!(buf.is_empty());
        let whole = reply(9, &hit);
        let mut part = BytesMut::from(&whole[..whole.len() - 1]);
        assert_eq!(decode(&mut part, &find, 9), Ok(None));
        assert!(decode(&mut BytesMut::from(&whole[..]), &find, 10).is_err(), "wrong responseTo");
        let mut short = whole.clone();
        short[0..4].copy_from_slice(&8i32.to_le_bytes());
        assert!(decode(&mut BytesMut::from(&short[..]), &find, 9).is_err(), "messageLength below 16");
    }
}
