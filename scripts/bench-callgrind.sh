#!/usr/bin/env bash
# Deterministic per-request cost of a twemproxy redis pool: instructions
# (callgrind Ir) per request, which repeat to well under 1% on a noisy box
# where wall-clock figures do not (../shared/DESIGN.md section 4).
#
# Puerta (workers=1) runs under `valgrind --tool=callgrind` in front of two
# redis-servers. For each driver and pipeline depth: warm up, zero the
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
#        buckets; implies METRICS_DETAIL=basic if unset)
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
for b in redis-server redis-benchmark valgrind callgrind_control python3; do
    command -v $b >/dev/null || { echo "missing $b: apt-get install -y redis-server redis-tools valgrind" >&2; exit 1; }
done
BIN=${PUERTA_BIN:-target/release/puerta}
[ -n "${PUERTA_BIN:-}" ] || cargo build --release --quiet
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh" # WORK, PIDS, cleanup, port, wait_port, yaml
RA=$(port); RB=$(port)
for p in $RA $RB; do
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    PIDS+=($!)
done
wait_port "$RA"; wait_port "$RB"

printf '%-6s %-4s %-4s %12s\n' driver pipe cmd "Ir/request"
for drv in $DRIVERS; do
    PP=$(port)
    CONF="$WORK/p.yml"
    if [ -n "${METRICS_DETAIL:-}" ]; then
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
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
        "$BIN" -c "$CONF" --workers 1 --io "$drv" -s "$(port)" -a 127.0.0.1 \
        --admin "127.0.0.1:$(port)" -v 1 2>"$WORK/vg-$drv.log" &
    VPID=$!; PIDS+=($VPID)
    wait_port "$PP"
    for pipe in $PIPELINES; do
        for cmd in get set; do
            redis-benchmark -h 127.0.0.1 -p "$PP" -c "$C" -n 2000 -P "$pipe" -r "$KEYSPACE" -t "$cmd" "${AUTH[@]}" -q >/dev/null 2>&1
            callgrind_control -z "$VPID" >/dev/null 2>&1
            redis-benchmark -h 127.0.0.1 -p "$PP" -c "$C" -n "$N" -P "$pipe" -r "$KEYSPACE" -t "$cmd" "${AUTH[@]}" -q >/dev/null 2>&1
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
