//! Proxy users with Redis-style ACLs: rule parsing (`rules`), Redis's glob
//! matcher (`glob`), dense command ids (`ids`), each user's verdict per
//! command (`fast`) and the per-request check (`check`). Sans-IO and allocation-free on the request path: sessions
//! hold an `Arc<User>` per authenticated client and call `User::check`.
//!
//! Owns no runtime state: a `Users` set is built by `config` at load and
//! reload, shared read-only through the snapshot, and replaced whole.
//!
//! Invariants:
//! - a check is one bit test for the command, then a pattern match per
//!   key or channel; nothing is sent for a request before it passes;
//! - passwords are kept only as SHA-256 digests, compared in constant
//!   time; `Debug` of a user or a set never shows them;
//! - names in a `Users` set are unique (the config layer checks).

mod cert;
mod check;
mod fast;
pub mod glob;
pub mod ids;
mod rules;
mod source;

use std::sync::Arc;

pub use cert::{CertMatch, CertNames};
pub use check::Denied;
pub use rules::{hash, KeyPattern, User, NO_ID, READ, WRITE};
pub use source::IpRange;

/// A rule that does not parse, in words for `file:line: key: problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("unknown ACL category '{0}' (see `ACL CAT`)")]
    UnknownCategory(String),
    #[error("unknown command '{0}' in an ACL rule")]
    UnknownCommand(String),
    #[error("bad pattern in rule '{0}': {1}")]
    BadPattern(String, String),
    #[error("bad password hash '{0}': expected 64 lowercase hex digits (a SHA-256)")]
    BadHash(String),
    #[error("unknown or unsupported ACL rule '{0}'")]
    UnknownRule(String),
}

/// Redis's reply to a failed AUTH or HELLO AUTH.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// Redis's reply to a command before AUTH.
pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";

/// The users one pool accepts. `Arc`s, so a client's user outlives a
/// reload that replaces the set (the session then re-resolves it by name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Users {
    list: Vec<Arc<User>>,
}

impl Users {
    pub fn new(list: Vec<Arc<User>>) -> Users {
        Users { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<User>> {
        self.list.iter()
    }

    /// The user called `name`, enabled or not.
    pub fn get(&self, name: &str) -> Option<&Arc<User>> {
        self.list.iter().find(|u| u.name == name)
    }

    /// Its index in the set (a stable label for per-user counters while
    /// the set lives).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|u| u.name == name)
    }

    /// memcache pools: whether a client from `ip` is some enabled user
    /// (by its `source` ranges). A unix-socket client (`None`) is none.
    pub fn admits(&self, ip: Option<std::net::IpAddr>) -> bool {
        ip.is_some_and(|ip| self.list.iter().any(|u| u.enabled && u.source.iter().any(|r| r.contains(ip))))
    }

    /// The first enabled user whose `source` holds `ip` (memcache pools:
    /// the user a client from `ip` is, for its rules, limits and counters).
    pub fn by_source(&self, ip: std::net::IpAddr) -> Option<&Arc<User>> {
        self.list.iter().find(|u| u.enabled && u.source.iter().any(|r| r.contains(ip)))
    }

    /// The enabled user a verified client certificate names.
    pub fn by_cert(&self, names: &CertNames) -> Option<&Arc<User>> {
        self.list.iter().find(|u| u.enabled && u.cert.matches(names))
    }

    /// Whether some user is claimed by certificate (then a memcache pool
    /// requiring client certificates admits at accept and decides once
    /// the handshake is done).
    pub fn has_cert_users(&self) -> bool {
        self.list.iter().any(|u| !u.cert.is_empty())
    }

    /// AUTH: the enabled user `name` whose password is `password`. Every
    /// failure is the same `None` (Redis's one WRONGPASS text).
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let user = self.list.iter().find(|u| u.name.as_bytes() == name)?;
        (user.enabled && user.password_ok(password)).then(|| user.clone())
    }
}
