//! The real `puerta` binary in front of a test cluster
//! (`common::cluster`): a redis_cluster pool config over every node, and
//! direct checks that bypass Puerta — the slot owner table read from the
//! cluster once, pipelined GETs straight to each key's owner, and
//! `redis-cli -c` (a cluster-aware client that follows MOVED/ASK itself).

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::cluster::Cluster;
use super::twem::{command, RawResp, Reply};
use super::{free_port, wait_until, Puerta};
use puerta::route::keyslot;

/// Puerta serving one cluster pool, and the port clients use.
pub struct ClusterProxy {
    pub puerta: Puerta,
    pub port: u16,
}

impl ClusterProxy {
    /// Starts puerta (`--io io`, 2 workers) with a cluster pool over every
    /// node of `cluster` plus `extra` pool keys; waits until /ready (the
    /// first slot map is in).
    pub fn start(cluster: &Cluster, io: &str, extra: &str) -> ClusterProxy {
        ClusterProxy::start_on(&cluster.seeds(), io, extra)
    }

    /// As `start`, seeded with a TLS cluster's TLS ports (`extra` then
    /// carries the pool's `backend_tls`).
    pub fn start_tls(cluster: &Cluster, io: &str, extra: &str) -> ClusterProxy {
        ClusterProxy::start_on(&cluster.tls_seeds(), io, extra)
    }

    /// A proxy seeded with `seeds` as written (`host:port`).
    pub fn start_on(seeds: &[String], io: &str, extra: &str) -> ClusterProxy {
        let port = free_port();
        let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
        let config = format!(
            "[server]\nworkers = 2\nadmin = \"127.0.0.1:{{admin}}\"\nshutdown_timeout = \"2s\"\n\n\
             [[pool]]\nname = \"c\"\nlisten = \"127.0.0.1:{port}\"\nmode = \"redis_cluster\"\n\
             servers = [{}]\n{extra}\n",
            seeds.join(", ")
        );
        let puerta = Puerta::start(&config, io);
        puerta.wait_ready();
        ClusterProxy { puerta, port }
    }

    pub fn client(&self) -> RawResp {
        RawResp::connect(self.port)
    }

    /// A cluster counter from /metrics (`puerta_cluster_<name>_total`).
    pub fn counter(&self, name: &str) -> f64 {
        self.puerta.metric(&format!("puerta_cluster_{name}_total"), "pool=\"c\"")
    }

    /// Waits until the counter (exported on the workers' tick) reaches `min`.
    pub fn wait_counter(&self, name: &str, min: f64) -> f64 {
        wait_until(&format!("puerta_cluster_{name}_total >= {min}"), Duration::from_secs(10), || {
            self.counter(name) >= min
        });
        self.counter(name)
    }
}

pub fn cmd(args: &[&str]) -> Vec<u8> {
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    command(&raw)
}

/// A reply as text: status/bulk bytes, `-error`, integers, `(nil)`.
pub fn text(r: &Reply) -> String {
    match r {
        Reply::Status(b) | Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Reply::Error(e) => format!("-{}", String::from_utf8_lossy(e)),
        Reply::Int(n) => n.to_string(),
        Reply::Bulk(None) | Reply::Array(None) => "(nil)".into(),
        Reply::Array(Some(items)) => format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(",")),
    }
}

/// The master port owning each slot, read once from CLUSTER NODES.
pub fn owners(cluster: &Cluster) -> Vec<u16> {
    let mut table = vec![0u16; 16384];
    for line in cluster.nodes_text().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if !f.get(2).is_some_and(|fl| fl.contains("master")) || f[2].contains("fail") {
            continue;
        }
        let port: u16 = f[1].split('@').next().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok()).unwrap();
        for item in f.iter().skip(8).filter(|s| !s.starts_with('[')) {
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            table[a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()].fill(port);
        }
    }
    assert!(table.iter().all(|&p| p != 0), "every slot has an owner");
    table
}

/// GETs every key straight from its slot's master (pipelined per node).
pub fn direct_get(cluster: &Cluster, keys: &[String]) -> Vec<Option<String>> {
    let table = owners(cluster);
    let mut by_node: HashMap<u16, Vec<usize>> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        by_node.entry(table[keyslot(k.as_bytes()) as usize]).or_default().push(i);
    }
    let mut out = vec![None; keys.len()];
    for (port, idx) in by_node {
        let mut c = RawResp::connect(port);
        for chunk in idx.chunks(1000) {
            let cmds: Vec<Vec<u8>> = chunk.iter().map(|&i| cmd(&["GET", &keys[i]])).collect();
            for (&i, r) in chunk.iter().zip(c.pipeline(&cmds)) {
                out[i] = match r {
                    Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    Reply::Bulk(None) => None,
                    other => panic!("direct GET {} on {port}: {other:?}", keys[i]),
                };
            }
        }
    }
    out
}

/// Runs `lines` through `redis-cli -c` against a node; its output lines
/// without the "-> Redirected" notes.
pub fn redis_cli_c(port: u16, lines: &[String]) -> Vec<String> {
    let mut child = Command::new("redis-cli")
        .args(["-c", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = lines.join("\n") + "\n";
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("-> Redirected"))
        .map(str::to_owned)
        .collect()
}
