//! The cluster pool's command policy, one for every client state (DESIGN
//! §5): normal, inside MULTI, subscribed, and pinned (WATCH, blocking).
//!
//! Layers, checked in this order by `dispatch`:
//! 1. the pool's filter (`refusal`): node administration (`Local::Refused`:
//!    CONFIG, DEBUG, SHUTDOWN, ACL, MODULE, REPLICAOF, ...), FLUSHALL /
//!    FLUSHDB under `allow_flush = false`, and script commands (EVAL...,
//!    FCALL..., SCRIPT, FUNCTION) under `allow_scripts = false`. A refused
//!    command is answered with an error and never reaches a node; inside
//!    MULTI it also makes EXEC answer EXECABORT, as Redis does for a
//!    command it rejects while queueing;
//! 2. what the state allows. Inside MULTI only commands a node runs as
//!    they are may be queued (`queueable`): the commands Puerta answers or
//!    orchestrates itself (AUTH, HELLO, CLIENT, READONLY, CLUSTER,
//!    SUBSCRIBE, the fan-outs...) would otherwise reach a shared
//!    connection raw, changing it for every client. A subscribed client
//!    may send only what Redis allows there (`allowed_subscribed`).
//!
//! Pinned clients go through the normal path: their commands are routed
//! like anyone's, and only WATCH / EXEC / UNWATCH use the pin.
//!
//! What no proxy can see: a script runs commands inside the node
//! (`EVAL "redis.call('FLUSHALL')" 0`). A pool that must refuse FLUSHALL
//! or other commands with certainty refuses scripts too.

use bytes::Bytes;

use super::ClusterSession;
use crate::protocol::cluster::commands::{is_script_command, CmdSpec, Family, Local};
use crate::protocol::resp::{encode, Request};

impl ClusterSession {
    /// The pool's refusal of `req`, whatever the client's state; `None`
    /// if the pool's filter lets it through.
    pub(super) fn refusal(&self, req: &Request, spec: &CmdSpec) -> Option<Bytes> {
        let name = || String::from_utf8_lossy(req.name()).to_ascii_uppercase();
        match spec.family {
            Family::Local(Local::Refused) => Some(encode::error(&format!(
                "ERR unsupported command '{}' through Puerta in cluster mode (node administration: connect to the node)",
                name()
            ))),
            Family::Local(Local::Flush) if !self.cfg.allow_flush => {
                Some(encode::error(&format!("ERR {} is refused by this Puerta pool (allow_flush = false)", name())))
            }
            _ if !self.cfg.allow_scripts && is_script_command(req.name()) => {
                Some(encode::error(&format!("ERR {} is refused by this Puerta pool (allow_scripts = false)", name())))
            }
            _ => None,
        }
    }
}

/// Whether a command may be queued inside MULTI: sent as it is in the
/// EXEC batch, it must mean to the node what it means to the client, and
/// must leave a shared connection as it found it.
pub(super) fn queueable(family: Family) -> bool {
    match family {
        Family::Route | Family::Split(_) | Family::Blocking | Family::BlockOption => true,
        Family::Local(l) => matches!(l, Local::Ping | Local::Echo | Local::Wait | Local::Unwatch),
    }
}

/// The error for a command that cannot be queued inside MULTI.
pub(super) fn not_in_multi(req: &Request) -> Bytes {
    let name = String::from_utf8_lossy(req.name()).to_ascii_uppercase();
    encode::error(&format!("ERR {name} inside MULTI is not supported through Puerta in cluster mode"))
}

/// What a subscribed client may send, as Redis allows in RESP2.
pub(super) fn allowed_subscribed(family: Family) -> bool {
    matches!(
        family,
        Family::Local(
            Local::Subscribe | Local::SSubscribe | Local::Unsubscribe | Local::Ping | Local::Quit | Local::Reset
        )
    )
}

/// Redis's error for any other command in subscribed context.
pub(super) fn not_subscribed(req: &Request) -> Bytes {
    let name = String::from_utf8_lossy(req.name()).to_ascii_lowercase();
    encode::error(&format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}
