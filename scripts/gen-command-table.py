#!/usr/bin/env python3
"""Regenerates src/protocol/command/table_gen.rs: Redis's command table
(arity, command flags, key specs, ACL categories, subcommands) as Rust.

The source of truth is a running redis-server: `COMMAND INFO` for arity,
flags, first/last/step, key specs and ACL categories, and `COMMAND DOCS`
for the version each command appeared in. Commands newer than that server
come from scripts/command-extra.json, written in the shape of Redis's own
src/commands/*.json; the server wins where both know a command.

Usage: scripts/gen-command-table.py [--port PORT] [--out FILE] [--check]
  --port   a running redis-server on 127.0.0.1 (default: start one on a
           free port and stop it afterwards)
  --out    where to write (default src/protocol/command/table_gen.rs)
  --check  write nothing; exit 1 if the file differs from what would be
           generated
The output goes through rustfmt with the repository's rustfmt.toml.
No dependency beyond python3 and redis-server: a tiny RESP client is here.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "src", "protocol", "command", "table_gen.rs")
EXTRA = os.path.join(ROOT, "scripts", "command-extra.json")

# Bit order is fixed here, so a new server version adds bits at the end
# instead of renumbering. An unknown name fails the run (add it here).
COMMAND_FLAGS = [
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking", "loading", "stale",
    "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth", "may_replicate", "sentinel", "only_sentinel",
    "no_mandatory_keys", "protected", "module_getkeys", "module_no_cluster", "no_async_loading", "no_multi",
    "movablekeys", "allow_busy", "module_getchannels", "touches_arbitrary_keys",
]
KEY_FLAGS = ["RO", "RW", "OW", "RM", "ACCESS", "UPDATE", "INSERT", "DELETE", "NOT_KEY", "INCOMPLETE",
             "VARIABLE_FLAGS"]
ACL_CATEGORIES = [
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap", "hyperloglog", "geo",
    "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous", "connection", "transaction", "scripting",
]


class Resp:
    """Just enough RESP2 to send COMMAND and read its nested arrays."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._read()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("redis-server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+",):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 16)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def pairs(flat):
    """A RESP2 flattened map ([k1, v1, k2, v2...]) as a dict."""
    return dict(zip(flat[0::2], flat[1::2]))


def spec_from_info(flat):
    """One key spec of COMMAND INFO, normalized."""
    s = pairs(flat)
    bs, fk = pairs(s["begin_search"]), pairs(s["find_keys"])
    bspec, fspec = pairs(bs["spec"]) if bs["spec"] else {}, pairs(fk["spec"]) if fk["spec"] else {}
    if bs["type"] == "index":
        begin = ("Index", bspec["index"])
    elif bs["type"] == "keyword":
        begin = ("Keyword", bspec["keyword"], bspec["startfrom"])
    else:
        begin = ("Unknown",)
    if fk["type"] == "range":
        find = ("Range", fspec["lastkey"], fspec["keystep"], fspec["limit"])
    elif fk["type"] == "keynum":
        find = ("Keynum", fspec["keynumidx"], fspec["firstkey"], fspec["keystep"])
    else:
        find = ("Unknown",)
    return {"flags": [f.upper() for f in s["flags"]], "begin": begin, "find": find}


def from_info(info, since):
    name, arity, flags, first, last, step, acl, _tips, specs, subs = info[:10]
    return {
        "name": name.split("|")[-1].upper(),
        "fullname": name.lower(),
        "arity": arity,
        "flags": list(flags),
        "legacy": (first, last, step),
        "acl": [a.lstrip("@") for a in acl],
        "keys": [spec_from_info(s) for s in specs],
        "since": since.get(name.lower(), ""),
        "subs": sorted((from_info(s, since) for s in subs or []), key=lambda c: c["name"]),
    }


def spec_from_json(s):
    bs, fk = s["begin_search"], s["find_keys"]
    if "index" in bs:
        begin = ("Index", bs["index"]["pos"])
    elif "keyword" in bs:
        begin = ("Keyword", bs["keyword"]["keyword"], bs["keyword"]["startfrom"])
    else:
        begin = ("Unknown",)
    if "range" in fk:
        r = fk["range"]
        find = ("Range", r["lastkey"], r["step"], r["limit"])
    elif "keynum" in fk:
        k = fk["keynum"]
        find = ("Keynum", k["keynumidx"], k["firstkey"], k["step"])
    else:
        find = ("Unknown",)
    return {"flags": [f.upper() for f in s.get("flags", [])], "begin": begin, "find": find}


def from_json(name, d, parent=None):
    """A command of command-extra.json, with the flags and categories that
    Redis derives at startup (setImplicitACLCategories, movablekeys), so it
    reads as COMMAND INFO would show it."""
    flags = [f.lower() for f in d.get("command_flags", [])]
    acl = [a.lower() for a in d.get("acl_categories", [])]
    implied = {"write": "write", "readonly": "read", "admin": "admin", "pubsub": "pubsub", "fast": "fast",
               "blocking": "blocking"}
    for f, cat in implied.items():
        if f in flags and cat not in acl and not (f == "readonly" and "scripting" in acl):
            acl.append(cat)
    if "admin" in flags and "dangerous" not in acl:
        acl.append("dangerous")
    if "fast" not in flags and "slow" not in acl:
        acl.append("slow")
    keys = [spec_from_json(s) for s in d.get("key_specs", [])]
    if any(k["begin"][0] != "Index" or k["find"][0] != "Range" for k in keys):
        flags.append("movablekeys")
    legacy = (0, 0, 0)
    if keys and keys[0]["begin"][0] == "Index" and keys[0]["find"][0] == "Range" and keys[0]["find"][1] >= 0:
        pos = keys[0]["begin"][1]
        legacy = (pos, pos + keys[0]["find"][1], keys[0]["find"][2])
    full = ("%s|%s" % (parent, name) if parent else name).lower()
    return {"name": name.upper(), "fullname": full, "arity": d["arity"], "flags": flags, "legacy": legacy,
            "acl": acl, "keys": keys, "since": d.get("since", ""), "subs": []}


def ident(name):
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def bits(names, known, module):
    for n in names:
        if n not in known:
            sys.exit("unknown %s name %r: add it to the list in %s" % (module, n, __file__))
    return " | ".join("%s::%s" % (module, ident(n)) for n in sorted(names, key=known.index)) or "0"


def rust_spec(k):
    b, f = k["begin"], k["find"]
    if b[0] == "Index":
        begin = "Begin::Index(%d)" % b[1]
    elif b[0] == "Keyword":
        begin = "Begin::Keyword { keyword: %s, start: %d }" % (json.dumps(b[1]), b[2])
    else:
        begin = "Begin::Unknown"
    if f[0] == "Range":
        find = "Find::Range { last: %d, step: %d, limit: %d }" % f[1:]
    elif f[0] == "Keynum":
        find = "Find::Keynum { index: %d, first: %d, step: %d }" % f[1:]
    else:
        find = "Find::Unknown"
    flags = bits(k["flags"], KEY_FLAGS, "key_flag")
    return "KeySpec { flags: %s, begin: %s, find: %s }" % (flags, begin, find)


def rust_cmd(c, subs_ident):
    keys = ", ".join(rust_spec(k) for k in c["keys"])
    return (
        "Command { name: %s, fullname: %s, arity: %d, flags: %s, acl: %s, legacy: (%d, %d, %d), keys: &[%s], "
        "since: %s, subcommands: %s },"
        % (json.dumps(c["name"]), json.dumps(c["fullname"]), c["arity"], bits(c["flags"], COMMAND_FLAGS, "flag"),
           bits(c["acl"], ACL_CATEGORIES, "acl"), *c["legacy"], keys, json.dumps(c["since"]), subs_ident)
    )


def render(cmds, version):
    out = [
        "//! Redis's command table as data: every command and subcommand with its",
        "//! arity, flags, key specs and ACL categories. Sorted by name, so a test",
        "//! can compare it with a fresh run of the script. One row per command",
        "//! (`rustfmt::skip`), so a regeneration diffs as changed rows.",
        "",
        "// @generated by scripts/gen-command-table.py from redis-server %s" % version,
        "// and scripts/command-extra.json. Do not edit: run the script.",
        "",
        "use super::{Begin, Command, Find, KeySpec};",
        "",
    ]
    for module, names in (("flag", COMMAND_FLAGS), ("key_flag", KEY_FLAGS), ("acl", ACL_CATEGORIES)):
        out.append("/// Bits of `%s` names, in the order of `%s_NAMES`." % (module, module.upper()))
        out.append("pub mod %s {" % module)
        for i, n in enumerate(names):
            out.append("    pub const %s: u32 = 1 << %d;" % (ident(n), i))
        out.append("}")
        out.append("pub const %s_NAMES: &[&str] = &[%s];" % (module.upper(), ", ".join(json.dumps(n) for n in names)))
        out.append("")
    for c in cmds:
        if c["subs"]:
            out.append("#[rustfmt::skip]")
            out.append("static SUB_%s: &[Command] = &[" % ident(c["name"]))
            out.extend("    " + rust_cmd(s, "&[]") for s in c["subs"])
            out.append("];")
    out.append("")
    out.append("/// Every top-level command, sorted by name.")
    out.append("#[rustfmt::skip]")
    out.append("pub static COMMANDS: &[Command] = &[")
    for c in cmds:
        out.append("    " + rust_cmd(c, "SUB_%s" % ident(c["name"]) if c["subs"] else "&[]"))
    out.append("];")
    return "\n".join(out) + "\n"


def rustfmt(text):
    cfg = os.path.join(ROOT, "rustfmt.toml")
    p = subprocess.run(["rustfmt", "--edition", "2021", "--config-path", cfg, "--emit", "stdout", "-q"],
                       input=text.encode(), capture_output=True)
    if p.returncode != 0:
        sys.exit("rustfmt failed: %s" % p.stderr.decode())
    return p.stdout.decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def collect(port):
    r = Resp(port)
    version = pairs(r.call("HELLO", "2"))["version"]
    docs = r.call("COMMAND", "DOCS")
    since = {}
    for name, doc in zip(docs[0::2], docs[1::2]):
        d = pairs(doc)
        since[name.lower()] = d.get("since", "")
        for sub, sdoc in zip((d.get("subcommands") or [])[0::2], (d.get("subcommands") or [])[1::2]):
            since[sub.lower()] = pairs(sdoc).get("since", "")
    cmds = {c["name"]: c for c in (from_info(i, since) for i in r.call("COMMAND"))}
    with open(EXTRA) as f:
        extra = json.load(f)["commands"]
    for name, d in sorted(extra.items()):
        parent = d.get("container")
        if parent:
            subs = cmds[parent]["subs"]
            if not any(s["name"] == name for s in subs):
                subs.append(from_json(name, d, parent))
                subs.sort(key=lambda c: c["name"])
        elif name not in cmds:
            cmds[name] = from_json(name, d)
    return render([cmds[n] for n in sorted(cmds)], version)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    server, tmp = None, None
    port = a.port
    if port is None:
        if not shutil.which("redis-server"):
            sys.exit("redis-server not found (apt-get install redis-server), or pass --port")
        port, tmp = free_port(), tempfile.mkdtemp()
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    try:
        text = rustfmt(collect(port))
    finally:
        if server:
            server.terminate()
            server.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    if a.check:
        with open(a.out) as f:
            if f.read() != text:
                sys.exit("%s is not what the script generates: run scripts/gen-command-table.py" % a.out)
        return
    with open(a.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
