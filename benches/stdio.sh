#!/usr/bin/env bash
# tools/call through Portcullis's MCP relay to a stdio server (the seed's FastMCP fixture,
# `uv run src/main.py`, one child per session) against the same server driven directly over its
# pipes (benches/stdio_direct.py), alternating rounds in one run. The servers (and Portcullis)
# run on CPU 0, the drivers on CPU 1. Prints calls/s per round and the median ratio.
#
#   benches/stdio.sh [ROUNDS] [SESSIONS] [SECONDS]       # defaults 3 4 5
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SESSIONS=${2:-4}
SECS=${3:-5}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin portcullis --bin mcp-load
FIX=$PWD/tests/fixtures/stdio-server
UV=$("$FIX/install.sh" | tail -n1)
export UV_PYTHON_DOWNLOADS=never UV_OFFLINE=1
L=$PWD/target/release/mcp-load
B=$PWD/target/release/portcullis
pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PP=$(pick); SP=$(pick); RP=$(pick)
tmp=$(mktemp -d)
cat >"$tmp/stdio.yaml" <<YAML
config: {statsAddr: 127.0.0.1:$SP, readinessAddr: 127.0.0.1:$RP, mcp: {maxSessionsPerSubject: 100000}}
binds:
- port: $PP
  listeners:
  - routes:
    - name: stdio
      matches: [{path: {exact: /mcp}}]
      backends: [{mcp: {targets: [{name: hello, stdio: {cmd: '$UV', args: [run, src/main.py]}}]}}]
YAML
# The seed's relative `src/main.py` resolves against Portcullis's working directory.
(cd "$FIX" && RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 exec taskset -c 0 "$B" -f "$tmp/stdio.yaml" --workers 1) \
  >"$tmp/proxy.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$SP/metrics" && break; sleep 0.1; done
via() {
  "$L" run --url "http://127.0.0.1:$PP/mcp" -s call --tool echo --tool-args '{"message":"hi"}' \
    -c "$SESSIONS" -d "${SECS}s" -w 2s --cpus 1 --json --quiet --watch "proxy=$PID" |
    python3 -c 'import json,sys
d=json.load(sys.stdin); c={x["name"]: x["us_per_request"] for x in d["cpu"]}; l=d["latency_us"]
print(d["achieved_rps"], d["requests"]["errors"], round(l["p50"]/1e3, 3), round(l["p99"]/1e3, 3), c.get("proxy"))'
}
direct() {
  taskset -c 1 python3 benches/stdio_direct.py --uv "$UV" --cwd "$FIX" --sessions "$SESSIONS" \
    --duration "$SECS" --cpu 0 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["calls_per_s"], d["errors"], d["p50_ms"], d["p99_ms"])'
}
rows=()
echo "round  direct_calls/s (p50 p99 ms)  via_portcullis_calls/s (p50 p99 ms, proxy us/call)  ratio"
for r in $(seq "$ROUNDS"); do
  read -r d de d50 d99 <<<"$(direct)"
  read -r v ve v50 v99 vcpu <<<"$(via)"
  [ "$de" = 0 ] && [ "$ve" = 0 ] || { echo "errors: direct $de, via Portcullis $ve" >&2; exit 1; }
  ratio=$(python3 -c "print(f'{$v/$d:.3f}')")
  rows+=("$ratio")
  echo "$r  $d ($d50 $d99)  $v ($v50 $v99, $vcpu)  $ratio"
done
python3 -c 'import statistics,sys; print(f"median ratio via Portcullis / direct over pipes: {statistics.median(map(float, sys.argv[1:])):.3f}")' "${rows[@]}"
