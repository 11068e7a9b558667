//! Runs one workload against one target: spawns the pinned load threads,
//! merges their per-second ticks as they arrive (progress line, JSON
//! series, HDR interval log) and their final recordings when they end.
//!
//! Owns nothing between runs. Invariant: every thread reaches the start
//! barrier, even one whose event loop could not be created, so a failed
//! thread never leaves the others waiting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::engine::{Engine, Msg, RunSpec, ThreadOut};
use super::error::BenchError;
use super::output::HdrLog;
use super::progress::Progress;
use super::record::{histogram, Recorder};

/// One second of a run, over all threads.
#[derive(Debug, Clone, Serialize)]
pub struct SecondStat {
    pub t: u32,
    pub ops: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The result of one measured run (or of a prefill / warm-up pass).
#[derive(Debug, Clone)]
pub struct RunResult {
    pub label: String,
    pub addr: SocketAddr,
    pub round: usize,
    pub elapsed: Duration,
    pub rec: Recorder,
    pub series: Vec<SecondStat>,
    pub aborted: Option<String>,
}

impl RunResult {
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rec.counts.ok as f64 / secs
        } else {
            0.0
        }
    }
}

/// Where threads run: `cpus[i % len]`, or unpinned when none are known.
pub struct Pinning {
    pub cpus: Vec<core_affinity::CoreId>,
}

impl Pinning {
    /// `wanted` from `--cpus`, else the CPUs this process may use (read
    /// once, before any thread pins itself).
    pub fn new(wanted: Option<&[usize]>) -> Pinning {
        let cpus = match wanted {
            Some(ids) => ids.iter().map(|&id| core_affinity::CoreId { id }).collect(),
            None => core_affinity::get_core_ids().unwrap_or_default(),
        };
        Pinning { cpus }
    }

    fn of(&self, thread: usize) -> Option<core_affinity::CoreId> {
        (!self.cpus.is_empty()).then(|| self.cpus[thread % self.cpus.len()])
    }
}

pub struct RunCtx<'a> {
    pub label: &'a str,
    pub addr: SocketAddr,
    pub round: usize,
    /// Connections of each thread (global lane ranges).
    pub lanes: Vec<std::ops::Range<usize>>,
    pub pinning: &'a Pinning,
    pub progress: &'a Progress,
    /// What the progress line says the run is, e.g. "puerta round 2/3".
    pub what: String,
    pub hdr: Option<&'a mut HdrLog>,
}

/// Runs `spec` on `ctx.lanes.len()` threads and merges the results.
pub fn execute(spec: &RunSpec, ctx: RunCtx<'_>) -> Result<RunResult, BenchError> {
    let threads = ctx.lanes.len();
    let barrier = Barrier::new(threads);
    let started: OnceLock<Instant> = OnceLock::new();
    let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
    let RunCtx { label, addr, round, lanes, pinning, progress, what, mut hdr } = ctx;
    let (outs, series) = std::thread::scope(|s| -> Result<(Vec<ThreadOut>, Vec<SecondStat>), BenchError> {
        let mut handles = Vec::with_capacity(threads);
        for (t, range) in lanes.iter().cloned().enumerate() {
            let (tx, barrier, started, cpu) = (tx.clone(), &barrier, &started, pinning.of(t));
            let h = std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn_scoped(s, move || {
                    if let Some(c) = cpu {
                        core_affinity::set_for_current(c);
                    }
                    match Engine::new(spec, t, range) {
                        Ok(e) => e.run(barrier, started, Some(&tx)),
                        Err(err) => {
                            barrier.wait();
                            let aborted = Some(format!("cannot create the event loop: {err}"));
                            ThreadOut { rec: Recorder::default(), elapsed: Duration::ZERO, aborted }
                        }
                    }
                })
                .map_err(BenchError::Thread)?;
            handles.push(h);
        }
        drop(tx);
        let mut seconds: BTreeMap<u32, (usize, Histogram<u64>, u64, u64)> = BTreeMap::new();
        let mut series = Vec::new();
        for Msg::Tick(tick) in rx.iter() {
            let e = seconds.entry(tick.second).or_insert_with(|| (0, histogram(), 0, 0));
            e.0 += 1;
            let _ = e.1.add(&tick.hist);
            e.2 += tick.ops;
            e.3 += tick.errors;
            if e.0 < threads {
                continue;
            }
            if let Some((_, h, ops, errors)) = seconds.remove(&tick.second) {
                let stat = second_stat(tick.second, &h, ops, errors);
                progress.set(format!(
                    "{what}  {:>4}s  {:>10} ops/s  {:>6} errors  p99 {:.3} ms",
                    stat.t + 1,
                    stat.ops,
                    stat.errors,
                    stat.p99_ms
                ));
                if let (Some(log), Some(at)) = (hdr.as_deref_mut(), started.get()) {
                    log.interval(label, *at, tick.second, &h);
                }
                series.push(stat);
            }
        }
        let outs: Vec<ThreadOut> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| ThreadOut {
                    rec: Recorder::default(),
                    elapsed: Duration::ZERO,
                    aborted: Some("load thread panicked".into()),
                })
            })
            .collect();
        Ok((outs, series))
    })?;
    progress.clear();
    let mut rec = Recorder::default();
    let mut elapsed = Duration::ZERO;
    let mut aborted = None;
    for o in &outs {
        rec.merge(&o.rec);
        elapsed = elapsed.max(o.elapsed);
        if aborted.is_none() {
            aborted.clone_from(&o.aborted);
        }
    }
    Ok(RunResult { label: label.to_string(), addr, round, elapsed, rec, series, aborted })
}

fn second_stat(t: u32, h: &Histogram<u64>, ops: u64, errors: u64) -> SecondStat {
    let ms = |ns: u64| ns as f64 / 1e6;
    let (p50, p99, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()))
    };
    SecondStat { t, ops, errors, p50_ms: p50, p99_ms: p99, max_ms: max }
}
