#!/usr/bin/env bash
# Side-by-side tcp-mode benchmark, one run, same backend and workload:
#   direct redis-server  vs  Puerta (io_uring)  vs  Puerta (epoll)
# redis-benchmark GET/SET, -c 50 -n 200000, pipeline 1 and 16, ROUNDS rounds
# interleaved; prints medians of ops/s, p50/p99 (ms), CPU us/request of the
# serving process (proxy, or redis-server for "direct"), and syscalls/request
# of the serving process (from `strace -c -f`, in a separate shorter run).
#
# Pinning on a 2-core box: each Puerta runs one worker pinned to CPU 1;
# redis-server and redis-benchmark are pinned to CPU 0.
# Usage: scripts/bench-tcp.sh            (env: N, C, ROUNDS, PIPELINES)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}; C=${C:-50}; ROUNDS=${ROUNDS:-3}; PIPELINES=${PIPELINES:-"1 16"}
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
TCK=$(getconf CLK_TCK)

# target name -> (port, pid of the serving process)
declare -A TPORT=([direct]=$RPORT [uring]=$URING_PORT [epoll]=$EPOLL_PORT)
declare -A TPID=([direct]=$REDIS_PID [uring]=$URING_PID [epoll]=$EPOLL_PID)
RESULTS="$WORK/results.csv"
echo "pipeline,target,round,test,rps,p50,p99,cpu_us_per_req" >"$RESULTS"

for P in $PIPELINES; do
  for r in $(seq "$ROUNDS"); do
    for t in direct uring epoll; do
      before=$(cpu_ticks "${TPID[$t]}")
      out=$(taskset -c 0 redis-benchmark -h 127.0.0.1 -p "${TPORT[$t]}" -c "$C" -n "$N" -P "$P" -t set,get --csv)
      after=$(cpu_ticks "${TPID[$t]}")
      cpu=$(python3 -c "print(($after-$before)/$TCK*1e6/(2*$N))")
      echo "$out" | python3 -c '
import csv,sys
rows=list(csv.reader(sys.stdin))
h=rows[0]
for row in rows[1:]:
    d=dict(zip(h,row))
    print(",".join([sys.argv[1],sys.argv[2],sys.argv[3],d["test"],d["rps"],d["p50_latency_ms"],d["p99_latency_ms"],sys.argv[4]]))
' "$P" "$t" "$r" "$cpu" >>"$RESULTS"
    done
  done
done

# Syscalls per request: one shorter run per target under strace -c.
SYS="$WORK/sys.csv"; echo "pipeline,target,syscalls_per_req" >"$SYS"
SN=$((N / 4))
for P in $PIPELINES; do
  for t in direct uring epoll; do
    strace -c -f -p "${TPID[$t]}" -o "$WORK/strace.$t.$P" &
    SPID=$!; sleep 0.5
    taskset -c 0 redis-benchmark -h 127.0.0.1 -p "${TPORT[$t]}" -c "$C" -n "$SN" -P "$P" -t set,get -q >/dev/null
    kill -INT $SPID; wait $SPID 2>/dev/null || true
    calls=$(awk '/^[ ]*100.00/ {print $4}' "$WORK/strace.$t.$P"); calls=${calls:-0}
    echo "$P,$t,$(python3 -c "print(round($calls/(2*$SN),3))")" >>"$SYS"
  done
done

python3 - "$RESULTS" "$SYS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sysc = {(r["pipeline"], r["target"]): r["syscalls_per_req"] for r in csv.DictReader(open(sys.argv[2]))}
def med(xs): return statistics.median(float(x) for x in xs)
print(f"{'pipe':>4} {'target':<7} {'test':<4} {'ops/s':>10} {'vs direct':>9} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10} {'syscalls/req':>12}")
for p in sorted({r["pipeline"] for r in rows}, key=int):
    for test in ("SET", "GET"):
        base = None
        for t in ("direct", "uring", "epoll"):
            sel = [r for r in rows if r["pipeline"] == p and r["target"] == t and r["test"] == test]
            if not sel: continue
            rps = med(r["rps"] for r in sel)
            base = base or rps
            cpu = med(r["cpu_us_per_req"] for r in sel)
            print(f"{p:>4} {t:<7} {test:<4} {rps:>10.0f} {rps/base:>9.2f} {med(r['p50'] for r in sel):>7.3f} "
                  f"{med(r['p99'] for r in sel):>7.3f} {cpu:>10.2f} {sysc.get((p, t), '?'):>12}")
print("cpu us/req: serving process only (redis-server for direct, Puerta for uring/epoll); medians of rounds.")
PY
