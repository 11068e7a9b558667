//! Client affinity: a rendezvous-hash table computed once per snapshot.
//!
//! Owned by the control thread, which builds it; workers only read it.
//! Invariants: placement is deterministic (fixed seeds, no `RandomState`), so
//! every core maps a client key to the same backend; a backend that leaves
//! moves only the buckets it won, i.e. about 1/N of clients.

/// Number of buckets; client keys are hashed into one of these.
pub const BUCKETS: usize = 4096;

/// A fixed seed so tables agree across cores, restarts and hosts.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// `bucket -> backend index` for the healthy backends of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityTable {
    /// `None` where no backend is eligible at all.
    slots: Vec<Option<u32>>,
}

/// A candidate backend: its index in the pool, its stable identity and weight.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub index: u32,
    pub name: &'a str,
    pub weight: u32,
}

impl AffinityTable {
    /// Weighted rendezvous ("highest random weight") over `candidates`.
    ///
    /// The score `-w / ln(u)` with `u` uniform in (0,1) gives each backend a
    /// share proportional to its weight while staying minimal-disruption.
    pub fn build(candidates: &[Candidate<'_>]) -> Self {
        let name_hashes: Vec<u64> = candidates.iter().map(|c| fnv1a64(c.name.as_bytes())).collect();
        let slots = (0..BUCKETS as u64)
            .map(|bucket| {
                let mut best: Option<(f64, u32)> = None;
                for (c, nh) in candidates.iter().zip(&name_hashes) {
                    if c.weight == 0 {
                        continue;
                    }
                    let h = mix64(nh ^ mix64(bucket ^ SEED));
                    // Map to (0,1): top 53 bits, shifted off zero.
                    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    let score = -(c.weight as f64) / u.ln();
                    if best.is_none_or(|(s, _)| score > s) {
                        best = Some((score, c.index));
                    }
                }
                best.map(|(_, i)| i)
            })
            .collect();
        AffinityTable { slots }
    }

    /// The backend for a client key, or `None` if no backend is eligible.
    pub fn lookup(&self, key: &[u8]) -> Option<u32> {
        self.lookup_hash(fnv1a64(key))
    }

    /// As `lookup`, for a key already hashed with [`fnv1a64`].
    pub fn lookup_hash(&self, hash: u64) -> Option<u32> {
        self.slots[(mix64(hash) % BUCKETS as u64) as usize]
    }
}

/// FNV-1a 64: stable across platforms and releases (unlike `DefaultHasher`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64 finalizer: spreads FNV's weak low bits.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(names: &[String]) -> AffinityTable {
        let c: Vec<Candidate> =
            names.iter().enumerate().map(|(i, n)| Candidate { index: i as u32, name: n, weight: 1 }).collect();
        AffinityTable::build(&c)
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:6379")).collect()
    }

    #[test]
    fn removing_one_of_n_moves_about_one_nth() {
        for n in [3usize, 5, 8] {
            let all = names(n);
            let before = table(&all);
            // Remove the last backend; indices of the others are unchanged.
            let after = table(&all[..n - 1]);
            let clients = 20_000u32;
            let mut moved = 0;
            for c in 0..clients {
                let key = format!("192.168.{}.{}", c / 256, c % 256);
                let b = before.lookup(key.as_bytes());
                let a = after.lookup(key.as_bytes());
                if b != a {
                    moved += 1;
                    // Only clients of the removed backend may move.
                    assert_eq!(b, Some(n as u32 - 1), "client {key} moved off a surviving backend");
                }
            }
            let share = moved as f64 / clients as f64;
            let ideal = 1.0 / n as f64;
            assert!((share - ideal).abs() < ideal * 0.25, "n={n}: moved {share:.3}, ideal {ideal:.3}");
        }
    }

    #[test]
    fn deterministic_and_balanced() {
        let all = names(4);
        assert_eq!(table(&all), table(&all));
        let t = table(&all);
        let mut count = [0usize; 4];
        for c in 0..40_000u32 {
            count[t.lookup(&c.to_le_bytes()).unwrap() as usize] += 1;
        }
        for k in count {
            assert!((8_000..12_000).contains(&k), "unbalanced: {count:?}");
        }
    }

    #[test]
    fn weights_shift_share() {
        let n = names(2);
        let c = [Candidate { index: 0, name: &n[0], weight: 3 }, Candidate { index: 1, name: &n[1], weight: 1 }];
        let t = AffinityTable::build(&c);
        let heavy = (0..40_000u32).filter(|c| t.lookup(&c.to_le_bytes()) == Some(0)).count();
        assert!((27_000..33_000).contains(&heavy), "weight 3:1 gave {heavy}/40000");
    }

    #[test]
    fn empty_table_yields_none() {
        assert_eq!(AffinityTable::build(&[]).lookup(b"x"), None);
    }
}
