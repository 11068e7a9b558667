//! `puerta bench` flags (clap). Owns only the shape of the command line;
//! `plan::Plan::from_args` checks the values and turns them into the run
//! plan, so every semantic problem is reported with the flag's name and
//! exit status 2, like clap's own usage errors.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Load generator and tail-latency analyzer for Redis, memcached and MongoDB.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXAMPLES)]
pub struct BenchArgs {
    /// Target `host:port`, optionally labelled `name=host:port`; repeat to
    /// compare several targets (the same workload runs against each in turn).
    #[arg(long = "target", short = 't', value_name = "[NAME=]HOST:PORT", required = true)]
    pub targets: Vec<String>,
    /// Wire protocol of the targets.
    #[arg(long, value_enum, default_value_t = Protocol::Redis)]
    pub protocol: Protocol,
    /// Redis Cluster: route each request by key slot using CLUSTER SLOTS
    /// from the target, following MOVED (refresh) and ASK redirects.
    #[arg(long)]
    pub cluster: bool,

    /// Mix of reads and writes as GET:SET weights, e.g. 9:1.
    #[arg(long, value_name = "GET:SET", default_value = "1:1")]
    pub ratio: String,
    /// Reads are multi-key: MGET (memcached: get) of N consecutive keys.
    #[arg(long, value_name = "N")]
    pub mget: Option<u32>,
    /// Explicit command instead of --ratio. Redis: arguments split on spaces,
    /// `{key}` and `{value}` replaced, e.g. "HSET {key} f {value}". MongoDB:
    /// `ping` or `find` (by `_id`, the default).
    #[arg(long, value_name = "TEMPLATE")]
    pub command: Option<String>,
    /// Number of distinct keys.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub keys: u64,
    /// Key distribution: uniform, zipf:S (exponent S, e.g. zipf:0.99) or sequential.
    #[arg(long = "key-dist", value_name = "DIST", default_value = "uniform")]
    pub key_dist: String,
    /// Prefix of every key; keys are PREFIX + index.
    #[arg(long = "key-prefix", value_name = "PREFIX", default_value = "key:")]
    pub key_prefix: String,
    /// Value size in bytes, N or MIN-MAX (each key has a fixed size in the range).
    #[arg(long = "value-size", value_name = "N|MIN-MAX", default_value = "32")]
    pub value_size: String,
    /// Before the first round, write every key once (closed loop).
    #[arg(long)]
    pub prefill: bool,
    /// Run the workload this long before each measured run, unrecorded.
    #[arg(long, value_name = "DURATION")]
    pub warmup: Option<String>,

    /// Connections per target, spread over the threads.
    #[arg(long, short = 'c', value_name = "C", default_value_t = 50)]
    pub connections: u32,
    /// Requests in flight per connection (closed loop: always this many;
    /// open loop: at most this many).
    #[arg(long, short = 'P', value_name = "P", default_value_t = 1)]
    pub pipeline: u32,
    /// Open loop: requests per second over all connections, timed from each
    /// request's intended send time. A number, or a shape: constant:R,
    /// linear:R1:R2 (over --duration), step:R0:INC:EVERY, spike:BASE:EXTRA:AT:FOR,
    /// sine:MEAN:AMPLITUDE:PERIOD.
    #[arg(long, value_name = "RATE|SHAPE")]
    pub rate: Option<String>,
    /// Length of each measured run, e.g. 10s (default 10s unless --requests).
    #[arg(long, short = 'd', value_name = "DURATION")]
    pub duration: Option<String>,
    /// Stop each measured run after this many requests instead.
    #[arg(long, short = 'n', value_name = "N")]
    pub requests: Option<u64>,
    /// Load threads, each pinned to a CPU and running its own event loop.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: u32,
    /// CPUs to pin the load threads to, e.g. 0 or 2,3 (default: usable CPUs in order).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Per-request (and connect) timeout.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub timeout: String,
    /// Repeat the runs this many times, targets interleaved; medians are compared.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub rounds: u32,
    /// Seed for key and value choices (runs with one seed send the same keys).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Write a JSON report (with per-second series) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one CSV row per target and round to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one histogram per second, values in ns) to FILE.
    #[arg(long, value_name = "FILE")]
    pub hdr: Option<PathBuf>,
    /// Draw latency by percentile and throughput over time to FILE.svg.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// MongoDB namespace for `find`, as DB.COLLECTION.
    #[arg(long = "mongo-ns", value_name = "DB.COLL", default_value = "puerta.bench")]
    pub mongo_ns: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Redis,
    Memcache,
    Mongo,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Redis => "redis",
            Protocol::Memcache => "memcache",
            Protocol::Mongo => "mongo",
        }
    }
}

const EXAMPLES: &str = "\
Examples:
  puerta bench -t 127.0.0.1:6379 -c 50 -P 16 -d 10s
  puerta bench -t direct=127.0.0.1:6379 -t puerta=127.0.0.1:6380 --rounds 3 --plot out.svg
  puerta bench -t 127.0.0.1:6380 --rate 20000 --ratio 9:1 --key-dist zipf:0.99 --json r.json
  puerta bench -t 127.0.0.1:7000 --cluster --prefill
  puerta bench -t 127.0.0.1:11211 --protocol memcache --mget 10
  puerta bench -t 127.0.0.1:27017 --protocol mongo --command ping";
