#!/usr/bin/env bash
# Pipeline-1 profile of nutcracker and Puerta (workers=1, io_uring and
# epoll) in front of the same 2 redis-servers, same YAML, same pinning as
# scripts/bench-twemproxy.sh (redis-servers and redis-benchmark on
# LOAD_CPUS, each proxy on PROXY_CPUS). Targets run one after another; the
# proxies that are not measured sit idle.
#
# Per target, runs of the same load (redis-benchmark -c C -n N -P 1
# -t get -r KEYSPACE, keys prefilled through that target):
#   1. perf stat on the proxy (task-clock, context switches, every syscall
#      entry, the syscalls a proxy makes by name, io_uring SQEs submitted)
#      and, at the same time, on both redis-servers (read / write / epoll
#      syscalls: each backend read is one arrival of proxy writes), in
#      ROUNDS rounds with the targets interleaved; the summary prints
#      medians, and each target's CPU against nutcracker's of the same
#      round (the median and range of those ratios);
#   2. perf record -g on the proxy: report.T.txt (flat, by symbol; [k] kernel,
#      [.] user), report-dso.T.txt (by object), report-graph.T.txt (callers);
#   3. perf stat --per-thread and the sched_switch reasons (stat-threads.T.csv,
#      switch-reasons.T.txt, threads.T.txt);
#   4. epoll and nutcracker: backend vs client writes under strace
#      (writes-by-socket.T.txt; strace slows the proxy, so it coalesces more);
#   5. io_uring only: perf record of io_uring:io_uring_submit_req, SQEs by
#      opcode.
# Raw outputs go to OUT (default /tmp/prof); summary.txt there holds the
# per-request figures.
# Usage: scripts/profile-pipeline1.sh
#   env: N (100000), STRACE_N (N/5), C (50), KEYSPACE (100000), OUT (/tmp/prof), LOAD_CPUS (0),
#        PROXY_CPUS (1), PUERTA_BIN (target/release/puerta; built if absent),
#        TARGETS ("nutcracker uring epoll"), FREQ (perf record -F, 2999),
#        ROUNDS (3: rounds of step 1, targets interleaved)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}; STRACE_N=${STRACE_N:-$((N / 5))}; C=${C:-50}; KEYSPACE=${KEYSPACE:-100000}; OUT=${OUT:-/tmp/prof}
LOAD_CPUS=${LOAD_CPUS:-0}; PROXY_CPUS=${PROXY_CPUS:-1}; FREQ=${FREQ:-2999}
TARGETS=${TARGETS:-"nutcracker uring epoll"}; ROUNDS=${ROUNDS:-3}
for b in redis-server redis-benchmark nutcracker perf python3 taskset; do
    command -v $b >/dev/null || { echo "missing $b" >&2; exit 1; }
done
BIN=${PUERTA_BIN:-target/release/puerta}
[ -x "$BIN" ] || cargo build --release --quiet
mkdir -p "$OUT"
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh" # WORK, PIDS, cleanup, port, wait_port, yaml

RA=$(port); RB=$(port)
for p in $RA $RB; do
    taskset -c "$LOAD_CPUS" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    PIDS+=($!)
done
REDIS_PIDS="${PIDS[0]},${PIDS[1]}"
wait_port "$RA"; wait_port "$RB"
declare -A TPORT TPID
for t in $TARGETS; do
    TPORT[$t]=$(port); yaml "${TPORT[$t]}" >"$WORK/$t.yml"
    case $t in
        nutcracker) taskset -c "$PROXY_CPUS" nutcracker -c "$WORK/$t.yml" -s "$(port)" -a 127.0.0.1 -o "$WORK/nc.log" & ;;
        uring|epoll) taskset -c "$PROXY_CPUS" "$BIN" -c "$WORK/$t.yml" --workers 1 --io "$t" -s "$(port)" -a 127.0.0.1 \
            --admin "127.0.0.1:$(port)" -v 3 & ;;
        *) echo "unknown target $t" >&2; exit 1 ;;
    esac
    TPID[$t]=$!; PIDS+=($!)
done
for t in $TARGETS; do wait_port "${TPORT[$t]}"; done

load() { # port -> one pipeline-1 GET run
    taskset -c "$LOAD_CPUS" redis-benchmark -h 127.0.0.1 -p "$1" -c "$C" -n "$N" -P 1 -r "$KEYSPACE" -t get -q 2>/dev/null | tr '\r' '\n' | tail -2
}
PROXY_EVENTS=task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter
for s in read write writev readv sendmsg recvmsg sendto recvfrom epoll_wait epoll_pwait epoll_ctl io_uring_enter; do
    PROXY_EVENTS+=",syscalls:sys_enter_$s"
done
# io_uring: SQEs, requests punted to io-wq workers, task_work runs (normal
# and DEFER_TASKRUN local work), waits for CQEs.
for e in submit_req queue_async_work task_work_run local_work_run cqring_wait; do PROXY_EVENTS+=",io_uring:io_uring_$e"; done
REDIS_EVENTS=task-clock,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait

for t in $TARGETS; do
    p=${TPORT[$t]}
    taskset -c "$LOAD_CPUS" redis-benchmark -h 127.0.0.1 -p "$p" -c "$C" -n "$KEYSPACE" -r "$KEYSPACE" -t set -q >/dev/null 2>&1
    load "$p" >/dev/null # warm-up
    : >"$OUT/load.$t.txt"
done
# 1. counts, ROUNDS rounds with the targets interleaved (the box's speed
#    drifts: only figures from the same round compare)
for r in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    p=${TPORT[$t]}; pid=${TPID[$t]}
    perf stat -x, -e "$PROXY_EVENTS" -p "$pid" -o "$OUT/stat.$t.$r.csv" &
    s1=$!
    perf stat -x, -e "$REDIS_EVENTS" -p "$REDIS_PIDS" -o "$OUT/stat-redis.$t.$r.csv" &
    s2=$!
    sleep 0.5
    load "$p" >>"$OUT/load.$t.txt"
    kill -INT $s1 $s2; wait $s1 $s2 2>/dev/null || true
  done
done

for t in $TARGETS; do
    p=${TPORT[$t]}; pid=${TPID[$t]}
    # 2. call graphs
    perf record -q -g -F "$FREQ" -p "$pid" -o "$OUT/perf.$t.data" 2>/dev/null &
    s1=$!; sleep 0.5
    load "$p" >>"$OUT/load.$t.txt"
    kill -INT $s1; wait $s1 2>/dev/null || true
    perf report -i "$OUT/perf.$t.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -v '^$' >"$OUT/report.$t.txt" || true
    perf report -i "$OUT/perf.$t.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^$' >"$OUT/report-dso.$t.txt" || true
    perf report -i "$OUT/perf.$t.data" --no-children --sort sym --stdio -g caller,0.5,callee --percent-limit 2 2>/dev/null \
        | grep -v '^$' >"$OUT/report-graph.$t.txt" || true
    # 3. per thread (control and admin threads vs the worker; io-wq workers
    #    appear as iou-wrk-*), and each context switch's reason: prev_state R
    #    is a preemption, S a sleep (waiting for events)
    ps -L -o tid,comm -p "$pid" >"$OUT/threads.$t.txt"
    perf stat --per-thread -x, -e task-clock,context-switches -p "$pid" -o "$OUT/stat-threads.$t.csv" &
    s1=$!
    perf record -q -e sched:sched_switch -p "$pid" -o "$OUT/switch.$t.data" 2>/dev/null &
    s2=$!; sleep 0.5
    load "$p" >>"$OUT/load.$t.txt"
    ps -L -o tid,comm -p "$pid" >>"$OUT/threads.$t.txt"
    kill -INT $s1 $s2; wait $s1 $s2 2>/dev/null || true
    perf script -i "$OUT/switch.$t.data" -F comm,trace 2>/dev/null \
        | sed -E 's/^ *([^ ]+) .*prev_state=([A-Z+]+).*/\1 prev_state=\2/' | sort | uniq -c | sort -rn >"$OUT/switch-reasons.$t.txt" || true
    # 4. epoll and nutcracker: writes by socket under strace (STRACE_N
    #    requests): those to the two backend sockets (found with ss) vs the rest
    if [ "$t" != uring ]; then
        bfds=$(ss -tnpH "( dport = :$RA or dport = :$RB )" | grep -o "pid=$pid,fd=[0-9]*" | sed 's/.*fd=//' | tr '\n' ' ')
        strace -f -e trace=write,writev,sendto,sendmsg -e signal=none -qq -p "$pid" -o "$OUT/strace-writes.$t.txt" 2>/dev/null &
        s1=$!; sleep 0.5
        N=$STRACE_N load "$p" >>"$OUT/load.$t.txt"
        kill -INT $s1; wait $s1 2>/dev/null || true
        python3 - "$OUT/strace-writes.$t.txt" "$STRACE_N" $bfds <<'PY' >"$OUT/writes-by-socket.$t.txt"
import re, sys
path, n, backend = sys.argv[1], int(sys.argv[2]), set(sys.argv[3:])
back = other = 0
for line in open(path):
    m = re.search(r"\b(write|writev|sendto|sendmsg)\((\d+),", line)
    if m:
        if m.group(2) in backend:
            back += 1
        else:
            other += 1
print(f"backend fds {sorted(backend)}: {back} writes, {back / n:.3f} per request; "
      f"other sockets (clients): {other} writes, {other / n:.3f} per request; {n} requests")
PY
        rm -f "$OUT/strace-writes.$t.txt"
    fi
    # 5. SQEs by opcode
    if [ "$t" = uring ]; then
        perf record -q -e io_uring:io_uring_submit_req -p "$pid" -o "$OUT/sqe.$t.data" 2>/dev/null &
        s1=$!; sleep 0.5
        load "$p" >>"$OUT/load.$t.txt"
        kill -INT $s1; wait $s1 2>/dev/null || true
        perf script -i "$OUT/sqe.$t.data" 2>/dev/null | grep -o 'opcode [A-Z_0-9]*' | sort | uniq -c | sort -rn >"$OUT/sqe-opcodes.$t.txt" || true
    fi
done

python3 - "$OUT" "$N" "$ROUNDS" $TARGETS <<'PY' | tee "$OUT/summary.txt"
import statistics, sys
out, n, rounds, targets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def stat(path):
    got = {}
    for line in open(path):
        f = line.strip().split(",")
        if len(f) < 3 or line.startswith("#"):
            continue
        try:
            got[f[2]] = float(f[0])
        except ValueError:
            got[f[2]] = float("nan")
    return got
def row(t, r):
    p, rd_ = stat(f"{out}/stat.{t}.{r}.csv"), stat(f"{out}/stat-redis.{t}.{r}.csv")
    g = lambda k: p.get(k, 0.0)
    rd = sum(g(f"syscalls:sys_enter_{s}") for s in ("read", "readv", "recvmsg", "recvfrom"))
    wr = sum(g(f"syscalls:sys_enter_{s}") for s in ("write", "writev", "sendmsg", "sendto"))
    ep = g("syscalls:sys_enter_epoll_wait") + g("syscalls:sys_enter_epoll_pwait")
    ev = {e: g("io_uring:io_uring_" + e) / n for e in ("submit_req", "queue_async_work", "task_work_run", "local_work_run", "cqring_wait")}
    return [g("task-clock") * 1e3 / n, g("context-switches") / n, g("raw_syscalls:sys_enter") / n,
            g("syscalls:sys_enter_io_uring_enter") / n, ep / n, rd / n, wr / n, g("io_uring:io_uring_submit_req") / n,
            rd_.get("syscalls:sys_enter_read", 0.0) / n, rd_.get("task-clock", 0.0) * 1e3 / n], ev
rows = {t: [row(t, r) for r in range(1, rounds + 1)] for t in targets}
print(f"pipeline 1, redis-benchmark -c 50 -n {n} -t get; per request (perf stat on the proxy; backend reads on the redis-servers);")
print(f"medians of {rounds} rounds, targets interleaved; vs nc: cpu us / nutcracker's in the same round, median (min-max)")
cols = ["cpu us", "vs nc", "ctx sw", "syscalls", "io_uring_enter", "epoll_wait", "read+recv", "write+send", "SQEs", "redis reads", "redis us"]
print(f"{'target':<11}" + "".join(f"{c:>{18 if c == 'vs nc' else 15}}" for c in cols))
for t in targets:
    vals = [statistics.median(x[0][i] for x in rows[t]) for i in range(len(rows[t][0][0]))]
    vs = "-"
    if "nutcracker" in rows and t != "nutcracker":
        ratios = [a[0][0] / b[0][0] for a, b in zip(rows[t], rows["nutcracker"]) if b[0][0]]
        if ratios:
            vs = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
    cells = [f"{vals[0]:>15.3f}", f"{vs:>18}"] + [f"{v:>15.3f}" for v in vals[1:]]
    print(f"{t:<11}" + "".join(cells))
print()
if "uring" in rows:
    ev = {k: statistics.median(x[1][k] for x in rows["uring"]) for k in rows["uring"][0][1]}
    print("io_uring events per request (uring, medians): " + ", ".join(f"{k} {v:.3f}" for k, v in ev.items()))
print("cpu us = task-clock (ms) of every thread of the proxy / requests; redis reads = read() calls of both")
print("redis-servers / requests (one per arrival of proxy writes); redis us = their task-clock / requests.")
PY
