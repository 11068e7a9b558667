#!/usr/bin/env bash
# Side-by-side mongos-mode benchmark, one run, same stand-in and workload:
#   direct to a mongos stand-in  vs  through Puerta (mode = "mongos")
# over two stand-ins: the mockupdb one the tests use, and a fast one.
#
# No mongod/mongos can be installed here, so the backend is the mockupdb
# stand-in the tests use (tests/mongo/standin.py: mongos-shaped hello,
# `find` by _id over N documents). It is a single-threaded Python server, so
# it is the bottleneck in closed loop: read the *latency added* by Puerta
# (p50/p99 deltas and ratios) and Puerta's CPU per request, not absolute
# throughput. At ~8k msg/s with 4 clients every message is a wakeup of
# its own, so Puerta's CPU per message there is mostly wakeup and syscall
# cost.
# The fast stand-in (examples/mongos_standin.rs: one thread, epoll, canned
# mongos-shaped replies, >200k msg/s) is not the bottleneck; its rows run
# at -c FAST_C (50), the shape of the Redis pipeline-1 figures, so that
# Puerta's CPU per message compares with its CPU per Redis request.
# The tcp rows relay the same messages to the fast stand-in through a
# mode = "tcp" pool: the same 1:1 relay without message tracking, so
# fast-minus-tcp is what tracking costs.
# The redis rows measure that figure in the same run, with the same load
# generator and pinning: GET through a Puerta mode = "redis" pool over one
# redis-server (on CPU 0), -c FAST_C, pipeline 1.
#
# 1. Closed loop with `puerta bench --protocol mongo` (-c C), commands
#    `ping` and `find` by _id, ROUNDS rounds interleaved, medians.
# 2. Open loop at RATE req/s (below the stand-in's capacity), `find`,
#    timed from each request's intended send time.
# Puerta's CPU us/request is its utime+stime from /proc/PID/stat over the
# requests it relayed.
# Pinning: Puerta runs one worker on CPU 1; the stand-in and the load
# generator share CPU 0.
# Usage: scripts/bench-mongo.sh   (env: C, ROUNDS, DURATION, RATE, FAST_C;
#        STANDINS: any of "python fast tcp redis", the default)
set -euo pipefail
cd "$(dirname "$0")/.."
C=${C:-4}; ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5s}; RATE=${RATE:-1000}
FAST_C=${FAST_C:-50}; STANDINS=${STANDINS:-"python fast tcp redis"}
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "==> creating .venv with the stand-in's packages (tests/requirements.txt)"
    python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt
fi
cargo build --release --quiet --bin puerta --example mongos_standin
BIN=target/release/puerta
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

SPORT=$(port)
# The stand-in runs until its stdin closes: feed it from a sleeper we own.
sleep 100000 | taskset -c 0 "$PY" tests/mongo/standin.py --name bench --port "$SPORT" --docs 1000 \
    >"$WORK/standin.out" 2>&1 &
PIDS+=($!)
PIDS+=($(pgrep -f "sleep 100000" | tail -n 1))
for _ in $(seq 100); do grep -q "^PORT" "$WORK/standin.out" 2>/dev/null && break; sleep 0.1; done
taskset -c 0 target/release/examples/mongos_standin --port 0 --docs 1000 >"$WORK/fast.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "^PORT" "$WORK/fast.out" 2>/dev/null && break; sleep 0.1; done
FPORT=$(awk '/^PORT/ {print $2}' "$WORK/fast.out")

RPORT=$(port)
taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
PIDS+=($!)
LP=$(port); AP=$(port); FP=$(port); RP=$(port); TP=$(port)
cat >"$WORK/p.toml" <<CFG
[server]
workers = 1
cpus = [1]
admin = "127.0.0.1:$AP"
log = "warn"
[[pool]]
name = "mongo"
listen = "127.0.0.1:$LP"
mode = "mongos"
servers = ["127.0.0.1:$SPORT"]
[[pool]]
name = "fast"
listen = "127.0.0.1:$FP"
mode = "mongos"
servers = ["127.0.0.1:$FPORT"]
[[pool]]
name = "tcp"
listen = "127.0.0.1:$TP"
mode = "tcp"
servers = ["127.0.0.1:$FPORT"]
[[pool]]
name = "redis"
listen = "127.0.0.1:$RP"
mode = "redis"
servers = ["127.0.0.1:$RPORT:1"]
CFG
$BIN -c "$WORK/p.toml" 2>"$WORK/p.log" &
PPID_=$!; PIDS+=($PPID_)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$AP/ready" >/dev/null 2>&1 && break; sleep 0.2; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
bench() { # conns target command json protocol -> runs puerta bench
    local cmd=$3
    [ "$5" != redis ] || cmd="GET {key}"
    taskset -c 0 $BIN bench -t "$2" --protocol "$5" --command "$cmd" --keys 1000 -c "$1" -d "$DURATION" \
        --cpus 0 --json "$4" >/dev/null
}

echo "standin,command,round,path,json,cpu_us_per_req" >"$WORK/r.csv"
for sd in $STANDINS; do
  case $sd in
  python) conns=$C; direct=$SPORT; proxied=$LP; proto=mongo; cmds="ping find" ;;
  fast) conns=$FAST_C; direct=$FPORT; proxied=$FP; proto=mongo; cmds="ping find" ;;
  tcp) conns=$FAST_C; direct=$FPORT; proxied=$TP; proto=mongo; cmds="ping find" ;;
  redis) conns=$FAST_C; direct=$RPORT; proxied=$RP; proto=redis; cmds=get ;;
  *) echo "STANDINS: python, fast, tcp, redis" >&2; exit 1 ;;
  esac
  for cmd in $cmds; do
    for r in $(seq "$ROUNDS"); do
      bench "$conns" "127.0.0.1:$direct" "$cmd" "$WORK/d-$sd-$cmd-$r.json" $proto
      echo "$sd,$cmd,$r,direct,$WORK/d-$sd-$cmd-$r.json," >>"$WORK/r.csv"
      t0=$(cpu_ticks $PPID_)
      bench "$conns" "127.0.0.1:$proxied" "$cmd" "$WORK/p-$sd-$cmd-$r.json" $proto
      t1=$(cpu_ticks $PPID_)
      echo "$sd,$cmd,$r,puerta,$WORK/p-$sd-$cmd-$r.json,$t0:$t1:$TCK" >>"$WORK/r.csv"
    done
  done
done
C=$C FAST_C=$FAST_C python3 - "$WORK/r.csv" <<'PY'
import csv, json, os, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def run(path):
    return json.load(open(path))["targets"][0]["runs"][0]
def ms(run, key):
    return run["latency_ms"][key]
conns = {"python": os.environ["C"], "fast": os.environ["FAST_C"], "tcp": os.environ["FAST_C"], "redis": os.environ["FAST_C"]}
print("closed loop (medians of rounds); python: mockupdb stand-in, fast: examples/mongos_standin,")
print("tcp: the fast stand-in through a mode = \"tcp\" pool (the same relay, no message tracking),")
print("redis: GET through a mode = \"redis\" pool over one redis-server (the Redis pipeline-1 figure)")
print(f"{'standin':>7} {'conns':>5} {'command':>7} {'path':>7} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'CPU us/req':>10}")
for sd, cmd in dict.fromkeys((r["standin"], r["command"]) for r in rows):
    for path in ("direct", "puerta"):
        rs = [r for r in rows if r["standin"] == sd and r["command"] == cmd and r["path"] == path]
        runs = [run(r["json"]) for r in rs]
        cpu = "-"
        if path == "puerta":
            vals = []
            for r, x in zip(rs, runs):
                t0, t1, tck = (float(v) for v in r["cpu_us_per_req"].split(":"))
                n = x["ok"] + x["failed"]
                if n: vals.append((t1 - t0) / tck * 1e6 / n)
            cpu = f"{statistics.median(vals):.1f}" if vals else "-"
        med = lambda f: statistics.median(f(x) for x in runs)
        print(f"{sd:>7} {conns[sd]:>5} {cmd:>7} {path:>7} {med(lambda x: x['ops_per_sec']):>8.0f} {med(lambda x: ms(x,'p50')):>8.3f} "
              f"{med(lambda x: ms(x,'p99')):>8.3f} {med(lambda x: ms(x,'p99.9')):>9.3f} {cpu:>10}")
PY
case " $STANDINS " in *" python "*) ;; *) exit 0 ;; esac
echo
echo "open loop (python stand-in): find at $RATE req/s for $DURATION, timed from intended send times"
taskset -c 0 $BIN bench -t direct="127.0.0.1:$SPORT" -t puerta="127.0.0.1:$LP" --protocol mongo --command find \
    --keys 1000 -c "$C" --rate "$RATE" -d "$DURATION" --rounds "$ROUNDS" --cpus 0 | tail -n 8
