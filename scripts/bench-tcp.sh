#!/usr/bin/env bash
# Side-by-side tcp-mode benchmark, one run, same backend and workload:
#   direct redis-server  vs  Puerta (io_uring)  vs  Puerta (epoll)
#
# 1. Closed loop, measured with `puerta bench` (GET:SET 1:1, -c C, -n N,
#    pipeline 1 and 16, ROUNDS rounds interleaved; medians of ops/s, p50,
#    p99, p99.9), plus the serving process's CPU us/request (proxy, or
#    redis-server for "direct"), syscalls/request (`strace -c -f`, separate
#    shorter run), and redis-benchmark's GET ops/s on the same target as a
#    cross-check column.
# 2. Open loop at a fixed rate (RATE req/s for OPEN_DURATION, timed from
#    each request's intended send time): `puerta bench`'s own comparison
#    table with p99 ratios to direct.
#
# Pinning on a 2-core box: each Puerta runs one worker pinned to CPU 1;
# redis-server, puerta bench and redis-benchmark are pinned to CPU 0.
# Usage: scripts/bench-tcp.sh   (env: N, C, ROUNDS, PIPELINES, RATE, OPEN_DURATION)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}; C=${C:-50}; ROUNDS=${ROUNDS:-3}; PIPELINES=${PIPELINES:-"1 16"}
RATE=${RATE:-20000}; OPEN_DURATION=${OPEN_DURATION:-10s}
for b in redis-server redis-benchmark strace; do
    command -v $b >/dev/null || { echo "missing $b: apt-get install -y redis-server redis-tools strace" >&2; exit 1; }
done
cargo build --release --quiet
BIN=target/release/puerta
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT=$(port)
taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
REDIS_PID=$!; PIDS+=($REDIS_PID)

start_puerta() { # io -> "pid port"
    local io=$1 lp ap; lp=$(port); ap=$(port)
    cat >"$WORK/$io.toml" <<CFG
[server]
workers = 1
cpus = [1]
io = "$io"
admin = "127.0.0.1:$ap"
log = "warn"
[[pool]]
name = "bench"
listen = "127.0.0.1:$lp"
mode = "tcp"
servers = ["127.0.0.1:$RPORT"]
CFG
    $BIN -c "$WORK/$io.toml" 2>"$WORK/$io.log" &
    local pid=$!; PIDS+=($pid)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ap/ready" >/dev/null 2>&1 && break; sleep 0.1; done
    echo "$pid $lp"
}
read -r URING_PID URING_PORT < <(start_puerta uring)
read -r EPOLL_PID EPOLL_PORT < <(start_puerta epoll)
sleep 0.5

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# Run-queue wait (ns) of all of a process's threads: time it was runnable
# but another task had its CPU (on a shared box: a starved run, not a slow one).
runq_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{w += $2} END {printf "%.0f", w}'; }
TCK=$(getconf CLK_TCK)
LOAD="$BIN bench --cpus 0 --keys 10000 --value-size 3 --ratio 1:1"

# target name -> (port, pid of the serving process)
declare -A TPORT=([direct]=$RPORT [uring]=$URING_PORT [epoll]=$EPOLL_PORT)
declare -A TPID=([direct]=$REDIS_PID [uring]=$URING_PID [epoll]=$EPOLL_PID)
RESULTS="$WORK/results.csv"
echo "pipeline,target,round,ops,p50,p99,p999,cpu_us_per_req,rb_get_rps,runq_us_per_req" >"$RESULTS"
$LOAD -t "127.0.0.1:$RPORT" --prefill -n 1 -c 1 >/dev/null

for P in $PIPELINES; do
  for r in $(seq "$ROUNDS"); do
    for t in direct uring epoll; do
      before=$(cpu_ticks "${TPID[$t]}"); wb=$(runq_ns "${TPID[$t]}")
      $LOAD -t "$t=127.0.0.1:${TPORT[$t]}" -c "$C" -P "$P" -n "$N" --json "$WORK/$t.json" >/dev/null
      after=$(cpu_ticks "${TPID[$t]}"); wa=$(runq_ns "${TPID[$t]}")
      rb=$(taskset -c 0 redis-benchmark -h 127.0.0.1 -p "${TPORT[$t]}" -c "$C" -n "$N" -P "$P" -t get --csv \
           | python3 -c 'import csv,sys; r=list(csv.DictReader(sys.stdin)); print(r[0]["rps"])')
      python3 - "$WORK/$t.json" "$P" "$t" "$r" "$before" "$after" "$TCK" "$N" "$rb" "$wb" "$wa" >>"$RESULTS" <<'PY'
import json, sys
path, p, t, r, before, after, tck, n, rb, wb, wa = sys.argv[1:]
run = json.load(open(path))["targets"][0]["runs"][0]
cpu = (int(after) - int(before)) / int(tck) * 1e6 / int(n)
lat = run["latency_ms"]
wait = (int(wa) - int(wb)) / 1e3 / int(n)
print(",".join(map(str, [p, t, r, run["ops_per_sec"], lat["p50"], lat["p99"], lat["p99.9"], cpu, rb, wait])))
PY
    done
  done
done

# Syscalls per request: one shorter run per target under strace -c.
SYS="$WORK/sys.csv"; echo "pipeline,target,syscalls_per_req" >"$SYS"
SN=$((N / 4))
for P in $PIPELINES; do
  for t in direct uring epoll; do
    strace -c -f -p "${TPID[$t]}" -o "$WORK/strace.$t.$P" 2>/dev/null &
    SPID=$!; sleep 0.5
    $LOAD -t "127.0.0.1:${TPORT[$t]}" -c "$C" -P "$P" -n "$SN" >/dev/null
    kill -INT $SPID; wait $SPID 2>/dev/null || true
    calls=$(awk '/^[ ]*100.00/ {print $4}' "$WORK/strace.$t.$P"); calls=${calls:-0}
    echo "$P,$t,$(python3 -c "print(round($calls/$SN,3))")" >>"$SYS"
  done
done

echo "== closed loop: puerta bench GET:SET 1:1, $C connections, $N requests, medians of $ROUNDS rounds"
python3 - "$RESULTS" "$SYS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sysc = {(r["pipeline"], r["target"]): r["syscalls_per_req"] for r in csv.DictReader(open(sys.argv[2]))}
def med(xs): return statistics.median(float(x) for x in xs)
print(f"{'pipe':>4} {'target':<7} {'ops/s':>10} {'vs direct':>9} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} "
      f"{'cpu us/req':>10} {'syscalls/req':>12} {'redis-benchmark GET ops/s':>26} {'runq us/req':>11}")
for p in sorted({r["pipeline"] for r in rows}, key=int):
    base = None
    for t in ("direct", "uring", "epoll"):
        sel = [r for r in rows if r["pipeline"] == p and r["target"] == t]
        if not sel: continue
        ops = med(r["ops"] for r in sel)
        base = base or ops
        print(f"{p:>4} {t:<7} {ops:>10.0f} {ops/base:>9.2f} {med(r['p50'] for r in sel):>7.3f} "
              f"{med(r['p99'] for r in sel):>7.3f} {med(r['p999'] for r in sel):>8.3f} "
              f"{med(r['cpu_us_per_req'] for r in sel):>10.2f} {sysc.get((p, t), '?'):>12} "
              f"{med(r['rb_get_rps'] for r in sel):>26.0f} {med(r['runq_us_per_req'] for r in sel):>11.2f}")
print("cpu us/req: serving process only (redis-server for direct, Puerta for uring/epoll); medians of rounds.")
print("runq us/req: time the serving process was runnable but waited for its CPU (another task ran there).")
PY

echo
echo "== open loop: $RATE req/s for $OPEN_DURATION, latency from intended send time, $ROUNDS rounds interleaved"
$LOAD -t "direct=127.0.0.1:$RPORT" -t "uring=127.0.0.1:$URING_PORT" -t "epoll=127.0.0.1:$EPOLL_PORT" \
    -c "$C" --rate "$RATE" -d "$OPEN_DURATION" --rounds "$ROUNDS" | sed -n '/^== comparison/,$p'
