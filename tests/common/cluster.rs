//! A real Redis Cluster on loopback for tests: N masters with R replicas
//! each, created by `redis-cli --cluster create`, torn down (SIGKILL by PID)
//! when the handle drops.
//!
//! General on purpose (the bench tests and the Redis Cluster mode tests
//! share it): start, wait for `cluster_state:ok`, node ports and ids, which
//! master owns a slot, kill a node, and move a slot (with its keys) to
//! another master, which is what makes MOVED and ASK happen.
//!
//! Each node gets two ports from `free_port` (client and cluster bus, set
//! with `cluster-port`), so parallel tests never collide on the +10000 bus
//! convention.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, tmpdir, wait_until};

pub struct Node {
    pub port: u16,
    pub bus: u16,
    child: Option<Child>,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub dir: PathBuf,
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

impl Cluster {
    /// Starts `masters * (1 + replicas)` nodes, creates the cluster and
    /// waits until every node reports `cluster_state:ok`.
    pub fn start(masters: usize, replicas: usize) -> Cluster {
        assert!(masters >= 3, "redis-cli --cluster create needs at least 3 masters");
        let dir = tmpdir();
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let (port, bus) = (free_port(), free_port());
            let conf = dir.join(format!("nodes-{port}.conf"));
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--cluster-port", &bus.to_string()])
                .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", conf.to_str().unwrap()])
                .args(["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"])
                .args(["--dir", dir.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (scripts/test.sh installs it)");
            nodes.push(Node { port, bus, child: Some(child) });
        }
        let c = Cluster { nodes, dir };
        for n in &c.nodes {
            wait_until("cluster node to answer PING", Duration::from_secs(10), || {
                cli(n.port, &["PING"]).trim() == "PONG"
            });
        }
        let addrs: Vec<String> = c.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        c.wait_ok();
        // Replicas attach after the slots are assigned; until then a
        // replica-to-be shows up as an empty master.
        wait_until("every replica to attach to its master", Duration::from_secs(30), || {
            let t = c.table();
            t.iter().filter(|(_, _, f)| f.contains("slave")).count() == masters * replicas
                && c.master_ports().len() == masters
        });
        c
    }

    /// Every running node says `cluster_state:ok` and knows every node.
    pub fn wait_ok(&self) {
        let running = self.nodes.iter().filter(|n| n.is_running()).count();
        wait_until("cluster_state:ok on every node", Duration::from_secs(30), || {
            self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let info = cli(n.port, &["CLUSTER", "INFO"]);
                let known = info
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("cluster_known_nodes:"))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                info.contains("cluster_state:ok") && known >= running
            })
        });
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The first running node (a seed for clients).
    pub fn seed(&self) -> u16 {
        self.nodes.iter().find(|n| n.is_running()).map(|n| n.port).expect("a running node")
    }

    /// `(id, port, flags)` of every node, from CLUSTER NODES on the seed.
    pub fn table(&self) -> Vec<(String, u16, String)> {
        self.nodes_lines().into_iter().map(|(id, port, flags, _)| (id, port, flags)).collect()
    }

    /// `(id, port, flags, owns slots)` per CLUSTER NODES line.
    fn nodes_lines(&self) -> Vec<(String, u16, String, bool)> {
        cli(self.seed(), &["CLUSTER", "NODES"])
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                // <id> <ip:port@bus> <flags> ...
                let port = f.get(1)?.split('@').next()?.rsplit(':').next()?.parse().ok()?;
                // Fields 8.. are the slot ranges a master serves.
                Some((f.first()?.to_string(), port, f.get(2)?.to_string(), f.len() > 8))
            })
            .collect()
    }

    /// Ports of the masters that serve slots (and are not failed).
    pub fn master_ports(&self) -> Vec<u16> {
        let mut m: Vec<u16> = self
            .nodes_lines()
            .into_iter()
            .filter(|(_, _, flags, slots)| *slots && flags.contains("master") && !flags.contains("fail"))
            .map(|(_, p, _, _)| p)
            .collect();
        m.sort_unstable();
        m
    }

    pub fn node_id(&self, port: u16) -> String {
        cli(port, &["CLUSTER", "MYID"]).trim().to_string()
    }

    /// Port of the master that owns `slot`, from CLUSTER SLOTS on the seed.
    pub fn slot_owner(&self, slot: u16) -> u16 {
        let raw = cli(self.seed(), &["CLUSTER", "SLOTS"]);
        // Raw output is a flat list: start, end, ip, port, id, [replica ip, port, id]...
        let lines: Vec<&str> = raw.lines().map(str::trim).collect();
        let mut i = 0;
        while i + 3 < lines.len() {
            if let (Ok(lo), Ok(hi), Ok(port)) =
                (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>(), lines[i + 3].parse::<u16>())
            {
                if lines[i + 2].contains('.') && (lo..=hi).contains(&slot) {
                    return port;
                }
            }
            i += 1;
        }
        panic!("no owner for slot {slot} in {raw}");
    }

    /// Moves `slot` and its keys to the master at `to` the way
    /// `redis-cli --cluster reshard` does: IMPORTING / MIGRATING, MIGRATE
    /// the keys in batches (clients see ASK meanwhile), then SETSLOT NODE
    /// on the destination, the source and every other master (clients
    /// then see MOVED).
    pub fn move_slot(&self, slot: u16, to: u16) {
        let from = self.slot_owner(slot);
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let s = slot.to_string();
        assert_eq!(cli(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]).trim(), "OK");
        assert_eq!(cli(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]).trim(), "OK");
        loop {
            let keys = cli(from, &["CLUSTER", "GETKEYSINSLOT", &s, "100"]);
            let keys: Vec<&str> = keys.lines().map(str::trim).filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let to_port = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", to_port.as_str(), "", "0", "5000", "REPLACE", "KEYS"];
            args.extend(keys.iter().copied());
            let out = cli(from, &args);
            assert!(out.trim() == "OK" || out.trim() == "NOKEY", "MIGRATE: {out}");
        }
        // Destination first, then the source, then the rest (as redis-cli
        // does): the other order briefly has each node send the slot's
        // clients to the other with MOVED.
        let mut order = vec![to, from];
        order.extend(self.master_ports().into_iter().filter(|&m| m != to && m != from));
        for m in order {
            assert_eq!(cli(m, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]).trim(), "OK", "SETSLOT NODE on {m}");
        }
        wait_until("every node to agree on the moved slot", Duration::from_secs(10), || self.slot_owner(slot) == to);
    }

    /// SIGKILLs the node on `port` (by PID).
    pub fn kill(&mut self, port: u16) {
        let n = self.nodes.iter_mut().find(|n| n.port == port).expect("a node on that port");
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
