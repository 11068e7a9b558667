//! The text report: one block per run (ops/s, counts, errors by kind,
//! bytes, the latency percentiles) and, with several targets or rounds,
//! the side-by-side table of per-target medians with ratios to the first
//! target.
//!
//! Pure formatting over `RunResult`s: nothing here measures.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::run::RunResult;

/// The percentiles every report gives, then max.
pub const QUANTILES: [(&str, f64); 7] =
    [("p50", 0.5), ("p75", 0.75), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999)];

/// `(name, ms)` for each of `QUANTILES` and `max`; zeros when empty.
pub fn percentiles_ms(h: &Histogram<u64>) -> Vec<(&'static str, f64)> {
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut out: Vec<(&str, f64)> =
        QUANTILES.iter().map(|&(n, q)| (n, if h.is_empty() { 0.0 } else { ms(h.value_at_quantile(q)) })).collect();
    out.push(("max", if h.is_empty() { 0.0 } else { ms(h.max()) }));
    out
}

/// `1234567.8` -> `"1,234,568"`.
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Latency in ms with 3 decimals below 100 ms, fewer above.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn row(out: &mut String, name: &str, h: &Histogram<u64>) {
    let _ = write!(out, "   {name:<10}");
    for (_, v) in percentiles_ms(h) {
        let _ = write!(out, "{:>9}", ms(v));
    }
    out.push('\n');
}

/// The block for one run.
pub fn run_text(r: &RunResult, open_loop: bool, rounds: usize) -> String {
    let c = &r.rec.counts;
    let mut out = String::new();
    let addr = r.addr.to_string();
    let at = if r.label == addr { String::new() } else { format!(" ({addr})") };
    let _ = writeln!(out, "== {}{at}  round {}/{}", r.label, r.round + 1, rounds);
    let _ = writeln!(out, "   ops/s     {}  over {:.2} s", thousands(r.ops_per_sec()), r.elapsed.as_secs_f64());
    let _ = writeln!(
        out,
        "   requests  sent {}  ok {}  failed {}",
        thousands(c.sent as f64),
        thousands(c.ok as f64),
        thousands(c.request_errors() as f64)
    );
    if c.hits + c.misses > 0 {
        let _ = writeln!(out, "   reads     hits {}  misses {}", thousands(c.hits as f64), thousands(c.misses as f64));
    }
    let errors = c.error_list();
    if !errors.is_empty() {
        let list: Vec<String> = errors.iter().map(|(k, n)| format!("{k} {}", thousands(*n as f64))).collect();
        let _ = writeln!(out, "   errors    {}", list.join("  "));
    }
    if c.moved + c.ask > 0 {
        let _ = writeln!(out, "   redirects moved {}  ask {}", thousands(c.moved as f64), thousands(c.ask as f64));
    }
    let _ = writeln!(out, "   bytes     out {}  in {}", bytes(c.bytes_out), bytes(c.bytes_in));
    let _ = write!(out, "   {:<10}", "ms");
    for (name, _) in percentiles_ms(&r.rec.latency) {
        let _ = write!(out, "{name:>9}");
    }
    out.push('\n');
    row(&mut out, "latency", &r.rec.latency);
    if open_loop {
        row(&mut out, "service", &r.rec.service);
        out.push_str("   latency: from each request's intended send time (coordinated omission corrected);\n");
        out.push_str("   service: from when it was actually sent\n");
    }
    if let Some(why) = &r.aborted {
        let _ = writeln!(out, "   aborted: {why}");
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Medians over one target's rounds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub label: String,
    pub rounds: usize,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
}

pub fn summarize(label: &str, runs: &[&RunResult]) -> Summary {
    let pick = |name: &str| -> f64 {
        median(
            runs.iter()
                .map(|r| percentiles_ms(&r.rec.latency).iter().find(|(n, _)| *n == name).map_or(0.0, |p| p.1))
                .collect(),
        )
    };
    Summary {
        label: label.to_string(),
        rounds: runs.len(),
        ops_per_sec: median(runs.iter().map(|r| r.ops_per_sec()).collect()),
        p50_ms: pick("p50"),
        p99_ms: pick("p99"),
        p999_ms: pick("p99.9"),
        max_ms: pick("max"),
        errors: runs.iter().map(|r| r.rec.counts.errors_total()).sum(),
    }
}

/// The side-by-side table: medians per target, ratios to the first.
pub fn comparison(sums: &[Summary]) -> String {
    let mut out = String::new();
    let rounds = sums.first().map_or(0, |s| s.rounds);
    let _ = writeln!(out, "== comparison (medians of {rounds} round{})", if rounds == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "   {:<16} {:>12} {:>6} {:>9} {:>6} {:>9} {:>6} {:>9} {:>9} {:>8}",
        "target", "ops/s", "x", "p50 ms", "x", "p99 ms", "x", "p99.9 ms", "max ms", "errors"
    );
    let Some(base) = sums.first() else { return out };
    let ratio = |v: f64, b: f64| if b > 0.0 { format!("{:.2}", v / b) } else { "-".into() };
    for s in sums {
        let _ = writeln!(
            out,
            "   {:<16} {:>12} {:>6} {:>9} {:>6} {:>9} {:>6} {:>9} {:>9} {:>8}",
            s.label,
            thousands(s.ops_per_sec),
            ratio(s.ops_per_sec, base.ops_per_sec),
            ms(s.p50_ms),
            ratio(s.p50_ms, base.p50_ms),
            ms(s.p99_ms),
            ratio(s.p99_ms, base.p99_ms),
            ms(s.p999_ms),
            ms(s.max_ms),
            s.errors
        );
    }
    let _ = writeln!(out, "   x = ratio to {}", base.label);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::record::{ErrKind, Recorder};
    use std::time::Duration;

    fn run(label: &str, round: usize, lat_ms: &[u64], ok: u64) -> RunResult {
        let mut rec = Recorder::default();
        for &v in lat_ms {
            rec.reply(v * 1_000_000, v * 500_000);
        }
        rec.counts.ok = ok;
        rec.counts.sent = ok + 2;
        rec.counts.hits = 7;
        rec.counts.bytes_out = 3 << 20;
        rec.error(ErrKind::Timeout, 2);
        RunResult {
            label: label.into(),
            addr: "127.0.0.1:6379".parse().unwrap(),
            round,
            elapsed: Duration::from_secs(2),
            rec,
            series: Vec::new(),
            aborted: None,
        }
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(174_512.0), "174,512");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!((bytes(512), bytes(1536), bytes(3 << 20)), ("512 B".into(), "1.5 KiB".into(), "3.0 MiB".into()));
        assert_eq!((ms(0.1834), ms(1234.56)), ("0.183".to_string(), "1234.6".to_string()));
    }

    #[test]
    fn run_block_shows_counts_errors_and_percentiles() {
        let r = run("direct", 0, &[1, 2, 3, 4, 100], 2000);
        let text = run_text(&r, true, 3);
        assert!(text.starts_with("== direct (127.0.0.1:6379)  round 1/3\n"), "{text}");
        assert!(text.contains("ops/s     1,000  over 2.00 s"), "{text}");
        assert!(text.contains("sent 2,002  ok 2,000  failed 2"), "{text}");
        assert!(text.contains("errors    timeout 2"), "{text}");
        assert!(text.contains("hits 7  misses 0"), "{text}");
        assert!(text.contains("out 3.0 MiB  in 0 B"), "{text}");
        let header = text.lines().find(|l| l.trim_start().starts_with("ms")).unwrap();
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>()[1..],
            ["p50", "p75", "p90", "p95", "p99", "p99.9", "p99.99", "max"]
        );
        let lat: Vec<&str> = text.lines().find(|l| l.contains("latency ")).unwrap().split_whitespace().collect();
        assert_eq!(lat, ["latency", "3.000", "4.002", "100.0", "100.0", "100.0", "100.0", "100.0", "100.0"], "{text}");
        assert!(text.contains("service "), "open loop shows service time");
        assert!(!run_text(&r, false, 1).contains("service "), "closed loop: latency is service time");
    }

    #[test]
    fn comparison_uses_medians_and_ratios() {
        let a = [run("a", 0, &[1], 2000), run("a", 1, &[3], 6000), run("a", 2, &[2], 4000)];
        let b = [run("b", 0, &[4], 1000), run("b", 1, &[4], 1000), run("b", 2, &[8], 3000)];
        let sa = summarize("a", &a.iter().collect::<Vec<_>>());
        let sb = summarize("b", &b.iter().collect::<Vec<_>>());
        assert_eq!((sa.ops_per_sec, sb.ops_per_sec), (2000.0, 500.0));
        assert!((sa.p50_ms - 2.0).abs() < 0.01 && (sb.p50_ms - 4.0).abs() < 0.01);
        assert_eq!(sa.errors, 6);
        let t = comparison(&[sa, sb]);
        let line = t.lines().find(|l| l.trim_start().starts_with("b ")).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cols[..5], ["b", "500", "0.25", "4.002", "2.00"], "{t}");
        assert!(t.contains("medians of 3 rounds") && t.contains("ratio to a"), "{t}");
    }
}
