//! `[[user]]` tables -> compiled users, and each pool's set of them.
//!
//! Owns the users' validation: names (non-empty, no spaces, unique),
//! rules (`acl::User::from_rules`, every bad rule reported at `rules`),
//! `pools` (names of pools in this file), `source` (IP ranges), `cert_cn`
//! and `cert_san` (non-empty, printable, each claimed by one user),
//! `limits` (`ratelimit::user_limits`, the same shapes as `per_ip`). Then
//! `attach` gives each pool its `acl::Users`:
//! - redis and redis_cluster pools: every user without `pools` or naming
//!   the pool, plus a cluster pool's `client_auth` entries (each becomes a
//!   user `on >password +@all allkeys allchannels`). The set is `Some`
//!   as soon as the file has any `[[user]]` (or the pool `client_auth`),
//!   even when no user applies to this pool: a file with users never
//!   leaves a Redis pool open by omission;
//! - memcache pools: the applicable users that have a `source` or a
//!   certificate name; `Some` only when there is at least one;
//! - tcp and mongos pools: none.
//!
//! Invariant: problems carry the key path of the `[[user]]` entry or of
//! the pool's `client_auth` key, never a bare "invalid".

use std::collections::HashMap;
use std::sync::Arc;

use super::file::{PoolFile, UserFile};
use super::span::KeyPath;
use super::types::{Mode, PoolConfig, UserConfig};
use super::validate::Problems;
use crate::acl::{IpRange, User, Users};

/// Validates every `[[user]]`.
pub(crate) fn convert(files: &[UserFile], pools: &[PoolFile], p: &mut Problems) -> Vec<UserConfig> {
    let base = KeyPath::root().key("user");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut certs: HashMap<(&str, &str), usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let at = base.index(i);
        let name = match f.name.as_deref() {
            None => {
                p.add(at.key("name"), "required key is missing; expected a user name like \"app\"");
                continue;
            }
            Some(n) if n.is_empty() || n.contains(|c: char| c.is_whitespace() || c.is_control()) => {
                p.add(at.key("name"), format!("expected a user name without spaces, got {n:?}"));
                continue;
            }
            Some(n) => n,
        };
        if let Some(first) = seen.insert(name, i) {
            p.add(at.key("name"), format!("expected a unique user name, got {name:?} (also user[{first}].name)"));
        }
        let user = match User::from_rules(name, &f.rules) {
            Ok(u) => Some(u),
            Err(errors) => {
                for e in errors {
                    p.add(at.key("rules"), e.to_string());
                }
                None
            }
        };
        if let Some(list) = &f.pools {
            for (j, pool) in list.iter().enumerate() {
                if !pools.iter().any(|pf| pf.name.as_deref() == Some(pool.as_str())) {
                    p.add(at.key("pools").index(j), format!("expected the name of a [[pool]], got {pool:?}"));
                }
            }
        }
        let mut source = Vec::new();
        for (j, s) in f.source.iter().flatten().enumerate() {
            if let Some(r) = p.check(at.key("source").index(j), IpRange::parse(s)) {
                source.push(r);
            }
        }
        let mut cert = crate::acl::CertMatch::default();
        for (key, value, slot) in [("cert_cn", &f.cert_cn, &mut cert.cn), ("cert_san", &f.cert_san, &mut cert.san)] {
            let Some(v) = value.as_deref() else { continue };
            if v.trim().is_empty() || v.contains(|c: char| c.is_control()) {
                p.add(at.key(key), format!("expected a certificate name like \"app1\", got {v:?}"));
                continue;
            }
            if let Some(first) = certs.insert((key, v), i) {
                p.add(
                    at.key(key),
                    format!("expected a {key} no other user claims, got {v:?} (also user[{first}].{key})"),
                );
            }
            *slot = Some(v.to_owned());
        }
        let limits = match &f.limits {
            None => Some(None),
            Some(l) => super::ratelimit::user_limits(l, &at.key("limits"), p).map(Some),
        };
        if let (Some(mut user), Some(limits)) = (user, limits) {
            user.source = source;
            user.cert = cert;
            // Its index among the users kept: problems anywhere fail the
            // whole config, so in a config that loads this is its entry's.
            user.id = out.len() as u32;
            out.push(UserConfig { user: Arc::new(user), pools: f.pools.clone(), limits });
        }
    }
    out
}

/// Gives each pool its users (see the module doc).
pub(crate) fn attach(users: &[UserConfig], files: &[PoolFile], pools: &mut [PoolConfig], p: &mut Problems) {
    for pool in pools.iter_mut() {
        let applies = |u: &&UserConfig| u.pools.as_ref().is_none_or(|l| l.contains(&pool.name));
        let mut list: Vec<Arc<User>> = users.iter().filter(applies).map(|u| u.user.clone()).collect();
        pool.users = match pool.mode {
            Mode::Redis => (!users.is_empty()).then(|| Arc::new(Users::new(list))),
            Mode::RedisCluster => {
                let auth = pool.cluster.as_ref().map(|c| c.client_auth.clone()).unwrap_or_default();
                let index = files.iter().position(|f| f.name.as_deref() == Some(pool.name.as_str())).unwrap_or(0);
                for (name, password) in &auth {
                    if list.iter().any(|u| u.name == *name) {
                        let at = KeyPath::root().key("pool").index(index).key("client_auth").key(name);
                        p.add(at, format!("user {name:?} is also a [[user]] that applies to this pool"));
                        continue;
                    }
                    // `client_auth` passwords are non-empty and have no
                    // spaces in their user names (`cluster_pool`); a
                    // password is one rule whatever it contains.
                    let mut u = User::new(name);
                    for rule in ["on", "+@all", "allkeys", "allchannels"] {
                        let _ = u.apply(rule);
                    }
                    let _ = u.apply(&format!(">{password}"));
                    list.push(Arc::new(u));
                }
                (!users.is_empty() || !auth.is_empty()).then(|| Arc::new(Users::new(list)))
            }
            Mode::Memcache => {
                list.retain(|u| !u.source.is_empty() || !u.cert.is_empty());
                (!list.is_empty()).then(|| Arc::new(Users::new(list)))
            }
            Mode::Tcp | Mode::Mongos => None,
        };
    }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
