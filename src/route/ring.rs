//! `ShardRing`: which backend of a redis/memcache pool owns a key, exactly
//! as nutcracker 0.5.0's `server_pool_idx` decides it.
//!
//! Owner: built once per snapshot by the control thread and shared
//! read-only by every worker, so every core places a key the same way.
//! Pure: no I/O, no clock, no `RandomState`; only `random` distribution
//! draws a number per pick, as nutcracker does.
//!
//! Rules copied from nutcracker, in order:
//! 1. With a `hash_tag` (two bytes, open and close), a key containing the
//!    open byte and, after it, the close byte with at least one byte in
//!    between is hashed on that inner part only; otherwise on the whole key.
//! 2. A pool of exactly one server always picks it (no hashing).
//! 3. An empty key (after step 1) hashes to 0.
//! 4. ketama: first continuum point >= hash, wrapping; modula: the server
//!    list with each server repeated `weight` times, indexed by
//!    `hash % total_weight`; random: a uniform live server. The server list
//!    is in nutcracker's order, sorted by name (see `nutcracker_order`),
//!    not config order; `pick` still answers config positions.
//!
//! Ejected servers (`live == false`) are left out of the continuum or the
//! modula list, which is how nutcracker rebuilds on ejection. With no live
//! server, `pick` returns `None` (nutcracker answers with an error).

use super::ketama::{self, Point, RingServer};
use crate::config::{Distribution, PoolConfig};
use crate::hash::HashKind;

#[derive(Debug, Clone)]
enum Layout {
    Ketama(Vec<Point>),
    /// Server index per slot: each live server `weight` times, in order.
    Modula(Vec<u32>),
    /// Live server indices.
    Random(Vec<u32>),
}

/// Key placement for one pool as of one snapshot.
#[derive(Debug, Clone)]
pub struct ShardRing {
    hash: HashKind,
    distribution: Distribution,
    tag: Option<[u8; 2]>,
    /// Servers configured, live or not; pick results index this list.
    nserver: usize,
    live: usize,
    layout: Layout,
}

impl ShardRing {
    /// Builds the ring. `servers` are in config order; `pick` returns
    /// positions in this slice.
    pub fn build(
        distribution: Distribution,
        hash: HashKind,
        tag: Option<[u8; 2]>,
        servers: &[RingServer<'_>],
    ) -> ShardRing {
        let order = nutcracker_order(servers);
        let live_idx = || order.iter().copied().filter(|&i| servers[i].live).map(|i| i as u32);
        let layout = match distribution {
            Distribution::Ketama => Layout::Ketama(ketama::continuum(servers, &order)),
            Distribution::Modula => Layout::Modula(
                live_idx().flat_map(|i| std::iter::repeat_n(i, servers[i as usize].weight as usize)).collect(),
            ),
            Distribution::Random => Layout::Random(live_idx().collect()),
        };
        let live = servers.iter().filter(|s| s.live).count();
        ShardRing { hash, distribution, tag, nserver: servers.len(), live, layout }
    }

    /// The backend index (into the pool's server list) that owns `key`, or
    /// `None` when no server is live.
    pub fn pick(&self, key: &[u8]) -> Option<u32> {
        if self.live == 0 {
            return None;
        }
        if self.nserver == 1 {
            return Some(0);
        }
        match &self.layout {
            Layout::Ketama(points) => Some(ketama::dispatch(points, self.key_hash(key))),
            Layout::Modula(slots) => Some(slots[(self.key_hash(key) as usize) % slots.len()]),
            Layout::Random(live) => Some(live[fastrand::usize(..live.len())]),
        }
    }

    /// The hash nutcracker dispatches on: of the hash-tagged part of the
    /// key, 0 for an empty one.
    pub fn key_hash(&self, key: &[u8]) -> u32 {
        let key = hash_tagged(key, self.tag);
        if key.is_empty() {
            0
        } else {
            self.hash.hash(key)
        }
    }

    pub fn hash_kind(&self) -> HashKind {
        self.hash
    }

    pub fn distribution(&self) -> Distribution {
        self.distribution
    }

    pub fn hash_tag(&self) -> Option<[u8; 2]> {
        self.tag
    }

    /// Servers that can be picked now.
    pub fn live_count(&self) -> usize {
        self.live
    }

    /// Servers configured, live or not.
    pub fn server_count(&self) -> usize {
        self.nserver
    }
}

/// The order nutcracker keeps a pool's servers in: its config check sorts
/// them by name (`string_compare`: shorter names first, then bytewise) to
/// find duplicates, and the sorted array is what every distribution walks.
/// Modula slots follow this order, so it decides placement.
fn nutcracker_order(servers: &[RingServer<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..servers.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (servers[a].name.as_bytes(), servers[b].name.as_bytes());
        x.len().cmp(&y.len()).then_with(|| x.cmp(y))
    });
    order
}

/// The ring for a redis/memcache pool (`None` for other modes). `live(i)`
/// says whether server `i` is in service; it is consulted only with
/// `auto_eject_hosts`, since without it nutcracker never takes a server out.
pub fn for_pool(cfg: &PoolConfig, live: &dyn Fn(usize) -> bool) -> Option<ShardRing> {
    let shard = cfg.shard.as_ref()?;
    let servers: Vec<RingServer<'_>> = cfg
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| RingServer { name: &s.name, weight: s.weight, live: !shard.auto_eject_hosts || live(i) })
        .collect();
    Some(ShardRing::build(shard.distribution, shard.hash, shard.hash_tag, &servers))
}

/// The part of `key` that is hashed under `tag` (nutcracker's rule 1).
pub fn hash_tagged(key: &[u8], tag: Option<[u8; 2]>) -> &[u8] {
    let Some([open, close]) = tag else { return key };
    let Some(start) = key.iter().position(|&b| b == open) else { return key };
    match key[start + 1..].iter().position(|&b| b == close) {
        // `end` is the length of the inner part: nutcracker requires
        // `tag_end - tag_start > 1`, i.e. a non-empty inner part.
        Some(end) if end > 0 => &key[start + 1..start + 1 + end],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: Option<[u8; 2]> = Some(*b"{}");

    fn servers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.1:{}", 7000 + i)).collect()
    }

    fn ring(dist: Distribution, names: &[String], weights: &[u32], live: &[bool]) -> ShardRing {
        let rs: Vec<RingServer<'_>> = names
            .iter()
            .zip(weights)
            .zip(live)
            .map(|((n, &weight), &live)| RingServer { name: n, weight, live })
            .collect();
        ShardRing::build(dist, HashKind::Fnv1a64, TAG, &rs)
    }

    #[test]
    fn hash_tag_takes_the_first_non_empty_inner_part() {
        assert_eq!(hash_tagged(b"user:{42}:name", TAG), b"42");
        assert_eq!(hash_tagged(b"{a}{b}", TAG), b"a");
        assert_eq!(hash_tagged(b"x{}y", TAG), b"x{}y", "empty tag: whole key");
        assert_eq!(hash_tagged(b"x{y", TAG), b"x{y", "unclosed: whole key");
        assert_eq!(hash_tagged(b"}x{y}", TAG), b"y", "close before open is ignored");
        assert_eq!(hash_tagged(b"a:b:c", Some(*b"::")), b"b");
        assert_eq!(hash_tagged(b"abc", None), b"abc");
    }

    #[test]
    fn tagged_keys_land_together_and_empty_keys_hash_to_zero() {
        let names = servers(3);
        let r = ring(Distribution::Ketama, &names, &[1, 1, 1], &[true; 3]);
        let owner = r.pick(b"{user42}");
        for k in ["a{user42}", "{user42}b", "x{user42}{z}"] {
            assert_eq!(r.pick(k.as_bytes()), owner, "{k}");
        }
        assert_eq!(r.key_hash(b""), 0);
        assert_eq!(r.key_hash(b"{x}"), HashKind::Fnv1a64.hash(b"x"));
    }

    #[test]
    fn modula_repeats_servers_by_weight() {
        let names = servers(3);
        let r = ring(Distribution::Modula, &names, &[1, 2, 1], &[true; 3]);
        // Names 127.0.0.1:7000.. sort in config order; slots [0, 1, 1, 2].
        for key in [&b"a"[..], b"bb", b"hello", b"k:9"] {
            let slot = r.key_hash(key) % 4;
            assert_eq!(r.pick(key), Some([0, 1, 1, 2][slot as usize]), "{key:?}");
        }
        // Ejecting server 1 leaves slots [0, 2].
        let r = ring(Distribution::Modula, &names, &[1, 2, 1], &[true, false, true]);
        for key in [&b"a"[..], b"bb", b"hello"] {
            assert_eq!(r.pick(key), Some([0, 2][(r.key_hash(key) % 2) as usize]));
        }
    }

    #[test]
    fn modula_walks_servers_in_name_order_not_config_order() {
        // Shorter names first, then bytewise: "b" < "aa" < "ab".
        let names: Vec<String> = ["ab", "b", "aa"].iter().map(|s| s.to_string()).collect();
        let r = ring(Distribution::Modula, &names, &[1, 1, 1], &[true; 3]);
        for key in [&b"a"[..], b"bb", b"hello", b"k:9", b"zz"] {
            assert_eq!(r.pick(key), Some([1, 2, 0][(r.key_hash(key) % 3) as usize]), "{key:?}");
        }
    }

    #[test]
    fn one_server_always_wins_and_no_live_server_is_none() {
        let names = servers(1);
        let r = ring(Distribution::Modula, &names, &[1], &[true]);
        assert_eq!(r.pick(b"anything"), Some(0));
        let names = servers(2);
        assert_eq!(ring(Distribution::Ketama, &names, &[1, 1], &[false, false]).pick(b"k"), None);
        assert_eq!(ring(Distribution::Random, &names, &[1, 1], &[false, false]).pick(b"k"), None);
    }

    #[test]
    fn ketama_ejection_moves_only_the_ejected_servers_keys() {
        let names = servers(3);
        let all = ring(Distribution::Ketama, &names, &[1, 1, 1], &[true; 3]);
        let less = ring(Distribution::Ketama, &names, &[1, 1, 1], &[true, true, false]);
        let mut moved = 0;
        for i in 0..2000 {
            let k = format!("key:{i}");
            let (a, b) = (all.pick(k.as_bytes()).unwrap(), less.pick(k.as_bytes()).unwrap());
            assert_ne!(b, 2);
            if a != 2 {
                // Points of live servers do not change when every live
                // server keeps the same share (3 -> 2 equal weights: 160).
                assert_eq!(a, b, "{k}");
            } else {
                moved += 1;
            }
        }
        assert!(moved > 300, "about a third of the keys were on server 2: {moved}");
    }

    #[test]
    fn random_picks_only_live_servers() {
        let names = servers(3);
        let r = ring(Distribution::Random, &names, &[1, 1, 1], &[true, false, true]);
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[r.pick(b"k").unwrap() as usize] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!(seen[0] > 0 && seen[2] > 0, "{seen:?}");
    }
}
