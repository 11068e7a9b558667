#!/usr/bin/env bash
# twemproxy-mode benchmark, one run, same 2 redis backends, same YAML:
#   redis direct  vs  nutcracker  vs  Puerta workers=1  vs  Puerta workers=2
# Workloads (redis-benchmark -c C -n N): GET and SET (random keys over
# -r KEYSPACE) at pipeline 1 and 16, and MGET of 10 keys; ROUNDS rounds,
# targets interleaved within each round; medians are printed.
# Columns: ops/s, ratio to nutcracker, p50 / p99 / p99.9 (ms), CPU us per
# request of the serving process (the proxy; redis-server for "direct"),
# the busy time of PROXY_CPUS per request (core us/req: user, system, irq
# and softirq from /proc/stat, for the targets alone on that CPU; the
# process's own utime + stime leaves softirq time out), syscalls per request (strace -c -f on the serving process, separate
# shorter run), the load cores' utilization during the run (from
# /proc/stat: the CPUs in LOAD_CPUS, which run redis-benchmark and both
# redis-servers; near 100% means the load side, not the proxy, caps
# closed-loop throughput), and the RSS of IDLE idle client connections per
# proxy.
# Large values: at pipeline 1, GET of LARGE_SIZES-byte values (default 64
# KiB and 1 MiB; LARGE_KEYS keys per size, prefilled through each path) as
# rows get64k and get1m, LARGE_N requests for 64 KiB and LARGE_N/16 for 1
# MiB (LARGE_SIZES="" skips them).
#
# Pinning: redis-servers and redis-benchmark on LOAD_CPUS (default 0),
# nutcracker and Puerta workers=1 on PROXY_CPUS (default 1), Puerta
# workers=2 on W2_CPUS (default 0,1: on a 2-core box it shares a core with
# the load generator, so read that row with care).
# Usage: scripts/bench-twemproxy.sh
#   env: N (300000), C (50), ROUNDS (3), PIPELINES ("1 16"), KEYSPACE (100000),
#        IDLE (10000), STRACE_N (N/6), LOAD_CPUS, PROXY_CPUS, W2_CPUS,
#        TESTS ("get set mget"; "" runs only the large rows),
#        LARGE_SIZES ("65536 1048576"), LARGE_KEYS (64), LARGE_N (N/20),
#        RATE (20000), OPEN_DURATION (10s) for the puerta bench cross-check,
#        BASELINE_BIN: another puerta binary (an earlier build) run as a fifth
#        target, "puerta-base" (workers=1, pinned like puerta-w1), so a change
#        is measured against the code before it in the same run,
#        EPOLL=1: Puerta workers=1 with --io epoll as another target,
#        "epoll-w1" (pinned like puerta-w1, which runs the default driver),
#        METRICS_DETAIL=both: two more targets, "md-full" and "md-basic":
#        Puerta workers=1 (pinned like puerta-w1) serving the same pool
#        written as TOML with [server] metrics_detail "full" and "basic",
#        interleaved with the others in every round; a last table prints
#        both side by side with their ratios (ops/s, CPU us/req)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-300000}; C=${C:-50}; ROUNDS=${ROUNDS:-3}; PIPELINES=${PIPELINES:-"1 16"}
KEYSPACE=${KEYSPACE:-100000}; IDLE=${IDLE:-10000}; STRACE_N=${STRACE_N:-$((N / 6))}
LOAD_CPUS=${LOAD_CPUS:-0}; PROXY_CPUS=${PROXY_CPUS:-1}; W2_CPUS=${W2_CPUS:-0,1}
TESTS=${TESTS-"get set mget"}
LARGE_SIZES=${LARGE_SIZES-"65536 1048576"}; LARGE_KEYS=${LARGE_KEYS:-64}; LARGE_N=${LARGE_N:-$((N / 20))}
for b in redis-server redis-benchmark nutcracker strace python3 taskset; do
    command -v $b >/dev/null || { echo "missing $b: apt-get install -y redis-server redis-tools nutcracker strace" >&2; exit 1; }
done
ulimit -n $((IDLE + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet
BIN=target/release/puerta
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh" # WORK, PIDS, cleanup, port, wait_port, yaml

RA=$(port); RB=$(port)
for p in $RA $RB; do
    taskset -c "$LOAD_CPUS" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    PIDS+=($!)
done
REDIS_A_PID=${PIDS[0]}
NC_PORT=$(port); P1_PORT=$(port); P2_PORT=$(port)
yaml "$NC_PORT" >"$WORK/nc.yml"; yaml "$P1_PORT" >"$WORK/p1.yml"; yaml "$P2_PORT" >"$WORK/p2.yml"
wait_port "$RA"; wait_port "$RB"
taskset -c "$PROXY_CPUS" nutcracker -c "$WORK/nc.yml" -s "$(port)" -a 127.0.0.1 -o "$WORK/nc.log" &
NC_PID=$!; PIDS+=($NC_PID)
taskset -c "$PROXY_CPUS" $BIN -c "$WORK/p1.yml" --workers 1 -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)" -v 3 &
P1_PID=$!; PIDS+=($P1_PID)
taskset -c "$W2_CPUS" $BIN -c "$WORK/p2.yml" --workers 2 -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)" -v 3 &
P2_PID=$!; PIDS+=($P2_PID)
for p in $NC_PORT $P1_PORT $P2_PORT; do wait_port "$p"; done
if [ -n "${BASELINE_BIN:-}" ]; then
    PB_PORT=$(port); yaml "$PB_PORT" >"$WORK/pb.yml"
    taskset -c "$PROXY_CPUS" "$BASELINE_BIN" -c "$WORK/pb.yml" --workers 1 -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)" -v 3 &
    PB_PID=$!; PIDS+=($PB_PID)
    wait_port "$PB_PORT"
fi
if [ -n "${EPOLL:-}" ]; then
    PE_PORT=$(port); yaml "$PE_PORT" >"$WORK/pe.yml"
    taskset -c "$PROXY_CPUS" $BIN -c "$WORK/pe.yml" --workers 1 --io epoll -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)" -v 3 &
    PE_PID=$!; PIDS+=($PE_PID)
    wait_port "$PE_PORT"
fi

declare -A MD_PORT=() MD_PID=()
if [ "${METRICS_DETAIL:-}" = both ]; then
    for d in full basic; do
        MD_PORT[$d]=$(port); toml "${MD_PORT[$d]}" "$d" >"$WORK/md-$d.toml"
        taskset -c "$PROXY_CPUS" $BIN -c "$WORK/md-$d.toml" --workers 1 -s "$(port)" -a 127.0.0.1 --admin "127.0.0.1:$(port)" -v 3 &
        MD_PID[$d]=$!; PIDS+=($!)
        wait_port "${MD_PORT[$d]}"
    done
elif [ -n "${METRICS_DETAIL:-}" ]; then
    echo "METRICS_DETAIL: only \"both\" is known here" >&2; exit 1
fi

# target -> (port, pid of the serving process)
TARGETS="direct nutcracker puerta-w1 puerta-w2"
declare -A TPORT=([direct]=$RA [nutcracker]=$NC_PORT [puerta-w1]=$P1_PORT [puerta-w2]=$P2_PORT)
declare -A TPID=([direct]=$REDIS_A_PID [nutcracker]=$NC_PID [puerta-w1]=$P1_PID [puerta-w2]=$P2_PID)
if [ -n "${BASELINE_BIN:-}" ]; then
    TARGETS="direct nutcracker puerta-base puerta-w1 puerta-w2"
    TPORT[puerta-base]=$PB_PORT; TPID[puerta-base]=$PB_PID
fi
if [ -n "${EPOLL:-}" ]; then
    TARGETS="${TARGETS/puerta-w1/puerta-w1 epoll-w1}"
    TPORT[epoll-w1]=$PE_PORT; TPID[epoll-w1]=$PE_PID
fi
if [ "${METRICS_DETAIL:-}" = both ]; then
    TARGETS+=" md-full md-basic"
    TPORT[md-full]=${MD_PORT[full]}; TPID[md-full]=${MD_PID[full]}
    TPORT[md-basic]=${MD_PORT[basic]}; TPID[md-basic]=${MD_PID[basic]}
fi
MGET_KEYS="mk:0 mk:1 mk:2 mk:3 mk:4 mk:5 mk:6 mk:7 mk:8 mk:9"
for t in $TARGETS; do # values for the MGET keys, placed by each path itself
    for k in $MGET_KEYS; do redis-cli -p "${TPORT[$t]}" SET "$k" value >/dev/null; done
done
# Large values: keys lv<size>:<12 digits> (redis-benchmark's __rand_int__
# form), written directly to redis-a for "direct" and through nutcracker for
# the proxies (every proxy places a key on the same server: same YAML).
prefill_large() { # port size
    python3 - "$1" "$2" "$LARGE_KEYS" <<'PY'
import socket, sys
port, size, keys = (int(a) for a in sys.argv[1:4])
s = socket.create_connection(("127.0.0.1", port))
value = b"v" * size
for i in range(keys):
    key = b"lv%d:%012d" % (size, i)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, size, value))
    got = b""
    while not got.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            sys.exit(f"port {port} closed during the large-value prefill")
        got += chunk
    if got != b"+OK\r\n":
        sys.exit(f"port {port}: SET of {size} bytes answered {got!r}")
PY
}
for size in $LARGE_SIZES; do prefill_large "$RA" "$size"; prefill_large "$NC_PORT" "$size"; done
large_name() { # size -> test name (get64k, get1m)
    if [ $(($1 % 1048576)) -eq 0 ]; then echo "get$(($1 / 1048576))m"; else echo "get$(($1 / 1024))k"; fi
}
declare -A LARGE_OF=(); LARGE_TESTS=""
for size in $LARGE_SIZES; do LARGE_OF[$(large_name "$size")]=$size; LARGE_TESTS+=" $(large_name "$size")"; done

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# "busy total" jiffies summed over the CPUs of LOAD_CPUS (a list like 0 or
# 0,2-3): busy = total - idle - iowait.
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
cpus_ticks() { # "busy total" jiffies over a cpu list
    awk -v want=" $1 " 'index(want, " " $1 " ") {
        t = 0; for (i = 2; i <= NF; i++) t += $i; busy += t - $5 - $6; total += t
    } END { print busy, total }' /proc/stat
}
load_ticks() { cpus_ticks "$LOAD_CPU_LIST"; }
TCK=$(getconf CLK_TCK)
bench() { # port pipeline test n -> redis-benchmark's text report
    local args=(-h 127.0.0.1 -p "$1" -c "$C" -n "$4" -P "$2")
    case $3 in
        mget) taskset -c "$LOAD_CPUS" redis-benchmark "${args[@]}" MGET $MGET_KEYS ;;
        get*[km]) taskset -c "$LOAD_CPUS" redis-benchmark "${args[@]}" -r "$LARGE_KEYS" GET "lv${LARGE_OF[$3]}:__rand_int__" ;;
        *) taskset -c "$LOAD_CPUS" redis-benchmark "${args[@]}" -r "$KEYSPACE" -t "$3" ;;
    esac 2>/dev/null | tr '\r' '\n'
}
RESULTS="$WORK/results.csv"
echo "pipeline,target,round,test,rps,p50,p99,p999,cpu_us_per_req,load_cpu_pct,core_us_per_req" >"$RESULTS"
for r in $(seq "$ROUNDS"); do
  for P in $PIPELINES; do
    tests=$TESTS; [ "$P" = 1 ] && tests+="$LARGE_TESTS"
    for test in $tests; do
      n=$N
      case $test in get*[km]) n=$LARGE_N; [ "${LARGE_OF[$test]}" -ge 1048576 ] && n=$((LARGE_N / 16)); [ "$n" -ge 100 ] || n=100 ;; esac
      for t in $TARGETS; do
        before=$(cpu_ticks "${TPID[$t]}"); load_before=$(load_ticks); core_before=$(cpus_ticks "$PROXY_CPU_LIST")
        out=$(bench "${TPORT[$t]}" "$P" "$test" "$n")
        after=$(cpu_ticks "${TPID[$t]}"); load_after=$(load_ticks); core_after=$(cpus_ticks "$PROXY_CPU_LIST")
        echo "$out" | python3 -c '
import re, sys
text = sys.stdin.read()
rps = re.search(r"throughput summary: ([\d.]+)", text)
summ = re.search(r"avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", text)
p999 = next((float(m.group(2)) for m in re.finditer(r"([\d.]+)% <= ([\d.]+) milliseconds", text) if float(m.group(1)) >= 99.9), None)
if not rps or not summ:
    sys.exit("could not parse redis-benchmark output:\n" + text[-2000:])
p, t, r, test, cpu, load, core = sys.argv[1:8]
print(",".join([p, t, r, test, rps.group(1), summ.group(3), summ.group(5), str(p999), cpu, load, core]))
' "$P" "$t" "$r" "$test" "$(python3 -c "print(($after-$before)/$TCK*1e6/$n)")" \
  "$(python3 -c "
b0, t0, b1, t1 = (int(x) for x in '$load_before $load_after'.split())
print(round(100 * (b1 - b0) / max(t1 - t0, 1), 1))")" \
  "$(python3 -c "print(($(echo $core_after | cut -d' ' -f1)-$(echo $core_before | cut -d' ' -f1))/$TCK*1e6/$n)")" >>"$RESULTS"
      done
    done
  done
done

# Syscalls per request: one shorter GET run per target and pipeline under strace.
SYS="$WORK/sys.csv"; echo "pipeline,target,syscalls_per_req" >"$SYS"
for P in $PIPELINES; do
  for t in $TARGETS; do
    strace -c -f -p "${TPID[$t]}" -o "$WORK/strace.$t.$P" 2>/dev/null &
    SPID=$!; sleep 0.5
    bench "${TPORT[$t]}" "$P" get "$STRACE_N" >/dev/null
    kill -INT $SPID; wait $SPID 2>/dev/null || true
    calls=$(awk '/^[ ]*100.00/ {print $4}' "$WORK/strace.$t.$P"); calls=${calls:-0}
    echo "$P,$t,$(python3 -c "print(round($calls/$STRACE_N,3))")" >>"$SYS"
  done
done

# RSS of IDLE idle client connections, per proxy.
IDLEF="$WORK/idle.txt"; : >"$IDLEF"
for t in nutcracker puerta-w1 puerta-w2; do
    echo "$t $(python3 scripts/idle-conns.py "${TPORT[$t]}" "${TPID[$t]}" "$IDLE" --ping)" >>"$IDLEF"
done

python3 - "$RESULTS" "$SYS" "$IDLEF" "$N" "$C" "$ROUNDS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sysc = {(r["pipeline"], r["target"]): r["syscalls_per_req"] for r in csv.DictReader(open(sys.argv[2]))}
targets = ["direct", "nutcracker", "puerta-base", "puerta-w1", "epoll-w1", "puerta-w2", "md-full", "md-basic"]
# Targets alone on PROXY_CPUS: their core's busy time is theirs.
ALONE = {"nutcracker", "puerta-base", "puerta-w1", "epoll-w1", "md-full", "md-basic"}
def div(a, b):  # a ratio; nan where a short run measured no CPU ticks
    return a / b if b else float("nan")
def med(xs):
    xs = [float(x) for x in xs if x not in ("None", "")]
    return statistics.median(xs) if xs else float("nan")
print(f"redis-benchmark -c {sys.argv[5]} -n {sys.argv[4]}, medians of {sys.argv[6]} interleaved rounds")
print(f"{'pipe':>4} {'test':<6} {'target':<10} {'ops/s':>10} {'vs nc':>6} {'p50 ms':>7} {'p99 ms':>7} "
      f"{'p99.9 ms':>8} {'cpu us/req':>10} {'core us/req':>11} {'syscalls/req':>12} {'load cpu%':>9}")
agg = {}
tests = ["get", "set", "mget"] + sorted({r["test"] for r in rows} - {"get", "set", "mget"},
                                        key=lambda t: (t[-1] == "m", int(t[3:-1])))
for p in sorted({r["pipeline"] for r in rows}, key=int):
    for test in tests:
        got = {}
        for t in targets:
            sel = [r for r in rows if r["pipeline"] == p and r["target"] == t and r["test"] == test]
            if sel:
                got[t] = {k: med(r[k] for r in sel) for k in ("rps", "p50", "p99", "p999", "cpu_us_per_req", "load_cpu_pct", "core_us_per_req")}
        nc = got.get("nutcracker", {}).get("rps")
        for t, v in got.items():
            agg[(p, test, t)] = v
            ratio = v["rps"] / nc if nc else float("nan")
            sc = sysc.get((p, t), "-") if test == "get" else "-"
            core = f"{v['core_us_per_req']:.2f}" if t in ALONE else "-"
            print(f"{p:>4} {test:<6} {t:<10} {v['rps']:>10.0f} {ratio:>6.2f} {v['p50']:>7.3f} {v['p99']:>7.3f} "
                  f"{v['p999']:>8.3f} {v['cpu_us_per_req']:>10.2f} {core:>11} {sc:>12} {v['load_cpu_pct']:>9.1f}")
print("cpu us/req: the serving process only (redis-server for direct, the proxy otherwise; utime + stime, tick-sampled); "
      "core us/req: busy time of PROXY_CPUS (/proc/stat, irq and softirq included) for targets alone there; "
      "mget counts one request per MGET of 10 keys; syscalls/req from a separate GET run under strace.")
print("load cpu%: utilization of the load CPUs (redis-benchmark and both redis-servers) during the run; "
      "near 100 the load side caps closed-loop ops/s. get64k / get1m: GET of 64 KiB / 1 MiB values, pipeline 1.")
print()
print("idle connections (RSS from /proc/PID/status, each connection answered one PING first):")
for line in open(sys.argv[3]):
    print("  " + line.strip())
print()
print("targets:")
for p in sorted({k[0] for k in agg}, key=int):
    for test in ("get", "set"):
        w1, nc = agg.get((p, test, "puerta-w1")), agg.get((p, test, "nutcracker"))
        if w1 and nc:
            r = div(w1["cpu_us_per_req"], nc["cpu_us_per_req"])
            k = div(w1["core_us_per_req"], nc["core_us_per_req"])
            print(f"  pipeline {p} {test}: workers=1 CPU/req = {r:.2f}x nutcracker, core {k:.2f}x (target <= 0.7)")
        base = agg.get((p, test, "puerta-base"))
        if w1 and base and nc:
            print(f"  pipeline {p} {test}: vs nutcracker, ops/s puerta-w1 {div(w1['rps'], nc['rps']):.2f}x, "
                  f"puerta-base {div(base['rps'], nc['rps']):.2f}x; CPU/req puerta-w1 {div(w1['cpu_us_per_req'], nc['cpu_us_per_req']):.2f}x, "
                  f"puerta-base {div(base['cpu_us_per_req'], nc['cpu_us_per_req']):.2f}x")
for test in ("get", "set"):
    w2, nc = agg.get(("16", test, "puerta-w2")), agg.get(("16", test, "nutcracker"))
    if w2 and nc:
        print(f"  pipeline 16 {test}: workers=2 throughput = {div(w2['rps'], nc['rps']):.2f}x nutcracker (target >= 1.3)")
for test in tests[3:]:
    w1, nc = agg.get(("1", test, "puerta-w1")), agg.get(("1", test, "nutcracker"))
    if w1 and nc:
        print(f"  pipeline 1 {test}: workers=1 throughput = {div(w1['rps'], nc['rps']):.2f}x nutcracker (target >= 1.5), "
              f"CPU/req {div(w1['cpu_us_per_req'], nc['cpu_us_per_req']):.2f}x")
for line in open(sys.argv[3]):
    if line.startswith("puerta"):
        parts = line.split()
        after_kb = int(parts[parts.index("rss_after_kb") + 1])
        delta_kb = int(parts[parts.index("delta_kb") + 1])
        print(f"  {parts[0]}: {delta_kb / 1024:.1f} MB for the idle connections, {after_kb / 1024:.1f} MB total RSS (target <= 40 MB)")
md = [(p, test) for p in sorted({k[0] for k in agg}, key=int) for test in ("get", "set")
      if (p, test, "md-full") in agg and (p, test, "md-basic") in agg]
if md:
    print()
    print("metrics_detail, Puerta workers=1, the same pool as TOML (issue 17: ops/s full >= 0.97x basic, CPU/req <= 1.03x):")
    print(f"{'pipe':>4} {'test':<4} {'ops/s full':>10} {'ops/s basic':>11} {'ratio':>6} "
          f"{'cpu us/req full':>15} {'cpu us/req basic':>16} {'ratio':>6}")
    for p, test in md:
        f, b = agg[(p, test, "md-full")], agg[(p, test, "md-basic")]
        print(f"{p:>4} {test:<4} {f['rps']:>10.0f} {b['rps']:>11.0f} {div(f['rps'], b['rps']):>6.3f} "
              f"{f['cpu_us_per_req']:>15.2f} {b['cpu_us_per_req']:>16.2f} {div(f['cpu_us_per_req'], b['cpu_us_per_req']):>6.3f}")
PY

# Cross-check with Puerta's own load generator on the same targets: closed
# loop at pipeline 16 and open loop at RATE req/s (latency from each
# request's intended send time), GET:SET 9:1 over its own keys (prefilled
# through each target, so every read is verified).
RATE=${RATE:-20000}; OPEN_DURATION=${OPEN_DURATION:-10s}
PB_TARGETS=()
for t in $TARGETS; do PB_TARGETS+=(-t "$t=127.0.0.1:${TPORT[$t]}"); done
echo
echo "== puerta bench, closed loop: -c $C -P 16, GET:SET 9:1, $ROUNDS rounds interleaved"
taskset -c "$LOAD_CPUS" $BIN bench "${PB_TARGETS[@]}" --cpus "$LOAD_CPUS" --key-prefix pb: --prefill --ratio 9:1 \
    -c "$C" -P 16 -d "$OPEN_DURATION" --rounds "$ROUNDS" | sed -n '/^== comparison/,$p'
echo
echo "== puerta bench, open loop: $RATE req/s for $OPEN_DURATION, GET:SET 9:1, $ROUNDS rounds interleaved"
taskset -c "$LOAD_CPUS" $BIN bench "${PB_TARGETS[@]}" --cpus "$LOAD_CPUS" --key-prefix pb: --ratio 9:1 \
    -c "$C" --rate "$RATE" -d "$OPEN_DURATION" --rounds "$ROUNDS" | sed -n '/^== comparison/,$p'
