//! The connection handshake, answered by Puerta itself in twemproxy and
//! cluster mode alike (whatever `unsupported` says): HELLO [2|3] [AUTH u p]
//! [SETNAME n], CLIENT SETINFO / SETNAME / GETNAME / ID / INFO / NO-EVICT /
//! NO-TOUCH, SELECT 0, PING [msg], ECHO, READONLY / READWRITE. Sans-IO: a
//! pure function of the request, the client's handshake state and the
//! pool's password check.
//!
//! Invariants:
//! - replies are encoded for the protocol the client negotiated (HELLO's
//!   map, nulls and CLIENT INFO's verbatim string in RESP3); error texts are
//!   Redis 7's own;
//! - `Hs::resp3` changes only on a successful HELLO, so a client's
//!   replies switch protocol exactly at that reply;
//! - nothing but HELLO (with AUTH) passes the password gate, and a failed
//!   HELLO AUTH changes nothing but the auth state.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::num::parse_i64;
use crate::protocol::resp::encode::{self, put_bulk, put_header};
use crate::protocol::resp::Request;

/// Which Redis deployment Puerta presents itself as (HELLO's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

/// A client's handshake state: a flag and one pointer, so that it adds 16
/// bytes to every client (`session::mux::tests_size`); the names live in
/// a box made by the first CLIENT SETNAME / SETINFO.
#[derive(Debug, Clone, Default)]
pub struct Hs {
    /// The client negotiated RESP3 (HELLO 3).
    pub resp3: bool,
    names: Option<Box<Names>>,
}

/// What CLIENT SETNAME and SETINFO set.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
}

impl Hs {
    /// The names, set or not.
    pub fn names(&self) -> &Names {
        static NONE: Names = Names { name: None, lib_name: None, lib_ver: None };
        self.names.as_deref().unwrap_or(&NONE)
    }

    fn names_mut(&mut self) -> &mut Names {
        self.names.get_or_insert_with(Box::default)
    }

    /// CLIENT SETNAME / HELLO SETNAME: an empty name clears it.
    fn set_name(&mut self, name: Bytes) {
        if name.is_empty() && self.names.is_none() {
            return;
        }
        self.names_mut().name = (!name.is_empty()).then_some(name);
    }
}

/// What the pool says about a password: `Ok` accepted, `Err` Redis's error
/// text (no password configured, or a wrong pair).
pub type AuthCheck<'a> = &'a dyn Fn(&[u8], &[u8]) -> Result<(), &'static str>;

/// The pool side of one answer.
pub struct Ctx<'a> {
    pub mode: Mode,
    /// The client's id (CLIENT ID, HELLO's `id`).
    pub id: u64,
    /// Whether the client passed AUTH (true when none is configured).
    pub authed: &'a mut bool,
    pub check: AuthCheck<'a>,
    /// The pool's answer to a command before AUTH (nutcracker's or Redis's).
    pub noauth: &'static [u8],
}

const OK: &[u8] = b"+OK\r\n";
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
version at the same time";
const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Whether `name` is a command this module answers (cheap: by length
/// first, so other commands pay one comparison at most).
pub fn is_handshake(name: &[u8]) -> bool {
    let known: &[&[u8]] = match name.len() {
        4 => &[b"PING", b"ECHO"],
        5 => &[b"HELLO"],
        6 => &[b"CLIENT", b"SELECT"],
        8 => &[b"READONLY"],
        9 => &[b"READWRITE"],
        _ => return false,
    };
    known.iter().any(|k| name.eq_ignore_ascii_case(k))
}

/// The answer to a handshake command, or `None` when `req` is none.
pub fn answer(req: &Request, hs: &mut Hs, ctx: Ctx<'_>) -> Option<Bytes> {
    let name = req.name().to_ascii_uppercase();
    if !*ctx.authed && name != b"HELLO" {
        return is_handshake(&name).then(|| Bytes::from_static(ctx.noauth));
    }
    let n = req.argc();
    Some(match &name[..] {
        b"HELLO" => hello(req, hs, ctx),
        b"CLIENT" => client(req, hs, &ctx),
        b"PING" if n == 1 => Bytes::from_static(b"+PONG\r\n"),
        b"PING" | b"ECHO" if n == 2 => encode::bulk(req.arg(1)),
        b"READONLY" | b"READWRITE" if n == 1 => Bytes::from_static(OK),
        b"SELECT" if n == 2 => match parse_i64(req.arg(1)) {
            Some(0) => Bytes::from_static(OK),
            _ if ctx.mode == Mode::Cluster => encode::error("ERR SELECT is not allowed in cluster mode"),
            Some(_) => encode::error("ERR DB index is out of range"),
            None => encode::error("ERR value is not an integer or out of range"),
        },
        b"PING" | b"ECHO" | b"READONLY" | b"READWRITE" | b"SELECT" => arity(&name),
        _ => return None,
    })
}

fn arity(cmd: &[u8]) -> Bytes {
    let cmd = String::from_utf8_lossy(cmd).to_ascii_lowercase();
    encode::error(&format!("ERR wrong number of arguments for '{cmd}' command"))
}

fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]].
fn hello(req: &Request, hs: &mut Hs, ctx: Ctx<'_>) -> Bytes {
    let mut resp3 = hs.resp3;
    if req.argc() >= 2 {
        match parse_i64(req.arg(1)) {
            Some(2) => resp3 = false,
            Some(3) => resp3 = true,
            Some(_) => return encode::error("NOPROTO unsupported protocol version"),
            None => return encode::error("ERR Protocol version is not an integer or out of range"),
        }
    }
    let (mut auth, mut setname) = (None, None);
    let mut i = 2;
    while i < req.argc() {
        let opt = req.arg(i);
        let more = req.argc() - i - 1;
        if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            auth = Some((req.arg(i + 1), req.arg(i + 2)));
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            let name = req.arg_bytes(i + 1);
            if !valid_name(&name) {
                return encode::error(BAD_NAME);
            }
            setname = Some(name);
            i += 2;
        } else {
            let opt = String::from_utf8_lossy(opt).into_owned();
            return encode::error(&format!("ERR Syntax error in HELLO option '{opt}'"));
        }
    }
    if let Some((user, pass)) = auth {
        match (ctx.check)(user, pass) {
            Ok(()) => *ctx.authed = true,
            Err(e) => {
                *ctx.authed = false;
                return encode::error(e);
            }
        }
    }
    if !*ctx.authed {
        return encode::error(HELLO_NOAUTH);
    }
    if let Some(name) = setname {
        hs.set_name(name);
    }
    hs.resp3 = resp3;
    let mode = match ctx.mode {
        Mode::Standalone => &b"standalone"[..],
        Mode::Cluster => b"cluster",
    };
    let mut out = BytesMut::with_capacity(160);
    map_header(&mut out, resp3, 7);
    put_bulk(&mut out, b"server");
    put_bulk(&mut out, b"puerta");
    put_bulk(&mut out, b"version");
    put_bulk(&mut out, env!("CARGO_PKG_VERSION").as_bytes());
    put_bulk(&mut out, b"proto");
    put_header(&mut out, b':', if resp3 { 3 } else { 2 });
    put_bulk(&mut out, b"id");
    put_header(&mut out, b':', i64::try_from(ctx.id).unwrap_or(i64::MAX));
    put_bulk(&mut out, b"mode");
    put_bulk(&mut out, mode);
    put_bulk(&mut out, b"role");
    put_bulk(&mut out, b"master");
    put_bulk(&mut out, b"modules");
    out.put_slice(b"*0\r\n");
    out.freeze()
}

/// A map of `pairs` in RESP3, a flat array of twice as many in RESP2.
fn map_header(out: &mut BytesMut, resp3: bool, pairs: i64) {
    if resp3 {
        put_header(out, b'%', pairs);
    } else {
        put_header(out, b'*', pairs * 2);
    }
}

fn null(resp3: bool) -> Bytes {
    Bytes::from_static(if resp3 { b"_\r\n" } else { b"$-1\r\n" })
}

fn client(req: &Request, hs: &mut Hs, ctx: &Ctx<'_>) -> Bytes {
    let n = req.argc();
    if n < 2 {
        return arity(b"client");
    }
    let sub = req.arg(1).to_ascii_uppercase();
    let sub_arity = || {
        let s = String::from_utf8_lossy(&sub).to_ascii_lowercase();
        encode::error(&format!("ERR wrong number of arguments for 'client|{s}' command"))
    };
    match &sub[..] {
        b"SETNAME" if n == 3 => {
            let name = req.arg_bytes(2);
            if !valid_name(&name) {
                return encode::error(BAD_NAME);
            }
            hs.set_name(name);
            Bytes::from_static(OK)
        }
        b"GETNAME" if n == 2 => hs.names().name.as_deref().map_or_else(|| null(hs.resp3), encode::bulk),
        b"ID" if n == 2 => encode::integer(i64::try_from(ctx.id).unwrap_or(i64::MAX)),
        b"INFO" if n == 2 => info(hs, ctx),
        b"SETINFO" if n == 4 => {
            let attr = req.arg(2);
            let val = req.arg_bytes(3);
            if !valid_name(&val) && !val.is_empty() {
                let a = String::from_utf8_lossy(attr).to_ascii_lowercase();
                return encode::error(&format!("ERR {a} cannot contain spaces, newlines or special characters."));
            }
            if attr.eq_ignore_ascii_case(b"LIB-NAME") {
                hs.names_mut().lib_name = Some(val);
            } else if attr.eq_ignore_ascii_case(b"LIB-VER") {
                hs.names_mut().lib_ver = Some(val);
            } else {
                let a = String::from_utf8_lossy(attr).into_owned();
                return encode::error(&format!("ERR Unrecognized option '{a}'"));
            }
            Bytes::from_static(OK)
        }
        b"NO-EVICT" | b"NO-TOUCH" if n == 3 => {
            let on = req.arg(2);
            if on.eq_ignore_ascii_case(b"ON") || on.eq_ignore_ascii_case(b"OFF") {
                Bytes::from_static(OK)
            } else {
                encode::error("ERR syntax error")
            }
        }
        b"SETNAME" | b"GETNAME" | b"ID" | b"INFO" | b"SETINFO" | b"NO-EVICT" | b"NO-TOUCH" => sub_arity(),
        b"TRACKING" => encode::error(
            "ERR CLIENT TRACKING is not supported through Puerta (no server-assisted client-side caching)",
        ),
        _ => {
            let s = String::from_utf8_lossy(req.arg(1)).into_owned();
            encode::error(&format!("ERR unknown subcommand '{s}'. Try CLIENT HELP."))
        }
    }
}

/// CLIENT INFO: the fields Puerta knows, in Redis's `key=value` line
/// (a verbatim string in RESP3, as Redis sends it).
fn info(hs: &Hs, ctx: &Ctx<'_>) -> Bytes {
    let s = |b: &Option<Bytes>| b.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
    let line = format!(
        "id={} name={} db=0 resp={} lib-name={} lib-ver={}\n",
        ctx.id,
        s(&hs.names().name),
        if hs.resp3 { 3 } else { 2 },
        s(&hs.names().lib_name),
        s(&hs.names().lib_ver),
    );
    if !hs.resp3 {
        return encode::bulk(line.as_bytes());
    }
    let mut out = BytesMut::with_capacity(line.len() + 16);
    put_header(&mut out, b'=', line.len() as i64 + 4);
    out.put_slice(b"txt:");
    out.put_slice(line.as_bytes());
    out.put_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
