#!/usr/bin/env python3
"""Open N idle client connections to host:port, report the server process's
RSS before and after, then close them.

Usage: scripts/idle-conns.py PORT PID [N] [--ping] [--warm=K]
  PID    the process whose RSS is measured (/proc/PID/status VmRSS; for
         Puerta and nutcracker the proxy itself)
  N      connections (default 10000); RLIMIT_NOFILE is raised to fit
  --ping each connection sends one PING and reads +PONG first, so the
         proxy has really taken the connection into its event loop
  --warm=K  first open K connections (pinging if --ping), close them and
         wait, then measure again: the RSS delta from there leaves out
         one-time costs of the first traffic (code paged in on first use,
         the allocator's first pages), and is printed as warm_per_conn_bytes
Prints one line: "idle N conns: rss_before_kb rss_after_kb delta_kb
per_conn_bytes" (before = at the start), plus "warm_per_conn_bytes" with
--warm.
"""
import resource
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    ping = "--ping" in sys.argv
    warm = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--warm=")), 0)
    port, pid = int(args[0]), int(args[1])
    n = int(args[2]) if len(args) > 2 else 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    before = rss_kb(pid)
    if warm:
        for s in open_conns(port, warm, ping):
            s.close()
        time.sleep(1.0)  # the proxy closes them and releases what they held
    warm_before = rss_kb(pid)
    conns = open_conns(port, n, ping)
    time.sleep(1.0)  # let the proxy settle (accept queues, lazy allocations)
    after = rss_kb(pid)
    # Every connection still open and served after the measurement.
    for s in conns[:: max(1, n // 20)]:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        if s.recv(16) != b"+PONG\r\n":
            raise SystemExit("an idle connection was dropped")
    for s in conns:
        s.close()
    delta = after - before
    line = (f"idle {n} conns: rss_before_kb {before} rss_after_kb {after} delta_kb {delta} "
            f"per_conn_bytes {delta * 1024 // n}")
    if warm:
        line += f" warm_per_conn_bytes {(after - warm_before) * 1024 // n}"
    print(line)


def open_conns(port, n, ping):
    conns = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if ping:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            if s.recv(16) != b"+PONG\r\n":
                raise SystemExit(f"connection {i}: no PONG")
        conns.append(s)
    return conns


if __name__ == "__main__":
    main()
