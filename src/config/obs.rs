//! Layer 2 for the observability keys: `[server] metrics_detail`, and the
//! slow log keys every pool kind takes (`slow_op_threshold`,
//! `slowlog_max_len`, `slowlog_keys`) and `hot_keys` -> `ObsConfig`.
//!
//! Owns their defaults and ranges. tcp pools accept the keys and ignore
//! them (a byte stream has no requests to time). Problem paths are relative
//! to the table, as elsewhere in `config`.

use std::time::Duration;

use super::file::PoolFile;
use super::span::KeyPath;
use super::validate::{int_in, optional_duration, pick, Problems};
use crate::obs::rec::{DEFAULT_SLOW, DEFAULT_SLOWLOG_MAX_LEN};
use crate::obs::KeyRule;

/// `[server] metrics_detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsDetail {
    /// Per-request timing: latency histograms and the slow log.
    #[default]
    Full,
    /// No clock work per request: counters only.
    Basic,
}

impl MetricsDetail {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsDetail::Full => "full",
            MetricsDetail::Basic => "basic",
        }
    }
}

pub(crate) fn metrics_detail(s: &str) -> Result<MetricsDetail, String> {
    pick(s, &[("full", MetricsDetail::Full), ("basic", MetricsDetail::Basic)])
}

/// A pool's slow log settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObsConfig {
    /// Requests at least this slow are logged; `None` ("off" or 0): none.
    pub slow_op_threshold: Option<Duration>,
    /// Entries kept per core (the oldest go first).
    pub slowlog_max_len: usize,
    pub slowlog_keys: KeyRule,
    /// Track each worker's hottest keys (`GET /hotkeys`).
    pub hot_keys: bool,
}

impl Default for ObsConfig {
    fn default() -> Self {
        ObsConfig {
            slow_op_threshold: Some(DEFAULT_SLOW),
            slowlog_max_len: DEFAULT_SLOWLOG_MAX_LEN,
            slowlog_keys: KeyRule::Hashed,
            hot_keys: false,
        }
    }
}

/// Reads the pool's slow log keys.
pub(crate) fn convert(file: &PoolFile, p: &mut Problems) -> Option<ObsConfig> {
    let key = |k: &str| KeyPath::root().key(k);
    let d = ObsConfig::default();
    let slow = match &file.slow_op_threshold {
        None => Some(d.slow_op_threshold),
        Some(v) => p.check(key("slow_op_threshold"), optional_duration(v)),
    };
    let max_len = match file.slowlog_max_len {
        None => Some(d.slowlog_max_len),
        Some(n) => p.check(key("slowlog_max_len"), int_in(n, 1, 1 << 20)).map(|n| n as usize),
    };
    let keys = match &file.slowlog_keys {
        None => Some(d.slowlog_keys),
        Some(s) => p.check(
            key("slowlog_keys"),
            pick(s, &[("hidden", KeyRule::Hidden), ("hashed", KeyRule::Hashed), ("shown", KeyRule::Shown)]),
        ),
    };
    let hot_keys = file.hot_keys.unwrap_or(d.hot_keys);
    Some(ObsConfig { slow_op_threshold: slow?, slowlog_max_len: max_len?, slowlog_keys: keys?, hot_keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str, file: &str) -> Result<crate::config::Config, String> {
        crate::config::parse(src, std::path::Path::new(file)).map_err(|e| e.to_string())
    }

    const POOL: &str =
        "[[pool]]\nname = \"r\"\nlisten = \"127.0.0.1:7000\"\nmode = \"redis\"\nservers = [\"127.0.0.1:6379\"]\n";

    #[test]
    fn defaults_and_every_pool_kind_takes_the_keys() {
        let c = load(POOL, "t.toml").unwrap();
        assert_eq!(c.server.metrics_detail, MetricsDetail::Full);
        assert_eq!(c.pools[0].obs, ObsConfig::default());
        let src = format!(
            "[server]\nmetrics_detail = \"basic\"\n{POOL}slow_op_threshold = \"50ms\"\nslowlog_max_len = 4\nslowlog_keys = \"shown\"\nhot_keys = true\n"
        );
        let c = load(&src, "t.toml").unwrap();
        assert_eq!(c.server.metrics_detail, MetricsDetail::Basic);
        let o = c.pools[0].obs;
        assert_eq!(o.slow_op_threshold, Some(Duration::from_millis(50)));
        assert_eq!((o.slowlog_max_len, o.slowlog_keys, o.hot_keys), (4, KeyRule::Shown, true));
        let off = load(&format!("{POOL}slow_op_threshold = \"off\"\n"), "t.toml").unwrap();
        assert_eq!(off.pools[0].obs.slow_op_threshold, None);
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let e = load(&format!("[server]\nmetrics_detail = \"most\"\n{POOL}"), "t.toml").unwrap_err();
        assert!(e.starts_with("t.toml:2: server.metrics_detail: expected one of full, basic"), "{e}");
        let e = load(&format!("{POOL}slowlog_keys = \"plain\"\nslowlog_max_len = 0\n"), "t.toml").unwrap_err();
        assert!(e.contains("t.toml:6: pool[0].slowlog_keys: expected one of hidden, hashed, shown"), "{e}");
        assert!(e.contains("t.toml:7: pool[0].slowlog_max_len:"), "{e}");
    }
}
