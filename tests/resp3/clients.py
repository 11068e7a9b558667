"""redis-py 8 through Puerta, for tests/resp3_clients.rs.

Usage: clients.py PORT PROTOCOL MODE
  PROTOCOL: "default" (redis-py's own default, RESP3 in redis-py 8) or "2"
  MODE: "twem" (twemproxy pool) or "cluster" (cluster pool: also pub/sub)

Prints one JSON report; exits non-zero on any exception. Every log record
of the redis logger at WARNING or above is reported, so the caller can
assert that no RESP2 fallback was logged.
"""

import json
import logging
import sys
import time

import redis

port, protocol, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
warnings = []


class Collect(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())


logging.getLogger("redis").addHandler(Collect(level=logging.WARNING))
logging.getLogger("redis").setLevel(logging.WARNING)

kw = {} if protocol == "default" else {"protocol": int(protocol)}
r = redis.Redis(host="127.0.0.1", port=port, client_name="resp3-test", **kw)
report = {"redis_py": redis.__version__}

report["ping"] = r.ping()
conn = r.connection_pool.get_connection()
report["protocol"] = int(conn.get_protocol())
report["fallback"] = bool(getattr(conn, "_resp2_fallback", False))
report["hello_server"] = str((conn.handshake_metadata or {}).get(b"server", b""), "utf8") \
    if isinstance(conn.handshake_metadata, dict) else ""
r.connection_pool.release(conn)

report["client_name"] = r.client_getname()
report["client_id"] = r.client_id()
key = f"resp3:{mode}:{protocol}"
r.delete(key)
r.hset(key, mapping={"f1": "v1", "f2": "v2"})
h = r.hgetall(key)
report["hgetall_type"] = type(h).__name__
report["hgetall"] = {str(k, "utf8"): str(v, "utf8") for k, v in h.items()}
r.mset({f"{key}:a": "1", f"{key}:b": "2", f"{key}:c": "3"})
report["mget"] = [None if v is None else str(v, "utf8")
                  for v in r.mget(f"{key}:a", f"{key}:missing", f"{key}:c")]
report["del"] = r.delete(f"{key}:a", f"{key}:b", f"{key}:c", key)
r.sadd(f"{key}:s", "x", "y")
report["smembers_type"] = type(r.smembers(f"{key}:s")).__name__
r.delete(f"{key}:s")
r.set(f"{key}:f", "1.5")
report["incrbyfloat"] = r.incrbyfloat(f"{key}:f", 1)
r.delete(f"{key}:f")

if mode == "cluster":
    p = r.pubsub()
    p.subscribe("resp3-news")
    first = p.get_message(timeout=5)
    report["subscribe_confirm"] = first and first["type"]
    got = None
    deadline = time.time() + 10
    while got is None and time.time() < deadline:
        r.publish("resp3-news", "hi")
        m = p.get_message(timeout=0.5)
        if m and m["type"] == "message":
            got = str(m["data"], "utf8")
    report["pubsub"] = got
    p.unsubscribe("resp3-news")
    p.close()
    report["ping_after_pubsub"] = r.ping()

report["warnings"] = warnings
print(json.dumps(report))
