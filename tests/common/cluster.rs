//! A real Redis Cluster for tests: N masters with R replicas each, every
//! node a `redis-server` on free loopback ports (client port and cluster
//! bus port both chosen free), joined by `redis-cli --cluster create ...
//! --cluster-replicas R --cluster-yes`.
//!
//! The handle owns every process and its data directory: `Drop` kills each
//! node by its PID and removes the directory, so a failing test leaves
//! nothing behind. Helpers cover what cluster tests need: node ports and
//! roles, killing and restarting a node (failover), moving slots with
//! `redis-cli --cluster reshard`, and a deterministic ASK setup with
//! `CLUSTER SETSLOT ... IMPORTING / MIGRATING` plus `MIGRATE`.
//! Every wait polls until a condition holds (generous deadlines for a
//! loaded 2-core machine), never sleep-and-hope.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::twem::{command, RawResp, Reply};
use super::{free_port, tmpdir, wait_until};

/// How long cluster-wide conditions may take to settle here.
pub const SETTLE: Duration = Duration::from_secs(60);

/// One node: its ports, data directory and (while running) process.
pub struct Node {
    pub port: u16,
    pub bus_port: u16,
    /// A TLS cluster (`Cluster::start_tls`): the node's TLS client port,
    /// and its TLS arguments (the bus and replication speak TLS too; the
    /// plaintext `port` stays open for the harness's own checks), plus
    /// `--cluster-announce-hostname` with `start_tls_hostnames`.
    pub tls_port: Option<u16>,
    tls_args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
    node_timeout_ms: u64,
}

impl Node {
    fn spawn(&mut self) {
        let conf = self.dir.join("nodes.conf");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--cluster-port", &self.bus_port.to_string()])
            .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(&conf)
            .args(["--cluster-node-timeout", &self.node_timeout_ms.to_string()])
            // Any replica may take over, however stale: tests kill masters
            // on purpose and must see the failover.
            .args(["--cluster-replica-validity-factor", "0", "--cluster-allow-replica-migration", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no", "--logfile", "node.log"])
            // DEBUG SLEEP slows a node on purpose (the slow log tests).
            .args(["--enable-debug-command", "yes"])
            .args(self.tls_port.map(|p| ["--tls-port".to_string(), p.to_string()]).into_iter().flatten())
            .args(&self.tls_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_until("cluster node to listen", SETTLE, || TcpStream::connect(("127.0.0.1", port)).is_ok());
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The whole cluster.
pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl Cluster {
    /// 3 masters, 1 replica each, `cluster-node-timeout` 2 s.
    pub fn start() -> Cluster {
        Cluster::start_with(3, 1, 2000)
    }

    pub fn start_with(masters: usize, replicas: usize, node_timeout_ms: u64) -> Cluster {
        Cluster::start_opts(masters, replicas, node_timeout_ms, None, false)
    }

    /// A cluster whose clients, bus and replication speak TLS
    /// (`--tls-cluster yes --tls-replication yes`), created over TLS by
    /// `redis-cli --tls --cluster create`. `tls.0`: redis-server's TLS
    /// file arguments; `tls.1`: redis-cli's (`--tls --cacert ...`).
    pub fn start_tls(masters: usize, replicas: usize, tls: (Vec<String>, Vec<String>)) -> Cluster {
        Cluster::start_opts(masters, replicas, 2000, Some(tls), false)
    }

    /// `start_tls`, each node i also started with
    /// `--cluster-announce-hostname node-i.test` (CLUSTER SLOTS then
    /// carries the name in its metadata; endpoints stay IPs).
    pub fn start_tls_hostnames(masters: usize, replicas: usize, tls: (Vec<String>, Vec<String>)) -> Cluster {
        Cluster::start_opts(masters, replicas, 2000, Some(tls), true)
    }

    fn start_opts(
        masters: usize,
        replicas: usize,
        node_timeout_ms: u64,
        tls: Option<(Vec<String>, Vec<String>)>,
        hostnames: bool,
    ) -> Cluster {
        let dir = tmpdir();
        let mut server_args: Vec<String> =
            ["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from).into();
        let (cli_args, tls_port) = match &tls {
            Some((files, cli)) => {
                server_args.extend(files.iter().cloned());
                (cli.clone(), true)
            }
            None => (Vec::new(), false),
        };
        let mut nodes: Vec<Node> = (0..masters * (1 + replicas))
            .map(|i| {
                let d = dir.join(format!("node{i}"));
                std::fs::create_dir_all(&d).unwrap();
                let (tls_port, mut tls_args) =
                    if tls_port { (Some(free_port()), server_args.clone()) } else { (None, Vec::new()) };
                if hostnames {
                    tls_args.extend(["--cluster-announce-hostname".to_string(), format!("node-{i}.test")]);
                }
                Node {
                    port: free_port(),
                    bus_port: free_port(),
                    tls_port,
                    tls_args,
                    dir: d,
                    child: None,
                    node_timeout_ms,
                }
            })
            .collect();
        for n in &mut nodes {
            n.spawn();
        }
        let c = Cluster { nodes, dir };
        let out = Command::new("redis-cli")
            .args(&cli_args)
            .arg("--cluster")
            .arg("create")
            .args(c.nodes.iter().map(|n| n.tls_port.map_or_else(|| n.addr(), |p| format!("127.0.0.1:{p}"))))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (scripts/test.sh installs redis-tools)");
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        c.wait_healthy();
        c
    }

    /// Every running node says `cluster_state:ok`, sees every other
    /// running node without fail flags, and all agree on the slot owners.
    pub fn wait_healthy(&self) {
        wait_until("cluster to settle", SETTLE, || self.settled());
    }

    fn settled(&self) -> bool {
        let mut maps = Vec::new();
        for n in self.nodes.iter().filter(|n| n.running()) {
            let Some(info) = try_text(n.port, &["CLUSTER", "INFO"]) else { return false };
            if !info.contains("cluster_state:ok") {
                return false;
            }
            let Some(nodes) = try_text(n.port, &["CLUSTER", "NODES"]) else { return false };
            let running = self.nodes.iter().filter(|m| m.running()).count();
            let live = nodes.lines().filter(|l| !l.contains("fail") && !l.contains("handshake")).count();
            if live < running {
                return false;
            }
            maps.push(view(&nodes));
            // CLUSTER SLOTS hides a replica until it reports a replication
            // offset; clients (and Puerta) read replicas from it.
            let mut listed = slots_ports(n.port);
            listed.sort_unstable();
            let mut want: Vec<u16> = self.nodes.iter().filter(|m| m.running()).map(|m| m.port).collect();
            want.sort_unstable();
            if listed != want {
                return false;
            }
        }
        maps.windows(2).all(|w| w[0] == w[1])
    }

    /// A node by its client port.
    pub fn node(&self, port: u16) -> &Node {
        self.nodes.iter().find(|n| n.port == port).expect("no node on that port")
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.port == port).expect("no node on that port")
    }

    /// A running node to ask about the cluster.
    pub fn any_port(&self) -> u16 {
        self.nodes.iter().find(|n| n.running()).expect("no node running").port
    }

    /// Seed addresses (`127.0.0.1:port`) of every node.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Node::addr).collect()
    }

    /// TLS seed addresses (`127.0.0.1:tls_port`) of a TLS cluster's nodes.
    pub fn tls_seeds(&self) -> Vec<String> {
        self.nodes.iter().filter_map(|n| n.tls_port).map(|p| format!("127.0.0.1:{p}")).collect()
    }

    /// `CLUSTER NODES` as a running node sees it.
    pub fn nodes_text(&self) -> String {
        text(self.any_port(), &["CLUSTER", "NODES"])
    }

    /// Ports of the masters that own slots, ordered by their lowest slot.
    pub fn master_ports(&self) -> Vec<u16> {
        let mut owned: Vec<(u16, u16)> = self
            .nodes_text()
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let low = f.get(8..)?.iter().filter(|s| !s.starts_with('[')).filter_map(|s| first_slot(s)).min()?;
                Some((low, port_of(f[1])))
            })
            .collect();
        owned.sort_unstable();
        owned.into_iter().map(|(_, p)| p).collect()
    }

    /// Ports of the replicas of the master on `master`.
    pub fn replica_ports(&self, master: u16) -> Vec<u16> {
        let id = self.node_id(master);
        self.nodes_text()
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[2].contains("slave") && f[3] == id && !f[2].contains("fail")
            })
            .map(|l| port_of(l.split_whitespace().nth(1).unwrap_or("")))
            .collect()
    }

    /// The node id of the node on `port` (asked of that node itself).
    pub fn node_id(&self, port: u16) -> String {
        text(port, &["CLUSTER", "MYID"])
    }

    /// The port of the master that owns `slot`.
    pub fn owner_of(&self, slot: u16) -> u16 {
        let nodes = self.nodes_text();
        for l in nodes.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if !f.get(2).is_some_and(|fl| fl.contains("master")) || f[2].contains("fail") {
                continue;
            }
            for item in f.get(8..).unwrap_or(&[]) {
                if item.starts_with('[') {
                    continue;
                }
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                if (a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap()).contains(&slot) {
                    return port_of(f[1]);
                }
            }
        }
        panic!("no master owns slot {slot}:\n{nodes}");
    }

    /// Kills the node on `port` (SIGKILL, by PID) and waits until it is gone.
    pub fn kill(&mut self, port: u16) {
        let node = self.node_mut(port);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_until("killed node to stop listening", SETTLE, || TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    /// Starts a killed node again on its old ports and data directory (it
    /// rejoins with its saved nodes.conf).
    pub fn restart(&mut self, port: u16) {
        let node = self.node_mut(port);
        if node.child.is_none() {
            node.spawn();
        }
    }

    /// Moves `count` slots from the master on `from` to the master on `to`
    /// with `redis-cli --cluster reshard` (keys move with MIGRATE).
    pub fn reshard(&self, from: u16, to: u16, count: usize) {
        let out = Command::new("redis-cli")
            .args(["--cluster", "reshard", &self.node(from).addr()])
            .args(["--cluster-from", &self.node_id(from), "--cluster-to", &self.node_id(to)])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "reshard failed: {}", String::from_utf8_lossy(&out.stdout));
    }

    /// Starts moving `slot` from its owner to the master on `to`: IMPORTING
    /// on `to`, MIGRATING on the owner. Returns the owner's port.
    pub fn begin_migration(&self, slot: u16, to: u16) -> u16 {
        let from = self.owner_of(slot);
        let s = slot.to_string();
        ok(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &self.node_id(from)]);
        ok(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &self.node_id(to)]);
        from
    }

    /// Moves `keys` (all in one migrating slot) from `from` to `to`.
    pub fn migrate_keys(&self, from: u16, to: u16, keys: &[&[u8]]) {
        // With `tls-cluster`, MIGRATE speaks TLS: to the TLS port.
        let port = self.node(to).tls_port.unwrap_or(to).to_string();
        let mut args: Vec<&[u8]> = vec![b"MIGRATE", b"127.0.0.1", port.as_bytes(), b"", b"0", b"10000", b"KEYS"];
        args.extend_from_slice(keys);
        let r = RawResp::connect(from).cmd(&args);
        assert_eq!(r, Reply::Status(b"OK".to_vec()), "MIGRATE");
    }

    /// Ends a migration: `slot` belongs to the master on `to`, on every
    /// master (as `redis-cli --cluster reshard` does), then waits until
    /// every node agrees.
    pub fn finish_migration(&self, slot: u16, to: u16) {
        let id = self.node_id(to);
        let s = slot.to_string();
        ok(to, &["CLUSTER", "SETSLOT", &s, "NODE", &id]);
        for m in self.master_ports() {
            if m != to {
                ok(m, &["CLUSTER", "SETSLOT", &s, "NODE", &id]);
            }
        }
        wait_until("slot owner to agree everywhere", SETTLE, || {
            self.nodes
                .iter()
                .filter(|n| n.running())
                .all(|n| try_text(n.port, &["CLUSTER", "NODES"]).is_some_and(|t| owner_in(&t, slot) == Some(to)))
        });
    }

    /// Moves `slot` and all its keys to the master on `to` the way
    /// `redis-cli --cluster reshard` does: IMPORTING / MIGRATING, MIGRATE
    /// the keys in batches (clients see ASK meanwhile), then SETSLOT NODE
    /// everywhere (clients then see MOVED).
    pub fn move_slot(&self, slot: u16, to: u16) {
        let from = self.begin_migration(slot, to);
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let s = slot.to_string();
        loop {
            let keys = cli(from, &["CLUSTER", "GETKEYSINSLOT", &s, "100"]);
            let keys: Vec<&[u8]> = keys.lines().map(str::trim).filter(|k| !k.is_empty()).map(str::as_bytes).collect();
            if keys.is_empty() {
                break;
            }
            self.migrate_keys(from, to, &keys);
        }
        self.finish_migration(slot, to);
    }

    /// Waits until the node on `port` reports itself master.
    pub fn wait_master(&self, port: u16) {
        wait_until("node to become master", SETTLE, || {
            try_text(port, &["ROLE"]).is_some_and(|r| r.starts_with("master"))
        });
    }

    /// The sum of `calls=` of `cmdstat_<cmd>` in INFO commandstats of a node.
    pub fn calls(&self, port: u16, cmd: &str) -> u64 {
        let info = text(port, &["INFO", "commandstats"]);
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:")))
            .and_then(|rest| rest.split(',').find_map(|kv| kv.strip_prefix("calls=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command's reply rendered as text (bulk or status), or `None` if the
/// node cannot be reached or answered an error.
pub fn try_text(port: u16, args: &[&str]) -> Option<String> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    drop(s);
    let mut c = RawResp::connect(port);
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match c.pipeline(&[command(&raw)]).remove(0) {
        Reply::Bulk(Some(b)) | Reply::Status(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Reply::Array(Some(items)) => Some(
            items
                .into_iter()
                .map(|i| match i {
                    Reply::Bulk(Some(b)) | Reply::Status(b) => String::from_utf8_lossy(&b).into_owned(),
                    Reply::Int(n) => n.to_string(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Reply::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text(port: u16, args: &[&str]) -> String {
    try_text(port, args).unwrap_or_else(|| panic!("{args:?} on port {port} failed"))
}

fn ok(port: u16, args: &[&str]) {
    assert_eq!(text(port, args), "OK", "{args:?} on {port}");
}

/// The distinct ports of every node `CLUSTER SLOTS` lists on `port`.
fn slots_ports(port: u16) -> Vec<u16> {
    if TcpStream::connect(("127.0.0.1", port)).is_err() {
        return Vec::new();
    }
    let Reply::Array(Some(ranges)) = RawResp::connect(port).cmd(&[b"CLUSTER", b"SLOTS"]) else { return Vec::new() };
    let mut ports = Vec::new();
    for r in ranges {
        let Reply::Array(Some(parts)) = r else { continue };
        for node in parts.into_iter().skip(2) {
            if let Reply::Array(Some(f)) = node {
                if let Some(Reply::Int(p)) = f.get(1) {
                    if !ports.contains(&(*p as u16)) {
                        ports.push(*p as u16);
                    }
                }
            }
        }
    }
    ports
}

/// The port in `ip:port@cport[,host]`.
fn port_of(addr: &str) -> u16 {
    addr.split('@').next().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok()).unwrap_or(0)
}

fn first_slot(item: &str) -> Option<u16> {
    item.split('-').next()?.parse().ok()
}

/// Sorted (slot range text, owner port) pairs of a CLUSTER NODES text.
fn owners(nodes: &str) -> Vec<(String, u16)> {
    let mut v: Vec<(String, u16)> = nodes
        .lines()
        .flat_map(|l| {
            let f: Vec<String> = l.split_whitespace().map(str::to_owned).collect();
            let port = f.get(1).map_or(0, |a| port_of(a));
            f.into_iter().skip(8).filter(|s| !s.starts_with('[')).map(move |s| (s, port))
        })
        .collect();
    v.sort();
    v
}

/// What every node must agree on: each node's id, role (with fail flags),
/// master and slots, with the asking node's `myself` and timings left out.
fn view(nodes: &str) -> Vec<String> {
    let mut v: Vec<String> = nodes
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags: Vec<&str> = f.get(2).map_or("", |x| x).split(',').filter(|fl| *fl != "myself").collect();
            let slots: Vec<&str> = f.iter().skip(8).filter(|s| !s.starts_with('[')).copied().collect();
            format!("{} {} {} {}", f[0], flags.join(","), f.get(3).unwrap_or(&""), slots.join(" "))
        })
        .collect();
    v.sort();
    v
}

fn owner_in(nodes: &str, slot: u16) -> Option<u16> {
    owners(nodes).into_iter().find_map(|(range, port)| {
        let (a, b) = range.split_once('-').unwrap_or((&range, &range));
        (a.parse::<u16>().ok()?..=b.parse::<u16>().ok()?).contains(&slot).then_some(port)
    })
}

/// `redis-cli -p PORT ARGS...`, stdout as text (raw output: one value a line).
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (scripts/test.sh installs redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
