//! From one decoded client request to a plan: answer locally, close, or
//! forward as one or more fragments. Pure functions of the request, the
//! pool config, the client's AUTH state and the router.
//!
//! Behaviour follows nutcracker 0.5.0 (see `protocol::resp::command`):
//! PING/QUIT/AUTH are local, unknown commands and wrong arity close unless
//! `unsupported = "error"`, and the AUTH strings are nutcracker's.

use bytes::Bytes;

use super::backend::RouteBy;
use super::reply::MergePlan;
use super::types::{ClientClose, MuxConfig, Router, Unsupported};
use crate::protocol::memcache::{split_get, McCmd, McRequest};
use crate::protocol::num::parse_i64;
use crate::protocol::resp::command::{check, Check, Kind, Merge};
use crate::protocol::resp::scripts::{self, Scope};
use crate::protocol::resp::{encode, split, Fragment, Request, SplitError};
use crate::protocol::ProtoError;
use crate::session::info::ProxyFields;

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
}

pub(super) struct Forward {
    pub frags: Vec<Fragment>,
    /// Where, in each fragment, the key it was routed by sits (re-routed
    /// if its backend dies before the fragment was sent).
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

/// What INFO needs from the session: its live clients and the commands
/// it has decoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub clients: u64,
    pub commands: u64,
}

pub(super) fn plan_redis(
    cfg: &MuxConfig,
    authed: &mut bool,
    req: Request,
    router: &dyn Router,
    counts: Counts,
) -> Plan {
    // Only error paths need the name as text; keep the hot path allocation-free.
    let name = || String::from_utf8_lossy(req.name()).into_owned();
    let spec = match check(req.name(), req.argc(), || parse_i64(req.arg(2))) {
        Check::Ok(spec) => spec,
        Check::Unknown => {
            return refuse(cfg, ClientClose::Unsupported, format!("ERR unsupported command '{}'", name()))
        }
        Check::WrongArity(_) => {
            let lower = name().to_ascii_lowercase();
            return refuse(
                cfg,
                ClientClose::WrongArity,
                format!("ERR wrong number of arguments for '{lower}' command"),
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
    // so its routing key is its first argument, as for one-key commands;
    // EVAL is never split and routes by its first key (argument 3).
    let route = match kind {
        Kind::Eval => RouteBy::Arg(3),
        Kind::NoKey => RouteBy::Empty,
        _ => RouteBy::Arg(1),
    };
    let merge = match kind {
        _ if frags.len() == 1 => MergePlan::Pass,
        Kind::MultiKey(m) => MergePlan::Resp { merge: m, nkeys },
        Kind::KeyValues => MergePlan::Resp { merge: Merge::AllOk, nkeys },
        _ => MergePlan::Pass,
    };
    Plan::Forward(Forward { frags, route, merge, retrieval: false, noreply: false })
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
    Plan::Forward(Forward { frags, route: RouteBy::Fixed, merge, retrieval: false, noreply: false })
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
    Plan::Forward(Forward { frags, route: RouteBy::Fixed, merge, retrieval: false, noreply: false })
}

/// One fragment per server, each the whole request.
fn every_server(cfg: &MuxConfig, req: &Request) -> Vec<Fragment> {
    (0..cfg.servers).map(|server| Fragment { server, request: req.raw().clone(), keys: vec![0] }).collect()
}

pub(super) fn plan_memcache(cfg: &MuxConfig, req: McRequest, router: &dyn Router) -> Plan {
    let route = bounded(cfg, router);
    match req.cmd {
        McCmd::Quit => Plan::Close(ClientClose::Quit, None),
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
