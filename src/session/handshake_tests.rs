//! Unit tests of the local handshake answers (HELLO, CLIENT, SELECT, PING,
//! ECHO, READONLY) in both protocols, with and without a pool password.

use bytes::BytesMut;

use super::*;
use crate::protocol::resp::RequestDecoder;

fn req(args: &[&str]) -> Request {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let mut buf = BytesMut::from(&encode::command(args.into_iter())[..]);
    RequestDecoder::new(1 << 20).decode(&mut buf).unwrap().unwrap()
}

fn pw(user: &[u8], pass: &[u8]) -> Result<(), &'static str> {
    if user == b"default" && pass == b"secret" {
        Ok(())
    } else {
        Err("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

/// Runs `args` as client `7` of a `mode` pool with password "secret".
fn run(hs: &mut Hs, authed: &mut bool, mode: Mode, args: &[&str]) -> Option<String> {
    let ctx = Ctx { mode, id: 7, authed, check: &pw, noauth: b"-NOAUTH Authentication required.\r\n" };
    answer(&req(args), hs, ctx).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn ok(hs: &mut Hs, args: &[&str]) -> String {
    run(hs, &mut true, Mode::Standalone, args).unwrap()
}

#[test]
fn hello_3_answers_a_map_and_switches_protocol() {
    let mut hs = Hs::default();
    let r = ok(&mut hs, &["HELLO", "3"]);
    assert!(r.starts_with("%7\r\n$6\r\nserver\r\n$6\r\npuerta\r\n$7\r\nversion\r\n"), "{r}");
    assert!(r.contains("$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"), "{r}");
    assert!(r.ends_with("$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"), "{r}");
    assert!(hs.resp3);
    // Local replies now use RESP3's null; HELLO 2 goes back to arrays.
    assert_eq!(ok(&mut hs, &["CLIENT", "GETNAME"]), "_\r\n");
    let r = run(&mut hs, &mut true, Mode::Cluster, &["hello", "2", "SETNAME", "app"]).unwrap();
    assert!(r.starts_with("*14\r\n") && r.contains(":2\r\n") && r.contains("$7\r\ncluster\r\n"), "{r}");
    assert!(!hs.resp3);
    assert_eq!(ok(&mut hs, &["CLIENT", "GETNAME"]), "$3\r\napp\r\n");
}

#[test]
fn hello_errors_are_redis_texts_and_change_nothing() {
    let mut hs = Hs::default();
    assert_eq!(ok(&mut hs, &["HELLO", "4"]), "-NOPROTO unsupported protocol version\r\n");
    assert_eq!(ok(&mut hs, &["HELLO", "x"]), "-ERR Protocol version is not an integer or out of range\r\n");
    assert_eq!(ok(&mut hs, &["HELLO", "3", "AUTH", "u"]), "-ERR Syntax error in HELLO option 'AUTH'\r\n");
    assert_eq!(ok(&mut hs, &["HELLO", "3", "SETNAME", "a b"]), format!("-{BAD_NAME}\r\n"));
    assert!(!hs.resp3 && hs.names().name.is_none());
}

#[test]
fn hello_auth_checks_the_pool_password() {
    let (mut hs, mut authed) = (Hs::default(), false);
    let r = run(&mut hs, &mut authed, Mode::Standalone, &["PING"]).unwrap();
    assert_eq!(r, "-NOAUTH Authentication required.\r\n");
    let r = run(&mut hs, &mut authed, Mode::Standalone, &["HELLO", "3"]).unwrap();
    assert!(r.starts_with("-NOAUTH HELLO must be called"), "{r}");
    let r = run(&mut hs, &mut authed, Mode::Standalone, &["HELLO", "3", "AUTH", "default", "nope"]).unwrap();
    assert!(r.starts_with("-WRONGPASS") && !authed && !hs.resp3, "{r}");
    let r = run(&mut hs, &mut authed, Mode::Standalone, &["HELLO", "3", "AUTH", "default", "secret"]).unwrap();
    assert!(r.starts_with("%7\r\n") && authed && hs.resp3, "{r}");
    assert_eq!(run(&mut hs, &mut authed, Mode::Standalone, &["PING"]).unwrap(), "+PONG\r\n");
}

#[test]
fn client_subcommands() {
    let mut hs = Hs::default();
    assert_eq!(ok(&mut hs, &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]), "+OK\r\n");
    assert_eq!(ok(&mut hs, &["CLIENT", "SETINFO", "lib-ver", "8.2.0"]), "+OK\r\n");
    assert_eq!(ok(&mut hs, &["CLIENT", "SETINFO", "color", "x"]), "-ERR Unrecognized option 'color'\r\n");
    assert_eq!(ok(&mut hs, &["CLIENT", "SETNAME", "w1"]), "+OK\r\n");
    assert_eq!(ok(&mut hs, &["CLIENT", "ID"]), ":7\r\n");
    assert_eq!(ok(&mut hs, &["CLIENT", "NO-EVICT", "on"]), "+OK\r\n");
    assert_eq!(ok(&mut hs, &["CLIENT", "NO-TOUCH", "maybe"]), "-ERR syntax error\r\n");
    let info = ok(&mut hs, &["CLIENT", "INFO"]);
    assert!(info.contains("id=7 name=w1 db=0 resp=2 lib-name=redis-py lib-ver=8.2.0\n"), "{info}");
    assert_eq!(
        ok(&mut hs, &["CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", "internal-ip"]),
        "-ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n"
    );
    assert!(ok(&mut hs, &["CLIENT", "TRACKING", "on"]).starts_with("-ERR CLIENT TRACKING is not supported"));
    assert_eq!(ok(&mut hs, &["CLIENT", "SETNAME"]), "-ERR wrong number of arguments for 'client|setname' command\r\n");
    assert_eq!(ok(&mut hs, &["CLIENT"]), "-ERR wrong number of arguments for 'client' command\r\n");
    hs.resp3 = true;
    let info = ok(&mut hs, &["CLIENT", "INFO"]);
    assert!(info.starts_with('=') && info.contains("\r\ntxt:id=7 ") && info.contains("resp=3"), "{info}");
}

#[test]
fn select_ping_echo_readonly() {
    let mut hs = Hs::default();
    assert_eq!(ok(&mut hs, &["SELECT", "0"]), "+OK\r\n");
    assert_eq!(ok(&mut hs, &["SELECT", "1"]), "-ERR DB index is out of range\r\n");
    let r = run(&mut hs, &mut true, Mode::Cluster, &["SELECT", "1"]).unwrap();
    assert_eq!(r, "-ERR SELECT is not allowed in cluster mode\r\n");
    assert_eq!(ok(&mut hs, &["SELECT"]), "-ERR wrong number of arguments for 'select' command\r\n");
    assert_eq!(ok(&mut hs, &["PING"]), "+PONG\r\n");
    assert_eq!(ok(&mut hs, &["ping", "hi"]), "$2\r\nhi\r\n");
    assert_eq!(ok(&mut hs, &["ECHO", "x"]), "$1\r\nx\r\n");
    assert_eq!(ok(&mut hs, &["READONLY"]), "+OK\r\n");
    assert_eq!(ok(&mut hs, &["READWRITE", "x"]), "-ERR wrong number of arguments for 'readwrite' command\r\n");
    assert!(run(&mut hs, &mut true, Mode::Standalone, &["GET", "k"]).is_none());
    assert!(is_handshake(b"client") && is_handshake(b"Hello") && !is_handshake(b"GET"));
}
