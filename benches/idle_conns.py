#!/usr/bin/env python3
"""What does an idle keep-alive connection cost? Starts Portcullis (release build, 2 workers) on
a directResponse route, opens N connections (default 10 000), sends one request on each and
reads its answer, waits until the connections have been idle past the buffer-release delay
(1 s), and reports the proxy's RSS growth per connection (VmRSS from /proc, before the
connections and after). Then closes them and reports RSS again.

    python3 benches/idle_conns.py            # N=10000
    N=2000 python3 benches/idle_conns.py
    TLS=1 python3 benches/idle_conns.py      # HTTPS listener (self-signed, needs openssl)

Needs `ulimit -n` above N + 100 for this process and for the proxy (it inherits it)."""
import os
import resource
import selectors
import socket
import ssl
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("N", "10000"))
TLS = os.environ.get("TLS") == "1"
CTX = None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target", "release", "portcullis"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    return CTX.wrap_socket(s, server_hostname="localhost") if TLS else s


def one_shots(port, n):
    """`n` requests, each on its own connection, answered and closed."""
    for _ in range(n):
        s = connect(port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        while s.recv(4096):
            pass
        s.close()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = N + 200
    if soft < want:
        if hard < want:
            sys.exit(f"ulimit -n is {soft} (hard {hard}); need {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    port, stats, ready = free_port(), free_port(), free_port()
    d = tempfile.mkdtemp()
    cfg = os.path.join(d, "c.yaml")
    listener = "  - routes:"
    if TLS:
        global CTX
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost", "-days", "1",
                        "-keyout", os.path.join(d, "k.pem"), "-out", os.path.join(d, "c.pem")],
                       check=True, capture_output=True)
        CTX = ssl.create_default_context(cafile=os.path.join(d, "c.pem"))
        listener = (f"  - protocol: HTTPS\n    tls: {{cert: {d}/c.pem, key: {d}/k.pem}}\n"
                    "    routes:")
    with open(cfg, "w") as f:
        f.write(f"""config:
  statsAddr: 127.0.0.1:{stats}
  readinessAddr: 127.0.0.1:{ready}
binds:
- port: {port}
  listeners:
{listener}
    - policies:
        directResponse: {{body: ok, status: 200}}
""")
    env = dict(os.environ, PORTCULLIS_BIND_ADDR="127.0.0.1", RUST_LOG="warn")
    proc = subprocess.Popen([BIN, "-f", cfg, "--workers", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        # Warm up both workers (allocator arenas, first requests).
        one_shots(port, 200)
        time.sleep(1.5)
        before = rss_kib(proc.pid)
        conns = []
        sel = selectors.DefaultSelector()
        for i in range(N):
            s = connect(port)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            conns.append(s)
            if len(conns) % 500 == 0:
                for c in conns[-500:]:
                    c.recv(4096)
        for c in conns[len(conns) - len(conns) % 500:]:
            c.recv(4096)
        busy = rss_kib(proc.pid)
        time.sleep(2.5)  # idle past the 1 s release delay
        idle = rss_kib(proc.pid)
        # Some traffic on other connections: an allocator returns freed pages to the OS as it
        # works, not while a thread sleeps.
        one_shots(port, 400)
        time.sleep(1)
        idle2 = rss_kib(proc.pid)
        for c in conns:
            c.close()
        time.sleep(2)
        after = rss_kib(proc.pid)
        per_busy = (busy - before) * 1024 / N
        per_idle = (min(idle, idle2) - before) * 1024 / N
        print(f"connections: {N}")
        print(f"RSS before: {before} KiB; with the connections just answered: {busy} KiB "
              f"({per_busy:,.0f} B each); idle 2.5 s: {idle} KiB; after other traffic: {idle2} KiB "
              f"({per_idle:,.0f} B each); "
              f"closed: {after} KiB")
        print(f"idle keep-alive connection: {per_idle / 1024:.2f} KiB of proxy RSS each "
              f"(target <= 4 KiB)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
