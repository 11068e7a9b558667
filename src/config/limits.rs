//! Byte limits of multiplexed pools and of the process: the validated
//! types, their defaults, byte-size text, and the conversion of the pool
//! keys `client_queue_limit`, `client_output_limit` and its alias
//! `client_reply_limit` (redis, memcache and redis_cluster pools).
//!
//! Sizes read as Redis reads them (`memtoull`): an integer is bytes; text
//! is a number with an optional unit, `b`, `k` = 1000, `kb` = 1024, `m`,
//! `mb`, `g`, `gb` (any case), so `client_output_limit` can be copied from
//! a redis.conf `client-output-buffer-limit` line.

use std::time::Duration;

use super::file::{OutputLimitFile, PoolFile, Scalar};
use super::span::KeyPath;
use super::validate::{duration, Problems};

/// Redis's `client-output-buffer-limit` for a pool's clients. A zero byte
/// limit is off, as in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    /// Close a client at once when its buffered reply bytes reach this.
    pub hard: usize,
    /// Close a client once its buffered reply bytes stayed at or past this
    /// for `soft_for` without a break.
    pub soft: usize,
    pub soft_for: Duration,
}

impl OutputLimit {
    /// `{ hard = "1gb", soft = "256mb", soft_seconds = 30 }`: any single
    /// bulk Redis sends (`proto-max-bulk-len`, 512 MiB) fits under `hard`,
    /// and a client that reads drains `soft` well within 30 s.
    pub const DEFAULT: OutputLimit = OutputLimit { hard: 1 << 30, soft: 256 << 20, soft_for: Duration::from_secs(30) };

    /// The fewest buffered bytes at which either limit can act
    /// (`usize::MAX` when both are off).
    #[inline]
    pub fn floor(&self) -> usize {
        let on = |n: usize| if n == 0 { usize::MAX } else { n };
        on(self.hard).min(on(self.soft))
    }

    /// A hard limit only (what `client_reply_limit` sets).
    pub fn hard(bytes: usize) -> OutputLimit {
        OutputLimit { hard: bytes, soft: 0, soft_for: Duration::ZERO }
    }
}

impl Default for OutputLimit {
    fn default() -> Self {
        OutputLimit::DEFAULT
    }
}

/// Request bytes a client may have queued or in flight: 16 MiB.
pub const DEFAULT_CLIENT_QUEUE_LIMIT: usize = 16 << 20;

/// `[server] max_buffered_bytes`: 2 GiB of reply bytes for the whole
/// process (twice one client's default hard limit).
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 2 << 30;

const SIZE_EXPECTED: &str = r#"bytes as an integer or text like "16mb", "1gb", "512kb""#;

/// A byte size (Redis units, see the module header).
pub(crate) fn size(v: &Scalar) -> Result<u64, String> {
    let bad = || format!("expected {SIZE_EXPECTED}, got {v}");
    let text = match v {
        Scalar::Int(n) => return u64::try_from(*n).map_err(|_| bad()),
        Scalar::Text(t) => t.trim().to_ascii_lowercase(),
    };
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(digits);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return Err(bad()),
    };
    num.parse::<u64>().ok().and_then(|n| n.checked_mul(mul)).ok_or_else(bad)
}

/// A byte size that fits this machine's `usize`.
fn usize_size(v: &Scalar) -> Result<usize, String> {
    size(v).and_then(|n| usize::try_from(n).map_err(|_| format!("expected a size this machine can address, got {v}")))
}

/// `soft_seconds`: an integer is seconds (as in redis.conf), text is a
/// duration like "30s".
fn seconds(v: &Scalar) -> Result<Duration, String> {
    match v {
        Scalar::Int(n) => {
            u64::try_from(*n).map(Duration::from_secs).map_err(|_| format!("expected seconds >= 0, got {v}"))
        }
        Scalar::Text(_) => duration(v),
    }
}

/// The byte limits of a multiplexed pool's clients: (output limit, queue
/// limit). `client_reply_limit` is the old name of the output limit's
/// `hard` (with no soft limit); giving both is an error.
pub(crate) fn pool_limits(file: &PoolFile, p: &mut Problems) -> Option<(OutputLimit, usize)> {
    let key = |k: &str| KeyPath::root().key(k);
    let queue = match &file.client_queue_limit {
        None => Some(DEFAULT_CLIENT_QUEUE_LIMIT),
        Some(v) => match usize_size(v) {
            Ok(0) => {
                p.add(key("client_queue_limit"), format!("expected a size > 0, got {v}"));
                None
            }
            r => p.check(key("client_queue_limit"), r),
        },
    };
    let output = match (&file.client_output_limit, file.client_reply_limit) {
        (Some(_), Some(_)) => {
            let why = "client_reply_limit is the old name of client_output_limit.hard: give one of them";
            p.add(key("client_reply_limit"), why);
            None
        }
        (None, Some(n)) => match usize::try_from(n) {
            Ok(n) if n > 0 => Some(OutputLimit::hard(n)),
            _ => {
                p.add(key("client_reply_limit"), format!("expected an integer >= 1, got {n}"));
                None
            }
        },
        (Some(t), None) => output_limit(t, p),
        (None, None) => Some(OutputLimit::DEFAULT),
    };
    Some((output?, queue?))
}

/// `client_output_limit = { hard, soft, soft_seconds }`; omitted keys keep
/// their defaults.
fn output_limit(t: &OutputLimitFile, p: &mut Problems) -> Option<OutputLimit> {
    let key = |k: &str| KeyPath::root().key("client_output_limit").key(k);
    let d = OutputLimit::DEFAULT;
    let hard = t.hard.as_ref().map_or(Some(d.hard), |v| p.check(key("hard"), usize_size(v)));
    let soft = t.soft.as_ref().map_or(Some(d.soft), |v| p.check(key("soft"), usize_size(v)));
    let soft_for = t.soft_seconds.as_ref().map_or(Some(d.soft_for), |v| p.check(key("soft_seconds"), seconds(v)));
    Some(OutputLimit { hard: hard?, soft: soft?, soft_for: soft_for? })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{parse, Config};

    fn load(src: &str, file: &str) -> Result<Config, String> {
        parse(src, Path::new(file)).map_err(|e| e.to_string())
    }

    const POOL: &str = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:7000\"\nservers = [\"127.0.0.1:7001\"]\n";

    #[test]
    fn toml_limits_with_defaults_alias_and_errors() {
        let c = load(&format!("{POOL}mode = \"memcache\"\nclient_output_limit = {{ soft = \"1mb\" }}\n"), "t.toml")
            .unwrap();
        let s = c.pools[0].shard.as_ref().unwrap();
        let want = OutputLimit { soft: 1 << 20, ..OutputLimit::DEFAULT };
        assert_eq!((s.client_output_limit, s.client_queue_limit), (want, DEFAULT_CLIENT_QUEUE_LIMIT));
        assert_eq!(c.server.max_buffered_bytes, Some(DEFAULT_MAX_BUFFERED_BYTES));

        let both = format!("{POOL}mode = \"redis\"\nclient_reply_limit = 10\nclient_output_limit = {{ hard = 10 }}\n");
        assert_eq!(
            load(&both, "t.toml").unwrap_err(),
            "t.toml:6: pool[0].client_reply_limit: client_reply_limit is the old name of \
             client_output_limit.hard: give one of them"
        );
        let typo = format!("{POOL}mode = \"redis\"\nclient_output_limit = {{ hrad = 10 }}\n");
        assert!(load(&typo, "t.toml").unwrap_err().contains("client_output_limit.hrad: unknown key"));
        let tcp = format!("{POOL}client_queue_limit = \"1mb\"\n");
        assert_eq!(
            load(&tcp, "t.toml").unwrap_err(),
            "t.toml:5: pool[0].client_queue_limit: applies only to mode \"redis\", \"memcache\" or \
             \"redis_cluster\", and this pool is \"tcp\""
        );
        let zero = format!("{POOL}mode = \"redis\"\nclient_queue_limit = 0\n");
        assert!(load(&zero, "t.toml").unwrap_err().contains("expected a size > 0"));
    }

    #[test]
    fn server_max_buffered_bytes() {
        let off = load(&format!("[server]\nmax_buffered_bytes = \"off\"\n{POOL}"), "t.toml").unwrap();
        assert_eq!(off.server.max_buffered_bytes, None);
        let set = load(&format!("[server]\nmax_buffered_bytes = \"512mb\"\n{POOL}"), "t.toml").unwrap();
        assert_eq!(set.server.max_buffered_bytes, Some(512 << 20));
        let bad = load(&format!("[server]\nmax_buffered_bytes = \"lots\"\n{POOL}"), "t.toml").unwrap_err();
        assert!(bad.starts_with("t.toml:2: server.max_buffered_bytes: expected bytes"), "{bad}");
    }

    #[test]
    fn nutcracker_yaml_takes_the_limits() {
        let src = "alpha:\n  listen: 127.0.0.1:22121\n  client_queue_limit: 2mb\n  client_output_limit:\n    \
                   hard: 64mb\n    soft: 8mb\n    soft_seconds: 5\n  servers:\n   - 127.0.0.1:11211:1\n";
        let c = load(src, "n.yml").unwrap();
        let s = c.pools[0].shard.as_ref().unwrap();
        assert_eq!(s.client_queue_limit, 2 << 20);
        assert_eq!(
            s.client_output_limit,
            OutputLimit { hard: 64 << 20, soft: 8 << 20, soft_for: Duration::from_secs(5) }
        );
        let bad = "alpha:\n  listen: 127.0.0.1:22121\n  client_output_limit:\n    hrad: 1\n  servers:\n   - 127.0.0.1:11211:1\n";
        assert_eq!(
            load(bad, "n.yml").unwrap_err(),
            "n.yml:4: alpha.client_output_limit.hrad: unknown key; expected one of hard, soft, soft_seconds"
        );
        let alias =
            "alpha:\n  listen: 127.0.0.1:22121\n  client_reply_limit: 4096\n  servers:\n   - 127.0.0.1:11211:1\n";
        let c = load(alias, "n.yml").unwrap();
        assert_eq!(c.pools[0].shard.as_ref().unwrap().client_output_limit, OutputLimit::hard(4096));
    }

    #[test]
    fn sizes_read_as_redis_reads_them() {
        assert_eq!(size(&Scalar::Int(4096)), Ok(4096));
        assert_eq!(size(&Scalar::text("1gb")), Ok(1 << 30));
        assert_eq!(size(&Scalar::text("256MB")), Ok(256 << 20));
        assert_eq!(size(&Scalar::text("1k")), Ok(1000));
        assert_eq!(size(&Scalar::text("1kb")), Ok(1024));
        assert_eq!(size(&Scalar::text("7")), Ok(7));
        for bad in ["", "mb", "1.5gb", "-1", "1tb", "99999999999999999999gb", "1 gb x"] {
            assert!(size(&Scalar::text(bad)).is_err(), "{bad:?}");
        }
        assert!(size(&Scalar::Int(-1)).is_err());
    }
}
