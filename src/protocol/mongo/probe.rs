//! The health probe's messages: an OP_MSG `{hello: 1, $db: "admin"}` (or
//! a legacy OP_QUERY isMaster) and the judgement of the reply.
//!
//! Sans-IO: builds request bytes and evaluates reply bytes; the control
//! thread does the socket work. Invariant: `judge` accepts a server only if
//! the reply says `ok: 1`, has `maxWireVersion >= min_wire_version`, and,
//! when a mongos is required, `msg: "isdbgrid"`.

use bson::{doc, RawDocument};

use super::header::{Header, HEADER_LEN, OP_MSG, OP_QUERY, OP_REPLY};

/// Request id used by probes; replies must answer it.
pub const PROBE_REQUEST_ID: i32 = 0x5045_5254; // "PERT"

/// `{hello: 1, $db: "admin"}` as OP_MSG. `load_balanced` adds
/// `loadBalanced: true`, which mongos's loadBalancerPort requires.
pub fn hello_op_msg(load_balanced: bool) -> Vec<u8> {
    let mut body = 0u32.to_le_bytes().to_vec();
    body.push(0);
    let d = if load_balanced {
        doc! {"hello": 1, "loadBalanced": true, "$db": "admin"}
    } else {
        doc! {"hello": 1, "$db": "admin"}
    };
    // Writing a small fixed document to a Vec cannot fail.
    let _ = d.to_writer(&mut body);
    frame(OP_MSG, &body)
}

/// `{isMaster: 1}` on `admin.$cmd` as OP_QUERY, for servers before 3.6.
pub fn is_master_op_query() -> Vec<u8> {
    let mut body = 0i32.to_le_bytes().to_vec();
    body.extend_from_slice(b"admin.$cmd\0");
    body.extend_from_slice(&0i32.to_le_bytes());
    body.extend_from_slice(&(-1i32).to_le_bytes());
    let _ = doc! {"isMaster": 1}.to_writer(&mut body);
    frame(OP_QUERY, &body)
}

fn frame(op_code: i32, body: &[u8]) -> Vec<u8> {
    // Our own small, fixed probe documents: far below u32::MAX.
    let len = HEADER_LEN.saturating_add(body.len());
    let mut out = Vec::with_capacity(len);
    let h = Header {
        length: u32::try_from(len).unwrap_or(u32::MAX),
        request_id: PROBE_REQUEST_ID,
        response_to: 0,
        op_code,
    };
    h.write(&mut out);
    out.extend_from_slice(body);
    out
}

/// What a hello reply said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HelloReply {
    pub ok: bool,
    pub msg: Option<String>,
    pub max_wire_version: Option<i32>,
    /// `topologyVersion.processId`: changes when the server restarts.
    pub process_id: Option<[u8; 12]>,
}

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("reply is not a hello answer: {0}")]
    Malformed(&'static str),
    #[error("server refused: {0}")]
    Refused(String),
}

/// Reads the document of a whole reply message (header included).
pub fn parse_reply(msg: &[u8]) -> Result<HelloReply, ProbeError> {
    let h = match Header::parse(msg, u32::MAX) {
        Some(Ok(h)) if h.length as usize == msg.len() => h,
        _ => return Err(ProbeError::Malformed("bad header")),
    };
    if h.response_to != PROBE_REQUEST_ID {
        return Err(ProbeError::Malformed("responseTo does not match"));
    }
    let body = &msg[HEADER_LEN..];
    let doc_at = match h.op_code {
        OP_MSG if body.get(4) == Some(&0) => 5,
        OP_REPLY => 20,
        _ => return Err(ProbeError::Malformed("unexpected opcode")),
    };
    let d = body.get(doc_at..).and_then(|b| RawDocument::from_bytes(b).ok());
    let d = d.ok_or(ProbeError::Malformed("bad BSON"))?;
    let ok = match d.get("ok") {
        Ok(Some(v)) => v.as_f64().or(v.as_i32().map(f64::from)).or(v.as_i64().map(|x| x as f64)) == Some(1.0),
        _ => false,
    };
    let max_wire_version = match d.get("maxWireVersion") {
        Ok(Some(v)) => v.as_i32().or(v.as_i64().and_then(|x| i32::try_from(x).ok())),
        _ => None,
    };
    let process_id =
        d.get_document("topologyVersion").ok().and_then(|t| t.get_object_id("processId").ok()).map(|o| o.bytes());
    Ok(HelloReply { ok, msg: d.get_str("msg").ok().map(str::to_owned), max_wire_version, process_id })
}

/// Applies the pool's requirements to a reply.
pub fn judge(r: &HelloReply, require_mongos: bool, min_wire_version: i32) -> Result<(), ProbeError> {
    if !r.ok {
        return Err(ProbeError::Refused("ok is not 1".into()));
    }
    if require_mongos && r.msg.as_deref() != Some("isdbgrid") {
        return Err(ProbeError::Refused(format!("not a mongos (msg {:?}, want \"isdbgrid\")", r.msg)));
    }
    match r.max_wire_version {
        Some(v) if v >= min_wire_version => Ok(()),
        v => Err(ProbeError::Refused(format!("maxWireVersion {v:?} below min_wire_version {min_wire_version}"))),
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on constants
mod tests {
    use super::*;
    use bson::oid::ObjectId;

    fn reply_msg(d: bson::Document) -> Vec<u8> {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.push(0);
        d.to_writer(&mut body).unwrap();
        let mut out = Vec::new();
        Header { length: (16 + body.len()) as u32, request_id: 9, response_to: PROBE_REQUEST_ID, op_code: OP_MSG }
            .write(&mut out);
        out.extend(body);
        out
    }

    #[test]
    fn requests_are_well_formed() {
        let m = hello_op_msg(false);
        assert!(hello_op_msg(true).len() > m.len());
        let h = Header::parse(&m, u32::MAX).unwrap().unwrap();
        assert_eq!((h.length as usize, h.op_code), (m.len(), OP_MSG));
        let r = super::super::command::parse_request(OP_MSG, &m[16..]);
        assert_eq!((r.command, r.db), (Some("hello"), Some("admin")));
        let q = is_master_op_query();
        let r = super::super::command::parse_request(OP_QUERY, &q[16..]);
        assert_eq!((r.command, r.db), (Some("isMaster"), Some("admin")));
    }

    #[test]
    fn judges_mongos_replies() {
        let pid = ObjectId::new();
        let good = doc! {"isWritablePrimary": true, "msg": "isdbgrid", "maxWireVersion": 21, "ok": 1.0,
        "topologyVersion": {"processId": pid, "counter": 0_i64}};
        let r = parse_reply(&reply_msg(good)).unwrap();
        assert_eq!(r.process_id, Some(pid.bytes()));
        assert_eq!(judge(&r, true, 9), Ok(()));

        let mongod = parse_reply(&reply_msg(doc! {"maxWireVersion": 21, "ok": 1})).unwrap();
        assert!(judge(&mongod, true, 9).is_err());
        assert_eq!(judge(&mongod, false, 9), Ok(()));
        let old = parse_reply(&reply_msg(doc! {"msg": "isdbgrid", "maxWireVersion": 8, "ok": 1})).unwrap();
        assert!(judge(&old, true, 9).is_err());
        let failed = parse_reply(&reply_msg(doc! {"msg": "isdbgrid", "maxWireVersion": 21, "ok": 0})).unwrap();
        assert!(judge(&failed, true, 9).is_err());
        let mut wrong = reply_msg(doc! {"ok": 1});
        wrong[8] = 0;
        assert!(parse_reply(&wrong).is_err());
        assert!(parse_reply(&[1, 2, 3]).is_err());
    }
}
