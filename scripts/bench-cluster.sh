#!/usr/bin/env bash
# Redis Cluster benchmark, one run, one 3-master cluster (made with
# `redis-cli --cluster create` on loopback), two paths:
#   direct: redis-benchmark --cluster (a cluster-aware client, slot routing
#           in the client)
#   puerta: redis-benchmark to Puerta (mode = "redis_cluster", workers = auto:
#           one per CPU of PROXY_CPUS, as Puerta defaults to under taskset)
# Workloads: redis-benchmark -c C -n N -t get,set -r KEYSPACE at pipeline 1
# and 16, ROUNDS rounds with the two paths interleaved; medians printed.
# Columns: ops/s, ratio to direct, p50 / p99 / p99.9 (ms), Puerta's CPU us
# per request (utime+stime of the puerta process over the run / requests),
# the redis-servers' CPU us per request (all three masters together), and
# Puerta's syscalls per request (strace -c -f, a separate shorter run), and
# a backend-batching table (GETs per read(2) and epoll_waits on one master).
# Targets (issue 5): at pipeline 16, Puerta >= 0.9x direct throughput and
# Puerta p99 <= 1.5x direct p99.
#
# Pinning: redis-servers on SERVER_CPUS (default 0), redis-benchmark on
# LOAD_CPUS (default 0), Puerta on PROXY_CPUS (default 1). On a 2-core box
# the load generator and the servers share a core; read absolute numbers
# with care, the side-by-side ratios are the point.
# Usage: scripts/bench-cluster.sh
#   env: N (300000), C (50), ROUNDS (3), PIPELINES ("1 16"), KEYSPACE (100000),
#        WORKERS (auto; 2 on one PROXY_CPUS core puts two workers on one
#        core, each waking every master for half the batches), STRACE_N (N/6), SERVER_CPUS, LOAD_CPUS, PROXY_CPUS,
#        PB_DURATION (10s) for the puerta bench cross-check,
#        PUERTA_BIN (a prebuilt binary; default: cargo build --release),
#        EXTRA_SERVER (lines added to Puerta's [server] table, e.g.
#        "wait_batch_us = 20"),
#        METRICS_DETAIL=both: "puerta" runs with [server] metrics_detail =
#        "full" and a second Puerta, "puerta-basic" (same TOML, same
#        pinning), with "basic", interleaved with the other two paths in
#        every round; a last table prints both with their ratios (ops/s,
#        Puerta CPU us/req)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-300000}; C=${C:-50}; ROUNDS=${ROUNDS:-3}; PIPELINES=${PIPELINES:-"1 16"}
KEYSPACE=${KEYSPACE:-100000}; WORKERS=${WORKERS:-auto}; STRACE_N=${STRACE_N:-$((N / 6))}
SERVER_CPUS=${SERVER_CPUS:-0}; LOAD_CPUS=${LOAD_CPUS:-0}; PROXY_CPUS=${PROXY_CPUS:-1}
PB_DURATION=${PB_DURATION:-10s}
for b in redis-server redis-cli redis-benchmark strace python3 taskset; do
    command -v $b >/dev/null || { echo "missing $b: apt-get install -y redis-server redis-tools strace" >&2; exit 1; }
done
if [ -n "${PUERTA_BIN:-}" ]; then BIN=$PUERTA_BIN; else cargo build --release --quiet; BIN=target/release/puerta; fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # Puerta drains for at most shutdown_timeout (5s here); a process still
    # alive after that is a bug worth seeing, not something to wait on.
    for _ in $(seq 100); do kill -0 "${PX_PID:-0}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${PX_PID:-0}" 2>/dev/null; then
        echo "puerta did not exit 10s after SIGTERM; killing it" >&2; kill -9 "$PX_PID"; rc=1
    fi
    wait 2>/dev/null || true
    if [ "$rc" != 0 ] && [ -s "$WORK/puerta.log" ]; then echo "--- puerta log (tail)" >&2; tail -n 30 "$WORK/puerta.log" >&2; fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# Three cluster-enabled masters; the bus port is port+10000, so pick ports
# whose bus port is free too.
MASTERS=(); SERVER_PIDS=()
while [ ${#MASTERS[@]} -lt 3 ]; do
    p=$(port)
    [ "$p" -lt 55000 ] || continue
    python3 -c "import socket,sys;s=socket.socket();s.bind(('127.0.0.1',$p+10000))" 2>/dev/null || continue
    mkdir -p "$WORK/n$p"
    (cd "$WORK/n$p" && exec taskset -c "$SERVER_CPUS" redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-node-timeout 5000 --save '' --appendonly no >/dev/null) &
    PIDS+=($!); SERVER_PIDS+=($!); MASTERS+=("$p")
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

case ${METRICS_DETAIL:-} in
    both) DETAIL=full; PATHS="direct puerta puerta-basic" ;;
    "") DETAIL=""; PATHS="direct puerta" ;;
    *) echo "METRICS_DETAIL: only \"both\" is known here" >&2; exit 1 ;;
esac
puerta_toml() { # listen port, admin port, metrics_detail ("": Puerta's default)
    cat <<TOML
[server]
workers = $( [ "$WORKERS" = auto ] && echo '"auto"' || echo "$WORKERS")
admin = "127.0.0.1:$2"
log = "warn"
shutdown_timeout = "5s"
${3:+metrics_detail = \"$3\"}
${EXTRA_SERVER:-}

[[pool]]
name = "cluster"
listen = "127.0.0.1:$1"
mode = "redis_cluster"
servers = [$(printf '"127.0.0.1:%s", ' "${MASTERS[@]}")]
TOML
}
PX_PORT=$(port); ADMIN_PORT=$(port)
puerta_toml "$PX_PORT" "$ADMIN_PORT" "$DETAIL" >"$WORK/puerta.toml"
taskset -c "$PROXY_CPUS" $BIN -c "$WORK/puerta.toml" 2>"$WORK/puerta.log" &
PX_PID=$!; PIDS+=($PX_PID)
wait_port "$PX_PORT"
for _ in $(seq 100); do redis-cli -p "$PX_PORT" set probe 1 2>/dev/null | grep -q OK && break; sleep 0.1; done
PXB_PID=$PX_PID
if [ -n "$DETAIL" ]; then
    PXB_PORT=$(port)
    puerta_toml "$PXB_PORT" "$(port)" basic >"$WORK/puerta-basic.toml"
    taskset -c "$PROXY_CPUS" $BIN -c "$WORK/puerta-basic.toml" 2>"$WORK/puerta-basic.log" &
    PXB_PID=$!; PIDS+=($PXB_PID)
    wait_port "$PXB_PORT"
    for _ in $(seq 100); do redis-cli -p "$PXB_PORT" set probe 1 2>/dev/null | grep -q OK && break; sleep 0.1; done
fi

# Run-queue wait (ns) of all of a process's threads: time it was runnable
# but another task had its CPU. On a shared box this shows when a run was
# starved by something else, not slowed by Puerta.
runq_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{w += $2} END {printf "%.0f", w}'; }
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
TCK=$(getconf CLK_TCK)
SEED=${MASTERS[0]}
bench() { # path pipeline test n -> redis-benchmark's text report
    local args=(-h 127.0.0.1 -c "$C" -n "$4" -P "$2" -r "$KEYSPACE" -t "$3")
    case $1 in
        direct) taskset -c "$LOAD_CPUS" redis-benchmark --cluster -p "$SEED" "${args[@]}" ;;
        puerta) taskset -c "$LOAD_CPUS" redis-benchmark -p "$PX_PORT" "${args[@]}" ;;
        puerta-basic) taskset -c "$LOAD_CPUS" redis-benchmark -p "$PXB_PORT" "${args[@]}" ;;
    esac 2>/dev/null | tr '\r' '\n'
}
RESULTS="$WORK/results.csv"
echo "pipeline,target,round,test,rps,p50,p99,p999,proxy_cpu,server_cpu,proxy_wait" >"$RESULTS"
for r in $(seq "$ROUNDS"); do
  for P in $PIPELINES; do
    for test in get set; do
      for t in $PATHS; do
        px=$PX_PID; [ "$t" != puerta-basic ] || px=$PXB_PID
        pb=$(cpu_ticks $px); sb=$(cpu_ticks "${SERVER_PIDS[@]}"); wb=$(runq_ns $px)
        out=$(bench "$t" "$P" "$test" "$N")
        pa=$(cpu_ticks $px); sa=$(cpu_ticks "${SERVER_PIDS[@]}"); wa=$(runq_ns $px)
        echo "$out" | python3 -c '
import re, sys
text = sys.stdin.read()
rps = re.search(r"throughput summary: ([\d.]+)", text)
summ = re.search(r"avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", text)
p999 = next((float(m.group(2)) for m in re.finditer(r"([\d.]+)% <= ([\d.]+) milliseconds", text) if float(m.group(1)) >= 99.9), None)
if not rps or not summ:
    sys.exit("could not parse redis-benchmark output:\n" + text[-2000:])
print(",".join(sys.argv[1:5] + [rps.group(1), summ.group(3), summ.group(5), str(p999)] + sys.argv[5:8]))
' "$P" "$t" "$r" "$test" \
            "$(python3 -c "print(($pa-$pb)/$TCK*1e6/$N)")" "$(python3 -c "print(($sa-$sb)/$TCK*1e6/$N)")" \
            "$(python3 -c "print(($wa-$wb)/1e3/$N)")" >>"$RESULTS"
      done
    done
  done
done

# Puerta's syscalls per request: one shorter GET run per pipeline under strace.
SYS="$WORK/sys.csv"; echo "pipeline,syscalls_per_req" >"$SYS"
for P in $PIPELINES; do
    strace -c -f -p "$PX_PID" -o "$WORK/strace.$P" 2>/dev/null &
    SPID=$!; sleep 0.5
    bench puerta "$P" get "$STRACE_N" >/dev/null
    kill -INT $SPID; wait $SPID 2>/dev/null || true
    calls=$(awk '/^[ ]*100.00/ {print $4}' "$WORK/strace.$P"); calls=${calls:-0}
    echo "$P,$(python3 -c "print(round($calls/$STRACE_N,3))")" >>"$SYS"
done

# Backend batching: how many requests a master gets per read(2), and how
# often it sleeps in epoll_wait, direct vs through Puerta. One GET run of
# STRACE_N per path and pipeline with `strace -c` on the first master and
# its GET count from INFO commandstats. Few requests per read would mean
# requests are written to a node one by one; many epoll_waits per request
# mean the node runs out of work and sleeps between batches.
BATCH="$WORK/batch.txt"
node_calls() { awk -v s="$1" '$NF == s {print $4; exit}' "$2"; } # syscall file -> calls
get_calls() { redis-cli -p "$SEED" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p'; }
for P in $PIPELINES; do
    for t in direct puerta; do
        g0=$(get_calls); g0=${g0:-0}
        strace -c -f -p "${SERVER_PIDS[0]}" -o "$WORK/node.$t.$P" 2>/dev/null &
        SPID=$!; sleep 0.5
        bench "$t" "$P" get "$STRACE_N" >/dev/null
        kill -INT $SPID; wait $SPID 2>/dev/null || true
        g1=$(get_calls); g1=${g1:-0}
        r=$(node_calls read "$WORK/node.$t.$P"); w=$(node_calls epoll_wait "$WORK/node.$t.$P")
        python3 -c "import sys; g,r,w=(int(x or 0) for x in sys.argv[1:4]); print(f'{sys.argv[4]:>4} {sys.argv[5]:<7} {g:>9} {g/max(r,1):>13.2f} {100*w/max(g,1):>19.1f}')" \
            "$((g1 - g0))" "${r:-0}" "${w:-0}" "$P" "$t" >>"$BATCH"
    done
done

python3 - "$RESULTS" "$SYS" "$N" "$C" "$ROUNDS" "$WORKERS" "$BATCH" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sysc = {r["pipeline"]: r["syscalls_per_req"] for r in csv.DictReader(open(sys.argv[2]))}
def med(xs):
    xs = [float(x) for x in xs if x not in ("None", "")]
    return statistics.median(xs) if xs else float("nan")
print(f"redis-benchmark -c {sys.argv[4]} -n {sys.argv[3]}, 3 masters, Puerta workers={sys.argv[6]}, "
      f"medians of {sys.argv[5]} interleaved rounds")
print(f"{'pipe':>4} {'test':<4} {'target':<12} {'ops/s':>10} {'vs direct':>9} {'p50 ms':>7} {'p99 ms':>7} "
      f"{'p99.9 ms':>8} {'puerta us/req':>13} {'redis us/req':>12} {'syscalls/req':>12} {'puerta runq us/req':>18}")
agg = {}
for p in sorted({r["pipeline"] for r in rows}, key=int):
    for test in ("get", "set"):
        for t in ("direct", "puerta", "puerta-basic"):
            sel = [r for r in rows if r["pipeline"] == p and r["target"] == t and r["test"] == test]
            if sel:
                agg[(p, test, t)] = {k: med(r[k] for r in sel) for k in ("rps", "p50", "p99", "p999", "proxy_cpu", "server_cpu", "proxy_wait")}
        d = agg.get((p, test, "direct"))
        for t in ("direct", "puerta", "puerta-basic"):
            v = agg.get((p, test, t))
            if not v:
                continue
            ratio = v["rps"] / d["rps"] if d else float("nan")
            pcpu = f"{v['proxy_cpu']:.2f}" if t != "direct" else "-"
            pwait = f"{v['proxy_wait']:.2f}" if t != "direct" else "-"
            sc = sysc.get(p, "-") if t == "puerta" and test == "get" else "-"
            print(f"{p:>4} {test:<4} {t:<12} {v['rps']:>10.0f} {ratio:>9.2f} {v['p50']:>7.3f} {v['p99']:>7.3f} "
                  f"{v['p999']:>8.3f} {pcpu:>13} {v['server_cpu']:>12.2f} {sc:>12} {pwait:>18}")
print("puerta us/req: the puerta process only; redis us/req: the three masters together; "
      "syscalls/req from a separate GET run under strace;")
print("puerta runq us/req: time Puerta's threads were runnable but waited for their CPU (something else ran there).")
print()
print("backend batching, first master under strace -c (GET run of STRACE_N per row):")
print(f"{'pipe':>4} {'target':<7} {'GETs':>9} {'GETs per read':>13} {'epoll_wait/100 GETs':>19}")
print(open(sys.argv[7]).read(), end="")
print()
print("targets (pipeline 16):")
for test in ("get", "set"):
    d, x = agg.get(("16", test, "direct")), agg.get(("16", test, "puerta"))
    if d and x:
        print(f"  {test}: throughput {x['rps'] / d['rps']:.2f}x direct (target >= 0.9), "
              f"p99 {x['p99'] / d['p99']:.2f}x direct (target <= 1.5)")
md = [(p, test) for p in sorted({k[0] for k in agg}, key=int) for test in ("get", "set")
      if (p, test, "puerta") in agg and (p, test, "puerta-basic") in agg]
if md:
    print()
    print("metrics_detail: puerta (full) vs puerta-basic, the same TOML otherwise "
          "(issue 17: ops/s full >= 0.97x basic, CPU/req <= 1.03x):")
    print(f"{'pipe':>4} {'test':<4} {'ops/s full':>10} {'ops/s basic':>11} {'ratio':>6} "
          f"{'cpu us/req full':>15} {'cpu us/req basic':>16} {'ratio':>6}")
    div = lambda a, b: a / b if b else float("nan")
    for p, test in md:
        f, b = agg[(p, test, "puerta")], agg[(p, test, "puerta-basic")]
        print(f"{p:>4} {test:<4} {f['rps']:>10.0f} {b['rps']:>11.0f} {div(f['rps'], b['rps']):>6.3f} "
              f"{f['proxy_cpu']:>15.2f} {b['proxy_cpu']:>16.2f} {div(f['proxy_cpu'], b['proxy_cpu']):>6.3f}")
PY

# Cross-check with Puerta's own load generator: the same cluster with
# --cluster (slot routing in the tool) vs through Puerta, closed loop at
# pipeline 16, GET:SET 9:1 over prefilled keys (every read is verified).
echo
echo "== puerta bench, closed loop: -c $C -P 16, GET:SET 9:1, $ROUNDS rounds interleaved"
echo "-- direct (--cluster)"
taskset -c "$LOAD_CPUS" $BIN bench -t "direct=127.0.0.1:$SEED" --cluster --cpus "$LOAD_CPUS" --key-prefix pb: --prefill \
    --ratio 9:1 -c "$C" -P 16 -d "$PB_DURATION" --rounds "$ROUNDS" | sed -n '/^== /,$p' | tail -n 25
echo "-- puerta"
taskset -c "$LOAD_CPUS" $BIN bench -t "puerta=127.0.0.1:$PX_PORT" --cpus "$LOAD_CPUS" --key-prefix pb: \
    --ratio 9:1 -c "$C" -P 16 -d "$PB_DURATION" --rounds "$ROUNDS" | sed -n '/^== /,$p' | tail -n 25
echo
echo "== puerta /metrics (cluster counters)"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^puerta_cluster_' | head -20 || true
