//! `--cluster`: Redis Cluster slot routing for the bench, so a direct
//! cluster baseline is measured with the same tool as a proxy.
//!
//! - `key_slot`: CRC16/XMODEM of the key, or of its `{hash tag}`, mod
//!   16384 (Puerta's nutcracker `crc16` keeps unmasked high bits, but its
//!   low 16 bits are XMODEM, which is all a slot needs).
//! - `SlotMap`: master address per slot, from `CLUSTER SLOTS`; patched on
//!   MOVED and refreshed whole by the engine.
//!
//! Invariant: every slot of a `SlotMap` names an index into `nodes`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;

use crate::protocol::resp::{Reply, ReplyDecoder, ReplyKind};

pub const SLOTS: usize = 16384;

/// The hash slot of `key`.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = memchr::memchr(b'{', key).and_then(|open| {
        let rest = &key[open + 1..];
        memchr::memchr(b'}', rest).filter(|&close| close > 0).map(|close| &rest[..close])
    });
    (crate::hash::crc16(tagged.unwrap_or(key)) & 0x3FFF) as u16
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    pub nodes: Vec<SocketAddr>,
    pub slots: Vec<u16>,
}

impl SlotMap {
    /// One node owning everything (the non-cluster case).
    pub fn single(addr: SocketAddr) -> SlotMap {
        SlotMap { nodes: vec![addr], slots: vec![0; SLOTS] }
    }

    pub fn node_of(&self, slot: u16) -> usize {
        usize::from(self.slots[usize::from(slot) % SLOTS])
    }

    /// Index of `addr`, adding it if new.
    pub fn node_index(&mut self, addr: SocketAddr) -> usize {
        if let Some(i) = self.nodes.iter().position(|a| *a == addr) {
            return i;
        }
        self.nodes.push(addr);
        self.nodes.len() - 1
    }

    /// MOVED: `slot` lives at `addr` now.
    pub fn patch(&mut self, slot: u16, addr: SocketAddr) -> usize {
        let i = self.node_index(addr);
        self.slots[usize::from(slot) % SLOTS] = i as u16;
        i
    }

    /// Replaces the slot owners with `fresh`'s, keeping node indices stable
    /// (connections are indexed by node).
    pub fn refresh(&mut self, fresh: &SlotMap) {
        for (slot, &n) in fresh.slots.iter().enumerate() {
            let i = self.node_index(fresh.nodes[usize::from(n)]);
            self.slots[slot] = i as u16;
        }
    }

    /// Parses a `CLUSTER SLOTS` reply. `seed` fills in an empty host (a node
    /// that does not know its own address answers `""`).
    pub fn parse(reply: &Reply, seed: SocketAddr) -> Result<SlotMap, String> {
        if !matches!(reply.kind, ReplyKind::Array(_)) {
            return Err(format!("not an array: {}", String::from_utf8_lossy(&reply.raw).trim_end()));
        }
        let mut map = SlotMap { nodes: Vec::new(), slots: vec![u16::MAX; SLOTS] };
        for range in reply.elements() {
            let range = sub(&range)?;
            let el = range.elements();
            let (Some(lo), Some(hi), Some(master)) = (el.first(), el.get(1), el.get(2)) else {
                return Err("slot range with fewer than 3 elements".into());
            };
            let (lo, hi) = (int(lo)?, int(hi)?);
            let master = sub(master)?.elements();
            let host = master.first().map(bulk).transpose()?.unwrap_or_default();
            let port = master.get(1).map(int).transpose()?.ok_or("master without a port")?;
            let ip = if host.is_empty() || host == "?" { seed.ip().to_string() } else { host };
            let addr: SocketAddr = format!("{ip}:{port}")
                .parse()
                .or_else(|_| format!("[{ip}]:{port}").parse())
                .map_err(|_| format!("bad node address {ip}:{port}"))?;
            if lo > hi || hi >= SLOTS as i64 || lo < 0 {
                return Err(format!("bad slot range {lo}-{hi}"));
            }
            let i = map.node_index(addr) as u16;
            for s in lo..=hi {
                map.slots[s as usize] = i;
            }
        }
        if let Some(s) = map.slots.iter().position(|&n| n == u16::MAX) {
            return Err(format!("slot {s} has no master (cluster not fully covered)"));
        }
        Ok(map)
    }

    /// Asks `addr` for `CLUSTER SLOTS` (blocking, bounded by `timeout`).
    pub fn fetch(addr: SocketAddr, timeout: Duration) -> Result<SlotMap, String> {
        let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        s.write_all(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n").map_err(|e| e.to_string())?;
        let (mut buf, mut dec) = (BytesMut::with_capacity(16 << 10), ReplyDecoder::default());
        let mut chunk = [0u8; 16 << 10];
        loop {
            if let Some(r) = dec.decode(&mut buf).map_err(|e| e.to_string())? {
                return SlotMap::parse(&r, addr);
            }
            match s.read(&mut chunk) {
                Ok(0) => return Err("connection closed before the reply".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
            if buf.len() > 64 << 20 {
                return Err("reply over 64 MiB".into());
            }
        }
    }
}

fn sub(raw: &bytes::Bytes) -> Result<Reply, String> {
    let mut b = BytesMut::from(&raw[..]);
    ReplyDecoder::default().decode(&mut b).map_err(|e| e.to_string())?.ok_or_else(|| "truncated element".into())
}

fn int(raw: &bytes::Bytes) -> Result<i64, String> {
    match sub(raw)?.kind {
        ReplyKind::Integer(n) => Ok(n),
        _ => Err("expected an integer".into()),
    }
}

fn bulk(raw: &bytes::Bytes) -> Result<String, String> {
    let r = sub(raw)?;
    if r.kind != ReplyKind::Bulk {
        return Err("expected a bulk string".into());
    }
    let start = memchr::memchr(b'\n', &r.raw).map_or(0, |i| i + 1);
    Ok(String::from_utf8_lossy(&r.raw[start..r.raw.len() - 2]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `redis-cli CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"key:0"), 2592);
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), 8363, "an empty tag hashes the whole key");
        assert_eq!(key_slot(b"foo{{bar}}zap"), 4015);
        assert_eq!(key_slot(b"{bar"), 4015);
        assert_eq!(key_slot(b""), 0);
    }

    fn reply(raw: &[u8]) -> Reply {
        ReplyDecoder::default().decode(&mut BytesMut::from(raw)).unwrap().unwrap()
    }

    #[test]
    fn parses_cluster_slots_and_patches() {
        let seed: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let raw = b"*2\r\n\
*4\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nr1\r\n\
*3\r\n:8192\r\n:16383\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n";
        let mut m = SlotMap::parse(&reply(raw), seed).unwrap();
        assert_eq!(m.nodes, ["127.0.0.1:7000".parse().unwrap(), "127.0.0.1:7001".parse::<SocketAddr>().unwrap()]);
        assert_eq!((m.node_of(0), m.node_of(8191), m.node_of(8192), m.node_of(16383)), (0, 0, 1, 1));
        let moved: SocketAddr = "127.0.0.1:7002".parse().unwrap();
        assert_eq!(m.patch(5, moved), 2);
        assert_eq!(m.node_of(5), 2);
        let fresh = SlotMap::parse(&reply(raw), seed).unwrap();
        m.refresh(&fresh);
        assert_eq!((m.node_of(5), m.nodes.len()), (0, 3), "indices stay stable");

        let partial = b"*1\r\n*3\r\n:0\r\n:10\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n";
        assert!(SlotMap::parse(&reply(partial), seed).unwrap_err().contains("slot 11"));
        assert!(SlotMap::parse(&reply(b"-ERR This instance has cluster support disabled\r\n"), seed).is_err());
        assert!(SlotMap::parse(&reply(b"*1\r\n*3\r\n:9\r\n:2\r\n*2\r\n$1\r\nx\r\n:1\r\n"), seed).is_err());
    }
}
