"""Opens N concurrent cursors through one pymongo client and fetches each
in small batches (find + getMore) while the driver spreads operations over
its connection pool. Prints one JSON line:
{"cursors": N, "cursor_not_found": k, "other_errors": e, "servers": {...}}

Usage: cursors.py URI [--cursors 40] [--batch 5]
"""

import argparse
import json
import threading
import time

from pymongo import MongoClient
from pymongo.errors import CursorNotFound, OperationFailure


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("uri")
    ap.add_argument("--cursors", type=int, default=40)
    ap.add_argument("--batch", type=int, default=5)
    args = ap.parse_args()

    client = MongoClient(args.uri, maxPoolSize=20, serverSelectionTimeoutMS=10000,
                         serverMonitoringMode="poll", retryReads=False, appname="cursor-test")
    coll = client.test.c
    client.admin.command("ping")
    lock = threading.Lock()
    result = {"cursors": args.cursors, "cursor_not_found": 0, "other_errors": 0, "servers": {}, "errors": []}
    start = threading.Barrier(args.cursors)

    def worker():
        start.wait()
        try:
            seen = 0
            for doc in coll.find({}, batch_size=args.batch):
                seen += 1
                if seen % args.batch == 0:
                    time.sleep(0.002)  # let other threads interleave on the pool
            with lock:
                s = doc["server"]
                result["servers"][s] = result["servers"].get(s, 0) + 1
        except CursorNotFound:
            with lock:
                result["cursor_not_found"] += 1
        except OperationFailure as e:
            with lock:
                if e.code == 43:
                    result["cursor_not_found"] += 1
                else:
                    result["other_errors"] += 1
                    result["errors"].append(str(e)[:200])
        except Exception as e:  # noqa: BLE001 - report, the test asserts
            with lock:
                result["other_errors"] += 1
                result["errors"].append(repr(e)[:200])

    threads = [threading.Thread(target=worker) for _ in range(args.cursors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
