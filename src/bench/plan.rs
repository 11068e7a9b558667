//! The validated run plan: `BenchArgs` (strings and numbers as typed)
//! become `Plan` (targets, workload, load model, outputs), with every
//! problem reported as `BenchError::Flag` naming the flag.
//!
//! Invariant: a `Plan` is runnable: at least one target, a non-empty
//! workload the protocol can send, a run length, and thread/connection
//! counts that fit (each thread has at least one connection).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::args::{BenchArgs, Protocol};
use super::error::BenchError;
use super::keys::{KeyDist, Values};
use super::shape::Shape;
use super::workload::{Mix, Template, Workload};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub label: String,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub protocol: Protocol,
    pub cluster: bool,
    pub workload: Workload,
    pub template: Option<Arc<Template>>,
    pub prefill: bool,
    pub warmup: Option<Duration>,
    pub connections: usize,
    pub pipeline: u32,
    /// Open loop when set.
    pub shape: Option<Shape>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
    pub timeout: Duration,
    pub rounds: usize,
    pub seed: u64,
    pub json: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub hdr: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub mongo_db: String,
    pub mongo_coll: String,
}

const MAX_CONNECTIONS: u32 = 100_000;
const MAX_PIPELINE: u32 = 100_000;
const MAX_THREADS: u32 = 1024;

fn duration(flag: &'static str, s: &str) -> Result<Duration, BenchError> {
    match crate::config::parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(BenchError::flag(flag, format!("expected a duration like 10s or 500ms, got {s:?}"))),
    }
}

/// `[label=]host:port`; the label defaults to the address.
pub fn parse_target(s: &str) -> Result<Target, BenchError> {
    let (label, addr) = match s.split_once('=') {
        Some((l, a)) => (l.trim().to_string(), a.trim()),
        None => (s.trim().to_string(), s.trim()),
    };
    if label.is_empty() || label.contains(|c: char| c == ',' || c.is_whitespace()) {
        return Err(BenchError::flag(
            "--target",
            format!("label in {s:?} must be non-empty, without commas or spaces"),
        ));
    }
    let resolved = addr
        .to_socket_addrs()
        .map_err(|e| BenchError::flag("--target", format!("expected [NAME=]HOST:PORT, got {s:?} ({e})")))?;
    let mut all: Vec<SocketAddr> = resolved.collect();
    // Prefer IPv4 for names like localhost (servers here bind 127.0.0.1).
    all.sort_by_key(|a| !a.is_ipv4());
    let addr = *all.first().ok_or_else(|| BenchError::flag("--target", format!("{addr:?} resolves to nothing")))?;
    Ok(Target { label, addr })
}

fn cpus(s: &str) -> Result<Vec<usize>, BenchError> {
    s.split(',')
        .map(|c| c.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| BenchError::flag("--cpus", format!("expected a list of CPU numbers like 0,1, got {s:?}")))
}

impl Plan {
    pub fn from_args(a: &BenchArgs) -> Result<Plan, BenchError> {
        let targets = a.targets.iter().map(|t| parse_target(t)).collect::<Result<Vec<_>, _>>()?;
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|u| u.label == t.label) {
                return Err(BenchError::flag("--target", format!("label {:?} is given twice", t.label)));
            }
        }
        if a.cluster && a.protocol != Protocol::Redis {
            return Err(BenchError::flag("--cluster", "needs --protocol redis"));
        }
        let in_range = |flag: &'static str, v: u32, max: u32| {
            if v == 0 || v > max {
                Err(BenchError::flag(flag, format!("expected 1 to {max}, got {v}")))
            } else {
                Ok(())
            }
        };
        in_range("--connections", a.connections, MAX_CONNECTIONS)?;
        in_range("--pipeline", a.pipeline, MAX_PIPELINE)?;
        in_range("--threads", a.threads, MAX_THREADS)?;
        in_range("--rounds", a.rounds, 1000)?;
        if a.threads > a.connections {
            return Err(BenchError::flag(
                "--threads",
                format!("{} threads need at least as many --connections (got {})", a.threads, a.connections),
            ));
        }
        if a.keys == 0 {
            return Err(BenchError::flag("--keys", "expected at least 1"));
        }
        let run = a.duration.as_deref().map(|d| duration("--duration", d)).transpose()?;
        if run.is_some() && a.requests.is_some() {
            return Err(BenchError::flag("--requests", "give --duration or --requests, not both"));
        }
        if a.requests == Some(0) {
            return Err(BenchError::flag("--requests", "expected at least 1"));
        }
        let duration_or_default = match (run, a.requests) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        let shape = a.rate.as_deref().map(|r| Shape::parse(r, duration_or_default)).transpose();
        let shape = shape.map_err(|e| BenchError::flag("--rate", e))?;
        let values = Values::parse(&a.value_size).map_err(|e| BenchError::flag("--value-size", e))?;
        let dist = KeyDist::parse(&a.key_dist).map_err(|e| BenchError::flag("--key-dist", e))?;
        let (mix, template) = Self::mix(a)?;
        if a.prefill && a.protocol == Protocol::Mongo {
            return Err(BenchError::flag("--prefill", "is not supported with --protocol mongo (only ping and find)"));
        }
        let (mongo_db, mongo_coll) = a
            .mongo_ns
            .split_once('.')
            .filter(|(d, c)| !d.is_empty() && !c.is_empty())
            .map(|(d, c)| (d.to_string(), c.to_string()))
            .ok_or_else(|| BenchError::flag("--mongo-ns", format!("expected DB.COLLECTION, got {:?}", a.mongo_ns)))?;
        Ok(Plan {
            targets,
            protocol: a.protocol,
            cluster: a.cluster,
            workload: Workload {
                mix,
                keys: a.keys,
                dist,
                prefix: Arc::from(a.key_prefix.as_bytes()),
                values: Arc::new(values),
            },
            template,
            prefill: a.prefill,
            warmup: a.warmup.as_deref().map(|w| duration("--warmup", w)).transpose()?,
            connections: a.connections as usize,
            pipeline: a.pipeline,
            shape,
            duration: duration_or_default,
            requests: a.requests,
            threads: a.threads as usize,
            cpus: a.cpus.as_deref().map(cpus).transpose()?,
            timeout: duration("--timeout", &a.timeout)?,
            rounds: a.rounds as usize,
            seed: a.seed,
            json: a.json.clone(),
            csv: a.csv.clone(),
            hdr: a.hdr.clone(),
            plot: a.plot.clone(),
            mongo_db,
            mongo_coll,
        })
    }

    fn mix(a: &BenchArgs) -> Result<(Mix, Option<Arc<Template>>), BenchError> {
        if a.mget == Some(0) || a.mget.is_some_and(|n| n > 10_000) {
            return Err(BenchError::flag("--mget", "expected 1 to 10000 keys"));
        }
        match (a.protocol, &a.command) {
            (Protocol::Mongo, None) => Ok((Mix::Find, None)),
            (Protocol::Mongo, Some(c)) => match c.trim() {
                "ping" => Ok((Mix::Ping, None)),
                "find" => Ok((Mix::Find, None)),
                other => Err(BenchError::flag("--command", format!("mongo sends ping or find, got {other:?}"))),
            },
            (Protocol::Memcache, Some(_)) => {
                Err(BenchError::flag("--command", "templates are for --protocol redis; memcache uses --ratio/--mget"))
            }
            (Protocol::Redis, Some(c)) => {
                if a.mget.is_some() {
                    return Err(BenchError::flag("--command", "give --command or --mget, not both"));
                }
                let t = Arc::new(Template::parse(c).map_err(|e| BenchError::flag("--command", e))?);
                Ok((Mix::Template(t.clone()), Some(t)))
            }
            (_, None) => {
                let (get, set) = Mix::parse_ratio(&a.ratio).map_err(|e| BenchError::flag("--ratio", e))?;
                Ok((Mix::Ratio { get, set, mget: a.mget }, None))
            }
        }
    }

    /// Connections of thread `t`: the total split as evenly as possible.
    pub fn connections_of(&self, t: usize) -> std::ops::Range<usize> {
        let (per, extra) = (self.connections / self.threads, self.connections % self.threads);
        let start = t * per + t.min(extra);
        start..start + per + usize::from(t < extra)
    }

    pub fn describe_load(&self) -> String {
        let model = match &self.shape {
            Some(s) => format!("open loop at {}", s.describe()),
            None => "closed loop".to_string(),
        };
        let length = match (self.duration, self.requests) {
            (_, Some(n)) => format!("{n} requests"),
            (Some(d), None) => format!("{:.1} s", d.as_secs_f64()),
            (None, None) => String::new(),
        };
        format!(
            "{} {}, {} connections x pipeline {}, {} thread{}, {length}",
            self.protocol.as_str(),
            model,
            self.connections,
            self.pipeline,
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        b: BenchArgs,
    }

    fn plan(args: &[&str]) -> Result<Plan, BenchError> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).unwrap();
        Plan::from_args(&cli.b)
    }

    #[test]
    fn defaults_and_labels() {
        let p = plan(&["-t", "127.0.0.1:6379", "-t", "px=127.0.0.1:6380"]).unwrap();
        assert_eq!(p.targets[0].label, "127.0.0.1:6379");
        assert_eq!(p.targets[1], Target { label: "px".into(), addr: "127.0.0.1:6380".parse().unwrap() });
        assert_eq!((p.duration, p.requests, p.connections, p.pipeline), (Some(Duration::from_secs(10)), None, 50, 1));
        assert!(p.shape.is_none());
        assert_eq!(plan(&["-t", "localhost:1"]).unwrap().targets[0].addr, "127.0.0.1:1".parse().unwrap());
    }

    #[test]
    fn splits_connections_over_threads() {
        let p = plan(&["-t", "127.0.0.1:1", "-c", "10", "--threads", "3"]).unwrap();
        let ranges: Vec<_> = (0..3).map(|t| p.connections_of(t)).collect();
        assert_eq!(ranges, [0..4, 4..7, 7..10]);
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (args, flag) in [
            (&["-t", "nohostport"][..], "--target"),
            (&["-t", "a=127.0.0.1:1", "-t", "a=127.0.0.1:2"], "--target"),
            (&["-t", "127.0.0.1:1", "-c", "0"], "--connections"),
            (&["-t", "127.0.0.1:1", "--threads", "4", "-c", "2"], "--threads"),
            (&["-t", "127.0.0.1:1", "-d", "soon"], "--duration"),
            (&["-t", "127.0.0.1:1", "-d", "1s", "-n", "5"], "--requests"),
            (&["-t", "127.0.0.1:1", "--rate", "fast"], "--rate"),
            (&["-t", "127.0.0.1:1", "--ratio", "1"], "--ratio"),
            (&["-t", "127.0.0.1:1", "--key-dist", "zipf"], "--key-dist"),
            (&["-t", "127.0.0.1:1", "--value-size", "5-1"], "--value-size"),
            (&["-t", "127.0.0.1:1", "--cluster", "--protocol", "memcache"], "--cluster"),
            (&["-t", "127.0.0.1:1", "--protocol", "mongo", "--command", "insert"], "--command"),
            (&["-t", "127.0.0.1:1", "--cpus", "a"], "--cpus"),
            (&["-t", "127.0.0.1:1", "--timeout", "0s"], "--timeout"),
        ] {
            match plan(args) {
                Err(e @ BenchError::Flag { .. }) => {
                    assert!(e.to_string().starts_with(flag), "{args:?}: {e}");
                    assert_eq!(e.exit_code(), 2);
                }
                other => panic!("{args:?}: expected a flag error, got {other:?}"),
            }
        }
    }
}
