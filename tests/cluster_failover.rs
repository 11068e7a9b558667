//! Redis Cluster changing under traffic, through the real `puerta` binary
//! under both I/O drivers, against a real 3-master / 3-replica cluster:
//! a master killed (its replica is promoted), a slot moved (MOVED), a
//! slot half migrated (ASK) and `redis-cli --cluster reshard`.
//!
//! Load runs on client threads (`common::cluster_load`) whose replies are
//! read with a deadline and decoded strictly: a hang, garbage or a closed
//! connection fails the test by name. Error counts and recovery times are
//! printed (informational); the assertions are about which errors appear
//! and when traffic flows again, never about speed.
//!
//! The two tests take one lock: each runs its own cluster, and a failover
//! paced by cluster-node-timeout should not compete for the CPUs with
//! another cluster's setup.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::cluster::{cli, Cluster, SETTLE};
use common::cluster_load::{bulk, error_text, slot_tags, Client, Load, CLEAR};
use common::cluster_puerta::{cmd, direct_get, owners, ClusterProxy};
use common::drivers;
use puerta::route::keyslot;

static SERIAL: Mutex<()> = Mutex::new(());

/// How long traffic may take to flow again once the replica is promoted.
const RECOVERY: Duration = Duration::from_secs(30);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lets each master serve its own slots while another master is failed
/// (with full coverage required, every node answers CLUSTERDOWN for every
/// slot until the replica takes over, which is the cluster's choice, not
/// Puerta's).
fn partial_coverage(cluster: &Cluster) {
    for n in cluster.nodes.iter().filter(|n| n.running()) {
        assert_eq!(cli(n.port, &["CONFIG", "SET", "cluster-require-full-coverage", "no"]).trim(), "OK");
    }
}

/// SETs then GETs every key through Puerta (chunks of 1000, one pipeline
/// each); every reply must be right.
fn write_read_all(port: u16, keys: &[String], value: &str) {
    let mut c = Client::connect(port).unwrap();
    for chunk in keys.chunks(1000) {
        let mut cmds: Vec<Vec<u8>> = chunk.iter().map(|k| cmd(&["SET", k, value])).collect();
        cmds.extend(chunk.iter().map(|k| cmd(&["GET", k])));
        let replies = c.pipeline(&cmds).unwrap();
        for (k, r) in chunk.iter().zip(&replies) {
            assert_eq!(&r.raw[..], b"+OK\r\n", "SET {k}");
        }
        for (k, r) in chunk.iter().zip(&replies[chunk.len()..]) {
            assert_eq!(bulk(r), Some(Some(value.to_owned())), "GET {k}");
        }
    }
}

#[test]
fn a_killed_master_fails_only_its_requests_and_its_slots_recover() {
    let _serial = serial();
    let mut cluster = Cluster::start();
    partial_coverage(&cluster);
    let tags = slot_tags();
    for (n, io) in drivers().into_iter().enumerate() {
        let px = ClusterProxy::start(&cluster, io, "");
        let table = owners(&cluster);
        let victim = cluster.master_ports()[n % 3];
        let heir = cluster.replica_ports(victim)[0];
        let key = |s: usize, what: &str| format!("{{{}}}{io}:{what}", tags[s]);
        let victim_slots: Vec<usize> = (0..16384).filter(|&s| table[s] == victim).collect();
        let vkeys: Vec<String> = victim_slots.iter().step_by(11).map(|&s| key(s, "fo")).collect();
        let okeys: Vec<String> = (0..16384).filter(|&s| table[s] != victim).step_by(22).map(|s| key(s, "fo")).collect();

        let mut vload = Load::start(px.port, vkeys.clone(), true);
        let mut oload = Load::start(px.port, okeys, true);
        vload.wait_clean_rounds(2, SETTLE);
        oload.wait_clean_rounds(2, SETTLE);

        // A request certainly in flight to the victim when it dies: a
        // BLPOP (no reply deadline) on a pinned connection.
        let queue = key(victim_slots[0], "queue");
        let mut blocked = Client::connect(px.port).unwrap();
        blocked.send(&[cmd(&["BLPOP", &queue, "0"])]).unwrap();
        common::wait_until("BLPOP to block on the victim", SETTLE, || {
            cli(victim, &["CLIENT", "LIST"]).contains("cmd=blpop")
        });
        assert_eq!(vload.log.lock().unwrap().total_errors(), 0, "{io}: no errors before the kill");

        let killed = Instant::now();
        cluster.kill(victim);
        let r = blocked.replies(1).unwrap_or_else(|e| panic!("{io}: the in-flight BLPOP: {e}")).remove(0);
        let blpop_err = error_text(&r).unwrap_or_else(|| panic!("{io}: BLPOP answered {:?}", r.raw));
        assert!(blpop_err.starts_with("ERR "), "{io}: a clear error for the in-flight BLPOP: -{blpop_err}");

        cluster.wait_master(heir);
        let promoted = Instant::now();
        let recovered = loop {
            if let Some(r) = vload.rounds().into_iter().find(|r| r.clean && r.start > killed) {
                break r;
            }
            if vload.ended() {
                panic!("{io}: writer on the victim's slots: {:?}", vload.finish());
            }
            assert!(promoted.elapsed() < RECOVERY, "{io}: recovery within {RECOVERY:?} of the promotion");
            std::thread::sleep(Duration::from_millis(20));
        };
        vload.wait_clean_rounds(3, SETTLE);
        oload.wait_clean_rounds(1, SETTLE);
        let vrounds = vload.finish().unwrap_or_else(|e| panic!("{io}: victim's slots: {e}"));
        let orounds = oload.finish().unwrap_or_else(|e| panic!("{io}: other slots: {e}"));

        // Errors only between the kill and the recovery, and only clear ones.
        let vlog = vload.log.lock().unwrap();
        assert!(
            vlog.rounds.iter().filter(|r| r.start >= recovered.start).all(|r| r.clean),
            "{io}: traffic stays recovered: {vlog:?}"
        );
        assert!(vlog.rounds.iter().filter(|r| r.end < killed).all(|r| r.errors == 0), "{io}: {vlog:?}");
        assert!(vlog.errors.keys().all(|e| CLEAR.iter().any(|p| e.starts_with(p))), "{io}: {:?}", vlog.errors);
        // Other masters' slots keep flowing: no error, and whole rounds
        // completed while the victim was down.
        let olog = oload.log.lock().unwrap();
        assert_eq!(olog.total_errors(), 0, "{io}: other slots saw no error: {:?}", olog.errors);
        let during = olog.rounds.iter().filter(|r| r.start >= killed && r.end <= promoted).count();
        assert!(during >= 1, "{io}: other slots served during the outage: {olog:?}");
        eprintln!(
            "{io}: failover: kill -> promotion {:?}, promotion -> first clean round done {:?} \
             (kill -> recovered {:?}); {} errors on the victim's {} keys ({} rounds): {:?}; \
             in-flight BLPOP: -{blpop_err}; other slots: {} errors, {during} rounds during the outage \
             ({orounds} rounds)",
            promoted - killed,
            recovered.end.saturating_duration_since(promoted),
            recovered.end - killed,
            vlog.total_errors(),
            vkeys.len(),
            vrounds,
            vlog.errors,
            olog.total_errors(),
        );
        drop((vlog, olog));

        // Every slot of the failed master is readable and writable again.
        let all: Vec<String> = victim_slots.iter().map(|&s| key(s, "all")).collect();
        write_read_all(px.port, &all, "after");

        // The old master rejoins as a replica of its heir.
        cluster.restart(victim);
        cluster.wait_healthy();
        partial_coverage(&cluster);
    }
}

#[test]
fn moved_ask_and_resharding_under_load_are_invisible_to_clients() {
    let _serial = serial();
    let cluster = Cluster::start();
    let tags = slot_tags();
    for io in drivers() {
        let px = ClusterProxy::start(&cluster, io, "");
        let mv_keys: Vec<String> = (0..150).map(|i| format!("{{{io}:mv}}{i}")).collect();
        let ask_keys: Vec<String> = (0..150).map(|i| format!("{{{io}:ask}}{i}")).collect();
        let (mv_slot, ask_slot) = (keyslot(mv_keys[0].as_bytes()), keyslot(ask_keys[0].as_bytes()));
        assert_ne!(mv_slot, ask_slot);
        // One key every 16 slots, so any 200 slots a reshard takes hold some.
        let mut keys: Vec<String> = (0..16384).step_by(16).map(|s| format!("{{{}}}{io}:k", tags[s])).collect();
        keys.extend(mv_keys.iter().cloned());
        keys.extend(ask_keys.iter().cloned());
        write_read_all(px.port, &keys, "0");

        let (moved0, ask0) = (px.counter("moved"), px.counter("ask"));
        let mut writer = Load::start(px.port, keys.clone(), true);
        let mut reader = Load::start(px.port, keys.clone(), false);
        writer.wait_clean_rounds(2, SETTLE);
        reader.wait_clean_rounds(2, SETTLE);

        // MOVED: a whole slot and its keys move (ASK while the keys go,
        // MOVED once the owner changed).
        let masters = cluster.master_ports();
        let mv_from = cluster.owner_of(mv_slot);
        let mv_to = *masters.iter().find(|&&p| p != mv_from).unwrap();
        cluster.move_slot(mv_slot, mv_to);
        writer.wait_clean_rounds(3, SETTLE);
        reader.wait_clean_rounds(3, SETTLE);
        px.wait_counter("moved", moved0 + 1.0);

        // ASK: the slot stays half migrated while the loops run.
        let ask_to = *masters.iter().find(|&&p| p != cluster.owner_of(ask_slot)).unwrap();
        let ask_from = cluster.begin_migration(ask_slot, ask_to);
        let half: Vec<&[u8]> = ask_keys[..75].iter().map(|k| k.as_bytes()).collect();
        cluster.migrate_keys(ask_from, ask_to, &half);
        let ask1 = px.counter("ask");
        writer.wait_clean_rounds(3, SETTLE);
        reader.wait_clean_rounds(3, SETTLE);
        px.wait_counter("ask", ask1 + 75.0);
        let s = ask_slot.to_string();
        loop {
            let left = cli(ask_from, &["CLUSTER", "GETKEYSINSLOT", &s, "100"]);
            let left: Vec<&[u8]> = left.lines().map(str::trim).filter(|k| !k.is_empty()).map(str::as_bytes).collect();
            if left.is_empty() {
                break;
            }
            cluster.migrate_keys(ask_from, ask_to, &left);
        }
        cluster.finish_migration(ask_slot, ask_to);
        writer.wait_clean_rounds(3, SETTLE);
        reader.wait_clean_rounds(3, SETTLE);

        // Resharding: redis-cli moves 200 slots (and their keys) at once.
        let masters = cluster.master_ports();
        let before = owners(&cluster);
        cluster.reshard(masters[0], masters[2], 200);
        let after = owners(&cluster);
        let resharded = keys
            .iter()
            .filter(|k| before[keyslot(k.as_bytes()) as usize] != after[keyslot(k.as_bytes()) as usize])
            .count();
        assert!(resharded > 0, "{io}: the reshard moved some of the loops' keys");
        writer.wait_clean_rounds(3, SETTLE);
        reader.wait_clean_rounds(3, SETTLE);

        let last = writer.finish().unwrap_or_else(|e| panic!("{io}: writer: {e}"));
        let reads = reader.finish().unwrap_or_else(|e| panic!("{io}: reader: {e}"));
        for (who, load) in [("writer", &writer), ("reader", &reader)] {
            let log = load.log.lock().unwrap();
            assert_eq!(log.total_errors(), 0, "{io}: {who} saw no error: {:?}", log.errors);
            assert!(log.rounds.iter().all(|r| r.clean), "{io}: {who}: every GET saw its value: {:?}", log.mismatches);
        }
        let (moved, ask) = (px.counter("moved") - moved0, px.counter("ask") - ask0);
        assert!(moved >= 1.0 && ask >= 75.0, "{io}: moved +{moved}, ask +{ask}");
        let want = Some(last.to_string());
        let got = direct_get(&cluster, &keys);
        let wrong: Vec<&String> = keys.iter().zip(&got).filter(|(_, v)| **v != want).map(|(k, _)| k).collect();
        assert!(wrong.is_empty(), "{io}: keys without their last value {want:?}: {:?}", &wrong[..wrong.len().min(5)]);
        assert_eq!(cluster.owner_of(mv_slot), mv_to);
        assert_eq!(cluster.owner_of(ask_slot), ask_to);
        eprintln!(
            "{io}: MOVED/ASK/reshard under load ({} keys, {resharded} of them resharded): {last} writer rounds, \
             {reads} reader rounds, 0 errors; moved +{moved}, ask +{ask}",
            keys.len()
        );
    }
}
