//! Draining a cluster session (a reload reshaped its pool, or shutdown):
//! clients close at request boundaries, and once no client is left the
//! driver may close the idle node connections so the session can go.
//!
//! Invariant: a draining session never cuts a client mid-reply: it closes
//! one only when nothing is owed to it, nothing is unsent and no partial
//! request is buffered (a blocked BLPOP waits for its reply first).

use super::conns::Kind;
use super::types::BackendId;
use super::ClusterSession;
use crate::session::mux::{ClientClose, ClientId};

impl ClusterSession {
    /// Starts draining: every client closes (`ClientClose::Shutdown`) as
    /// soon as it is between requests; idle ones close now.
    pub fn set_draining(&mut self) {
        self.draining = true;
        let ids: Vec<ClientId> = self
            .clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| ClientId { idx: i as u32, gen: c.base.gen }))
            .collect();
        for id in ids {
            self.close_if_drained(id);
        }
    }

    /// A reload's user set: every client moves to its user in it
    /// (`session::acl::refresh`); one whose user was removed or disabled
    /// reads nothing more and is closed once the replies it is owed are out.
    pub fn set_users(&mut self, users: Option<std::sync::Arc<crate::acl::Users>>) {
        if crate::session::acl::same_users(self.cfg.users.as_ref(), users.as_ref()) {
            return;
        }
        self.cfg.users = users;
        let users = self.cfg.users.clone();
        let mut revoked = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            let Some(c) = c.as_deref_mut() else { continue };
            if !crate::session::acl::refresh(users.as_deref(), &mut c.base.user) {
                c.base.user = None;
                c.base.authed = false;
                revoked.push(ClientId { idx: i as u32, gen: c.base.gen });
            }
        }
        for id in revoked {
            self.close_after(id, ClientClose::Shutdown, bytes::Bytes::new());
            self.flush_client(id);
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Closes `id` if the session drains and the client is between requests.
    pub(super) fn close_if_drained(&mut self, id: ClientId) {
        if !self.draining {
            return;
        }
        let Some(c) = self.client(id) else { return };
        let b = &c.base;
        let between = b.slots.is_empty() && b.out.is_empty() && !b.out.in_flight() && b.inbuf.is_empty();
        if between && c.parked.is_none() && !c.blocked {
            self.close_client(id, ClientClose::Shutdown);
        }
    }

    /// Whether any node connection is open (or opening).
    pub fn has_open_backends(&self) -> bool {
        self.conns.iter().any(Option::is_some)
    }

    /// Closes every connection with nothing in flight, nothing queued and
    /// no client pinned to it; true when none is left open.
    pub fn close_idle_backends(&mut self) -> bool {
        let idle: Vec<BackendId> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (BackendId { idx: i as u32, gen: c.gen }, c)))
            .filter(|(_, c)| c.base.inflight.is_empty() && c.base.out.is_empty() && c.relay.is_none())
            .filter(|(_, c)| !matches!(c.kind, Kind::Pinned { owner: Some(_) }))
            .map(|(b, _)| b)
            .collect();
        for b in idle {
            self.close_conn(b);
        }
        !self.has_open_backends()
    }
}
