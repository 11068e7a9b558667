#!/usr/bin/env bash
# Deterministic per-request cost of a twemproxy redis pool (or, with
# MODE=cluster, a redis_cluster pool): instructions (callgrind Ir) per
# request, which repeat to well under 1% on a noisy box
# where wall-clock figures do not (../shared/DESIGN.md section 4).
#
# Puerta (workers=1) runs under `valgrind --tool=callgrind` in front of two
# redis-servers (MODE=cluster: three cluster-enabled masters joined with
# `redis-cli --cluster create`, as scripts/bench-cluster.sh makes them). For each driver and pipeline depth: warm up, zero the
# counters (callgrind_control -z), send N requests with redis-benchmark
# (GET and SET over KEYSPACE random keys, C connections), dump
# (callgrind_control -d) and divide the instructions by N. The idle loop
# between batches is in the figure too; it is a tiny share at these N.
#
# Usage: scripts/bench-callgrind.sh
#   env: PUERTA_BIN (target/release/puerta, built if missing), N (20000),
#        C (50), PIPELINES ("1 16"), DRIVERS ("epoll uring"), KEYSPACE (10000),
#        KEEP (a folder: each dump is copied there as DRIVER-PIPE-CMD.cg for
#        callgrind_annotate), METRICS_DETAIL ("full" | "basic": the same
#        pool written as TOML with that [server] metrics_detail; unset:
#        nutcracker YAML, Puerta's defaults), SLOW_OP_THRESHOLD (with
#        METRICS_DETAIL; default 1s: callgrind slows Puerta ~50x, so at
#        Puerta's default of 10ms most pipelined requests would be "slow"
#        and the figure would measure the slow log, not the per-request
#        timing; set "10ms" to see that: each entry costs ~260 Ir),
#        USERS (1: the TOML pool also gets a proxy user, `[[user]] u` with
#        key patterns, and redis-benchmark authenticates as it, so each
#        request runs the ACL check; "limits": the user also has `limits`
#        it never reaches, so each request also draws on the user's
#        buckets; implies METRICS_DETAIL=basic if unset; twemproxy mode only),
#        MODE ("twemproxy" | "cluster": a mode = "redis_cluster" pool over
#        a 3-master cluster, written as TOML, with METRICS_DETAIL if set;
#        "mongos": a mode = "mongos" pool over one examples/mongos_standin,
#        loaded with `puerta bench --protocol mongo` (commands ping and
#        find by _id, C connections) instead of redis-benchmark)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}; C=${C:-50}; PIPELINES=${PIPELINES:-"1 16"}; DRIVERS=${DRIVERS:-"epoll uring"}
KEYSPACE=${KEYSPACE:-10000}
USERS=${USERS:-}
AUTH=()
if [ -n "$USERS" ]; then
    METRICS_DETAIL=${METRICS_DETAIL:-basic}
    AUTH=(--user u -a pw)
fi
MODE=${MODE:-twemproxy}
NEED="redis-server redis-benchmark"
[ "$MODE" != mongos ] || NEED=""
for b in $NEED valgrind callgrind_control python3 bc; do
    command -v $b >/dev/null || { echo "missing $b: apt-get install -y redis-server redis-tools valgrind" >&2; exit 1; }
done
BIN=${PUERTA_BIN:-target/release/puerta}
[ -n "${PUERTA_BIN:-}" ] || cargo build --release --quiet
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh" # WORK, PIDS, cleanup, port, wait_port, yaml
[ -z "$USERS" ] || [ "$MODE" = twemproxy ] || { echo "USERS: twemproxy mode only" >&2; exit 1; }
case $MODE in
twemproxy)
    RA=$(port); RB=$(port)
    for p in $RA $RB; do
        redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
        PIDS+=($!)
    done
    wait_port "$RA"; wait_port "$RB"
    ;;
cluster)
    # Three cluster-enabled masters; the bus port is port+10000, so pick
    # ports whose bus port is free too.
    MASTERS=()
    while [ ${#MASTERS[@]} -lt 3 ]; do
        p=$(port)
        [ "$p" -lt 55000 ] || continue
        python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',$p+10000))" 2>/dev/null || continue
        mkdir -p "$WORK/n$p"
        (cd "$WORK/n$p" && exec redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-config-file nodes.conf --cluster-node-timeout 5000 --save '' --appendonly no >/dev/null) &
        PIDS+=($!); MASTERS+=("$p")
    done
    for p in "${MASTERS[@]}"; do wait_port "$p"; done
    redis-cli --cluster create "${MASTERS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$WORK/create.log" 2>&1 \
        || { cat "$WORK/create.log" >&2; exit 1; }
    for _ in $(seq 100); do
        ok=1
        for p in "${MASTERS[@]}"; do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || ok=0; done
        [ $ok = 1 ] && break; sleep 0.2
    done
    [ $ok = 1 ] || { echo "cluster never reached cluster_state:ok" >&2; exit 1; }
    ;;
mongos)
    cargo build --release --quiet --example mongos_standin
    target/release/examples/mongos_standin --port 0 --docs 1000 >"$WORK/standin.out" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q "^PORT" "$WORK/standin.out" 2>/dev/null && break; sleep 0.1; done
    SPORT=$(awk '/^PORT/ {print $2}' "$WORK/standin.out")
    ;;
*) echo "MODE: twemproxy, cluster or mongos" >&2; exit 1 ;;
esac
CMDS="get set"
[ "$MODE" != mongos ] || CMDS="ping find"

load() { # pipeline, command, requests: one closed-loop run through Puerta
    if [ "$MODE" = mongos ]; then
        "$BIN" bench -t "127.0.0.1:$PP" --protocol mongo --command "$2" --keys 1000 -c "$C" -P "$1" -n "$3" \
            >/dev/null 2>&1
    else
        redis-benchmark -h 127.0.0.1 -p "$PP" -c "$C" -n "$3" -P "$1" -r "$KEYSPACE" -t "$2" "${AUTH[@]}" -q >/dev/null 2>&1
    fi
}
printf '%-6s %-4s %-4s %12s\n' driver pipe cmd "Ir/request"
for drv in $DRIVERS; do
    PP=$(port)
    CONF="$WORK/p.yml"
    if [ "$MODE" = mongos ]; then
        CONF="$WORK/p.toml"
        cat >"$CONF" <<TOML
[server]
${METRICS_DETAIL:+metrics_detail = \"$METRICS_DETAIL\"}

[[pool]]
name = "bench"
listen = "127.0.0.1:$PP"
mode = "mongos"
servers = ["127.0.0.1:$SPORT"]
TOML
    elif [ "$MODE" = cluster ]; then
        # refresh_interval 1h: a periodic CLUSTER SLOTS refresh is control
        # thread work, not per-request cost, and one landing in a measured
        # window adds ~90 Ir/request to that point alone.
        CONF="$WORK/p.toml"
        cat >"$CONF" <<TOML
[server]
${METRICS_DETAIL:+metrics_detail = \"$METRICS_DETAIL\"}

[[pool]]
name = "bench"
listen = "127.0.0.1:$PP"
mode = "redis_cluster"
servers = [$(printf '"127.0.0.1:%s", ' "${MASTERS[@]}")]
refresh_interval = "1h"
${METRICS_DETAIL:+slow_op_threshold = \"${SLOW_OP_THRESHOLD:-1s}\"}
TOML
    elif [ -n "${METRICS_DETAIL:-}" ]; then
        # The same pool in Puerta's TOML, which can also set [server] keys.
        CONF="$WORK/p.toml"
        cat >"$CONF" <<TOML
[server]
metrics_detail = "$METRICS_DETAIL"

[[pool]]
name = "bench"
listen = "127.0.0.1:$PP"
mode = "redis"
hash = "fnv1a_64"
distribution = "ketama"
timeout = 2000
servers = ["127.0.0.1:$RA:1 redis-a", "127.0.0.1:$RB:1 redis-b"]
slow_op_threshold = "${SLOW_OP_THRESHOLD:-1s}"
TOML
        if [ -n "$USERS" ]; then
            # redis-benchmark's keys are key:__rand_int__ (GET, SET).
            cat >>"$CONF" <<TOML

[[user]]
name = "u"
rules = "on >pw ~key:* ~counter:* ~mylist* ~myset* +@read +@write +@connection -@dangerous"
TOML
            [ "$USERS" != limits ] || echo 'limits = { requests = 1000000000, bytes = "100gb", burst = 1.0 }' >>"$CONF"
        fi
    else
        cat >"$CONF" <<YML
bench:
  listen: 127.0.0.1:$PP
  redis: true
  hash: fnv1a_64
  distribution: ketama
  timeout: 2000
  servers:
   - 127.0.0.1:$RA:1 redis-a
   - 127.0.0.1:$RB:1 redis-b
YML
    fi
    # KEEP: names uncompressed, so that each dump reads on its own (by
    # default a later dump refers to names defined in an earlier one).
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" ${KEEP:+--compress-strings=no} \
        "$BIN" -c "$CONF" --workers 1 --io "$drv" -s "$(port)" -a 127.0.0.1 \
        --admin "127.0.0.1:$(port)" -v 1 2>"$WORK/vg-$drv.log" &
    VPID=$!; PIDS+=($VPID)
    wait_port "$PP"
    for pipe in $PIPELINES; do
        for cmd in $CMDS; do
            load "$pipe" "$cmd" 2000
            callgrind_control -z "$VPID" >/dev/null 2>&1
            load "$pipe" "$cmd" "$N"
            rm -f "$WORK"/cg.$VPID.*
            callgrind_control -d "$VPID" >/dev/null 2>&1
            sleep 0.5
            ir=$(cat "$WORK"/cg.$VPID.* 2>/dev/null | awk '/^summary:/ {s += $2} /^totals:/ {t += $2} END {print (s ? s : t)}')
            [ -z "${KEEP:-}" ] || { mkdir -p "$KEEP"; cat "$WORK"/cg.$VPID.* >"$KEEP/$drv-$pipe-$cmd.cg" 2>/dev/null || true; }
            printf '%-6s %-4s %-4s %12.0f\n' "$drv" "$pipe" "$cmd" "$(echo "$ir / $N" | bc -l)"
        done
    done
    # SIGTERM drains; under valgrind the io_uring driver may not wake for
    # it, and the figures are already dumped, so do not wait long.
    kill "$VPID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$VPID" 2>/dev/null || true; wait "$VPID" 2>/dev/null || true
done
