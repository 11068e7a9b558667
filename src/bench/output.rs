//! Report files: `--json` (everything, with per-second series), `--csv`
//! (one row per target and round) and `--hdr` (an HdrHistogram interval
//! log: one histogram per target-second, tagged with the target's label,
//! values in nanoseconds, readable by HdrHistogram's log tools).
//!
//! Invariant: files are written whole at the end (the HDR log is built in
//! memory as the run goes), so an interrupted run leaves no half file.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::error::BenchError;
use super::plan::Plan;
use super::record::ERR_KINDS;
use super::report::{percentiles_ms, Summary};
use super::run::{RunResult, SecondStat};

fn write(what: &'static str, path: &Path, data: &[u8]) -> Result<(), BenchError> {
    std::fs::write(path, data).map_err(|e| BenchError::Output {
        what,
        path: path.display().to_string(),
        problem: e.to_string(),
    })
}

/// Interval max values are written in ms (values are ns).
const MAX_DIVISOR: f64 = 1e6;

/// The HDR interval log under construction.
pub struct HdrLog {
    /// When the bench began: interval timestamps are seconds since then.
    base: Instant,
    base_wall: SystemTime,
    lines: Vec<u8>,
    serializer: V2DeflateSerializer,
}

impl HdrLog {
    pub fn new() -> HdrLog {
        HdrLog {
            base: Instant::now(),
            base_wall: SystemTime::now(),
            lines: Vec::new(),
            serializer: V2DeflateSerializer::new(),
        }
    }

    /// Adds second `second` of a run that started at `start`.
    pub fn interval(&mut self, label: &str, start: Instant, second: u32, h: &Histogram<u64>) {
        let at = start.saturating_duration_since(self.base) + Duration::from_secs(u64::from(second));
        // A writer needs a builder, which writes header comments; keep only
        // the interval line (the header is written once, by `finish`).
        let mut buf = Vec::new();
        let written = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(MAX_DIVISOR)
            .begin_log_with(&mut buf, &mut self.serializer)
            .and_then(|mut w| {
                w.write_histogram(h, at, Duration::from_secs(1), Tag::new(label))
                    .map_err(|e| std::io::Error::other(format!("{e:?}")))
            });
        if written.is_ok() {
            for line in buf.split_inclusive(|&b| b == b'\n').filter(|l| !l.starts_with(b"#")) {
                self.lines.extend_from_slice(line);
            }
        }
    }

    pub fn finish(&self, path: &Path) -> Result<(), BenchError> {
        let mut out = Vec::new();
        let header = IntervalLogWriterBuilder::new()
            .add_comment("puerta bench: one histogram per target per second, values in nanoseconds")
            .with_start_time(self.base_wall)
            .with_base_time(self.base_wall)
            .with_max_value_divisor(MAX_DIVISOR)
            .begin_log_with(&mut out, &mut V2DeflateSerializer::new())
            .map(drop);
        header.map_err(|e| BenchError::Output {
            what: "HDR log",
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        out.extend_from_slice(&self.lines);
        write("HDR log", path, &out)
    }
}

impl Default for HdrLog {
    fn default() -> HdrLog {
        HdrLog::new()
    }
}

#[derive(Serialize)]
struct JsonRun<'a> {
    round: usize,
    duration_s: f64,
    ops_per_sec: f64,
    #[serde(flatten)]
    counts: &'a super::record::Counts,
    /// Errors that ended sent requests: `sent = ok + failed`.
    failed: u64,
    errors: std::collections::BTreeMap<&'static str, u64>,
    latency_ms: std::collections::BTreeMap<&'static str, f64>,
    service_ms: std::collections::BTreeMap<&'static str, f64>,
    aborted: Option<&'a str>,
    series: &'a [SecondStat],
}

#[derive(Serialize)]
struct JsonTarget<'a> {
    label: &'a str,
    addr: String,
    median: &'a Summary,
    runs: Vec<JsonRun<'a>>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    tool: &'static str,
    version: &'static str,
    protocol: &'static str,
    load: String,
    open_loop: bool,
    targets: Vec<JsonTarget<'a>>,
}

fn json_run(r: &RunResult) -> JsonRun<'_> {
    let c = &r.rec.counts;
    JsonRun {
        round: r.round + 1,
        duration_s: r.elapsed.as_secs_f64(),
        ops_per_sec: r.ops_per_sec(),
        counts: c,
        failed: c.request_errors(),
        errors: ERR_KINDS.iter().map(|&k| (k.name(), c.error(k))).collect(),
        latency_ms: percentiles_ms(&r.rec.latency).into_iter().collect(),
        service_ms: percentiles_ms(&r.rec.service).into_iter().collect(),
        aborted: r.aborted.as_deref(),
        series: &r.series,
    }
}

pub fn json(plan: &Plan, results: &[RunResult], sums: &[Summary], path: &Path) -> Result<(), BenchError> {
    let targets = plan
        .targets
        .iter()
        .zip(sums)
        .map(|(t, s)| JsonTarget {
            label: &t.label,
            addr: t.addr.to_string(),
            median: s,
            runs: results.iter().filter(|r| r.label == t.label).map(json_run).collect(),
        })
        .collect();
    let report = JsonReport {
        tool: "puerta bench",
        version: env!("CARGO_PKG_VERSION"),
        protocol: plan.protocol.as_str(),
        load: plan.describe_load(),
        open_loop: plan.shape.is_some(),
        targets,
    };
    let text = serde_json::to_vec_pretty(&report).map_err(|e| BenchError::Output {
        what: "JSON report",
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    write("JSON report", path, &text)
}

pub fn csv(results: &[RunResult], path: &Path) -> Result<(), BenchError> {
    let mut out =
        String::from("target,addr,round,duration_s,ops_per_sec,sent,ok,errors,hits,misses,bytes_out,bytes_in");
    for (name, _) in percentiles_ms(&super::record::histogram()) {
        out.push_str(&format!(",{name}_ms"));
    }
    for (name, _) in percentiles_ms(&super::record::histogram()) {
        out.push_str(&format!(",service_{name}_ms"));
    }
    out.push('\n');
    for r in results {
        let c = &r.rec.counts;
        out.push_str(&format!(
            "{},{},{},{:.3},{:.1},{},{},{},{},{},{},{}",
            r.label,
            r.addr,
            r.round + 1,
            r.elapsed.as_secs_f64(),
            r.ops_per_sec(),
            c.sent,
            c.ok,
            c.errors_total(),
            c.hits,
            c.misses,
            c.bytes_out,
            c.bytes_in
        ));
        for h in [&r.rec.latency, &r.rec.service] {
            for (_, v) in percentiles_ms(h) {
                out.push_str(&format!(",{v:.4}"));
            }
        }
        out.push('\n');
    }
    write("CSV report", path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn hdr_log_parses_back_with_hdrhistogram() {
        let mut log = HdrLog::new();
        let mut h = crate::bench::record::histogram();
        for v in [1_000u64, 2_000_000, 3_000_000_000] {
            h.record(v).unwrap();
        }
        let start = Instant::now();
        log.interval("direct", start, 0, &h);
        log.interval("puerta", start, 1, &h);
        let path = std::env::temp_dir().join(format!("puerta-bench-hdr-{}.hlog", std::process::id()));
        log.finish(&path).unwrap();
        let text = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut tags = Vec::new();
        for entry in IntervalLogIterator::new(&text) {
            if let Ok(LogEntry::Interval(i)) = entry {
                tags.push(i.tag().map(|t| t.as_str().to_string()));
                assert_eq!(i.duration(), Duration::from_secs(1));
                let raw = base64_decode(i.encoded_histogram());
                let back: Histogram<u64> = Deserializer::new().deserialize(&mut &raw[..]).unwrap();
                assert_eq!((back.len(), back.max()), (3, h.max()));
            }
        }
        assert_eq!(tags, [Some("direct".to_string()), Some("puerta".to_string())]);
        assert!(String::from_utf8_lossy(&text).contains("#[BaseTime:"));
    }

    /// Standard base64 (the log's encoding), enough for the test.
    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
        bytes
            .chunks(4)
            .flat_map(|ch| {
                let n = ch.iter().enumerate().fold(0u32, |n, (i, &v)| n | (u32::from(v) << (18 - 6 * i)));
                let take = ch.len().saturating_sub(1);
                (0..take).map(move |i| (n >> (16 - 8 * i)) as u8)
            })
            .collect()
    }
}
