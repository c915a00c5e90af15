#!/usr/bin/env bash
# tools/call through Portcullis's MCP relay (`mcp` backend → the mcp-load backend over
# streamable HTTP) against the backend directly, with and without mcpAuthentication (one RS256
# token: verified-token cache hits). Alternating rounds in one run; prints the ratios.
#
#   benches/relay.sh [ROUNDS] [DURATION]          # e.g. benches/relay.sh 3 5s
#
# CPU layout on 2 CPUs: backend and proxy on CPU 0, generator on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DUR=${2:-5s}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin portcullis --bin mcp-load
L=target/release/mcp-load; B=target/release/portcullis; K=tests/data/load/rsa-2048.pem
pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BP=$(pick); B2=$(pick); JP=$(pick); PP=$(pick); SP=$(pick); RP=$(pick)
tmp=$(mktemp -d)
taskset -c 0 "$L" backend --port "$BP" >"$tmp/backend.log" 2>&1 & BPID=$!
# For latency: a backend next to the generator, so that the proxy is the only thing on CPU 0.
taskset -c 1 "$L" backend --port "$B2" >"$tmp/backend2.log" 2>&1 & B2PID=$!
"$L" jwks --sign-key "$K" --port "$JP" >"$tmp/jwks.log" 2>&1 & JPID=$!
cat >"$tmp/relay.yaml" <<YAML
config: {statsAddr: 127.0.0.1:$SP, readinessAddr: 127.0.0.1:$RP}
binds:
- port: $PP
  listeners:
  - routes:
    - name: open
      matches: [{path: {exact: /open/mcp}}]
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $BP, path: /mcp}}]}}]
    - name: auth
      matches: [{path: {exact: /mcp}}]
      policies:
        mcpAuthentication:
          issuer: http://idp.bench/realms/mcp
          audiences: [http://localhost:$PP/mcp]
          jwks: {url: http://127.0.0.1:$JP/jwks.json}
          resourceMetadata: {resource: http://localhost:$PP/mcp}
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $BP, path: /mcp}}]}}]
    - name: auth-lat
      matches: [{path: {exact: /lat/mcp}}]
      policies:
        mcpAuthentication:
          issuer: http://idp.bench/realms/mcp
          audiences: [http://localhost:$PP/mcp]
          jwks: {url: http://127.0.0.1:$JP/jwks.json}
          resourceMetadata: {resource: http://localhost:$PP/lat/mcp}
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $B2, path: /mcp}}]}}]
YAML
RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c 0 "$B" -f "$tmp/relay.yaml" --workers 1 >"$tmp/proxy.log" 2>&1 & PPID2=$!
trap 'kill $BPID $B2PID $JPID $PPID2 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$SP/metrics" && break; sleep 0.1; done
sleep 1
TOK=$("$L" token --sign-key "$K" --iss http://idp.bench/realms/mcp --aud "http://localhost:$PP/mcp")
# One closed-loop run; prints "rps server_us backend_us" (CPU per request from --watch).
rate() {
  local pid=$2
  "$L" run --url "$1" --scenario call --connections 32 --duration "$DUR" --warmup 1s --cpus 1 --json \
    --watch "server=$pid" --watch "backend=$BPID" "${@:3}" 2>/dev/null |
    python3 -c 'import json,sys
d=json.load(sys.stdin); e=sum(d["errors"].values()); c={x["name"]: x["us_per_request"] for x in d["cpu"]}
print(d["achieved_rps"], c["server"], c["backend"]) if e == 0 else print(f"errors:{e} 0 0")'
}
rows=()
echo "round  direct_rps  relay_rps  relay_auth_rps | CPU us/req: backend(direct)  relay  relay_auth" >&2
for r in $(seq "$ROUNDS"); do
  read -r d db _ <<<"$(rate "http://127.0.0.1:$BP/mcp" "$BPID")"
  read -r o op ob <<<"$(rate "http://127.0.0.1:$PP/open/mcp" "$PPID2")"
  read -r a ap ab <<<"$(rate "http://127.0.0.1:$PP/mcp" "$PPID2" --token "$TOK")"
  echo "$r  $d  $o  $a | $db  $op  $ap" >&2
  rows+=("$d $db $o $op $ob $a $ap $ab")
done
# Latency at the same offered rate for both, 50% of the relay's (with auth) median saturation,
# with the backend on the generator's CPU: direct = generator -> backend on CPU 1; relayed =
# generator -> Portcullis alone on CPU 0 -> the same backend. (With the backend on the proxy's
# core, the two processes' time slices would dominate the added latency.)
half=$(python3 -c 'import statistics,sys; print(round(statistics.median(float(r.split()[5]) for r in sys.argv[1:]) / 2))' "${rows[@]}")
lat() {
  "$L" run --url "$1" --scenario call --connections 32 --duration "$DUR" --warmup 1s --cpus 1 --json --quiet \
    --rate "$half" "${@:2}" | python3 -c 'import json,sys; l=json.load(sys.stdin)["latency_us"]; print(l["p50"], l["p99"])'
}
read -r dl50 dl99 <<<"$(lat "http://127.0.0.1:$B2/mcp")"
read -r al50 al99 <<<"$(lat "http://127.0.0.1:$PP/lat/mcp" --token "$TOK")"
python3 -c "print(f'  latency at {$half} req/s (open loop, corrected for coordinated omission): direct p50 {$dl50/1e3:.3f} ms p99 {$dl99/1e3:.3f} ms; relay+auth p50 {$al50/1e3:.3f} ms p99 {$al99/1e3:.3f} ms; added p50 {($al50-$dl50):+.0f} us, p99 {($al99-$dl99):+.0f} us')"
python3 - "${rows[@]}" <<'PY'
import statistics, sys
cols = list(zip(*[map(float, r.split()) for r in sys.argv[1:]]))
d, db, o, op, ob, a, ap, ab = (statistics.median(c) for c in cols)
print(f"medians of {len(sys.argv) - 1} rounds (proxy and backend share CPU 0, generator on CPU 1):")
print(f"  throughput: relay/direct {o/d:.3f}, relay+auth/direct {a/d:.3f}")
print(f"  CPU per tools/call: backend alone {db:.2f} us; relay {op:.2f} us (+ backend {ob:.2f}); relay+auth {ap:.2f} us (+ backend {ab:.2f})")
print(f"  per core: one relay worker serves {1e6/ap:,.0f} tools/call/s with auth = {db/ap:.3f}x what one backend core serves")
PY
