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
BP=$(pick); JP=$(pick); PP=$(pick); SP=$(pick); RP=$(pick)
tmp=$(mktemp -d)
taskset -c 0 "$L" backend --port "$BP" >"$tmp/backend.log" 2>&1 & BPID=$!
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
YAML
RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c 0 "$B" -f "$tmp/relay.yaml" --workers 1 >"$tmp/proxy.log" 2>&1 & PPID2=$!
trap 'kill $BPID $JPID $PPID2 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$SP/metrics" && break; sleep 0.1; done
sleep 1
TOK=$("$L" token --sign-key "$K" --iss http://idp.bench/realms/mcp --aud "http://localhost:$PP/mcp")
rate() {
  "$L" run --url "$1" --scenario call --connections 32 --duration "$DUR" --warmup 1s --cpus 1 --json "${@:2}" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); e=sum(d["errors"].values()); print(d["achieved_rps"] if e == 0 else "errors:%d" % e)'
}
echo "round  direct_rps  relay_rps  relay_auth_rps  relay/direct  auth/direct"
for r in $(seq "$ROUNDS"); do
  d=$(rate "http://127.0.0.1:$BP/mcp"); o=$(rate "http://127.0.0.1:$PP/open/mcp"); a=$(rate "http://127.0.0.1:$PP/mcp" --token "$TOK")
  python3 -c "print('$r', $d, $o, $a, f'{$o/$d:.3f}', f'{$a/$d:.3f}')"
done
