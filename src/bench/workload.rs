//! What each request is: the command mix (`--ratio`, `--mget`,
//! `--command`, MongoDB ping/find, prefill) and the per-thread generator
//! that draws one `Op` at a time.
//!
//! An `Op` is a small `Copy` descriptor (kind + key index), not bytes: the
//! codec encodes it straight into the connection's write buffer, and a
//! redirected request is re-encoded from it. Invariant: the generator is
//! deterministic for a seed, so two targets in one comparison see the
//! same sequence of keys.

use std::sync::Arc;

use super::keys::{KeyDist, KeyPicker, Values};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Get,
    Set,
    /// Multi-key read of this many consecutive keys from `key`.
    MGet(u32),
    /// The `--command` template.
    Template,
    /// MongoDB `{ping: 1}`.
    Ping,
    /// MongoDB `find` by `_id`.
    Find,
    /// Redis Cluster `ASKING` before an ASK-redirected request; its reply
    /// is consumed, never recorded.
    Asking,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    pub key: u64,
}

/// One piece of a `--command` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(Vec<u8>),
    Key,
    Value,
}

/// `--command`: arguments split on spaces, each a run of pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub args: Vec<Vec<Piece>>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut args = Vec::new();
        for word in text.split_whitespace() {
            let mut pieces = Vec::new();
            let mut rest = word;
            while !rest.is_empty() {
                let (at, piece, len) = match (rest.find("{key}"), rest.find("{value}")) {
                    (Some(k), Some(v)) if v < k => (v, Piece::Value, 7),
                    (Some(k), _) => (k, Piece::Key, 5),
                    (None, Some(v)) => (v, Piece::Value, 7),
                    (None, None) => (rest.len(), Piece::Lit(Vec::new()), 0),
                };
                if at > 0 {
                    pieces.push(Piece::Lit(rest.as_bytes()[..at].to_vec()));
                }
                if len > 0 {
                    pieces.push(piece);
                }
                rest = &rest[at + len..];
            }
            args.push(pieces);
        }
        if args.is_empty() {
            return Err("empty command".into());
        }
        Ok(Template { args })
    }

    pub fn uses_key(&self) -> bool {
        self.args.iter().flatten().any(|p| *p == Piece::Key)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mix {
    /// GET:SET weights; reads are MGET of `mget` keys when set.
    Ratio {
        get: u32,
        set: u32,
        mget: Option<u32>,
    },
    Template(Arc<Template>),
    Ping,
    Find,
    /// Every key once, in order (the prefill pass).
    Prefill,
}

impl Mix {
    /// `G:S` weights.
    pub fn parse_ratio(s: &str) -> Result<(u32, u32), String> {
        let bad = || format!("expected GET:SET weights like 9:1, got {s:?}");
        let (g, w) = s.split_once(':').ok_or_else(bad)?;
        let (g, w): (u32, u32) = (g.trim().parse().map_err(|_| bad())?, w.trim().parse().map_err(|_| bad())?);
        if g == 0 && w == 0 {
            return Err(format!("{s:?} sends nothing: at least one weight must be above 0"));
        }
        if g > 1_000_000 || w > 1_000_000 {
            return Err(format!("weights above 1000000 in {s:?}"));
        }
        Ok((g, w))
    }
}

/// Everything about a request that is the same on every thread.
#[derive(Debug, Clone)]
pub struct Workload {
    pub mix: Mix,
    pub keys: u64,
    pub dist: KeyDist,
    pub prefix: Arc<[u8]>,
    pub values: Arc<Values>,
}

/// One thread's op source.
#[derive(Debug)]
pub struct OpGen {
    mix: Mix,
    picker: KeyPicker,
    rng: fastrand::Rng,
}

impl OpGen {
    /// Thread `thread` of `threads`: its own seed, and (for sequential keys
    /// and prefill) its own slice of the key space to start from.
    pub fn new(w: &Workload, seed: u64, thread: usize, threads: usize) -> OpGen {
        // The same split as the request budget, so a prefill covers every key once.
        let (t, n) = (thread as u64, threads.max(1) as u64);
        let start = t * (w.keys / n) + t.min(w.keys % n);
        let dist = if w.mix == Mix::Prefill { KeyDist::Sequential } else { w.dist };
        OpGen {
            mix: w.mix.clone(),
            picker: KeyPicker::new(w.keys, dist, start),
            rng: fastrand::Rng::with_seed(seed ^ (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }

    pub fn next(&mut self) -> Op {
        let key = self.picker.next(&mut self.rng);
        let kind = match &self.mix {
            Mix::Ratio { get, set, mget } => {
                let read = *set == 0 || (*get > 0 && self.rng.u32(0..get + set) < *get);
                match (read, mget) {
                    (true, Some(n)) => OpKind::MGet(*n),
                    (true, None) => OpKind::Get,
                    (false, _) => OpKind::Set,
                }
            }
            Mix::Template(_) => OpKind::Template,
            Mix::Ping => OpKind::Ping,
            Mix::Find => OpKind::Find,
            Mix::Prefill => OpKind::Set,
        };
        Op { kind, key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_pieces() {
        let t = Template::parse("HSET h:{key} f-{key}-x {value}").unwrap();
        assert_eq!(
            t.args,
            vec![
                vec![Piece::Lit(b"HSET".to_vec())],
                vec![Piece::Lit(b"h:".to_vec()), Piece::Key],
                vec![Piece::Lit(b"f-".to_vec()), Piece::Key, Piece::Lit(b"-x".to_vec())],
                vec![Piece::Value],
            ]
        );
        assert!(t.uses_key());
        assert!(!Template::parse("PING").unwrap().uses_key());
        assert!(Template::parse("  ").is_err());
    }

    #[test]
    fn ratio_sets_the_mix() {
        assert_eq!(Mix::parse_ratio("9:1"), Ok((9, 1)));
        assert!(Mix::parse_ratio("0:0").is_err());
        assert!(Mix::parse_ratio("9").is_err());
        assert!(Mix::parse_ratio("a:1").is_err());
        let w = Workload {
            mix: Mix::Ratio { get: 9, set: 1, mget: None },
            keys: 100,
            dist: KeyDist::Uniform,
            prefix: Arc::from(&b"k"[..]),
            values: Arc::new(Values::new(1, 1)),
        };
        let mut g = OpGen::new(&w, 1, 0, 1);
        let gets = (0..10_000).filter(|_| g.next().kind == OpKind::Get).count();
        assert!((8_700..9_300).contains(&gets), "{gets} of 10000 are gets at 9:1");
        let same: Vec<Op> = (0..50).map(|_| OpGen::new(&w, 5, 1, 2).next()).collect();
        assert!(same.windows(2).all(|p| p[0] == p[1]), "one seed, one sequence");
    }

    #[test]
    fn prefill_walks_each_threads_slice() {
        let w = Workload {
            mix: Mix::Prefill,
            keys: 10,
            dist: KeyDist::Zipf(1.0),
            prefix: Arc::from(&b"k"[..]),
            values: Arc::new(Values::new(1, 1)),
        };
        let mut g = OpGen::new(&w, 1, 1, 2);
        let keys: Vec<u64> = (0..5).map(|_| g.next().key).collect();
        assert_eq!(keys, [5, 6, 7, 8, 9]);
    }
}
