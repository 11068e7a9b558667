//! Commands Puerta answers itself in cluster mode: QUIT, AUTH (without
//! users; with them `session::acl` answers it), the handshake (`session::handshake`: HELLO 2/3, CLIENT,
//! PING, ECHO, SELECT 0, READONLY / READWRITE), and CLUSTER INFO / SLOTS
//! / NODES / SHARDS / MYID / KEYSLOT describing Puerta as one node that
//! owns every slot (unless `cluster_commands = "passthrough"`).
//! Whole-keyspace commands are in `fanout.rs`, transactions and pub/sub in
//! `txn.rs`.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::reply::{arity, array, bulk, NOAUTH, OK};
use super::unit::Target;
use super::{ClientId, ClusterSession};
use crate::config::ClusterCommands;
use crate::protocol::cluster::commands::Local;
use crate::protocol::num::parse_i64;
use crate::protocol::resp::encode::{self, put_bulk, put_header};
use crate::protocol::resp::Request;
use crate::route::{keyslot, SLOTS};
use crate::session::handshake::{self, Ctx, Mode};
use crate::session::mux::ClientClose;

const NO_PASSWORD: &str =
    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

impl ClusterSession {
    pub(super) fn local(&mut self, id: ClientId, req: Request, l: Local, now: Instant) {
        let reply = match l {
            Local::Ping | Local::Echo | Local::Select | Local::Hello | Local::Client | Local::ReadMode => {
                self.handshake(id, &req)
            }
            Local::Quit => return self.close_after(id, ClientClose::Quit, Bytes::from_static(OK)),
            Local::Auth => self.auth(&req),
            Local::Slowlog => crate::obs::slowlog_reply(&self.obs, &req),
            Local::Reset => return self.reset(id),
            Local::Cluster => return self.cluster_cmd(id, req, now),
            Local::Dbsize | Local::KeysCmd | Local::Info | Local::Flush | Local::Scan | Local::Scripts => {
                return self.fanout_cmd(id, req, l, now)
            }
            Local::Multi => return self.multi(id),
            Local::Exec => return self.exec(id, now),
            Local::Discard => return self.discard(id, now),
            Local::Watch => {
                let spec = crate::protocol::cluster::commands::lookup(req.name());
                return self.watch(id, req, spec, now);
            }
            Local::Unwatch => return self.unwatch(id, now),
            Local::Subscribe => return self.subscribe(id, req, false, now),
            Local::SSubscribe => return self.subscribe(id, req, true, now),
            Local::Unsubscribe => return self.unsubscribe_idle(id, &req),
            Local::Wait => {
                let spec = crate::protocol::cluster::commands::lookup(req.name());
                return self.blocking(id, req, spec, now);
            }
            // `dispatch` answers these with the pool's refusal before here.
            Local::Refused => self
                .refusal(&req, crate::protocol::cluster::commands::lookup(req.name()))
                .unwrap_or_else(|| encode::error("ERR unsupported command through Puerta in cluster mode")),
        };
        self.reply_now(id, reply);
    }

    /// AUTH in a pool without users (`dispatch` answers it through
    /// `session::acl` otherwise, and refuses it inside MULTI).
    fn auth(&mut self, req: &Request) -> Bytes {
        match req.argc() {
            2 | 3 => encode::error(NO_PASSWORD),
            _ => arity(req.name()),
        }
    }

    /// HELLO, CLIENT, PING, ECHO, SELECT, READONLY / READWRITE: the
    /// shared handshake (`session::handshake`). HELLO AUTH reaches here
    /// only in a pool without users.
    fn handshake(&mut self, id: ClientId, req: &Request) -> Bytes {
        let check = |_: &[u8], _: &[u8]| Err(NO_PASSWORD);
        let Some(c) = self.clients.get_mut(id.index()).and_then(|c| c.as_mut()).filter(|c| c.base.gen == id.gen) else {
            return Bytes::new();
        };
        let ctx = Ctx {
            mode: Mode::Cluster,
            id: id.index() as u64 + 1,
            authed: &mut c.base.authed,
            check: &check,
            noauth: NOAUTH,
        };
        handshake::answer(req, &mut c.base.hs, ctx).unwrap_or_else(|| arity(req.name()))
    }

    /// Where CLUSTER SLOTS / NODES say Puerta is.
    fn announce(&self, id: ClientId) -> SocketAddr {
        self.client(id).and_then(|c| c.local).unwrap_or(self.cfg.announce)
    }

    fn cluster_cmd(&mut self, id: ClientId, req: Request, now: Instant) {
        let sub = req.arg(1).to_ascii_uppercase();
        let passthrough = self.cfg.cluster_commands == ClusterCommands::Passthrough;
        let reply = match &sub[..] {
            b"KEYSLOT" if req.argc() == 3 => encode::integer(i64::from(keyslot(req.arg(2)))),
            b"COUNTKEYSINSLOT" | b"GETKEYSINSLOT" => match parse_i64(req.arg(2)) {
                Some(s) if (0..SLOTS as i64).contains(&s) => {
                    let target = Target::Slot { slot: s as u16, read: false };
                    return self.forward_one(id, req.raw().clone(), target, now);
                }
                _ => encode::error("ERR Invalid or out of range slot"),
            },
            b"INFO" | b"SLOTS" | b"NODES" | b"SHARDS" | b"MYID" if passthrough => {
                return self.forward_one(id, req.raw().clone(), Target::AnyMaster, now)
            }
            b"INFO" => bulk(self.cluster_info().as_bytes()),
            b"MYID" => bulk(node_id(self.announce(id)).as_bytes()),
            b"SLOTS" => self.cluster_slots(id),
            b"SHARDS" => self.cluster_shards(id),
            b"NODES" => {
                let a = self.announce(id);
                let line = format!("{} {a}@0 myself,master - 0 0 1 connected 0-{}\n", node_id(a), SLOTS - 1);
                bulk(line.as_bytes())
            }
            _ => {
                let sub = String::from_utf8_lossy(&sub).into_owned();
                encode::error(&format!("ERR CLUSTER {sub} is not supported through Puerta"))
            }
        };
        self.reply_now(id, reply);
    }

    fn cluster_info(&self) -> String {
        let v = &self.nodes.view;
        let served = v.served();
        let state = if served == SLOTS { "ok" } else { "fail" };
        format!(
            "cluster_state:{state}\r\ncluster_slots_assigned:{}\r\ncluster_slots_ok:{served}\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:1\r\ncluster_size:1\r\n\
             cluster_current_epoch:1\r\ncluster_my_epoch:1\r\ncluster_stats_messages_sent:0\r\n\
             cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
            v.assigned(),
            SLOTS - served,
        )
    }

    /// `[[0, 16383, [ip, port, id]]]`
    fn cluster_slots(&self, id: ClientId) -> Bytes {
        let a = self.announce(id);
        let node = array(
            [
                &bulk(a.ip().to_string().as_bytes())[..],
                &encode::integer(i64::from(a.port()))[..],
                &bulk(node_id(a).as_bytes())[..],
            ]
            .into_iter(),
        );
        let range = array([&b":0\r\n"[..], &encode::integer(SLOTS as i64 - 1)[..], &node[..]].into_iter());
        array([&range[..]].into_iter())
    }

    /// `[[slots, [0, 16383], nodes, [[id, .., port, .., ip, .., ...]]]]`
    fn cluster_shards(&self, id: ClientId) -> Bytes {
        let a = self.announce(id);
        let ip = a.ip().to_string();
        let mut node = BytesMut::new();
        put_header(&mut node, b'*', 14);
        put_bulk(&mut node, b"id");
        put_bulk(&mut node, node_id(a).as_bytes());
        put_bulk(&mut node, b"port");
        put_header(&mut node, b':', i64::from(a.port()));
        for (k, v) in [("ip", ip.as_str()), ("endpoint", ip.as_str()), ("role", "master")] {
            put_bulk(&mut node, k.as_bytes());
            put_bulk(&mut node, v.as_bytes());
        }
        put_bulk(&mut node, b"replication-offset");
        node.put_slice(b":0\r\n");
        put_bulk(&mut node, b"health");
        put_bulk(&mut node, b"online");
        let slots = array([&b":0\r\n"[..], &encode::integer(SLOTS as i64 - 1)[..]].into_iter());
        let nodes = array([&node[..]].into_iter());
        let shard = array([&bulk(b"slots")[..], &slots[..], &bulk(b"nodes")[..], &nodes[..]].into_iter());
        array([&shard[..]].into_iter())
    }
}

/// A stable 40-hex-digit node id for Puerta at `addr`.
pub(super) fn node_id(addr: SocketAddr) -> String {
    let d = crate::hash::md5_digest(addr.to_string().as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}{:08x}", crate::hash::crc16(addr.to_string().as_bytes()))
}
