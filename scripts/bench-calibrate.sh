#!/usr/bin/env bash
# Calibration: is `puerta bench` itself the bottleneck? Against one
# redis-server (pinned to CPU 1), in one run, the same closed-loop GET
# workload from redis-benchmark and from `puerta bench` (both one thread,
# pinned to CPU 0, same connections, pipeline and request count), ROUNDS
# rounds interleaved. Prints medians and the ratio puerta/redis-benchmark;
# the goal is >= 0.9.
# Usage: scripts/bench-calibrate.sh   (env: N, C, ROUNDS, PIPELINES)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500000}; C=${C:-50}; ROUNDS=${ROUNDS:-3}; PIPELINES=${PIPELINES:-"1 16"}
for b in redis-server redis-benchmark; do
    command -v $b >/dev/null || { echo "missing $b: apt-get install -y redis-server redis-tools" >&2; exit 1; }
done
cargo build --release --quiet
BIN=target/release/puerta
WORK=$(mktemp -d)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT=$(port)
taskset -c 1 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
REDIS_PID=$!
trap 'kill $REDIS_PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# redis-benchmark GETs the single key "key:__rand_int__" -> without -r, "key:__rand_int__" itself.
redis-cli -p "$RPORT" set "key:__rand_int__" xxx >/dev/null
$BIN bench -t "127.0.0.1:$RPORT" --prefill --keys 10000 --value-size 3 -n 1 -c 1 >/dev/null

echo "pipeline,round,tool,rps" >"$WORK/r.csv"
for P in $PIPELINES; do
  for r in $(seq "$ROUNDS"); do
    rb=$(taskset -c 0 redis-benchmark -h 127.0.0.1 -p "$RPORT" -c "$C" -n "$N" -P "$P" -t get --csv \
         | python3 -c 'import csv,sys; print(list(csv.DictReader(sys.stdin))[0]["rps"])')
    echo "$P,$r,redis-benchmark,$rb" >>"$WORK/r.csv"
    $BIN bench -t "127.0.0.1:$RPORT" --cpus 0 --ratio 1:0 --keys 10000 --value-size 3 -c "$C" -P "$P" -n "$N" \
        --json "$WORK/p.json" >/dev/null
    pb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["targets"][0]["runs"][0]["ops_per_sec"])' "$WORK/p.json")
    echo "$P,$r,puerta-bench,$pb" >>"$WORK/r.csv"
  done
done
python3 - "$WORK/r.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{'pipe':>4} {'redis-benchmark ops/s':>22} {'puerta bench ops/s':>19} {'ratio':>6}")
for p in sorted({r["pipeline"] for r in rows}, key=int):
    med = lambda tool: statistics.median(float(r["rps"]) for r in rows if r["pipeline"] == p and r["tool"] == tool)
    rb, pb = med("redis-benchmark"), med("puerta-bench")
    print(f"{p:>4} {rb:>22.0f} {pb:>19.0f} {pb/rb:>6.2f}")
PY
