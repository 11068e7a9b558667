//! Puerta: a thread-per-core proxy for Redis, memcached and MongoDB.
//!
//! ```text
//!                  +------------------ control thread ------------------+
//!  config file --> | health probes, reload, snapshot build + publish     |
//!  SIGHUP/admin -> | Snapshot{epoch, pools, listeners, health, affinity} |
//!                  +---------+-------------------+-----------------------+
//!                            | Arc<Snapshot> + eventfd wake
//!            +---------------+--------+-----------------------+
//!            v                        v                       v
//!   worker 0 (pinned)         worker 1 (pinned)        ... worker N-1
//!   io_uring or epoll loop    own SO_REUSEPORT listener, own backend conns
//!   per-worker counters  ---> admin thread sums them on scrape
//!            |  reports: backend failed
//!            +--------------> control thread (crossbeam channel)
//! ```
//!
//! Module map (dependencies point down; `route` and `proto` never import
//! `worker` or `control`):
//! - [`acl`]: proxy users: Redis ACL rules compiled to bitsets, glob
//!   patterns, the per-request check.
//! - [`config`]: TOML file -> validated [`config::Config`].
//! - [`protocol`]: sans-IO RESP2 and memcached codecs, command tables, fan-out,
//!   Redis Cluster topology replies and redirects.
//! - [`route`]: snapshot types, balancing, client affinity, key placement
//!   (nutcracker rings, Redis Cluster slot maps).
//! - [`session`]: sans-IO connection state machines (bytes in, intents out).
//! - [`shared`]: what control, workers and admin share (`Shared`,
//!   `ControlMsg`, `DriverKind`, the worker wake), so `worker` and
//!   `control` never import each other.
//! - [`worker`]: per-core threads; a driver-independent core
//!   (`mux_drive`, `relay`, `slab`, `mux_pools`) and two mirrored drivers,
//!   `worker/uring/` and `worker/epoll/` (`mod`, `listen`, `relay`, `mux`,
//!   `mux_connect`, `linger`, plus io_uring's `mux_recv`, `mux_close`,
//!   `timer`, `tag`, `conn`, `submit`, `wait` and epoll's `mux_io`,
//!   `connect`).
//! - [`control`]: health checks, cluster topology refresh, reload, snapshot
//!   publication.
//! - [`admin`]: HTTP admin port (metrics, health, stats, reload).
//! - [`stats`]: single-writer counters read by admin (`stats::mux`: twemproxy
//!   and cluster pools, `stats::mongo`: mongos pools; `stats::table`:
//!   `counter_table!`, which declares a counter family once).
//! - [`obs`]: per-request timing, latency histograms, per-command counters
//!   and the slow log (per core, merged on scrape).
//! - [`limit`]: sans-IO rate and connection limits (token buckets, the
//!   bounded per-IP table, per-user buckets and counters, per-core shares
//!   rebalanced by control).
//! - [`fdlimit`]: RLIMIT_NOFILE, the derived process-wide client limit and
//!   the count of clients held against it.
//! - [`bench`]: `puerta bench`, the load generator; it imports only the
//!   sans-IO `protocol` codecs and `hash`, never `worker`/`session`/`control`.
//!
//! The binary (`main.rs`) adds `cli/`: Puerta's own command line, and
//! nutcracker's (`cli::nutcracker` parses, `cli::nutcracker_run` acts).

pub mod acl;
pub mod admin;
pub mod bench;
pub mod compat;
pub mod config;
pub mod control;
pub mod fdlimit;
pub mod hash;
pub mod limit;
pub mod obs;
pub mod protocol;
pub mod purge;
pub mod route;
pub mod session;
pub mod shared;
pub mod stats;
pub mod tls;
pub mod worker;
