#!/usr/bin/env bash
# Wakeups per request at pipeline 1 (issue 14): for each target, one
# `redis-benchmark -c C -n N -P 1 -t TESTS -r KEYSPACE` run (ROUNDS rounds,
# targets interleaved, medians printed) and, per request:
#   bench cs   context switches (voluntary + involuntary) of redis-benchmark
#              (its rusage, from os.wait4)
#   redis cs   the same for both redis-servers together (/proc/PID/task/*)
#   proxy cs   the same for the proxy's threads (none for "direct")
#   load us    busy CPU time of the load CPUs (LOAD_CPUS: redis-benchmark
#              and both redis-servers), from /proc/stat: includes whatever
#              else runs there (on a shared box, other work)
#   side us    CPU time of redis-benchmark (rusage) and both redis-servers
#              (/proc/PID/stat): the load side's own share of load us
#   proxy us   CPU time of the proxy (utime + stime, tick-sampled: it
#              leaves out softirq time, which the io_uring driver's sends
#              run more of; see core us)
#   core us    busy time of the proxy's CPU (PROXY_CPUS) from /proc/stat:
#              user, system, irq and softirq; the proxy runs there alone, so
#              this is what it costs its core, loopback delivery included
#   rd/req     read(2) calls of both redis-servers (perf stat tracepoint;
#              "-" without perf)
# Pinning as in bench-twemproxy.sh: load on LOAD_CPUS (0), proxies on
# PROXY_CPUS (1). Targets: direct (redis-a), nutcracker, puerta (workers=1,
# default driver), puerta-epoll; BASELINE_BIN adds "puerta-base" and
# "puerta-base-epoll" (another binary, workers=1, both drivers); VARIANTS adds Puerta workers=1 targets served from
# TOML with extra [server] lines: VARIANTS="name:key=value;key=value ..."
# (e.g. "batch16:wait_batch=16;wait_batch_us=20 poll50:busy_poll_us=50").
# FLOOR=1 adds the floor of a proxy hop (examples/relay_floor.rs: one epoll
# thread copying bytes between each client and its own connection to
# redis-a, nothing else): "relay" sleeps in epoll_wait as nutcracker does,
# "relay-spin" polls for FLOOR_SPIN_US (50) first, as busy_poll_us does.
# Usage: scripts/profile-wakeups.sh   env: N (100000), C (50), ROUNDS (3),
#   TESTS ("get set"), KEYSPACE (100000), LOAD_CPUS, PROXY_CPUS, BASELINE_BIN,
#   VARIANTS, FLOOR, FLOOR_SPIN_US, NO_BUILD=1 (use target/release/puerta
#   and the relay as they are),
#   OPEN_RATES ("": none; e.g. "20000 50000"): then, per rate, `puerta bench`
#   open loop (GET:SET 9:1, -c C, OPEN_DURATION (3s) per run, ROUNDS rounds
#   interleaved) on every target, and p50 / p99 added over direct
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}; C=${C:-50}; ROUNDS=${ROUNDS:-3}; TESTS=${TESTS:-"get set"}; KEYSPACE=${KEYSPACE:-100000}
LOAD_CPUS=${LOAD_CPUS:-0}; PROXY_CPUS=${PROXY_CPUS:-1}
for b in redis-server redis-benchmark nutcracker python3 taskset; do
    command -v $b >/dev/null || { echo "missing $b" >&2; exit 1; }
done
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
[ -z "${FLOOR:-}" ] || [ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --example relay_floor
BIN=target/release/puerta
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh" # WORK, PIDS, cleanup, port, wait_port, yaml

RA=$(port); RB=$(port)
for p in $RA $RB; do
    taskset -c "$LOAD_CPUS" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    PIDS+=($!)
done
REDIS_PIDS="${PIDS[0]} ${PIDS[1]}"
wait_port "$RA"; wait_port "$RB"
declare -A TPORT=([direct]=$RA) TPID=([direct]=)
TARGETS="direct"
start() { # name, then the command that serves the pool on TPORT[name]
    local name=$1; shift
    taskset -c "$PROXY_CPUS" "$@" >/dev/null 2>&1 &
    TPID[$name]=$!; PIDS+=($!); TARGETS+=" $name"
    wait_port "${TPORT[$name]}"
}
TPORT[nutcracker]=$(port); yaml "${TPORT[nutcracker]}" >"$WORK/nc.yml"
start nutcracker nutcracker -c "$WORK/nc.yml" -s "$(port)" -a 127.0.0.1 -o "$WORK/nc.log"
if [ -n "${BASELINE_BIN:-}" ]; then
    TPORT[puerta-base]=$(port); yaml "${TPORT[puerta-base]}" >"$WORK/pb.yml"
    start puerta-base "$BASELINE_BIN" -c "$WORK/pb.yml" --workers 1 -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)"
    TPORT[puerta-base-epoll]=$(port); yaml "${TPORT[puerta-base-epoll]}" >"$WORK/pbe.yml"
    start puerta-base-epoll "$BASELINE_BIN" -c "$WORK/pbe.yml" --workers 1 --io epoll -s "$(port)" -a 127.0.0.1 \
        --admin "127.0.0.1:$(port)"
fi
TPORT[puerta]=$(port); yaml "${TPORT[puerta]}" >"$WORK/p.yml"
start puerta $BIN -c "$WORK/p.yml" --workers 1 -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)"
TPORT[puerta-epoll]=$(port); yaml "${TPORT[puerta-epoll]}" >"$WORK/pe.yml"
start puerta-epoll $BIN -c "$WORK/pe.yml" --workers 1 --io epoll -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)"
if [ -n "${FLOOR:-}" ]; then
    TPORT[relay]=$(port)
    start relay target/release/examples/relay_floor --listen "${TPORT[relay]}" --backend "127.0.0.1:$RA"
    TPORT[relay-spin]=$(port)
    start relay-spin target/release/examples/relay_floor --listen "${TPORT[relay-spin]}" --backend "127.0.0.1:$RA" \
        --spin-us "${FLOOR_SPIN_US:-50}"
fi
for v in ${VARIANTS:-}; do
    name=${v%%:*}; TPORT[$name]=$(port)
    { toml "${TPORT[$name]}" full | sed -n '1,2p'; echo "${v#*:}" | tr ';' '\n'; toml "${TPORT[$name]}" full | sed '1,2d'; } >"$WORK/$name.toml"
    start "$name" $BIN -c "$WORK/$name.toml" --workers 1 -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)"
done

cs() { # pids -> voluntary + involuntary switches of all their threads
    local t=0 p
    for p in "$@"; do
        t=$((t + $(cat /proc/"$p"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s + 0}')))
    done
    echo $t
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
redis_ticks() { local t=0 p; for p in $REDIS_PIDS; do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
cpu_list() { # "0,2-3" -> "cpu0 cpu2 cpu3"
    python3 -c '
import sys
out = []
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    out += range(int(a), int(b or a) + 1)
print(" ".join(f"cpu{c}" for c in out))' "$1"
}
LOAD_CPU_LIST=$(cpu_list "$LOAD_CPUS"); PROXY_CPU_LIST=$(cpu_list "$PROXY_CPUS")
cpus_busy() { # busy jiffies (all but idle and iowait) summed over a cpu list
    awk -v want=" $1 " 'index(want, " " $1 " ") {
        t = 0; for (i = 2; i <= NF; i++) t += $i; busy += t - $5 - $6
    } END { print busy }' /proc/stat
}
load_busy() { cpus_busy "$LOAD_CPU_LIST"; }
HAVE_PERF=; perf stat -e syscalls:sys_enter_read true >/dev/null 2>&1 && HAVE_PERF=1
TCK=$(getconf CLK_TCK)
RESULTS="$WORK/results.csv"
echo "target,round,test,rps,bench_cs,redis_cs,proxy_cs,load_us,side_us,proxy_us,core_us,reads" >"$RESULTS"
for r in $(seq "$ROUNDS"); do
  for test in $TESTS; do
    for t in $TARGETS; do
      pid=${TPID[$t]}
      rcs0=$(cs $REDIS_PIDS); rt0=$(redis_ticks); pcs0=0; pt0=0
      [ -n "$pid" ] && { pcs0=$(cs "$pid"); pt0=$(cpu_ticks "$pid"); }
      if [ -n "$HAVE_PERF" ]; then
          perf stat -x, -e syscalls:sys_enter_read -p "${REDIS_PIDS// /,}" -o "$WORK/perf.txt" &
          PERF=$!; sleep 0.3
      fi
      l0=$(load_busy); k0=$(cpus_busy "$PROXY_CPU_LIST")
      out=$(python3 - "$LOAD_CPUS" "${TPORT[$t]}" "$C" "$N" "$test" "$KEYSPACE" <<'PY'
import os, re, subprocess, sys
cpus, port, c, n, test, keys = sys.argv[1:7]
p = subprocess.Popen(["taskset", "-c", cpus, "redis-benchmark", "-h", "127.0.0.1", "-p", port, "-c", c, "-n", n,
                      "-P", "1", "-t", test, "-r", keys, "-q"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
text = p.stdout.read().decode().replace("\r", "\n")
_, _, ru = os.wait4(p.pid, 0)
m = re.findall(r"([\d.]+) requests per second", text)
if not m:
    sys.exit("could not parse redis-benchmark output:\n" + text[-2000:])
print(m[-1], ru.ru_nvcsw + ru.ru_nivcsw, round((ru.ru_utime + ru.ru_stime) * 1e6))
PY
)
      l1=$(load_busy); k1=$(cpus_busy "$PROXY_CPU_LIST")
      reads=-
      if [ -n "$HAVE_PERF" ]; then
          kill -INT $PERF; wait $PERF 2>/dev/null || true
          reads=$(awk -F, '/sys_enter_read/ {print $1}' "$WORK/perf.txt")
      fi
      rcs1=$(cs $REDIS_PIDS); rt1=$(redis_ticks); pcs1=0; pt1=0
      [ -n "$pid" ] && { pcs1=$(cs "$pid"); pt1=$(cpu_ticks "$pid"); }
      read -r rps bcs bus <<<"$out"
      echo "$t,$r,$test,$rps,$bcs,$((rcs1 - rcs0)),$((pcs1 - pcs0)),$(((l1 - l0) * 1000000 / TCK)),$((bus + (rt1 - rt0) * 1000000 / TCK)),$(((pt1 - pt0) * 1000000 / TCK)),$(((k1 - k0) * 1000000 / TCK)),$reads" >>"$RESULTS"
    done
  done
done
cp "$RESULTS" "${KEEP_CSV:-/dev/null}" 2>/dev/null || true

python3 - "$RESULTS" "$N" "$C" "$ROUNDS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
n = int(sys.argv[2])
print(f"redis-benchmark -c {sys.argv[3]} -n {n} -P 1, medians of {sys.argv[4]} interleaved rounds (min-max of ops/s)")
print("per request: context switches (voluntary + involuntary) of redis-benchmark, both redis-servers, the proxy;")
print("CPU us of the load CPUs, of the load processes alone (side), of the proxy process (utime + stime) and of the proxy's")
print("CPU (core: its busy time in /proc/stat, softirq included; the proxy runs there alone); read(2) calls of both redis-servers")
print(f"{'test':<4} {'target':<14} {'ops/s':>8} {'spread':>13} {'vs nc':>6} {'bench cs':>8} {'redis cs':>8} "
      f"{'proxy cs':>8} {'load us':>7} {'side us':>7} {'proxy us':>8} {'core us':>7} {'rd/req':>6}")
targets = list(dict.fromkeys(r["target"] for r in rows))
for test in dict.fromkeys(r["test"] for r in rows):
    nc = None
    for t in targets:
        sel = [r for r in rows if r["target"] == t and r["test"] == test]
        med = lambda k: statistics.median(float(r[k]) for r in sel)
        rps = [float(r["rps"]) for r in sel]
        if t == "nutcracker":
            nc = med("rps")
        reads = f"{med('reads') / n:.2f}" if all(r["reads"] not in ("-", "") for r in sel) else "-"
        ratio = f"{med('rps') / nc:.2f}" if nc else "-"
        core = f"{med('core_us') / n:.2f}" if t != "direct" else "-"
        print(f"{test:<4} {t:<14} {med('rps'):>8.0f} {min(rps):>6.0f}-{max(rps):<6.0f} {ratio:>6} "
              f"{med('bench_cs') / n:>8.3f} {med('redis_cs') / n:>8.3f} {med('proxy_cs') / n:>8.3f} "
              f"{med('load_us') / n:>7.2f} {med('side_us') / n:>7.2f} {med('proxy_us') / n:>8.2f} {core:>7} {reads:>6}")
PY

# Open loop: latency from each request's intended send time, added over direct.
OPEN_DURATION=${OPEN_DURATION:-3s}; prefill=--prefill
PB_TARGETS=(); for t in $TARGETS; do PB_TARGETS+=(-t "$t=127.0.0.1:${TPORT[$t]}"); done
for rate in ${OPEN_RATES:-}; do
    taskset -c "$LOAD_CPUS" $BIN bench "${PB_TARGETS[@]}" --cpus "$LOAD_CPUS" --key-prefix pw: $prefill --ratio 9:1 \
        -c "$C" --rate "$rate" -d "$OPEN_DURATION" --rounds "$ROUNDS" --csv "$WORK/open.$rate.csv" >/dev/null
    prefill=
    [ -n "${KEEP_CSV:-}" ] && cp "$WORK/open.$rate.csv" "${KEEP_CSV%.csv}.open.$rate.csv"
    python3 - "$WORK/open.$rate.csv" "$rate" "$OPEN_DURATION" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
key = lambda names: next(k for k in rows[0] if k.lower() in names)
tk, p50k, p99k = key({"target", "name"}), key({"p50_ms", "p50", "p50_us"}), key({"p99_ms", "p99", "p99_us"})
targets = list(dict.fromkeys(r[tk] for r in rows))
med = {t: {k: statistics.median(float(r[k]) for r in rows if r[tk] == t) for k in (p50k, p99k)} for t in targets}
d = med.get("direct")
print(f"\nopen loop {sys.argv[2]} req/s, {sys.argv[3]} per run, GET:SET 9:1, medians ({p50k}, {p99k}); added = minus direct")
print(f"{'target':<14} {'p50':>8} {'p99':>8} {'added p50':>9} {'added p99':>9} {'vs nc p50':>9} {'vs nc p99':>9}")
nc = med.get("nutcracker")
for t in targets:
    m = med[t]
    a50, a99 = (m[p50k] - d[p50k], m[p99k] - d[p99k]) if d else (float("nan"),) * 2
    n50, n99 = (nc[p50k] - d[p50k], nc[p99k] - d[p99k]) if nc and d else (float("nan"),) * 2
    r50 = f"{a50 / n50:.2f}" if n50 else "-"
    r99 = f"{a99 / n99:.2f}" if n99 else "-"
    print(f"{t:<14} {m[p50k]:>8.3f} {m[p99k]:>8.3f} {a50:>9.3f} {a99:>9.3f} {r50:>9} {r99:>9}")
PY
done
