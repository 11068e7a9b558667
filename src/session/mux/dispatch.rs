//! From one decoded client request to a plan: answer locally, close, or
//! forward as one or more fragments. Pure functions of the request, the
//! pool config, the client's AUTH state and the router.
//!
//! Behaviour follows nutcracker 0.5.0 (see `protocol::resp::command`):
//! PING/QUIT/AUTH are local, unknown commands and wrong arity close unless
//! `unsupported = "error"`, and the AUTH strings are nutcracker's. Keyed
//! commands go where all their keys map (Redis's key specs), or get
//! `cross_server`'s error.

use bytes::Bytes;

use super::backend::RouteBy;
use super::reply::MergePlan;
use super::types::{ClientClose, ClientId, LocalStats, MuxConfig, Router, Unsupported};
use crate::protocol::command::{for_each_key, single_key, Command};
use crate::protocol::memcache::local::{stats_reply, FLUSH_REFUSED};
use crate::protocol::memcache::{split_get, McCmd, McRequest};
use crate::protocol::resp::command::{check, Check, Kind, Merge};
use crate::protocol::resp::scripts::{self, Scope};
use crate::protocol::resp::{encode, split, Fragment, Request, SplitError};
use crate::protocol::ProtoError;
use crate::session::acl::{self, Gate};
use crate::session::handshake::{self, Ctx, Hs, Mode};
use crate::session::info::ProxyFields;
use crate::session::ratelimit::RateGate;

pub(super) const PONG: &[u8] = b"+PONG\r\n";
pub(super) const OK: &[u8] = b"+OK\r\n";
pub(super) const NOAUTH: &[u8] = b"-NOAUTH Authentication required\r\n";
pub(super) const BAD_PASSWORD: &[u8] = b"-ERR invalid password\r\n";
pub(super) const NO_PASSWORD: &[u8] = b"-ERR Client sent AUTH, but no password is set\r\n";

pub(super) enum Plan {
    Reply(Bytes),
    /// Close after the replies before it (and `Some` reply) are delivered.
    Close(ClientClose, Option<Bytes>),
    Forward(Forward),
    /// One request forwarded whole to `server`, its one reply passed back
    /// (the GET path: `Forward` without its fragment and key lists).
    One {
        server: u32,
        request: Bytes,
        route: RouteBy,
    },
}

pub(super) struct Forward {
    pub frags: Vec<Fragment>,
    /// Where, in each fragment, the key it was routed by sits (re-routed
    /// if its backend dies before the fragment was sent); `Server(_)`:
    /// each fragment stays on the server it was made for.
    pub route: RouteBy,
    pub merge: MergePlan,
    /// memcached get/gets: the reply is VALUE blocks up to END.
    pub retrieval: bool,
    /// memcached noreply: nothing comes back.
    pub noreply: bool,
}

/// Wraps the router so a route past the pool's servers counts as none.
fn bounded<'a>(cfg: &'a MuxConfig, router: &'a dyn Router) -> impl Fn(&[u8]) -> Option<u32> + 'a {
    move |k| router.route(k).filter(|&s| s < cfg.servers)
}

/// What a request naming more than `max_keys_per_request` keys gets. The
/// request was parsed whole, so the connection stays in sync and open.
fn too_many_keys(cfg: &MuxConfig) -> String {
    format!("too many keys in request (max_keys_per_request = {})", cfg.max_keys_per_request)
}

/// The line a memcached client gets for a request that does not parse, in
/// memcached's own words, before the connection closes.
pub(super) fn mc_error(e: &ProtoError) -> Bytes {
    match e {
        ProtoError::McUnknown => Bytes::from_static(b"ERROR\r\n"),
        ProtoError::McTooLarge { .. } => Bytes::from_static(b"SERVER_ERROR object too large for cache\r\n"),
        e => Bytes::from(format!("CLIENT_ERROR {e}\r\n")),
    }
}

fn no_server(cfg: &MuxConfig) -> Plan {
    match cfg.protocol {
        super::Protocol::Redis => Plan::Reply(encode::error("ERR no server available for key")),
        super::Protocol::Memcache => Plan::Reply(Bytes::from_static(b"SERVER_ERROR no server available for key\r\n")),
    }
}

fn refuse(cfg: &MuxConfig, why: ClientClose, text: String) -> Plan {
    match cfg.unsupported {
        Unsupported::Close => Plan::Close(why, None),
        Unsupported::Error => Plan::Reply(encode::error(&text)),
    }
}

/// HELLO AUTH against nutcracker's `redis_auth` (user `default`).
fn hello_auth(cfg: &MuxConfig, user: &[u8], pass: &[u8]) -> Result<(), &'static str> {
    match &cfg.redis_auth {
        None => Err("ERR AUTH <password> called without any password configured for the default user. \
Are you sure your configuration is correct?"),
        Some(p) if user == b"default" && p[..] == *pass => Ok(()),
        Some(_) => Err("WRONGPASS invalid username-password pair or user is disabled."),
    }
}

/// The handshake commands, answered locally whatever `unsupported` says.
fn plan_handshake(cfg: &MuxConfig, authed: &mut bool, hs: &mut Hs, id: ClientId, req: &Request) -> Option<Plan> {
    let mut ok = cfg.redis_auth.is_none() || *authed;
    let check = |u: &[u8], p: &[u8]| hello_auth(cfg, u, p);
    let ctx = Ctx { mode: Mode::Standalone, id: u64::from(id.idx) + 1, authed: &mut ok, check: &check, noauth: NOAUTH };
    let reply = handshake::answer(req, hs, ctx)?;
    if cfg.redis_auth.is_some() {
        *authed = ok;
    }
    Some(Plan::Reply(reply))
}

/// What INFO needs from the session: its live clients and the commands
/// it has decoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub clients: u64,
    pub commands: u64,
}

/// The AUTH and ACL gate alone, for a command the session answers
/// itself (SLOWLOG): `Some` is the refusal to send instead.
pub(super) fn gate_local(
    cfg: &MuxConfig,
    authed: &mut bool,
    user: &mut Option<std::sync::Arc<crate::acl::User>>,
    hs: &mut Hs,
    id: ClientId,
    req: &Request,
    rate: &RateGate,
) -> Option<Plan> {
    if let Some(users) = cfg.users.as_deref() {
        match acl::gate(users, user, hs, Mode::Standalone, u64::from(id.idx) + 1, req) {
            Gate::Pass => *authed |= user.is_some(),
            Gate::Reply(r) => return Some(Plan::Reply(r)),
            Gate::Denied(r) => {
                rate.note_denied(user.as_ref().map(|u| u.id));
                return Some(Plan::Reply(r));
            }
        }
    }
    (cfg.redis_auth.is_some() && !*authed).then(|| Plan::Reply(Bytes::from_static(NOAUTH)))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn plan_redis(
    cfg: &MuxConfig,
    authed: &mut bool,
    user: &mut Option<std::sync::Arc<crate::acl::User>>,
    hs: &mut Hs,
    id: ClientId,
    req: Request,
    router: &dyn Router,
    counts: Counts,
    rate: &RateGate,
) -> Plan {
    if let Some(users) = cfg.users.as_deref() {
        // Proxy users replace `redis_auth` toward clients: once this
        // passes, the client is authenticated and allowed this request.
        match acl::gate(users, user, hs, Mode::Standalone, u64::from(id.idx) + 1, &req) {
            Gate::Pass => *authed |= user.is_some(),
            Gate::Reply(r) => return Plan::Reply(r),
            Gate::Denied(r) => {
                rate.note_denied(user.as_ref().map(|u| u.id));
                return Plan::Reply(r);
            }
        }
    }
    if handshake::is_handshake(req.name()) {
        if let Some(plan) = plan_handshake(cfg, authed, hs, id, &req) {
            return plan;
        }
    }
    // Only error paths need the name as text; keep the hot path allocation-free.
    let name = || String::from_utf8_lossy(req.name()).into_owned();
    let (spec, cmd) = match check(&req) {
        Check::Ok(spec, cmd) => (spec, cmd),
        Check::Unknown => {
            return refuse(cfg, ClientClose::Unsupported, format!("ERR unsupported command '{}'", name()))
        }
        Check::WrongArity(cmd) => {
            return refuse(
                cfg,
                ClientClose::WrongArity,
                format!("ERR wrong number of arguments for '{}' command", cmd.fullname),
            );
        }
    };
    if cfg.redis_auth.is_some() && !*authed && !matches!(spec.kind, Kind::Auth | Kind::Quit) {
        return Plan::Reply(Bytes::from_static(NOAUTH));
    }
    let kind = match spec.kind {
        Kind::Ping => return Plan::Reply(Bytes::from_static(PONG)),
        Kind::Quit => return Plan::Close(ClientClose::Quit, None),
        Kind::Auth => {
            return Plan::Reply(Bytes::from_static(match &cfg.redis_auth {
                None => NO_PASSWORD,
                Some(p) if p[..] == *req.arg(1) => {
                    *authed = true;
                    OK
                }
                Some(_) => {
                    *authed = false;
                    BAD_PASSWORD
                }
            }))
        }
        Kind::Unsupported => {
            return refuse(cfg, ClientClose::Unsupported, format!("ERR unsupported command '{}'", name()))
        }
        Kind::Eval | Kind::Scripts if !cfg.allow_scripts => {
            let name = name().to_ascii_uppercase();
            return refuse(
                cfg,
                ClientClose::Unsupported,
                format!("ERR {name} is refused by this Puerta pool (allow_scripts = false)"),
            );
        }
        Kind::Keyed => return plan_keyed(cfg, &req, cmd, router, true),
        Kind::Eval => return plan_keyed(cfg, &req, cmd, router, false),
        Kind::Scripts => return plan_scripts(cfg, req, router),
        Kind::Info => return plan_info(cfg, req, counts),
        k => k,
    };
    let (first, step) = if kind == Kind::KeyValues { (1, 2) } else { (1, 1) };
    let nkeys = req.argc().saturating_sub(first) / step;
    if matches!(kind, Kind::MultiKey(_) | Kind::KeyValues) && nkeys > cfg.max_keys_per_request {
        return Plan::Reply(encode::error(&format!("ERR {}", too_many_keys(cfg))));
    }
    let frags = match split(&req, kind, bounded(cfg, router)) {
        Ok(f) => f,
        Err(SplitError::NoServer) => return no_server(cfg),
    };
    // Each fragment of a split command is that command over its own keys,
    // so its routing key is its first argument.
    let route = if kind == Kind::NoKey { RouteBy::Empty } else { RouteBy::Arg(1) };
    let merge = match kind {
        _ if frags.len() == 1 => MergePlan::Pass,
        Kind::MultiKey(m) => MergePlan::Resp { merge: m, nkeys },
        Kind::KeyValues => MergePlan::Resp { merge: Merge::AllOk, nkeys },
        _ => MergePlan::Pass,
    };
    Plan::Forward(Forward { frags, route, merge, retrieval: false, noreply: false })
}

/// A command routed by its keys (Redis's key specs): forwarded unchanged
/// to the one server they all map to, routed by the first. With
/// `one_server` false (EVAL-shaped calls, as nutcracker does: a script may
/// mean to write its other keys next to the first), the first key decides
/// alone. Keyless (none, or a key count the server will reject): to the
/// empty key's server, so the server answers with its own error.
fn plan_keyed(cfg: &MuxConfig, req: &Request, cmd: &Command, router: &dyn Router, one_server: bool) -> Plan {
    let route = bounded(cfg, router);
    // Fast path: one key at a fixed place (GET, SET, HSET...).
    if let Some(pos) = single_key(cmd).filter(|&p| p < req.argc()) {
        let Some(server) = route(req.arg(pos)) else { return no_server(cfg) };
        let by = RouteBy::Arg(u32::try_from(pos).unwrap_or(u32::MAX));
        return Plan::One { server, request: req.raw().clone(), route: by };
    }
    // (argument index, server) of the first key; whether another key maps
    // elsewhere, or to no server at all.
    let mut first: Option<(usize, Option<u32>)> = None;
    let mut cross = false;
    let n = for_each_key(cmd, req, |i, _| match first {
        None => first = Some((i, route(req.arg(i)))),
        Some((_, server)) => cross |= one_server && route(req.arg(i)) != server,
    })
    .unwrap_or(0);
    if n > cfg.max_keys_per_request {
        return Plan::Reply(encode::error(&format!("ERR {}", too_many_keys(cfg))));
    }
    let (by, server) = match first {
        Some((_, None)) => return no_server(cfg),
        Some(_) if cross => return Plan::Reply(cross_server(cmd)),
        Some((i, Some(server))) => (RouteBy::Arg(u32::try_from(i).unwrap_or(u32::MAX)), server),
        None => match route(b"") {
            Some(server) => (RouteBy::Empty, server),
            None => return no_server(cfg),
        },
    };
    Plan::One { server, request: req.raw().clone(), route: by }
}

/// The error for a command whose keys map to different servers: nothing
/// is sent, and the connection stays.
pub(crate) fn cross_server(cmd: &Command) -> Bytes {
    encode::error(&format!("ERR '{}' keys map to different servers", cmd.fullname))
}

/// SCRIPT / FUNCTION: to every server (merged, `resp::scripts`) or, for
/// the subcommands that only read or kill, to one server like a keyless
/// command.
fn plan_scripts(cfg: &MuxConfig, req: Request, router: &dyn Router) -> Plan {
    let merge = match scripts::scope(&req) {
        Scope::One => {
            let Some(server) = bounded(cfg, router)(b"") else { return no_server(cfg) };
            let frags = vec![Fragment { server, request: req.raw().clone(), keys: vec![0] }];
            return Plan::Forward(Forward {
                frags,
                route: RouteBy::Empty,
                merge: MergePlan::Pass,
                retrieval: false,
                noreply: false,
            });
        }
        Scope::EverySame => Merge::Same,
        Scope::EveryAnd => Merge::And,
    };
    let frags = every_server(cfg, &req);
    if frags.is_empty() {
        return no_server(cfg);
    }
    let nkeys = req.argc().saturating_sub(2);
    let merge = if frags.len() == 1 { MergePlan::Pass } else { MergePlan::Resp { merge, nkeys } };
    Plan::Forward(Forward { frags, route: RouteBy::Server(0), merge, retrieval: false, noreply: false })
}

/// INFO: the client's INFO to every server, rendered with the proxy's own
/// fields (`session::info`).
fn plan_info(cfg: &MuxConfig, req: Request, counts: Counts) -> Plan {
    let frags = every_server(cfg, &req);
    if frags.is_empty() {
        return no_server(cfg);
    }
    let fields = ProxyFields {
        mode: "twemproxy",
        cluster: false,
        clients: counts.clients,
        commands: counts.commands,
        extra: vec![format!("servers:{}", cfg.servers)],
    };
    let merge = MergePlan::Info(Box::new((req, fields)));
    Plan::Forward(Forward { frags, route: RouteBy::Server(0), merge, retrieval: false, noreply: false })
}

/// One fragment per server, each the whole request.
fn every_server(cfg: &MuxConfig, req: &Request) -> Vec<Fragment> {
    (0..cfg.servers).map(|server| Fragment { server, request: req.raw().clone(), keys: vec![0] }).collect()
}

pub(super) fn plan_memcache(cfg: &MuxConfig, req: McRequest, router: &dyn Router, stats: Option<&LocalStats>) -> Plan {
    let route = bounded(cfg, router);
    match req.cmd {
        McCmd::Quit => Plan::Close(ClientClose::Quit, None),
        McCmd::Stats => Plan::Reply(stats_reply(&stats.map(|f| f()).unwrap_or_default())),
        // nutcracker closes the connection at flush_all; Puerta says why
        // first (and keeps it open with `unsupported = "error"`).
        McCmd::FlushAll if !cfg.allow_flush => match cfg.unsupported {
            Unsupported::Close => Plan::Close(ClientClose::Unsupported, Some(Bytes::from_static(FLUSH_REFUSED))),
            Unsupported::Error => Plan::Reply(Bytes::from_static(FLUSH_REFUSED)),
        },
        McCmd::FlushAll => {
            let servers = router.servers().unwrap_or_else(|| (0..cfg.servers).collect());
            let frags: Vec<Fragment> = servers
                .into_iter()
                .filter(|&s| s < cfg.servers)
                .map(|server| Fragment { server, request: req.raw().clone(), keys: Vec::new() })
                .collect();
            if frags.is_empty() {
                return no_server(cfg);
            }
            // Each part stays on its server, even if its connection dies.
            let route = RouteBy::Server(0);
            Plan::Forward(Forward { frags, route, merge: MergePlan::McFlush, retrieval: false, noreply: req.noreply })
        }
        McCmd::Get | McCmd::Gets if req.nkeys() > cfg.max_keys_per_request => {
            Plan::Reply(Bytes::from(format!("CLIENT_ERROR {}\r\n", too_many_keys(cfg))))
        }
        McCmd::Get | McCmd::Gets => {
            let frags = match split_get(&req, &route) {
                Ok(f) => f,
                Err(SplitError::NoServer) => return no_server(cfg),
            };
            let merge = if frags.len() == 1 { MergePlan::Pass } else { MergePlan::McGet(Box::new(req)) };
            // Each fragment is a get of its own keys: its first key routed it.
            Plan::Forward(Forward { frags, route: RouteBy::Arg(0), merge, retrieval: true, noreply: false })
        }
        _ => {
            // version has no key: nutcracker forwards it by the empty key.
            let key = if req.cmd == McCmd::Version { &[][..] } else { req.key(0) };
            let Some(server) = route(key) else { return no_server(cfg) };
            let frag = Fragment { server, request: req.raw().clone(), keys: vec![0] };
            let route = if req.cmd == McCmd::Version { RouteBy::Empty } else { RouteBy::Arg(0) };
            Plan::Forward(Forward {
                frags: vec![frag],
                route,
                merge: MergePlan::Pass,
                retrieval: false,
                noreply: req.noreply,
            })
        }
    }
}
