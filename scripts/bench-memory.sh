#!/usr/bin/env bash
# Memory of a twemproxy redis pool, Puerta (both drivers) and nutcracker side
# by side in one run, in front of the same two redis-servers and one YAML:
#   1. RSS at start: each Puerta driver with --workers 2, no client yet;
#      nutcracker (single-threaded) for reference;
#   2. IDLE idle clients (default 10,000), each having sent one PING: the
#      RSS delta over IDLE, for Puerta io_uring and epoll (--workers 1) and
#      nutcracker (scripts/idle-conns.py), from the start (per_conn_bytes)
#      and, after WARM connections were opened, pinged and closed first,
#      from there (warm_per_conn_bytes: without one-time costs such as code
#      paged in on first use);
#   3. with SMAPS=1, the largest resident mappings of each Puerta process at
#      start (what the start RSS is made of).
#
# Usage: scripts/bench-memory.sh
#   env: PUERTA_BIN (target/release/puerta, built if missing), IDLE (10000),
#        WARM (500), SMAPS (0)
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${IDLE:-10000}; WARM=${WARM:-500}; SMAPS=${SMAPS:-0}
for b in redis-server nutcracker python3; do
    command -v $b >/dev/null || { echo "missing $b: apt-get install -y redis-server nutcracker" >&2; exit 1; }
done
ulimit -n $((IDLE + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
BIN=${PUERTA_BIN:-target/release/puerta}
[ -n "${PUERTA_BIN:-}" ] || cargo build --release --quiet
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh" # WORK, PIDS, cleanup, port, wait_port, yaml
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
RA=$(port); RB=$(port)
for p in $RA $RB; do
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    PIDS+=($!)
done
wait_port "$RA"; wait_port "$RB"
start_puerta() { # name driver workers -> sets PORT_<name>, PID_<name>
    local p; p=$(port); yaml "$p" >"$WORK/$1.yml"
    "$BIN" -c "$WORK/$1.yml" --workers "$3" --io "$2" -s "$(port)" -a 127.0.0.1 \
        --admin "127.0.0.1:$(port)" -v 1 &
    PIDS+=($!); printf -v "PID_$1" %s $!; printf -v "PORT_$1" %s "$p"
    wait_port "$p"
}
smaps_top() { # pid -> the 6 largest resident mappings
    awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anon]" : $6)} /^Rss:/ {r[name] += $2}
         END {for (n in r) if (r[n] > 0) print r[n], n}' "/proc/$1/smaps" | sort -rn | head -6 |
        awk '{printf "    %7d kB  %s\n", $1, $2}'
}

NCP=$(port); yaml "$NCP" >"$WORK/nc.yml"
nutcracker -c "$WORK/nc.yml" -s "$(port)" -a 127.0.0.1 -o "$WORK/nc.log" &
NC_PID=$!; PIDS+=($NC_PID); wait_port "$NCP"
start_puerta uring_w2 uring 2; start_puerta epoll_w2 epoll 2
start_puerta uring_w1 uring 1; start_puerta epoll_w1 epoll 1
sleep 1 # workers up and idle

echo "RSS at start, no clients"
printf '  %-18s %8s kB\n' "puerta uring w2" "$(rss_kb "$PID_uring_w2")" "puerta epoll w2" "$(rss_kb "$PID_epoll_w2")" \
    "nutcracker" "$(rss_kb "$NC_PID")"
if [ "$SMAPS" = 1 ]; then
    for t in uring_w2 epoll_w2; do
        pid_var="PID_$t"; echo "  $t largest resident mappings:"; smaps_top "${!pid_var}"
    done
fi
kill "$PID_uring_w2" "$PID_epoll_w2" 2>/dev/null || true

echo "$IDLE idle clients (one PING each), RSS delta / clients"
for t in uring_w1 epoll_w1 nc; do
    case $t in
        nc) name=nutcracker; p=$NCP; pid=$NC_PID ;;
        *) pv="PORT_$t"; iv="PID_$t"; name="puerta ${t%_w1} w1"; p=${!pv}; pid=${!iv} ;;
    esac
    printf '  %-18s %s\n' "$name" "$(python3 scripts/idle-conns.py "$p" "$pid" "$IDLE" --ping --warm="$WARM")"
done
