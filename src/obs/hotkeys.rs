//! Hot keys (`hot_keys = true`): per pool per worker, a count-min sketch of
//! every key a request names first, plus a small top-k of the keys the
//! sketch estimates highest (a sketch alone cannot list keys).
//!
//! Owner: the session's `Recorder` (one worker), which records with plain
//! memory writes and publishes its top-k to this core's `PoolObs` on the
//! worker's stats tick (`publish`), under a lock taken once per tick, never
//! per request. Admin (`GET /hotkeys`) merges the cores' lists.
//!
//! Invariants: the sketch never under-counts (each row only grows, the
//! estimate is the minimum over rows); the top-k holds at most `TOPK`
//! keys, each stored under the pool's `slowlog_keys` rule (a hash when
//! hidden or hashed, so no name is kept that the rule forbids); counts
//! halve every `DECAY_TICKS` publishes, so the list follows what is hot now.
//!
//! Cost per request, when on: one `key_hash` of the key, four counter
//! increments, one hash-table probe; a key entering the top-k also scans it
//! (`TOPK` entries) to find the new minimum.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::slowlog::{key_hash, KeyNote, KeyRule};

const DEPTH: usize = 4;
const WIDTH_BITS: u32 = 12;
const WIDTH: usize = 1 << WIDTH_BITS;
/// Keys tracked per pool per worker (`GET /hotkeys` shows the top 20).
pub const TOPK: usize = 32;
/// Publishes (stats ticks, 250 ms) between halvings: about 10 s.
const DECAY_TICKS: u32 = 40;
/// Odd multipliers picking each row's counter from one 64-bit hash.
const SEEDS: [u64; DEPTH] =
    [0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9, 0x85eb_ca77_c2b2_ae63];

/// The key hash is already uniform: the table uses it as is.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One tracked key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hot {
    pub hash: u64,
    pub key: KeyNote,
    pub count: u64,
}

pub struct HotKeys {
    rule: KeyRule,
    sketch: Vec<u32>,
    top: Vec<Hot>,
    index: HashMap<u64, usize, BuildHasherDefault<Identity>>,
    /// The smallest count in `top` once it is full.
    min: u64,
    ticks: u32,
}

impl HotKeys {
    pub fn new(rule: KeyRule) -> HotKeys {
        HotKeys {
            rule,
            sketch: vec![0; DEPTH * WIDTH],
            top: Vec::with_capacity(TOPK),
            index: HashMap::with_capacity_and_hasher(TOPK, Default::default()),
            min: 0,
            ticks: 0,
        }
    }

    /// Counts one request for `key`.
    #[inline]
    pub fn record(&mut self, key: &[u8]) {
        let h = key_hash(key);
        let mut est = u32::MAX;
        for (d, seed) in SEEDS.iter().enumerate() {
            let i = d * WIDTH + (h.wrapping_mul(*seed) >> (64 - WIDTH_BITS)) as usize;
            if let Some(c) = self.sketch.get_mut(i) {
                *c = c.saturating_add(1);
                est = est.min(*c);
            }
        }
        let est = u64::from(est);
        if let Some(&j) = self.index.get(&h) {
            if let Some(t) = self.top.get_mut(j) {
                t.count = est;
            }
            return;
        }
        if self.top.len() < TOPK {
            self.index.insert(h, self.top.len());
            self.top.push(Hot { hash: h, key: self.note(h, key), count: est });
            if self.top.len() == TOPK {
                self.min = self.top.iter().map(|t| t.count).min().unwrap_or(0);
            }
            return;
        }
        if est <= self.min {
            return;
        }
        // Replaces the coldest tracked key (counts may have grown since
        // `min` was computed: find the current minimum).
        let Some((j, _)) = self.top.iter().enumerate().min_by_key(|(_, t)| t.count) else { return };
        let note = self.note(h, key);
        let old = std::mem::replace(&mut self.top[j], Hot { hash: h, key: note, count: est });
        self.index.remove(&old.hash);
        self.index.insert(h, j);
        self.min = self.top.iter().map(|t| t.count).min().unwrap_or(0);
    }

    fn note(&self, h: u64, key: &[u8]) -> KeyNote {
        match self.rule {
            KeyRule::Shown => KeyNote::new(KeyRule::Shown, key),
            _ => KeyNote::Hash(h),
        }
    }

    /// The tracked keys, hottest first; ages the counts every
    /// `DECAY_TICKS` calls (one per stats tick).
    pub fn publish(&mut self) -> Vec<Hot> {
        let mut out = self.top.clone();
        out.sort_by_key(|t| std::cmp::Reverse(t.count));
        self.ticks += 1;
        if self.ticks >= DECAY_TICKS {
            self.ticks = 0;
            for c in &mut self.sketch {
                *c /= 2;
            }
            for t in &mut self.top {
                t.count /= 2;
            }
            self.min /= 2;
        }
        out
    }
}

/// Merges the cores' lists of one pool: counts of one key add up; the
/// hottest `n` first. Keys under the "hidden" rule come out without a name.
pub fn merge(lists: impl Iterator<Item = Vec<Hot>>, rule: KeyRule, n: usize) -> Vec<(Option<String>, u64)> {
    let mut sum: HashMap<u64, (KeyNote, u64)> = HashMap::new();
    for l in lists {
        for h in l {
            let e = sum.entry(h.hash).or_insert((h.key, 0));
            e.1 = e.1.saturating_add(h.count);
        }
    }
    let mut v: Vec<(Option<String>, u64)> = sum
        .into_values()
        .map(|(k, c)| {
            let name = match rule {
                KeyRule::Hidden => None,
                _ => k.render().map(|b| String::from_utf8_lossy(&b).into_owned()),
            };
            (name, c)
        })
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_hitters_rise_to_the_top_among_many_cold_keys() {
        let mut h = HotKeys::new(KeyRule::Shown);
        for i in 0..20_000u32 {
            // 5 hot keys get half the traffic; 10,000 cold ones the rest.
            if i % 2 == 0 {
                h.record(format!("hot{}", i % 5).as_bytes());
            } else {
                h.record(format!("cold{i}").as_bytes());
            }
        }
        let top = h.publish();
        assert!(top.len() <= TOPK);
        let names: Vec<String> =
            top.iter().take(5).map(|t| String::from_utf8(t.key.render().unwrap()).unwrap()).collect();
        for k in ["hot0", "hot1", "hot2", "hot3", "hot4"] {
            assert!(names.contains(&k.to_string()), "{k} in {names:?}");
        }
        assert!(top[0].count >= 2_000, "the sketch never under-counts: {}", top[0].count);
        let merged = merge([top.clone(), top].into_iter(), KeyRule::Shown, 20);
        assert!(merged[0].1 >= 4_000, "cores add up");
        let hidden = merge([h.publish()].into_iter(), KeyRule::Hidden, 3);
        assert!(hidden.iter().all(|(k, _)| k.is_none()));
    }

    #[test]
    fn hashed_keys_keep_no_name() {
        let mut h = HotKeys::new(KeyRule::Hashed);
        h.record(b"secret-user-42");
        let top = h.publish();
        let shown = String::from_utf8(top[0].key.render().unwrap()).unwrap();
        assert!(shown.starts_with('#') && !shown.contains("secret"));
    }
}
