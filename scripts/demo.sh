#!/usr/bin/env bash
# One-command demo: installs redis-server if missing, starts two redis-servers
# (6379, 6381) and Puerta with config/tcp.toml, sends redis-benchmark traffic
# directly and through Puerta, prints both side by side plus Puerta's
# /metrics summary, then stops everything it started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null || ! command -v curl >/dev/null; then
    echo "==> installing redis-server, redis-tools and curl"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools curl >/dev/null
fi
for p in 6379 6381 6390 6391 9090; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
        echo "port $p is already in use; config/tcp.toml needs 6379, 6381, 6390, 6391 and 9090 free" >&2; exit 1
    fi
done

echo "==> building puerta (release)"
cargo build --release --quiet
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for port in 6379 6381; do
    redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    PIDS+=($!)
done
target/release/puerta check -c config/tcp.toml
target/release/puerta -c config/tcp.toml -v warn &
PIDS+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:9090/ready >/dev/null 2>&1 && break; sleep 0.1; done
echo "==> /ready: $(curl -s http://127.0.0.1:9090/ready)"

bench() { redis-benchmark -h 127.0.0.1 -p "$1" -c 50 -n 100000 -t set,get --csv | tail -n +2; }
echo "==> redis-benchmark -c 50 -n 100000 -t set,get"
DIRECT=$(bench 6379)
PROXY=$(bench 6390)
echo "    (one run each, on whatever else this machine is doing: scripts/bench-tcp.sh interleaves rounds and reports medians)"
printf '%-6s %-16s %-16s %-14s %-14s\n' test "direct ops/s" "puerta ops/s" "direct p99 ms" "puerta p99 ms"
paste -d, <(echo "$DIRECT") <(echo "$PROXY") | tr -d '"' | awk -F, '{printf "%-6s %-16s %-16s %-14s %-14s\n", $1, $2, $10, $7, $15}'

echo "==> one client connection through puerta (127.0.0.1:6390): SET then GET"
printf 'SET demo:key "hello through puerta"\nGET demo:key\n' | redis-cli -p 6390
echo "==> client_ip pool (127.0.0.1:6391): this client IP always lands on the same backend"
for i in 1 2 3; do redis-cli -p 6391 INFO server | grep -E '^tcp_port'; done

echo "==> /metrics summary"
curl -s http://127.0.0.1:9090/metrics | grep -E '^puerta_(io_driver|snapshot_epoch|worker_epoch|client_connections_total|bytes_(in|out)_total|backend_up|backend_connections_total)' 
echo "==> done; stopping redis-servers and puerta"
