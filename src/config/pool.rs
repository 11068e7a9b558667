//! Layer 2 for one `[[pool]]`: `PoolFile` -> `PoolConfig`.
//!
//! Owns the per-pool rules: required keys, name syntax, supported modes,
//! server list syntax and uniqueness, timeout ranges, health thresholds.
//! Rules that span pools (unique names and listen addresses) live in
//! `validate`, which is why `convert` hands back the listen address even
//! when some other key of the pool is wrong. Problem paths are relative to
//! the pool table ("servers[1]"); the caller prefixes `pool[i]`.

use std::collections::HashMap;

use super::addr;
use super::file::PoolFile;
use super::span::KeyPath;
use super::twem::ListenAddr;
use super::twem_pool;
use super::types::{Balance, HealthConfig, Mode, PoolConfig, ServerSpec};
use super::validate::{int_in, optional_duration, pick, positive_duration, Problem, Problems};

impl TryFrom<PoolFile> for PoolConfig {
    type Error = Vec<Problem>;

    fn try_from(file: PoolFile) -> Result<Self, Vec<Problem>> {
        let mut p = Problems::default();
        let (_, pool) = convert(&file, std::path::Path::new("."), &mut p);
        p.finish(pool)
    }
}

/// Converts one pool, recording problems in `p`. Returns the listen address
/// on its own so cross-pool checks can run even if the pool is invalid.
pub(crate) fn convert(
    file: &PoolFile,
    dir: &std::path::Path,
    p: &mut Problems,
) -> (Option<ListenAddr>, Option<PoolConfig>) {
    let key = |k: &str| KeyPath::root().key(k);
    let required = |what: &str| format!("required key is missing; expected {what}");

    let name = match &file.name {
        None => p.check(key("name"), Err(required(r#"a pool name like "redis-a""#))),
        Some(n) => p.check(key("name"), pool_name(n)),
    };
    let listen = match &file.listen {
        None => p.check(key("listen"), Err(required(r#"host:port like "127.0.0.1:6380""#))),
        Some(l) => p.check(key("listen"), addr::listen(l)),
    };
    let mode = p.check(key("mode"), mode(&file.mode));
    // nutcracker names unnamed servers on port 11211 by host alone; only
    // pools that hash on names follow it.
    let twem = matches!(mode, Some(Mode::Redis | Mode::Memcache));
    let servers = match &file.servers {
        None => p.check(key("servers"), Err(required(r#"a list like ["127.0.0.1:6379"]"#))),
        Some(list) => servers(list, twem, p),
    };
    let balance = p.check(
        key("balance"),
        pick(
            file.balance.as_deref().unwrap_or("round_robin"),
            &[
                ("round_robin", Balance::RoundRobin),
                ("least_conn", Balance::LeastConn),
                ("client_ip", Balance::ClientIp),
                ("least_latency", Balance::LeastLatency),
                ("weighted", Balance::Weighted),
            ],
        ),
    );
    if matches!(listen, Some(ListenAddr::Unix { .. })) && !twem && mode.is_some() {
        p.add(key("listen"), "expected host:port; unix socket listeners are served for redis and memcache pools only");
    }
    let shard = match mode {
        Some(m @ (Mode::Redis | Mode::Memcache)) => twem_pool::shard(file, m, p).map(Some),
        Some(m @ (Mode::Tcp | Mode::Mongos | Mode::RedisCluster)) => {
            twem_pool::reject_outside_shard(file, m, p);
            Some(None)
        }
        None => None,
    };
    let max_client_connections = match (file.client_connections, file.max_client_connections) {
        (Some(_), n) if n != 0 => {
            p.add(key("client_connections"), "expected only one of client_connections and max_client_connections");
            None
        }
        (Some(n), _) => Some(n),
        (None, n) => Some(n),
    };
    let connect_timeout = match &file.connect_timeout {
        Some(v) => p.check(key("connect_timeout"), positive_duration(v)),
        None if twem => Some(super::twem::DEFAULT_TWEM_CONNECT_TIMEOUT),
        None => Some(std::time::Duration::from_secs(1)),
    };
    let idle_timeout = p.check(key("idle_timeout"), optional_duration(&file.idle_timeout));
    let max_clients = max_client_connections.and_then(|n| {
        let k = if file.client_connections.is_some() { "client_connections" } else { "max_client_connections" };
        p.check(key(k), int_in(n, 0, i64::MAX))
    });
    let health = health(file, p);
    let mongo = super::mongo::convert(file, mode, p);
    let cluster = super::cluster_pool::convert(file, mode, p);
    let tls = super::tls::convert(file, mode, dir, p);
    let obs = super::obs::convert(file, p);
    let limits = super::ratelimit::convert(file, mode, p);

    let pool = (|| {
        Some(PoolConfig {
            name: name?,
            listen: listen.clone()?,
            mode: mode?,
            servers: servers?,
            balance: balance?,
            connect_timeout: connect_timeout?,
            idle_timeout: idle_timeout?,
            // 0 is the documented "unlimited"; the range check above makes
            // the conversion lossless on 64-bit targets.
            max_client_connections: match max_clients? {
                0 => None,
                n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            },
            health: health?,
            mongo: mongo?,
            shard: shard?,
            cluster: cluster?,
            tls: tls?,
            obs: obs?,
            users: None,
            limits: limits?,
        })
    })();
    (listen, pool)
}

/// Names appear in metrics labels and admin URLs, hence the narrow alphabet.
fn pool_name(name: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if !name.is_empty() && name.chars().all(ok) {
        Ok(name.to_owned())
    } else {
        Err(format!("expected a name of letters, digits, '_', '.' or '-', got {name:?}"))
    }
}

fn mode(text: &str) -> Result<Mode, String> {
    pick(
        text,
        &[
            ("tcp", Mode::Tcp),
            ("redis", Mode::Redis),
            ("memcache", Mode::Memcache),
            ("mongos", Mode::Mongos),
            ("redis_cluster", Mode::RedisCluster),
        ],
    )
}

/// Parses every entry, so each bad one is reported, then checks names are
/// unique: they key hashing and stats, and two equal names would merge.
fn servers(list: &[String], twem: bool, p: &mut Problems) -> Option<Vec<ServerSpec>> {
    let path = KeyPath::root().key("servers");
    if list.is_empty() {
        p.add(path, "expected at least one server, got an empty list");
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, text) in list.iter().enumerate() {
        let parsed = if twem { addr::parse_server_twem(text) } else { addr::parse_server(text) };
        let Some(spec) = p.check(path.index(i), parsed) else {
            continue;
        };
        if let Some(&first) = names.get(&spec.name) {
            p.add(path.index(i), format!("expected a unique server name, got {:?} (also servers[{first}])", spec.name));
        } else {
            names.insert(spec.name.clone(), i);
        }
        out.push(spec);
    }
    (out.len() == list.len() && names.len() == list.len()).then_some(out)
}

fn health(file: &PoolFile, p: &mut Problems) -> Option<HealthConfig> {
    let key = |k: &str| KeyPath::root().key(k);
    let interval = p.check(key("check_interval"), positive_duration(&file.check_interval));
    let timeout = p.check(key("check_timeout"), positive_duration(&file.check_timeout));
    let threshold = |n| int_in(n, 1, i64::from(u32::MAX)).map(|n| n as u32);
    let rise = p.check(key("rise"), threshold(file.rise));
    let fall = p.check(key("fall"), threshold(file.fall));
    // A probe still outstanding when the next is due would overlap it.
    if let (Some(i), Some(t)) = (interval, timeout) {
        if t > i {
            let (t, i) = (super::duration::format(t), super::duration::format(i));
            p.add(key("check_timeout"), format!("expected at most check_interval ({i}), got {t}"));
            return None;
        }
    }
    Some(HealthConfig { check_interval: interval?, check_timeout: timeout?, rise: rise?, fall: fall? })
}
