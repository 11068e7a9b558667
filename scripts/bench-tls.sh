#!/usr/bin/env bash
# TLS benchmark, one run, same 2 redis backends (nutcracker's ketama
# placement everywhere), redis-benchmark -c C at pipeline 1 and 16, GET and
# SET over -r KEYSPACE random keys. Targets:
#   redis-tls     redis-server's own TLS port (one server: the reference)
#   stunnel+nc    stunnel4 terminating TLS in front of nutcracker
#   puerta-tls    Puerta terminating TLS to the plaintext redis-servers
#   puerta-tls2   Puerta with TLS on both sides, to the redis-servers' TLS
#                 ports: only when this binary accepts `backend_tls`
#                 (detected with `puerta check`; skipped with a note else)
#   puerta-plain  the same Puerta process as puerta-tls, on its
#                 `plain_listen` port (plaintext clients, same backends)
#   nutcracker    nutcracker alone, plaintext (what stunnel adds to it)
# Columns: ops/s and CPU us per request of the serving processes (the proxy;
# stunnel and nutcracker summed for stunnel+nc; redis-server for
# redis-tls), from /proc/PID/stat before and after each run. Then the
# issue's targets at pipeline 16: Puerta TLS >= 2x stunnel+nutcracker
# ops/s, and Puerta's CPU per request with TLS <= 1.5x without.
# Certificates (a CA and a server certificate for localhost / 127.0.0.1)
# are made with the openssl CLI in the work folder.
#
# Pinning: redis-servers and redis-benchmark on LOAD_CPUS (default 0); every
# proxy (Puerta workers=1, stunnel, nutcracker) on PROXY_CPUS (default 1),
# so each proxy gets the same one core.
# Usage: scripts/bench-tls.sh
#   env: N (200000), C (50), ROUNDS (1), PIPELINES ("1 16"), TESTS
#        ("get set"), KEYSPACE (100000), LOAD_CPUS, PROXY_CPUS,
#        BIN: the puerta binary (default: cargo build --release, then
#        target/release/puerta)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}; C=${C:-50}; ROUNDS=${ROUNDS:-1}; PIPELINES=${PIPELINES:-"1 16"}; TESTS=${TESTS:-"get set"}
KEYSPACE=${KEYSPACE:-100000}; LOAD_CPUS=${LOAD_CPUS:-0}; PROXY_CPUS=${PROXY_CPUS:-1}
for b in redis-server redis-benchmark nutcracker stunnel4 openssl python3 taskset; do
    command -v $b >/dev/null || { echo "missing $b: apt-get install -y redis-server redis-tools nutcracker stunnel4 openssl" >&2; exit 1; }
done
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/puerta
fi
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh" # WORK, PIDS, cleanup, port, wait_port, yaml

# Certificates: a CA, and a server certificate it signs for localhost and
# 127.0.0.1 (every TLS listener here uses it; clients trust the CA). ECDSA
# P-256, so the C handshakes of a run cost little next to its N requests.
CA=$WORK/ca.pem; CRT=$WORK/server.pem; KEY=$WORK/server.key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=puerta bench CA" \
    -keyout "$WORK/ca.key" -out "$CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$KEY" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$CA" -CAkey "$WORK/ca.key" -CAcreateserial -days 2 \
    -extfile "$WORK/san.ext" -out "$CRT" 2>/dev/null

# Two redis-servers, each with a plaintext and a TLS port.
RA=$(port); RB=$(port); RA_TLS=$(port); RB_TLS=$(port)
for pair in "$RA $RA_TLS" "$RB $RB_TLS"; do
    set -- $pair
    taskset -c "$LOAD_CPUS" redis-server --port "$1" --tls-port "$2" --bind 127.0.0.1 --save '' --appendonly no \
        --tls-cert-file "$CRT" --tls-key-file "$KEY" --tls-ca-cert-file "$CA" --tls-auth-clients no >/dev/null &
    PIDS+=($!)
done
REDIS_A_PID=${PIDS[0]}
wait_port "$RA"; wait_port "$RB"; wait_port "$RA_TLS"; wait_port "$RB_TLS"

# nutcracker, and stunnel in front of it.
NC_PORT=$(port); ST_PORT=$(port)
yaml "$NC_PORT" >"$WORK/nc.yml"
taskset -c "$PROXY_CPUS" nutcracker -c "$WORK/nc.yml" -s "$(port)" -a 127.0.0.1 -o "$WORK/nc.log" &
NC_PID=$!; PIDS+=($NC_PID)
cat >"$WORK/stunnel.conf" <<EOF
foreground = quiet
pid =
output = $WORK/stunnel.log
[redis]
accept = 127.0.0.1:$ST_PORT
connect = 127.0.0.1:$NC_PORT
cert = $CRT
key = $KEY
EOF
taskset -c "$PROXY_CPUS" stunnel4 "$WORK/stunnel.conf" &
ST_PID=$!; PIDS+=($ST_PID)

# Puerta: TLS on `listen`, plaintext on `plain_listen`, one worker.
puerta_toml() { # listen, plain_listen ("" for none), servers port A, B, extra pool keys
    local plain=""
    [ -z "$2" ] || plain="plain_listen = \"127.0.0.1:$2\""
    cat <<TOML
[server]
workers = 1
admin = "127.0.0.1:$(port)"
log = "error"

[[pool]]
name = "bench"
mode = "redis"
listen = "127.0.0.1:$1"
$plain
servers = ["127.0.0.1:$3:1 redis-a", "127.0.0.1:$4:1 redis-b"]
hash = "fnv1a_64"
distribution = "ketama"
tls = { cert = "$CRT", key = "$KEY" }
$5
TOML
}
P_TLS=$(port); P_PLAIN=$(port)
puerta_toml "$P_TLS" "$P_PLAIN" "$RA" "$RB" "" >"$WORK/p.toml"
taskset -c "$PROXY_CPUS" "$BIN" run -c "$WORK/p.toml" &
P_PID=$!; PIDS+=($P_PID)

# TLS on both sides, if this binary has backend_tls.
P2_PORT=$(port)
BACKEND_TLS="backend_tls = { ca = \"$CA\", server_name = \"localhost\" }"
puerta_toml "$P2_PORT" "" "$RA_TLS" "$RB_TLS" "$BACKEND_TLS" >"$WORK/p2.toml"
TLS2_NOTE=""
if CHECK=$("$BIN" check -c "$WORK/p2.toml" 2>&1); then
    taskset -c "$PROXY_CPUS" "$BIN" run -c "$WORK/p2.toml" &
    P2_PID=$!; PIDS+=($P2_PID)
else
    TLS2_NOTE="puerta-tls2 skipped: this binary refuses backend_tls ($(echo "$CHECK" | grep -m1 -i backend_tls || echo "$CHECK" | head -1))"
fi
for p in $NC_PORT $ST_PORT $P_TLS $P_PLAIN; do wait_port "$p"; done
[ -n "$TLS2_NOTE" ] || wait_port "$P2_PORT"

# target -> port, serving pids (CPU summed), whether clients speak TLS
TARGETS="redis-tls stunnel+nc puerta-tls puerta-plain nutcracker"
declare -A TPORT=([redis-tls]=$RA_TLS [stunnel+nc]=$ST_PORT [puerta-tls]=$P_TLS [puerta-plain]=$P_PLAIN [nutcracker]=$NC_PORT)
declare -A TPIDS=([redis-tls]=$REDIS_A_PID [stunnel+nc]="$ST_PID $NC_PID" [puerta-tls]=$P_PID [puerta-plain]=$P_PID [nutcracker]=$NC_PID)
declare -A TTLS=([redis-tls]=1 [stunnel+nc]=1 [puerta-tls]=1 [puerta-plain]=0 [nutcracker]=0)
if [ -z "$TLS2_NOTE" ]; then
    TARGETS="${TARGETS/puerta-tls /puerta-tls puerta-tls2 }"
    TPORT[puerta-tls2]=$P2_PORT; TPIDS[puerta-tls2]=$P2_PID; TTLS[puerta-tls2]=1
fi

TCK=$(getconf CLK_TCK)
cpu_ticks() { local t=0; for p in $1; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
bench() { # target pipeline test -> redis-benchmark's report
    local args=(-h 127.0.0.1 -p "${TPORT[$1]}" -c "$C" -n "$N" -P "$2" -r "$KEYSPACE" -t "$3")
    [ "${TTLS[$1]}" = 1 ] && args+=(--tls --cacert "$CA")
    taskset -c "$LOAD_CPUS" redis-benchmark "${args[@]}" 2>&1 | tr '\r' '\n'
}
RESULTS=$WORK/results.csv
echo "pipeline,target,round,test,rps,cpu_us_per_req" >"$RESULTS"
for r in $(seq "$ROUNDS"); do
  for P in $PIPELINES; do
    for test in $TESTS; do
      for t in $TARGETS; do
        before=$(cpu_ticks "${TPIDS[$t]}")
        out=$(bench "$t" "$P" "$test")
        after=$(cpu_ticks "${TPIDS[$t]}")
        rps=$(echo "$out" | sed -n 's/.*throughput summary: \([0-9.]*\).*/\1/p' | tail -1)
        [ -n "$rps" ] || { echo "$t: no result from redis-benchmark:" >&2; echo "$out" | tail -5 >&2; exit 1; }
        echo "$P,$t,$r,$test,$rps,$(python3 -c "print(($after-$before)/$TCK*1e6/$N)")" >>"$RESULTS"
      done
    done
  done
done

python3 - "$RESULTS" "$N" "$C" "$ROUNDS" "$TLS2_NOTE" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
n, c, rounds, note = sys.argv[2:6]
targets = ["redis-tls", "stunnel+nc", "puerta-tls", "puerta-tls2", "puerta-plain", "nutcracker"]
def med(sel, k):
    return statistics.median(float(r[k]) for r in sel)
def div(a, b):
    return a / b if b else float("nan")
print(f"redis-benchmark -c {c} -n {n}, medians of {rounds} round(s)")
print(f"{'pipe':>4} {'test':<4} {'target':<13} {'ops/s':>10} {'vs stunnel':>10} {'cpu us/req':>10}")
agg = {}
for p in sorted({r["pipeline"] for r in rows}, key=int):
    for test in dict.fromkeys(r["test"] for r in rows):
        for t in targets:
            sel = [r for r in rows if (r["pipeline"], r["target"], r["test"]) == (p, t, test)]
            if sel:
                agg[(p, test, t)] = (med(sel, "rps"), med(sel, "cpu_us_per_req"))
        st = agg.get((p, test, "stunnel+nc"), (0, 0))[0]
        for t in targets:
            if (p, test, t) in agg:
                rps, cpu = agg[(p, test, t)]
                print(f"{p:>4} {test:<4} {t:<13} {rps:>10.0f} {div(rps, st):>10.2f} {cpu:>10.2f}")
print("cpu us/req: the serving processes only (stunnel + nutcracker summed; redis-server for redis-tls);")
print("puerta-tls and puerta-plain are one process (TLS listen and plain_listen), measured run by run.")
if note:
    print(note)
print()
print("targets (pipeline 16):")
for test in dict.fromkeys(r["test"] for r in rows):
    tls, st, plain = (agg.get(("16", test, t)) for t in ("puerta-tls", "stunnel+nc", "puerta-plain"))
    if tls and st:
        print(f"  {test}: Puerta TLS ops/s = {div(tls[0], st[0]):.2f}x stunnel+nutcracker (target >= 2)")
    if tls and plain:
        print(f"  {test}: Puerta CPU/req with TLS = {div(tls[1], plain[1]):.2f}x plaintext (target <= 1.5)")
PY
