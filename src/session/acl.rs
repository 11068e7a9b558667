//! The proxy-user gate both Redis pool modes run first for every request
//! when their pool has users (`PoolConfig::users`): AUTH and HELLO AUTH
//! against the users, Redis's NOAUTH gate, then the user's ACL check
//! (`acl::User::check`). Sans-IO: a pure function of the request, the
//! pool's users and the client's user.
//!
//! Rules, as Redis 7 has them:
//! - before AUTH a client may send AUTH, HELLO, PING and QUIT only; the
//!   rest get `-NOAUTH Authentication required.`;
//! - `AUTH pass` is `AUTH default pass`; a wrong pair, an unknown or a
//!   disabled user get one WRONGPASS text, and leave the client as it was;
//! - AUTH, HELLO and QUIT are never checked against a user's commands
//!   (Redis's `no-auth` flag); everything else is, PING included.
//!
//! Invariant: `Gate::Pass` only for a client with a user, whose user
//! allowed the whole request (every key, every channel).

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;

use super::handshake::{self, Ctx, Hs, Mode};
use crate::acl::{User, Users, NOAUTH, WRONGPASS};
use crate::protocol::command::{self, flag, Command};
use crate::protocol::resp::{encode, Request};

/// What the gate decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// The pool's own dispatch goes on.
    Pass,
    /// Answered here (AUTH, HELLO, PING before AUTH, NOAUTH).
    Reply(Bytes),
    /// Refused by the user's ACL: a NOPERM reply; nothing is sent.
    Denied(Bytes),
}

const OK: &[u8] = b"+OK\r\n";

/// Runs the gate for `req`. `user` is the client's user (`None` before
/// AUTH); `id` is the client id HELLO reports.
pub fn gate(users: &Users, user: &mut Option<Arc<User>>, hs: &mut Hs, mode: Mode, id: u64, req: &Request) -> Gate {
    gate_found(users, user, hs, mode, id, req, command::lookup(req.name()))
}

/// `gate` for a request whose top-level command the caller already looked
/// up (`command::lookup(req.name())`): the hot path names the command
/// once, and AUTH / HELLO / QUIT / PING are told apart by their table row.
/// An authenticated client's command without Redis's `no-auth` flag (all
/// but AUTH, HELLO, QUIT) goes straight to the user's check, inlined.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn gate_found(
    users: &Users,
    user: &mut Option<Arc<User>>,
    hs: &mut Hs,
    mode: Mode,
    id: u64,
    req: &Request,
    top: Option<(usize, &'static Command)>,
) -> Gate {
    if let (Some(u), Some((_, cmd))) = (user.as_deref(), top) {
        if cmd.flags & flag::NO_AUTH == 0 {
            return match u.check_found(top, req) {
                Ok(()) => Gate::Pass,
                Err(d) => Gate::Denied(d.reply(&u.name, req.name())),
            };
        }
    }
    gate_slow(users, user, hs, mode, id, req, top)
}

/// `gate_found` for everything but the hot path: AUTH, HELLO, QUIT, a
/// client without a user, a command outside the table.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn gate_slow(
    users: &Users,
    user: &mut Option<Arc<User>>,
    hs: &mut Hs,
    mode: Mode,
    id: u64,
    req: &Request,
    top: Option<(usize, &'static Command)>,
) -> Gate {
    let name = req.name();
    let table_name = top.map_or("", |(_, c)| c.name);
    if table_name == "AUTH" {
        let found = match req.argc() {
            2 => users.authenticate(b"default", req.arg(1)),
            3 => users.authenticate(req.arg(1), req.arg(2)),
            _ => return Gate::Reply(encode::error("ERR wrong number of arguments for 'auth' command")),
        };
        return Gate::Reply(match found {
            Some(u) => {
                *user = Some(u);
                Bytes::from_static(OK)
            }
            None => encode::error(WRONGPASS),
        });
    }
    if table_name == "HELLO" {
        return Gate::Reply(hello(users, user, hs, mode, id, req));
    }
    if table_name == "QUIT" {
        return Gate::Pass;
    }
    let Some(u) = user.as_deref() else {
        if table_name == "PING" && req.argc() <= 2 {
            return Gate::Reply(if req.argc() == 2 {
                encode::bulk(req.arg(1))
            } else {
                Bytes::from_static(b"+PONG\r\n")
            });
        }
        return Gate::Reply(Bytes::from_static(NOAUTH));
    };
    match u.check_found(top, req) {
        Ok(()) => Gate::Pass,
        Err(d) => Gate::Denied(d.reply(&u.name, name)),
    }
}

/// After a reload: the client's user in the pool's new set (its new
/// rules apply from the next request). `false`: the user was removed or
/// disabled, and the client must be closed between requests. A client
/// without a user keeps its state (with users it still needs AUTH).
pub fn refresh(users: Option<&Users>, user: &mut Option<Arc<User>>) -> bool {
    let Some(old) = user.as_ref() else { return true };
    match users.and_then(|u| u.get(&old.name)) {
        Some(new) if new.enabled() => {
            *user = Some(new.clone());
            true
        }
        _ => false,
    }
}

/// Whether two user sets are the same (a reload rebuilds the `Arc`, so
/// equal contents count as the same).
pub fn same_users(a: Option<&Arc<Users>>, b: Option<&Arc<Users>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        _ => false,
    }
}

/// HELLO through the shared handshake, its AUTH against `users`.
fn hello(users: &Users, user: &mut Option<Arc<User>>, hs: &mut Hs, mode: Mode, id: u64, req: &Request) -> Bytes {
    let found: RefCell<Option<Arc<User>>> = RefCell::new(None);
    let check = |name: &[u8], pass: &[u8]| match users.authenticate(name, pass) {
        Some(u) => {
            *found.borrow_mut() = Some(u);
            Ok(())
        }
        None => Err(WRONGPASS),
    };
    let mut authed = user.is_some();
    let ctx = Ctx { mode, id, authed: &mut authed, check: &check, noauth: NOAUTH };
    let reply = handshake::answer(req, hs, ctx).unwrap_or_default();
    if let Some(u) = found.into_inner() {
        *user = Some(u);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        let alice = User::from_rules("alice", "on >a-pw +@read ~app:*").unwrap();
        let def = User::from_rules("default", "on >pw +@all allkeys").unwrap();
        let off = User::from_rules("bob", "off >b-pw +@all").unwrap();
        Users::new(vec![Arc::new(alice), Arc::new(def), Arc::new(off)])
    }

    fn run(u: &mut Option<Arc<User>>, args: &[&str]) -> Gate {
        let req = Request::from_args(args.iter().map(|a| a.as_bytes()));
        gate(&users(), u, &mut Hs::default(), Mode::Standalone, 1, &req)
    }

    fn reply(text: &str) -> Gate {
        Gate::Reply(Bytes::from(text.to_owned()))
    }

    #[test]
    fn noauth_then_auth_then_acl() {
        let mut u = None;
        assert_eq!(run(&mut u, &["GET", "app:1"]), reply("-NOAUTH Authentication required.\r\n"));
        assert_eq!(run(&mut u, &["PING"]), reply("+PONG\r\n"));
        assert_eq!(run(&mut u, &["QUIT"]), Gate::Pass);
        let wrong = reply("-WRONGPASS invalid username-password pair or user is disabled.\r\n");
        assert_eq!(run(&mut u, &["AUTH", "alice", "nope"]), wrong);
        assert_eq!(run(&mut u, &["AUTH", "bob", "b-pw"]), wrong, "disabled");
        assert_eq!(run(&mut u, &["AUTH", "nobody", "x"]), wrong);
        assert!(u.is_none());
        assert_eq!(run(&mut u, &["AUTH", "alice", "a-pw"]), reply("+OK\r\n"));
        assert_eq!(run(&mut u, &["GET", "app:1"]), Gate::Pass);
        assert_eq!(
            run(&mut u, &["GET", "x"]),
            Gate::Denied(Bytes::from_static(b"-NOPERM No permissions to access a key\r\n"))
        );
        assert_eq!(
            run(&mut u, &["SET", "app:1", "v"]),
            Gate::Denied(Bytes::from_static(b"-NOPERM User alice has no permissions to run the 'set' command\r\n"))
        );
        assert_eq!(run(&mut u, &["AUTH", "alice", "bad"]), wrong);
        assert_eq!(u.as_ref().map(|u| u.name.as_str()), Some("alice"), "a failed AUTH changes nothing");
        assert_eq!(run(&mut u, &["AUTH", "pw"]), reply("+OK\r\n"));
        assert_eq!(u.as_ref().map(|u| u.name.as_str()), Some("default"));
    }

    #[test]
    fn hello_auth() {
        let mut u = None;
        let Gate::Reply(r) = run(&mut u, &["HELLO", "3"]) else { panic!() };
        assert!(r.starts_with(b"-NOAUTH HELLO must be called"), "{r:?}");
        let Gate::Reply(r) = run(&mut u, &["HELLO", "3", "AUTH", "alice", "x"]) else { panic!() };
        assert!(r.starts_with(b"-WRONGPASS"), "{r:?}");
        let Gate::Reply(r) = run(&mut u, &["HELLO", "3", "AUTH", "alice", "a-pw"]) else { panic!() };
        assert!(r.starts_with(b"%7"), "{r:?}");
        assert_eq!(u.as_ref().map(|u| u.name.as_str()), Some("alice"));
    }
}
