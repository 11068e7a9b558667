//! `puerta bench`: a load generator and tail-latency analyzer for Redis,
//! memcached and MongoDB targets, so the proxy can be measured with a tool
//! that shares none of its code paths.
//!
//! ```text
//! args -> plan -> [prefill] -> for each round: for each target:
//!                                 [warm-up run] -> measured run -> report block
//!                              -> comparison table, --json/--csv/--hdr/--plot
//! measured run: N pinned threads (engine), each a mio loop over its lanes
//!               (connections); per-second ticks -> coordinator (run)
//! ```
//!
//! Module map: `args` (clap flags), `plan` (validated plan), `keys` and
//! `workload` (what each request is), `shape` (open-loop rate curves and
//! intended send times), `lane` (window + pacer, where coordinated
//! omission is corrected), `codec` (sans-IO request/reply per protocol),
//! `cluster` (slot routing), `conn` and `engine` (sockets and the loop),
//! `record` (histograms, counters), `run` (threads of one run), `report`,
//! `output` and `plot` (what comes out), `progress` (the live line).
//!
//! Invariant: nothing here imports `worker`, `session` or `control`; only
//! the sans-IO `protocol` decoders and `hash::crc16` are shared.

pub mod args;
mod cluster;
mod codec;
mod conn;
mod engine;
pub mod error;
mod keys;
mod lane;
mod output;
pub mod plan;
mod plot;
mod progress;
mod record;
mod report;
mod run;
mod shape;
mod timer;
mod workload;

use std::process::ExitCode;

pub use args::BenchArgs;
use args::Protocol;
use cluster::SlotMap;
use codec::Wire;
use engine::RunSpec;
use error::BenchError;
use output::HdrLog;
use plan::{Plan, Target};
use progress::Progress;
use run::{execute, Pinning, RunCtx, RunResult};
use workload::{Mix, Workload};

/// Runs `puerta bench`; the exit status is 0 when every target answered,
/// 1 when a target gave no successful reply (the report still prints), 2
/// for bad flags.
pub fn main(args: BenchArgs) -> ExitCode {
    match bench(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("puerta bench: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn bench(args: &BenchArgs) -> Result<ExitCode, BenchError> {
    let plan = Plan::from_args(args)?;
    let pinning = Pinning::new(plan.cpus.as_deref());
    let progress = Progress::new();
    let mut hdr = plan.hdr.as_ref().map(|_| HdrLog::new());
    let maps = plan.targets.iter().map(|t| slot_map(&plan, t)).collect::<Result<Vec<_>, _>>()?;
    println!("puerta bench: {}", plan.describe_load());
    if plan.prefill {
        for (t, map) in plan.targets.iter().zip(&maps) {
            let r = prefill(&plan, t, map, &pinning, &progress)?;
            let errors = r.rec.counts.error_list();
            println!(
                "prefill {}: {} of {} keys written in {:.2} s{}",
                t.label,
                r.rec.counts.ok,
                plan.workload.keys,
                r.elapsed.as_secs_f64(),
                if errors.is_empty() { String::new() } else { format!(", errors {errors:?}") }
            );
        }
    }
    let mut results: Vec<RunResult> = Vec::new();
    for round in 0..plan.rounds {
        for (t, map) in plan.targets.iter().zip(&maps) {
            if let Some(w) = plan.warmup {
                let spec = RunSpec { duration: Some(w), requests: None, record: false, ..spec(&plan, map) };
                let what = format!("{} warm-up", t.label);
                execute(&spec, ctx(&plan, t, round, &pinning, &progress, what, None))?;
            }
            let spec = spec(&plan, map);
            let what = format!("{} round {}/{}", t.label, round + 1, plan.rounds);
            let r = execute(&spec, ctx(&plan, t, round, &pinning, &progress, what, hdr.as_mut()))?;
            print!("{}", report::run_text(&r, plan.shape.is_some(), plan.rounds));
            results.push(r);
        }
    }
    let labels: Vec<String> = plan.targets.iter().map(|t| t.label.clone()).collect();
    let sums: Vec<report::Summary> = labels
        .iter()
        .map(|l| report::summarize(l, &results.iter().filter(|r| &r.label == l).collect::<Vec<_>>()))
        .collect();
    if plan.targets.len() > 1 || plan.rounds > 1 {
        print!("{}", report::comparison(&sums));
    }
    if let Some(p) = &plan.json {
        output::json(&plan, &results, &sums, p)?;
    }
    if let Some(p) = &plan.csv {
        output::csv(&results, p)?;
    }
    if let (Some(p), Some(log)) = (&plan.hdr, &hdr) {
        log.finish(p)?;
    }
    if let Some(p) = &plan.plot {
        plot::draw(p, &labels, &results, plan.shape.is_some())?;
    }
    let dead: Vec<&str> = labels
        .iter()
        .filter(|l| results.iter().filter(|r| &r.label == *l).all(|r| r.rec.counts.ok == 0))
        .map(String::as_str)
        .collect();
    if !dead.is_empty() {
        eprintln!("puerta bench: no successful replies from {}", dead.join(", "));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The routing map of a target: CLUSTER SLOTS with `--cluster`.
fn slot_map(plan: &Plan, t: &Target) -> Result<SlotMap, BenchError> {
    if !plan.cluster {
        return Ok(SlotMap::single(t.addr));
    }
    SlotMap::fetch(t.addr, plan.timeout)
        .map_err(|problem| BenchError::ClusterSlots { target: t.addr.to_string(), problem })
}

fn spec(plan: &Plan, map: &SlotMap) -> RunSpec {
    RunSpec {
        map: map.clone(),
        cluster: plan.cluster,
        wire: Wire {
            protocol: plan.protocol,
            prefix: plan.workload.prefix.clone(),
            keys: plan.workload.keys,
            values: plan.workload.values.clone(),
            template: plan.template.clone(),
            mongo_db: plan.mongo_db.clone(),
            mongo_coll: plan.mongo_coll.clone(),
        },
        workload: plan.workload.clone(),
        shape: plan.shape.clone(),
        pipeline: plan.pipeline,
        lanes_total: plan.connections,
        threads: plan.threads,
        timeout: plan.timeout,
        duration: if plan.requests.is_some() { None } else { plan.duration },
        requests: plan.requests,
        seed: plan.seed,
        record: true,
    }
}

fn ctx<'a>(
    plan: &Plan,
    t: &'a Target,
    round: usize,
    pinning: &'a Pinning,
    progress: &'a Progress,
    what: String,
    hdr: Option<&'a mut HdrLog>,
) -> RunCtx<'a> {
    RunCtx {
        label: &t.label,
        addr: t.addr,
        round,
        lanes: (0..plan.threads).map(|i| plan.connections_of(i)).collect(),
        pinning,
        progress,
        what,
        hdr,
    }
}

/// Writes every key once: closed loop, pipelined, sequential keys, each
/// thread its own slice.
fn prefill(
    plan: &Plan,
    t: &Target,
    map: &SlotMap,
    pinning: &Pinning,
    progress: &Progress,
) -> Result<RunResult, BenchError> {
    let workload = Workload { mix: Mix::Prefill, ..plan.workload.clone() };
    let base = spec(plan, map);
    // Memcached and Redis take a deep pipeline of SETs without trouble.
    let pipeline = plan.pipeline.max(if plan.protocol == Protocol::Mongo { 1 } else { 16 });
    let spec = RunSpec {
        workload,
        shape: None,
        pipeline,
        duration: None,
        requests: Some(plan.workload.keys),
        record: false,
        ..base
    };
    execute(&spec, ctx(plan, t, 0, pinning, progress, format!("{} prefill", t.label), None))
}
