"""A mongos-shaped stand-in built on mockupdb, for Puerta's tests.

It answers hello/isMaster like a mongos (msg "isdbgrid", maxWireVersion
17), serves `find` (all, or one by `filter: {_id: N}`) from a scripted
collection of N documents (`_id` 0..N-1) with real
server-side cursors that exist ONLY in this process (a getMore for an id
it did not create fails with CursorNotFound, code 43, like a mongos), and
answers `whoami` with its name so tests can see where a connection landed.

Control: when the file given by --stop-hello exists, hello/isMaster get no
answer at all (the server "hangs" for health checks) while other commands
still work. Prints "PORT <n>" on stdout once listening.

--hello-delay S makes every hello/isMaster answer S seconds late (a
distant mongos, for least_latency).

--tls-cert PEM --tls-key PEM serve TLS only (a TLS mongos), with that
certificate; the handshake runs in each connection's thread, so a client
that fails it costs only its own connection.

Usage: standin.py --name a [--port 0] [--docs 50] [--stop-hello PATH] [--hello-delay S]
                  [--tls-cert PEM --tls-key PEM]
"""

import argparse
import itertools
import os
import random
import sys
import threading
import time

from bson import ObjectId
from mockupdb import MockupDB

PROCESS_ID = ObjectId()
cursor_ids = itertools.count(random.randrange(1, 1 << 40) << 16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--docs", type=int, default=50)
    ap.add_argument("--stop-hello", default=None)
    ap.add_argument("--hello-delay", type=float, default=0.0)
    ap.add_argument("--tls-cert", default=None)
    ap.add_argument("--tls-key", default=None)
    args = ap.parse_args()

    cursors = {}  # id -> remaining documents
    lock = threading.Lock()
    counts = {"hello": 0, "find": 0, "getMore": 0, "cursor_not_found": 0}

    def hello(r):
        if args.stop_hello and os.path.exists(args.stop_hello):
            return True  # swallowed: never answered
        counts["hello"] += 1
        if args.hello_delay:
            time.sleep(args.hello_delay)
        reply = {
            "ismaster": True,
            "isWritablePrimary": True,
            "msg": "isdbgrid",
            "minWireVersion": 0,
            "maxWireVersion": 17,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48000000,
            "maxWriteBatchSize": 100000,
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": 1,
        }
        # Only Puerta's bare probe gets a topologyVersion: a driver that
        # sees one switches to streaming (awaitable) hellos, which
        # mockupdb cannot hold open.
        if "client" not in r.doc and "topologyVersion" not in r.doc:
            reply["topologyVersion"] = {"processId": PROCESS_ID, "counter": 0}
        return r.replies(reply)

    def find(r):
        counts["find"] += 1
        coll = r.doc["find"]
        db = r.doc.get("$db", "test")
        batch = int(r.doc.get("batchSize", 101) or 101)
        docs = [{"_id": i, "server": args.name} for i in range(args.docs)]
        flt = r.doc.get("filter") or {}
        if "_id" in flt:  # find by _id (puerta bench): at most one document
            docs = [d for d in docs if d["_id"] == flt["_id"]]
        first, rest = docs[:batch], docs[batch:]
        cid = 0
        if rest:
            cid = next(cursor_ids)
            with lock:
                cursors[cid] = rest
        return r.replies({"cursor": {"id": cid, "ns": f"{db}.{coll}", "firstBatch": first}})

    def get_more(r):
        counts["getMore"] += 1
        cid = r.doc["getMore"]
        coll = r.doc.get("collection", "c")
        db = r.doc.get("$db", "test")
        batch = int(r.doc.get("batchSize", 101) or 101)
        with lock:
            rest = cursors.pop(cid, None)
            if rest is None:
                counts["cursor_not_found"] += 1
                return r.command_err(code=43, errmsg=f"cursor id {cid} not found", codeName="CursorNotFound")
            nxt, rest = rest[:batch], rest[batch:]
            if rest:
                cursors[cid] = rest
        return r.replies({"cursor": {"id": cid if rest else 0, "ns": f"{db}.{coll}", "nextBatch": nxt}})

    def kill_cursors(r):
        ids = r.doc.get("cursors", [])
        with lock:
            for c in ids:
                cursors.pop(c, None)
        return r.replies({"cursorsKilled": ids, "cursorsNotFound": [], "cursorsAlive": [], "cursorsUnknown": []})

    def handler(r):
        name = (r.command_name or "").lower()
        if name in ("hello", "ismaster"):
            return hello(r)
        if name == "find":
            return find(r)
        if name == "getmore":
            return get_more(r)
        if name == "killcursors":
            return kill_cursors(r)
        if name == "whoami":
            return r.replies({"name": args.name, "stats": counts})
        if name == "slow":
            time.sleep(float(r.doc.get("slow", 0.2)))
            return r.replies({})
        if name == "fail":
            # A failed command: ok 0 and the codeName the client asked for.
            return r.replies({"ok": 0, "errmsg": "failed on purpose", "code": 2, "codeName": r.doc.get("fail")})
        return r.replies({})  # ping, endSessions, buildInfo...

    tls = bool(args.tls_cert)
    if tls:
        # mockupdb's ssl=True wraps its listener with its own bundled
        # certificate and handshakes in the accept thread; use ours, and
        # defer the handshake to the connection's first read.
        import ssl
        import types
        import mockupdb

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)

        def wrap(sock, certfile=None, server_side=True):
            return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

        mockupdb._ssl = types.SimpleNamespace(wrap_socket=wrap)
        # A client that fails the handshake (a wrong-CA probe, on purpose)
        # ends its connection's thread; no traceback for that.
        default_hook = threading.excepthook

        def quiet(a):
            if not issubclass(a.exc_type, (ssl.SSLError, ConnectionError)):
                default_hook(a)

        threading.excepthook = quiet
    server = MockupDB(port=args.port, request_timeout=60, ssl=tls)
    server.autoresponds(handler)
    port = server.run()
    print(f"PORT {port}", flush=True)
    try:
        while sys.stdin.read(1):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
