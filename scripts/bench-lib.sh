# Shared by the bench and profile scripts (sourced, not run): a work folder
# and the PIDS every started process joins (both gone at exit), free loopback
# ports, waiting for a listener, and the one twemproxy YAML that every proxy
# in a side-by-side run serves (only the listen port differs), also as
# Puerta TOML with a [server] metrics_detail.
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
yaml() { # listen port -> the pool over the two redis-servers on $RA and $RB
    cat <<YML
bench:
  listen: 127.0.0.1:$1
  redis: true
  hash: fnv1a_64
  distribution: ketama
  timeout: 2000
  servers:
   - 127.0.0.1:$RA:1 redis-a
   - 127.0.0.1:$RB:1 redis-b
YML
}
toml() { # listen port, metrics_detail -> the same pool as `yaml`, in TOML
    cat <<TOML
[server]
metrics_detail = "$2"

[[pool]]
name = "bench"
listen = "127.0.0.1:$1"
mode = "redis"
hash = "fnv1a_64"
distribution = "ketama"
timeout = 2000
servers = ["127.0.0.1:$RA:1 redis-a", "127.0.0.1:$RB:1 redis-b"]
TOML
}
