#!/usr/bin/env bash
# Is mcp-load ever the bottleneck? Measures one generator thread (pinned to CPU 1) against
#   1. examples/minimal_responder (pinned to CPU 0): `-s get`, the generator's own ceiling;
#   2. one Portcullis worker (pinned to CPU 0) on the 401 path: `-s unauth`.
# For each it prints the achieved rate and the generator's CPU time per request (from
# getrusage), hence the rate one generator core could sustain (1e6 / µs per request).
# With wrk installed it also runs wrk against the responder for comparison.
#
#   benches/generator_ceiling.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
CONNS=${2:-64}
cargo build --release -q --bin portcullis --bin mcp-load --example minimal_responder
LOAD=$PWD/target/release/mcp-load
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MP=$(pick_port) PP=$(pick_port) JP=$(pick_port) SP=$(pick_port) RP=$(pick_port)
target/release/examples/minimal_responder "$MP" 0 >/dev/null 2>&1 &
MPID=$!
pids+=($!)
"$LOAD" jwks --port "$JP" --sign-key tests/data/load/ec-p256.pem >/dev/null &
pids+=($!)
cat >"$tmp/p.yaml" <<YAML
config:
  statsAddr: 127.0.0.1:$SP
  readinessAddr: 127.0.0.1:$RP
binds:
- port: $PP
  listeners:
  - routes:
    - name: mcp
      matches: [{path: {exact: /mcp}}]
      policies:
        mcpAuthentication:
          issuer: http://idp.bench
          audiences: [http://localhost/mcp]
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata: {resource: 'http://localhost:$PP/mcp'}
      backends: [{host: '127.0.0.1:9'}]
YAML
RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c 0 target/release/portcullis -f "$tmp/p.yaml" --workers 1 >"$tmp/p.log" 2>&1 &
PPID_=$!
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$RP/healthz/ready" >/dev/null && curl -s "http://127.0.0.1:$MP/" >/dev/null && break; sleep 0.1; done

measure() {
  python3 - "$@" <<'PY'
import json, os, resource, subprocess, sys, time
name, server, args = sys.argv[1], sys.argv[2], sys.argv[3:]
def server_cpu():
    f = open(f"/proc/{server}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
s0, t0 = server_cpu(), time.monotonic()
out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
s1, t1 = server_cpu(), time.monotonic()
r = json.loads(out)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
# Warm-up requests are not counted in `answered` but did use CPU: count them at the same rate.
total_s = r["duration_s"] + r["warmup_s"]
reqs = r["requests"]["answered"] * total_s / r["duration_s"]
us = cpu / reqs * 1e6 if reqs else float("nan")
# The server's CPU over the whole run (set-up and warm-up included, so slightly low).
srv = (s1 - s0) / (t1 - t0) * 100
print(f"{name:<34} {r['achieved_rps']:>10.0f} req/s  p50 {r['latency_us']['p50']/1000:.3f} ms  "
      f"p99 {r['latency_us']['p99']/1000:.3f} ms  errors {r['requests']['errors']}  server CPU {srv:.0f}%  "
      f"generator CPU {cpu/total_s*100:.0f}% = {us:.2f} µs/req -> one generator core ≈ {1e6/us:,.0f} req/s")
PY
}
echo "one generator thread on CPU 1, server on CPU 0, $CONNS connections, ${SECS}s (+1s warm-up); nproc=$(nproc)"
measure "mcp-load get -> minimal_responder" "$MPID" "$LOAD" run -u "http://127.0.0.1:$MP/" -s get -c "$CONNS" -d "${SECS}s" -w 1s --cpus 1 --json --quiet
measure "mcp-load unauth -> portcullis 401" "$PPID_" "$LOAD" run -u "http://127.0.0.1:$PP/mcp" -s unauth -c "$CONNS" -d "${SECS}s" -w 1s --cpus 1 --json --quiet
if command -v wrk >/dev/null; then
  echo "wrk -t1 -c$CONNS on CPU 1 -> minimal_responder (reference client):"
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$MP/" | grep -E "Requests/sec|Latency"
fi
