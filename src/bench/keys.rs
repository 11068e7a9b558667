//! Key space and values: which key index a request uses (uniform, zipf or
//! sequential), how a key is spelled, and what value a key holds.
//!
//! Invariants:
//! - key indices are always `< keys`;
//! - a key's value (size and bytes) is a pure function of its index, so a
//!   GET can be checked against what any earlier SET of that key wrote, no
//!   matter which connection or thread wrote it.

/// How key indices are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    Uniform,
    /// Rank `k` (1-based) has probability proportional to `k^-s`; rank 1 is key 0.
    Zipf(f64),
    /// 0, 1, 2, ... wrapping at `keys`; each thread starts at its own offset.
    Sequential,
}

impl KeyDist {
    pub fn parse(s: &str) -> Result<KeyDist, String> {
        match s {
            "uniform" => Ok(KeyDist::Uniform),
            "sequential" => Ok(KeyDist::Sequential),
            _ => {
                let exp = s
                    .strip_prefix("zipf:")
                    .ok_or_else(|| format!("expected uniform, zipf:S or sequential, got {s:?}"))?;
                match exp.parse::<f64>() {
                    Ok(e) if e.is_finite() && e > 0.0 && e <= 10.0 => Ok(KeyDist::Zipf(e)),
                    _ => Err(format!("zipf exponent must be a number in (0, 10], got {exp:?}")),
                }
            }
        }
    }
}

/// Zipf sampler by rejection-inversion (Hörmann and Derflinger, 1996), as
/// in Apache Commons RNG: O(1) memory and expected O(1) time for any key
/// count, so a billion-key space costs nothing to set up.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    threshold: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut z = Zipf { n: n.max(1) as f64, s, h_x1: 0.0, h_n: 0.0, threshold: 0.0 };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(z.n + 0.5);
        z.threshold = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `1..=n`, given uniform draws in [0, 1).
    pub fn sample(&self, mut uniform: impl FnMut() -> f64) -> u64 {
        loop {
            let u = self.h_n + uniform() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.threshold || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let lx = x.ln();
        helper2((1.0 - self.s) * lx) * lx
    }

    fn h_integral_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// Draws key indices for one thread.
#[derive(Debug, Clone)]
pub struct KeyPicker {
    keys: u64,
    zipf: Option<Zipf>,
    sequential: Option<u64>,
}

impl KeyPicker {
    /// `start` is where a sequential walk begins (threads spread theirs).
    pub fn new(keys: u64, dist: KeyDist, start: u64) -> KeyPicker {
        let keys = keys.max(1);
        KeyPicker {
            keys,
            zipf: match dist {
                KeyDist::Zipf(s) => Some(Zipf::new(keys, s)),
                _ => None,
            },
            sequential: (dist == KeyDist::Sequential).then_some(start % keys),
        }
    }

    pub fn next(&mut self, rng: &mut fastrand::Rng) -> u64 {
        if let Some(z) = &self.zipf {
            return z.sample(|| rng.f64()) - 1;
        }
        if let Some(i) = self.sequential.as_mut() {
            let k = *i;
            *i = (k + 1) % self.keys;
            return k;
        }
        rng.u64(0..self.keys)
    }
}

/// Appends `prefix` + decimal `index`.
pub fn put_key(out: &mut Vec<u8>, prefix: &[u8], index: u64) {
    out.extend_from_slice(prefix);
    put_u64(out, index);
}

pub fn put_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Decimal length of `n` (for headers written before the key).
pub fn u64_len(n: u64) -> usize {
    let mut len = 1;
    let mut n = n / 10;
    while n > 0 {
        len += 1;
        n /= 10;
    }
    len
}

/// Value sizes, and the bytes every key holds.
#[derive(Debug, Clone)]
pub struct Values {
    min: usize,
    max: usize,
    /// `a..z` repeated, long enough to slice any value from any offset.
    pattern: Vec<u8>,
}

pub const MAX_VALUE: usize = 64 << 20;

impl Values {
    /// `N` or `MIN-MAX` bytes.
    pub fn parse(s: &str) -> Result<Values, String> {
        let parse = |t: &str| t.trim().parse::<usize>().map_err(|_| format!("expected N or MIN-MAX bytes, got {s:?}"));
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(s)?, parse(s)?),
        };
        if min > max {
            return Err(format!("minimum {min} is above maximum {max}"));
        }
        if max > MAX_VALUE {
            return Err(format!("at most {MAX_VALUE} bytes, got {max}"));
        }
        Ok(Values::new(min, max))
    }

    pub fn new(min: usize, max: usize) -> Values {
        let pattern = (0..max + 26).map(|i| b'a' + (i % 26) as u8).collect();
        Values { min, max, pattern }
    }

    /// The value of key `index`: its size is fixed per key (spread over the
    /// range by a hash of the index), its bytes start at a key-dependent
    /// letter.
    pub fn of(&self, index: u64) -> &[u8] {
        let span = (self.max - self.min) as u64 + 1;
        // splitmix64 finaliser: neighbouring keys get unrelated sizes.
        let mut h = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
        let len = self.min + (h % span) as usize;
        let at = (index % 26) as usize;
        &self.pattern[at..at + len]
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empirical frequencies of the first ranks match k^-s / H(n, s).
    #[test]
    fn zipf_matches_the_distribution() {
        for (n, s) in [(1000u64, 1.0f64), (1000, 0.8), (50, 1.5), (1_000_000_000, 0.99)] {
            let z = Zipf::new(n, s);
            let mut rng = fastrand::Rng::with_seed(7);
            let draws = 400_000;
            let mut counts = [0u64; 6];
            for _ in 0..draws {
                let k = z.sample(|| rng.f64());
                assert!((1..=n).contains(&k), "rank {k} outside 1..={n}");
                if k <= 5 {
                    counts[k as usize] += 1;
                }
            }
            // H(n, s) summed directly where n is small, else only the ratio
            // between ranks is checked (it does not depend on H).
            if n <= 1000 {
                let h: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
                for (k, &count) in counts.iter().enumerate().skip(1) {
                    let want = (k as f64).powf(-s) / h;
                    let got = count as f64 / draws as f64;
                    assert!((got - want).abs() / want < 0.05, "n={n} s={s} rank {k}: got {got:.4}, want {want:.4}");
                }
            }
            for k in 2..=5usize {
                let want = (k as f64).powf(-s);
                let got = counts[k] as f64 / counts[1] as f64;
                assert!((got - want).abs() / want < 0.05, "n={n} s={s} p({k})/p(1): got {got:.4}, want {want:.4}");
            }
        }
    }

    #[test]
    fn pickers_stay_in_range_and_walk_in_order() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut seq = KeyPicker::new(5, KeyDist::Sequential, 3);
        let walk: Vec<u64> = (0..6).map(|_| seq.next(&mut rng)).collect();
        assert_eq!(walk, [3, 4, 0, 1, 2, 3]);
        for dist in [KeyDist::Uniform, KeyDist::Zipf(0.99)] {
            let mut p = KeyPicker::new(10, dist, 0);
            let mut seen = [false; 10];
            for _ in 0..10_000 {
                seen[p.next(&mut rng) as usize] = true;
            }
            assert!(seen.iter().all(|&s| s), "{dist:?} reaches every key: {seen:?}");
        }
    }

    #[test]
    fn parses_distributions_and_sizes() {
        assert_eq!(KeyDist::parse("zipf:0.99"), Ok(KeyDist::Zipf(0.99)));
        assert_eq!(KeyDist::parse("uniform"), Ok(KeyDist::Uniform));
        assert!(KeyDist::parse("zipf:-1").is_err());
        assert!(KeyDist::parse("zipf:x").is_err());
        assert!(KeyDist::parse("pareto").is_err());
        let v = Values::parse("10-20").unwrap();
        let sizes: Vec<usize> = (0..200).map(|i| v.of(i).len()).collect();
        assert!(sizes.iter().all(|s| (10..=20).contains(s)));
        assert!(sizes.contains(&10) && sizes.contains(&20), "the range is covered");
        assert_eq!(v.of(3), v.of(3), "a key's value is fixed");
        assert_eq!(Values::parse("4").unwrap().of(1), b"bcde");
        assert!(Values::parse("9-3").is_err());
        assert!(Values::parse("x").is_err());
    }

    #[test]
    fn keys_are_prefix_and_decimal() {
        let mut out = Vec::new();
        put_key(&mut out, b"k:", 0);
        put_key(&mut out, b"", 18_446_744_073_709_551_615);
        assert_eq!(out, b"k:018446744073709551615");
        assert_eq!((u64_len(0), u64_len(9), u64_len(10), u64_len(u64::MAX)), (1, 1, 2, 20));
    }
}
