//! Who a client is without AUTH: the proxy user its verified client
//! certificate names (any pool whose `tls.ca` requires certificates), or,
//! in memcache pools, the user whose `source` holds its address; and the
//! memcache ACL gate that user's key patterns drive.
//!
//! Owner: the mux session (an `impl` block of `MuxSession`). Invariants:
//! - a memcache pool with users serves only clients some user claims: by
//!   address at accept, or by certificate once the handshake is done (a
//!   TLS client no user claims is closed then, before any request);
//! - a Redis client a certificate names is logged in as that user, as if
//!   it had sent AUTH (AUTH may still switch users); one no certificate
//!   user claims stays unauthenticated;
//! - memcache requests are judged before anything is sent: retrievals
//!   need read on every key, storage, delete and touch write, incr/decr
//!   both; `flush_all` needs `allkeys`; quit, version and stats pass.

use std::net::IpAddr;

use bytes::Bytes;

use super::dispatch::Plan;
use super::{ClientClose, ClientId, MuxConfig, MuxSession, Protocol};
use crate::acl::{CertNames, User, READ, WRITE};
use crate::protocol::memcache::{McCmd, McRequest};

/// memcached has no NOPERM: the nearest, a client error, in Redis's words.
pub(super) const MC_NOPERM: &[u8] = b"CLIENT_ERROR NOPERM No permissions to access a key\r\n";

impl MuxSession {
    /// A TLS client's handshake completed; `names` are its certificate's.
    pub fn set_client_cert(&mut self, id: ClientId, names: Option<&CertNames>) {
        let Some(users) = self.cfg.users.clone() else { return };
        let found = names.and_then(|n| users.by_cert(n)).cloned();
        let memcache = self.cfg.protocol == Protocol::Memcache;
        let Some(c) = self.client_mut(id) else { return };
        match found {
            Some(u) => {
                c.user = Some(u);
                c.authed = true;
            }
            None if memcache && c.user.is_none() => self.close_client(id, ClientClose::NoUser),
            None => {}
        }
    }

    /// memcache pools: the user whose `source` holds the client's address.
    pub fn set_client_source(&mut self, id: ClientId, ip: Option<IpAddr>) {
        if self.cfg.protocol != Protocol::Memcache {
            return;
        }
        let Some(users) = self.cfg.users.clone() else { return };
        let found = ip.and_then(|ip| users.by_source(ip)).cloned();
        if let (Some(c), Some(u)) = (self.client_mut(id), found) {
            c.user = Some(u);
        }
    }

    /// Whether the driver should look up each client's address for
    /// `set_client_source`.
    pub fn wants_client_source(&self) -> bool {
        self.cfg.protocol == Protocol::Memcache && self.cfg.users.is_some()
    }
}

/// The memcache ACL gate: `Some` is the refusal to answer instead.
pub(super) fn gate_memcache(cfg: &MuxConfig, user: Option<&User>, req: &McRequest) -> Option<Plan> {
    cfg.users.as_ref()?;
    let Some(user) = user else {
        // Not reachable through accept (see the module invariants); a
        // client no user claims is refused all the same.
        return Some(Plan::Close(ClientClose::NoUser, Some(Bytes::from_static(MC_NOPERM))));
    };
    let need = match req.cmd {
        McCmd::Get | McCmd::Gets => READ,
        McCmd::Incr | McCmd::Decr => READ | WRITE,
        McCmd::Set
        | McCmd::Add
        | McCmd::Replace
        | McCmd::Append
        | McCmd::Prepend
        | McCmd::Cas
        | McCmd::Delete
        | McCmd::Touch => WRITE,
        McCmd::FlushAll if user.allkeys() => return None,
        McCmd::FlushAll => return Some(refuse(req)),
        McCmd::Quit | McCmd::Version | McCmd::Stats => return None,
    };
    (0..req.nkeys()).any(|i| !user.key_ok(req.key(i), need)).then(|| refuse(req))
}

/// A refusal: nothing for a `noreply` request (its client reads no reply).
fn refuse(req: &McRequest) -> Plan {
    Plan::Reply(if req.noreply { Bytes::new() } else { Bytes::from_static(MC_NOPERM) })
}
