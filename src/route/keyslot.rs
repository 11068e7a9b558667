//! Redis Cluster key slots: CRC16/XMODEM of the key, or of its `{hash tag}`,
//! mod 16384.
//!
//! Pure functions. The hash tag rule is Redis's own (`keyHashSlot` in
//! cluster.c): the tag is what lies between the *first* `{` and the first
//! `}` after it, and only if that is non-empty; otherwise the whole key is
//! hashed. `tests/cluster_topology.rs` checks random keys against a real
//! server's `CLUSTER KEYSLOT`.

pub use crate::protocol::cluster::SLOTS;

use crate::protocol::cluster::commands::Keys;
use crate::protocol::cluster::keys::for_each_key;
use crate::protocol::resp::Request;

/// The slot a request's keys hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOf {
    NoKeys,
    One(u16),
    /// Keys in more than one slot: Redis answers `-CROSSSLOT`.
    Cross,
}

/// The slot of `key`.
#[inline]
pub fn keyslot(key: &[u8]) -> u16 {
    // `hash::crc16` is nutcracker's unmasked variant; its low 16 bits are
    // exactly CRC-16/XMODEM (its own tests pin that), and the slot only
    // needs the low 14.
    (crate::hash::crc16(hash_tag(key)) & (SLOTS as u32 - 1)) as u16
}

/// The part of `key` that is hashed: nutcracker's `hash_tag: "{}"` rule is
/// Redis Cluster's rule too, so both share `ring::hash_tagged`.
#[inline]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    super::ring::hash_tagged(key, Some(*b"{}"))
}

/// The slot shared by `req`'s keys (found by `spec`).
pub fn slot_of(req: &Request, spec: Keys) -> SlotOf {
    let mut found = SlotOf::NoKeys;
    for_each_key(req, spec, |i| {
        let s = keyslot(req.arg(i));
        match found {
            SlotOf::NoKeys => found = SlotOf::One(s),
            SlotOf::One(t) if t != s => found = SlotOf::Cross,
            _ => {}
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots() {
        // Values from Redis's documentation and `CLUSTER KEYSLOT`.
        assert_eq!(keyslot(b"123456789"), 0x31C3 & 0x3FFF);
        assert_eq!(keyslot(b"foo"), 12182);
        assert_eq!(keyslot(b"bar"), 5061);
        assert_eq!(keyslot(b"hello"), 866);
        assert_eq!(keyslot(b""), 0);
    }

    #[test]
    fn hash_tags_follow_redis_rules() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}", "an empty first tag hashes the whole key");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar", "the tag ends at the first }} after the first {{");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"no}tag{"), b"no}tag{");
        assert_eq!(keyslot(b"{user1000}.following"), keyslot(b"{user1000}.followers"));
        assert_eq!(keyslot(b"{foo}anything"), keyslot(b"foo"));
    }

    #[test]
    fn slots_and_crossslot() {
        let s = |args: &[&str]| {
            let r = Request::from_args(args.iter().map(|a| a.as_bytes()));
            slot_of(&r, crate::protocol::cluster::commands::lookup(r.name()).keys)
        };
        assert_eq!(s(&["GET", "foo"]), SlotOf::One(12182));
        assert_eq!(s(&["PING"]), SlotOf::NoKeys);
        assert_eq!(s(&["RENAME", "{u}a", "{u}b"]), SlotOf::One(keyslot(b"u")));
        assert_eq!(s(&["RENAME", "foo", "bar"]), SlotOf::Cross);
    }
}
