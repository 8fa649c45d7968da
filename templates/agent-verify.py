# paude status --verify: the sandbox's self-test, run inside the agent container as the
# agent's user. It sends nothing beyond the session's own proxy: "no route out" is read
# from the routing tables, not tried against an outside address. One JSON line per check.
import json
import os
import socket
import sys
import urllib.parse

ALLOWED, BLOCKED = sys.argv[1], sys.argv[2]


def report(name, ok, detail):
    print(json.dumps({"check": name, "ok": bool(ok), "detail": detail}), flush=True)


def proxy_address():
    url = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or ""
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port or 3128


def connect_via_proxy(host, port, target):
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        conn.settimeout(20)
        status = conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    return status


uid = os.getuid()
report("non-root", uid != 0, f"uid {uid}")

caps = "unknown"
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("CapEff:"):
            caps = line.split()[1]
report("no capabilities", caps.strip("0") == "", f"CapEff {caps}")

routes = []
for path in ("/proc/net/route",):
    try:
        with open(path) as table:
            routes += [row.split()[1] for row in table.readlines()[1:] if row.split()]
    except OSError:
        pass
default4 = "00000000" in routes
try:
    with open("/proc/net/ipv6_route") as table:
        default6 = any(row.split()[0] == "0" * 32 and row.split()[1] == "00"
                       for row in table if row.split() and row.split()[9] != "lo")
except OSError:
    default6 = False
report("no route out", not default4 and not default6,
       "no default route" if not default4 and not default6 else
       "a default route exists: traffic can leave without the proxy")

servers = []
try:
    with open("/etc/resolv.conf") as conf:
        servers = [row.split()[1] for row in conf if row.startswith("nameserver")
                   and len(row.split()) > 1]
except OSError:
    pass
report("no resolver", not servers,
       "no nameserver configured" if not servers else f"nameservers: {', '.join(servers)}")

host, port = proxy_address()
if not host:
    report("proxy answers", False, "HTTPS_PROXY is not set in the agent")
    sys.exit(0)
try:
    socket.create_connection((host, port), timeout=5).close()
    report("proxy answers", True, f"{host}:{port}")
except OSError as exc:
    report("proxy answers", False, f"{host}:{port}: {exc}")
    sys.exit(0)

if ALLOWED:
    try:
        status = connect_via_proxy(host, port, f"{ALLOWED}:443")
        report("allowed name passes", " 200 " in f"{status} ", f"CONNECT {ALLOWED}:443: {status}")
    except OSError as exc:
        report("allowed name passes", False, f"CONNECT {ALLOWED}:443: {exc}")
else:
    report("allowed name passes", True, "no exact name in the allowlist to try")
try:
    status = connect_via_proxy(host, port, f"{BLOCKED}:443")
    report("blocked name refused", " 403 " in f"{status} ", f"CONNECT {BLOCKED}:443: {status}")
except OSError as exc:
    report("blocked name refused", False, f"CONNECT {BLOCKED}:443: {exc}")
