#!/usr/bin/env bash
# One-command demo, in three parts; stops everything it started (by PID) on exit.
# 1. tcp pools: two redis-servers (6379, 6381) and Puerta with config/tcp.toml;
#    redis-benchmark directly and through Puerta side by side, /metrics summary.
# 2. a twemproxy pool: two more redis-servers, the real nutcracker and Puerta
#    on the same nutcracker YAML (two copies differing only in the listen
#    port), all on free loopback ports picked at start; the same traffic
#    through each, then side by side: where N keys landed via each proxy, the
#    replies to a few commands, redis-benchmark, and both stats documents.
# 3. a redis_cluster pool: a 3-master Redis Cluster (redis-cli --cluster
#    create) on free ports and Puerta in front of it: 1,000 keys through
#    Puerta and where they landed, MGET across slots, a live reshard
#    followed (every key read back), the cluster counters.
# Installs redis-server, redis-tools, nutcracker, curl and python3 when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin" # Debian installs nutcracker in /usr/sbin
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=0
for b in redis-server redis-benchmark redis-cli nutcracker curl python3; do command -v $b >/dev/null || missing=1; done
if [ "$missing" = 1 ]; then
    echo "==> installing redis-server, redis-tools, nutcracker, curl and python3"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools nutcracker curl python3 >/dev/null
fi
for p in 6379 6381 6390 6391 9090; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
        echo "port $p is already in use; config/tcp.toml needs 6379, 6381, 6390, 6391 and 9090 free" >&2; exit 1
    fi
done

echo "==> building puerta (release)"
cargo build --release --quiet
PIDS=()
WORK=$(mktemp -d)
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

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


echo
echo "==================== twemproxy pool: nutcracker and Puerta on the same YAML ===================="
# Free loopback ports, below the kernel's ephemeral range (so client sockets
# do not take them), none chosen twice. `free_port VAR` sets VAR.
TAKEN=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        case "$TAKEN" in *" $p "*) continue ;; esac
        (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && continue
        TAKEN+="$p "; printf -v "$1" '%s' "$p"; return
    done
}
# wait_port PID PORT NAME [LOG]: until PORT accepts; fail if PID exits first.
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    echo "$3 is not listening on 127.0.0.1:$2" >&2
    if [ -n "${4:-}" ]; then tail -n 20 "$4" >&2; fi
    exit 1
}
for v in RA RB NC PU NC_STATS PU_STATS PU_ADMIN; do free_port $v; done
for port in $RA $RB; do
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    PIDS+=($!)
    wait_port $! "$port" redis-server
done
cat > "$WORK/nutcracker.yml" <<YAML
demo:
  listen: 127.0.0.1:$NC
  redis: true
  hash: fnv1a_64
  distribution: ketama
  timeout: 400
  auto_eject_hosts: false
  servers:
   - 127.0.0.1:$RA:1 redis-a
   - 127.0.0.1:$RB:1 redis-b
YAML
# The only difference: Puerta's copy listens on another port.
sed "s/127.0.0.1:$NC\$/127.0.0.1:$PU/" "$WORK/nutcracker.yml" > "$WORK/puerta.yml"
echo "==> nutcracker.yml (Puerta's copy differs only in listen: 127.0.0.1:$PU)"
sed 's/^/    /' "$WORK/nutcracker.yml"
nutcracker -t -c "$WORK/nutcracker.yml" 2>&1 | sed "s|$WORK/||; s/^/    nutcracker -t: /"
target/release/puerta -t -c "$WORK/puerta.yml" 2>&1 | sed "s|$WORK/||; s/^/    puerta -t:     /"
# Both started with the same nutcracker flags. -i 1000: nutcracker aggregates
# its stats once a second (default 30 s), so its document is current when we
# read it; Puerta's stats are summed live and -i is accepted for compatibility.
# --admin is a Puerta addition (metrics, /ready, /reload).
nutcracker -c "$WORK/nutcracker.yml" -s "$NC_STATS" -a 127.0.0.1 -i 1000 -o "$WORK/nutcracker.log" &
PIDS+=($!)
wait_port $! "$NC" nutcracker "$WORK/nutcracker.log"
target/release/puerta -c "$WORK/puerta.yml" -s "$PU_STATS" -a 127.0.0.1 -i 1000 -o "$WORK/puerta.log" --admin 127.0.0.1:"$PU_ADMIN" &
PIDS+=($!)
wait_port $! "$PU" puerta "$WORK/puerta.log"
echo "    backends 127.0.0.1:$RA (redis-a) and :$RB (redis-b); nutcracker on :$NC (stats :$NC_STATS), puerta on :$PU (stats :$PU_STATS)"
stats() { exec 3<>/dev/tcp/127.0.0.1/"$1"; cat <&3; exec 3<&-; }
flush() { for b in $RA $RB; do redis-cli -p "$b" FLUSHALL >/dev/null; done; }
# Which backend holds each key: "key backend" lines, sorted.
placed() { for b in $RA $RB; do redis-cli -p "$b" --scan --pattern 'demo:*' | sed "s/\$/ $b/"; done | sort; }
name() { if [ "$1" = "$NC" ]; then echo nutcracker; else echo puerta; fi; }

N=1000
echo "==> placement: SET demo:0..demo:$((N - 1)) through each proxy (emptied backends each time), then SCAN both backends"
for proxy in $NC $PU; do
    flush
    seq 0 $((N - 1)) | sed 's/^/SET demo:/; s/$/ v/' | redis-cli -p "$proxy" >/dev/null
    placed > "$WORK/placed.$proxy"
done
flush
printf '    %-12s %12s %12s\n' "" "on redis-a" "on redis-b"
for proxy in $NC $PU; do
    printf '    %-12s %12s %12s\n' "$(name "$proxy")" "$(grep -c " $RA\$" "$WORK/placed.$proxy")" "$(grep -c " $RB\$" "$WORK/placed.$proxy")"
done
same=$(comm -12 "$WORK/placed.$NC" "$WORK/placed.$PU" | wc -l)
echo "    keys on the same backend via both proxies: $same of $N"
echo "    a few:  $(head -n 5 "$WORK/placed.$PU" | awk -v a="$RA" '{printf "%s->%s  ", $1, ($2 == a ? "redis-a" : "redis-b")}')"
if [ "$same" -ne "$N" ]; then echo "    PLACEMENT DIFFERS" >&2; exit 1; fi

echo "==> the same commands through each (nutcracker | puerta), on emptied backends each time"
reply() { { timeout 5 redis-cli -p "$1" "${@:2}" 2>&1 || true; } | tr '\n' ' ' | sed 's/ $//'; echo; }
CMDS=("SET user:1 alice" "MSET user:2 bob user:3 carol" "MGET user:1 user:2 nope user:3" "EXISTS user:1 user:2 user:3 nope"
      "DEL user:1 user:2 nope" "INCR counter" "AUTH secret" "PING" "CLIENT LIST")
for proxy in $NC $PU; do
    flush
    for c in "${CMDS[@]}"; do
        # shellcheck disable=SC2086 # the words of each line are the command's arguments
        reply "$proxy" $c
    done > "$WORK/replies.$proxy"
done
flush
i=0
while IFS= read -r nc_reply && IFS= read -r pu_reply <&4; do
    printf '    %-34s %-46s | %s\n' "${CMDS[$i]}" "$nc_reply" "$pu_reply"
    i=$((i + 1))
done < "$WORK/replies.$NC" 4< "$WORK/replies.$PU"
echo "    (CLIENT LIST is not a twemproxy command: both close the connection;"
echo "     Puerta's unsupported = \"error\" would answer -ERR and keep it instead)"

echo "==> hostile bytes: a bulk length with a leading zero (\$03), which Redis refuses; to redis-a itself, then each proxy"
python3 - "$RA" "$NC" "$PU" <<'PY'
import socket, sys
for name, port in zip(("redis-a", "nutcracker", "puerta"), map(int, sys.argv[1:4])):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(2)
    s.sendall(b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n")
    got = b""
    try:
        while chunk := s.recv(512):
            got += chunk
        end = "then closed"
    except socket.timeout:
        end = "connection left open"
    print(f"    {name:<11} {got.decode(errors='replace').strip() or '(no reply)'}  ({end})")
PY
echo "    (Puerta parses lengths exactly as Redis does and never forwards what Redis would refuse:"
echo "     on a server connection shared by many clients, that refusal would close it under all of them)"

echo "==> redis-benchmark -c 20 -n 20000 -r 100000 -t set,get,mset through each (ops/s; one run each, not a benchmark)"
printf '    %-16s %12s %12s\n' test nutcracker puerta
paste -d, <(redis-benchmark -p "$NC" -c 20 -n 20000 -r 100000 -t set,get,mset --csv 2>/dev/null | tail -n +2) \
          <(redis-benchmark -p "$PU" -c 20 -n 20000 -r 100000 -t set,get,mset --csv 2>/dev/null | tail -n +2) |
    tr -d '"' | awk -F, '{printf "    %-16s %12s %12s\n", $1, $2, $10}'

sleep 2 # one nutcracker aggregation interval (-i 1000) and then some
stats "$NC_STATS" > "$WORK/nc.json"
stats "$PU_STATS" > "$WORK/puerta.json"
echo "==> stats ports (nutcracker :$NC_STATS, puerta :$PU_STATS): same document shape, counters side by side"
python3 - "$WORK/nc.json" "$WORK/puerta.json" <<'PY'
import json, sys
nc, pu = (json.load(open(p)) for p in sys.argv[1:3])
def keys(d):
    return [(k, keys(v) if isinstance(v, dict) else None) for k, v in d.items()]
print(f"    same keys in the same order, at every level: {keys(nc) == keys(pu)}")
row = lambda name, a, b: print(f"    {name:<34} {str(a):>14} {str(b):>14}")
row("", "nutcracker", "puerta")
for k in ("service", "version", "total_connections", "curr_connections"):
    row(k, nc[k], pu[k])
for k in ("client_eof", "client_err", "client_connections", "server_ejects", "forward_error", "fragments"):
    row(f"demo.{k}", nc["demo"][k], pu["demo"][k])
for s in ("redis-a", "redis-b"):
    for k in ("requests", "responses", "request_bytes", "response_bytes", "server_connections", "server_err"):
        row(f"demo.{s}.{k}", nc["demo"][s][k], pu["demo"][s][k])
PY
echo "    (values differ where the proxies differ: Puerta opens server_connections per worker,"
echo "     counts fragments of split MGET/MSET/DEL/EXISTS (nutcracker leaves it at 0) and"
echo "     counts request_bytes as the bytes it wrote to the server)"
echo "==> puerta's /metrics carries the same counters, e.g."
curl -s http://127.0.0.1:"$PU_ADMIN"/metrics | grep -E '^puerta_(server_requests|fragments)_total' | head -n 3 | sed 's/^/    /' || true

echo
echo "==================== cluster pool: a 3-master Redis Cluster behind one address ===================="
# Three cluster-enabled redis-servers; each needs its port and port+10000
# (the cluster bus) free.
CPORTS=()
while [ ${#CPORTS[@]} -lt 3 ]; do
    free_port cp
    (exec 3<>/dev/tcp/127.0.0.1/$((cp + 10000))) 2>/dev/null && continue
    mkdir -p "$WORK/node$cp"
    (cd "$WORK/node$cp" && exec redis-server --port "$cp" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-node-timeout 5000 --save '' --appendonly no >/dev/null) &
    PIDS+=($!)
    wait_port $! "$cp" "cluster redis-server"
    CPORTS+=("$cp")
done
echo "==> redis-cli --cluster create ${CPORTS[*]/#/127.0.0.1:} --cluster-replicas 0"
redis-cli --cluster create "${CPORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$WORK/create.log" 2>&1 \
    || { cat "$WORK/create.log" >&2; exit 1; }
for _ in $(seq 100); do
    ok=1
    for cp in "${CPORTS[@]}"; do redis-cli -p "$cp" cluster info | grep -q cluster_state:ok || ok=0; done
    [ $ok = 1 ] && break; sleep 0.2
done
free_port CX; free_port CX_ADMIN
cat > "$WORK/cluster.toml" <<TOML
[server]
workers = 2
admin = "127.0.0.1:$CX_ADMIN"

[[pool]]
name = "cluster"
listen = "127.0.0.1:$CX"
mode = "redis_cluster"
servers = ["127.0.0.1:${CPORTS[0]}"]   # one seed is enough
TOML
sed 's/^/    /' "$WORK/cluster.toml"
target/release/puerta -c "$WORK/cluster.toml" -v warn 2>"$WORK/cluster.log" &
PIDS+=($!)
wait_port $! "$CX" puerta "$WORK/cluster.log"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$CX_ADMIN/ready" >/dev/null 2>&1 && break; sleep 0.1; done
echo "==> /ready: $(curl -s "http://127.0.0.1:$CX_ADMIN/ready")"
N=1000
echo "==> SET demo:0..demo:$((N - 1)) through Puerta (a plain client: no cluster support), then DBSIZE of each master"
for i in $(seq 0 $((N - 1))); do echo "SET demo:$i v$i"; done | redis-cli -p "$CX" >/dev/null
for cp in "${CPORTS[@]}"; do echo "    127.0.0.1:$cp holds $(redis-cli -p "$cp" DBSIZE) keys"; done
echo "    DBSIZE through Puerta (summed over the masters): $(redis-cli -p "$CX" DBSIZE)"
echo "==> MGET demo:1 demo:2 demo:3 (three slots): straight to a node, then through Puerta"
echo "    node:   $(redis-cli -p "${CPORTS[0]}" MGET demo:1 demo:2 demo:3 | tr '\n' ' ')"
echo "    puerta: $(redis-cli -p "$CX" MGET demo:1 demo:2 demo:3 | tr '\n' ' ')"
node_id() { redis-cli -p "$1" CLUSTER MYID; }
echo "==> redis-cli --cluster reshard: 100 slots from :${CPORTS[0]} to :${CPORTS[1]}, then GET every key through Puerta"
redis-cli --cluster reshard "127.0.0.1:${CPORTS[0]}" --cluster-from "$(node_id "${CPORTS[0]}")" \
    --cluster-to "$(node_id "${CPORTS[1]}")" --cluster-slots 100 --cluster-yes >"$WORK/reshard.log" 2>&1 \
    || { tail -n 20 "$WORK/reshard.log" >&2; exit 1; }
right=$(for i in $(seq 0 $((N - 1))); do echo "GET demo:$i"; done | redis-cli -p "$CX" | awk -v n=$N '{ if ($0 == "v" NR - 1) ok++ } END { print ok + 0 }')
echo "    $right of $N keys read back with their value after the reshard"
for cp in "${CPORTS[@]}"; do echo "    127.0.0.1:$cp now holds $(redis-cli -p "$cp" DBSIZE) keys"; done
sleep 1 # the workers export their counters on a 1 s tick
echo "==> puerta's cluster counters (/metrics): MOVED followed, slot map"
curl -s "http://127.0.0.1:$CX_ADMIN/metrics" | grep -E '^puerta_cluster_(moved|ask|fragments|topology_refreshes|slots_served|masters)' | sed 's/^/    /' || true
[ "$right" = "$N" ] || { echo "some keys were not read back through Puerta" >&2; exit 1; }
echo "==> done; stopping redis-servers, nutcracker and puerta"
