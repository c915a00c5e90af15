#!/usr/bin/env bash
# The plain forward and the relay against HAProxy's plain forward, in proxy CPU per request, and
# optionally two Portcullis builds side by side (before/after a change) in the same run.
#
# Cases (a tools/call over streamable HTTP, JSON answer, keep-alive; interleaved rounds, each
# round starting at another case):
#   direct            generator -> mcp-load backend
#   haproxy-forward   HAProxy 2.6 (nbthread 1, http-reuse always, no filters) -> backend
#   forward           Portcullis `host` route -> backend (no auth)
#   relay             Portcullis `mcp` backend (streamable-HTTP target) -> backend
#   relay-auth        the same with mcpAuthentication, one RS256 token (verified-token cache hits)
#   forward-modern    the `host` route, 2026-07-28 requests (the same request as relay-auth-modern)
#   relay-modern      the relay route, 2026-07-28 requests (`-s modern`: no session, mirrored headers)
#   relay-auth-modern the auth route, 2026-07-28 requests with the token
#   relay-auth-compat 2026-07-28 requests with the token to a backend that speaks only the 2025
#                     revisions (`backend --legacy`): through the compatibility mode
#   relay-authz       the auth route plus mcpAuthorization (agentgateway-style rules on the
#                     token's `sub` and the tool name; verdicts from the per-worker cache)
#   relay-auth-list / relay-authz-list
#                     tools/list of 500 tools (`backend --tools 500`, ~115 KB) through the auth
#                     route, unfiltered, and through the authz route, filtered to about half
# With MORE=1, also overhead.sh's auth cases on a `host` route: auth-hit (one RS256 token), 401
# (no token: the challenge) and metadata (the protected-resource metadata document).
# With BASE=<dir with an older portcullis binary>, every Portcullis case also runs against that
# binary (`base-forward`, `base-relay`, `base-relay-auth`), alternating with the current one.
#
# "µs/req" is the CPU time (user + kernel, all threads) of the process under test per answered
# request, read by `mcp-load --watch` from /proc; the median over ROUNDS and the range are shown,
# with the kernel's share of it (on loopback most of a forward is the TCP stack: the floor no
# user-space change moves).
# The proxies are pinned to CPU 0 (sharing it with the backend on 2 CPUs), the generator to
# CPU 1: per-core costs stay comparable even when the throughput is whole-system.
#
#   benches/forward.sh                                   # ROUNDS=5 DURATION=5: about 4 minutes
#   BASE=/path/to/old/release benches/forward.sh         # before/after, same run
#   ROUNDS=1 DURATION=2 benches/forward.sh               # smoke
# Knobs: CONNS (32), WARMUP (1), ONLY (a list of case names), RATE (open loop at this many
# requests/s for every case: per-request CPU depends on the rate, so cases that run at different
# closed-loop rates are best compared at one offered load), NO_BUILD=1, BIN_DIR (this build's
# binaries), TRACING=1 (config.tracing set, requests unsampled), BASE_MODERN=1 (with BASE: the
# 2026-07-28 case on the BASE build too).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin portcullis --bin mcp-load
BIN_DIR=${BIN_DIR:-$PWD/target/release}
LOAD=$BIN_DIR/mcp-load
KEYS=$PWD/tests/data/load
if [ "$(nproc)" -ge 2 ]; then PROXY_CPU=0 GEN_CPUS=1; else PROXY_CPU=0 GEN_CPUS=0; fi
ISS=http://idp.bench/realms/mcp
AUD=http://localhost/mcp
. benches/lib.sh
BP=$(pick_port) JP=$(pick_port) HP=$(pick_port) LP=$(pick_port)

taskset -c "$PROXY_CPU" "$LOAD" backend --port "$BP" --tools 500 >"$tmp/backend.log" 2>&1 &
pids+=($!)
BACKEND_PID=$!
# The same backend speaking the 2025 revisions only: 2026-07-28 clients reach it through the
# compatibility mode (relay-auth-compat).
taskset -c "$PROXY_CPU" "$LOAD" backend --port "$LP" --legacy >"$tmp/legacy.log" 2>&1 &
pids+=($!)
"$LOAD" jwks --port "$JP" --sign-key "$KEYS/rsa-2048.pem" >"$tmp/jwks.log" 2>&1 &
pids+=($!)
wait_port "$BP"; wait_port "$JP"; wait_port "$LP"

declare -A URL ARGS SERVER
cases=()
add() {
  # ONLY="case …": measure just those cases.
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $1 "* ]]; then return 0; fi
  cases+=("$1"); SERVER[$1]=$2; URL[$1]=$3; shift 3; ARGS[${cases[-1]}]="$*"
}
"$LOAD" token --sign-key "$KEYS/rsa-2048.pem" --iss "$ISS" --aud "$AUD" --count 1 >"$tmp/tok.txt"
add direct "$BACKEND_PID" "http://127.0.0.1:$BP/mcp" -s call

# One Portcullis: label prefix, binary.
start_portcullis() {
  local label=$1 bin=$2 port sp rp
  port=$(pick_port) sp=$(pick_port) rp=$(pick_port)
  # TRACING=1: tracing configured, every request unsampled (what tracing costs when off for a
  # request: the sampling decision and nothing else). An older BASE build accepts the key too.
  local tracing_line=""
  if [ -n "${TRACING:-}" ]; then
    tracing_line="  tracing: {otlpEndpoint: 'http://127.0.0.1:9', otlpProtocol: http, randomSampling: 0}"
  fi
  cat >"$tmp/$label.yaml" <<YAML
config:
  statsAddr: 127.0.0.1:$sp
  readinessAddr: 127.0.0.1:$rp
  mcp: {maxSessionsPerSubject: 100000, maxSessionsPerWorker: 100000}
$tracing_line
binds:
- port: $port
  listeners:
  - routes:
    - name: forward
      matches: [{path: {exact: /forward/mcp}}]
      backends: [{host: '127.0.0.1:$BP'}]
    - name: relay
      matches: [{path: {exact: /relay/mcp}}]
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $BP, path: /mcp}}]}}]
    - name: host-auth
      matches: [{path: {exact: /host-auth/mcp}}]
      policies:
        mcpAuthentication:
          issuer: $ISS
          audiences: ['$AUD']
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata: {resource: 'http://localhost:$port/host-auth/mcp'}
      backends: [{host: '127.0.0.1:$BP'}]
    - name: relay-auth
      matches: [{path: {exact: /auth/mcp}}]
      policies:
        mcpAuthentication:
          issuer: $ISS
          audiences: ['$AUD']
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata: {resource: 'http://localhost:$port/auth/mcp'}
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $BP, path: /mcp}}]}}]
    - name: relay-auth-compat
      matches: [{path: {exact: /compat/mcp}}]
      policies:
        mcpAuthentication:
          issuer: $ISS
          audiences: ['$AUD']
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata: {resource: 'http://localhost:$port/compat/mcp'}
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $LP, path: /mcp}}]}}]
    - name: relay-authz
      matches: [{path: {exact: /authz/mcp}}]
      policies:
        mcpAuthentication:
          issuer: $ISS
          audiences: ['$AUD']
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata: {resource: 'http://localhost:$port/authz/mcp'}
        mcpAuthorization:
          rules:
          - 'jwt.sub == "mcp-load-user" && mcp.tool.name == "echo"'
          - 'mcp.tool.name.startsWith("tool_") && mcp.tool.name.size() % 2 == 0'
          - deny: 'mcp.tool.name == "tool_13"'
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $BP, path: /mcp}}]}}]
YAML
  RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c "$PROXY_CPU" "$bin" -f "$tmp/$label.yaml" --workers 1 >"$tmp/$label.log" 2>&1 &
  pids+=($!)
  local pid=$!
  wait_port "$port"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$rp/healthz/ready" >/dev/null && break; sleep 0.1; done
  local p=${label#cur}; p=${p:+$p-}
  add "${p}forward" "$pid" "http://127.0.0.1:$port/forward/mcp" -s call
  add "${p}relay" "$pid" "http://127.0.0.1:$port/relay/mcp" -s call
  add "${p}relay-auth" "$pid" "http://127.0.0.1:$port/auth/mcp" -s call --token-file "$tmp/tok.txt"
  # 2026-07-28 and authorization cases for this build only (a BASE binary may lack them;
  # BASE_MODERN=1: the BASE build has 2026-07-28 too, and runs base-relay-auth-modern).
  if [ "$label" = base ] && [ -n "${BASE_MODERN:-}" ]; then
    add base-relay-auth-modern "$pid" "http://127.0.0.1:$port/auth/mcp" -s modern --token-file "$tmp/tok.txt"
  fi
  if [ "$label" = cur ]; then
    add relay-authz "$pid" "http://127.0.0.1:$port/authz/mcp" -s call --token-file "$tmp/tok.txt"
    add relay-auth-list "$pid" "http://127.0.0.1:$port/auth/mcp" -s list --token-file "$tmp/tok.txt"
    add relay-authz-list "$pid" "http://127.0.0.1:$port/authz/mcp" -s list --token-file "$tmp/tok.txt"
    add forward-modern "$pid" "http://127.0.0.1:$port/forward/mcp" -s modern
    add relay-modern "$pid" "http://127.0.0.1:$port/relay/mcp" -s modern
    add relay-auth-modern "$pid" "http://127.0.0.1:$port/auth/mcp" -s modern --token-file "$tmp/tok.txt"
    add relay-auth-compat "$pid" "http://127.0.0.1:$port/compat/mcp" -s modern --token-file "$tmp/tok.txt"
  fi
  if [ -n "${MORE:-}" ]; then
    add "${p}auth-hit" "$pid" "http://127.0.0.1:$port/host-auth/mcp" -s call --token-file "$tmp/tok.txt"
    add "${p}401" "$pid" "http://127.0.0.1:$port/host-auth/mcp" -s unauth
    add "${p}metadata" "$pid" "http://127.0.0.1:$port/host-auth/mcp" -s metadata
  fi
}
start_portcullis cur "$BIN_DIR/portcullis"
if [ -n "${BASE:-}" ]; then start_portcullis base "$BASE/portcullis"; fi

if command -v haproxy >/dev/null; then
  { haproxy_global "$PROXY_CPU"; cat <<CFG
frontend fe
  bind 127.0.0.1:$HP
  default_backend be
backend be
  server b1 127.0.0.1:$BP
CFG
  } >"$tmp/haproxy.cfg"
  taskset -c "$PROXY_CPU" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
  pids+=($!)
  HAPROXY_PID=$!
  wait_port "$HP"
  add haproxy-forward "$HAPROXY_PID" "http://127.0.0.1:$HP/mcp" -s call
else
  echo "haproxy not installed: no haproxy-forward case" >&2
fi

raw=$PWD/target/forward-raw
rm -rf "$raw"; mkdir -p "$raw"
n_cases=${#cases[@]}
for r in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((n_cases - 1))); do
    n=${cases[$(((i + r - 1) % n_cases))]}
    echo "== round $r/$ROUNDS: $n" >&2
    # shellcheck disable=SC2086
    "$LOAD" run --url "${URL[$n]}" -c "$CONNS" -d "${DURATION}s" -w "${WARMUP}s" --cpus "$GEN_CPUS" \
      --json --quiet --watch "server=${SERVER[$n]}" ${RATE:+-r "$RATE"} ${ARGS[$n]} >"$raw/$n.$r.json"
  done
done

python3 - "$raw" "$ROUNDS" "${cases[@]}" <<'PY'
import json, statistics, sys
raw, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def cpu(run, key="us_per_request"):
    for c in run.get("cpu", []):
        if c["name"] == "server":
            return c.get(key) or None
res = {}
for n in names:
    runs = [json.load(open(f"{raw}/{n}.{r}.json")) for r in range(1, rounds + 1)]
    errs = sum(x["requests"]["errors"] for x in runs)
    us = [u for u in (cpu(x) for x in runs) if u]
    rps = [x["achieved_rps"] for x in runs if x.get("achieved_rps")]
    ks = [k for k in (cpu(x, "kernel_share") for x in runs) if k]
    res[n] = (statistics.median(us) if us else None, min(us, default=None), max(us, default=None),
              statistics.median(rps) if rps else None, errs,
              statistics.median(ks) * 100 if ks else None)
print("| case | server µs/req (median) | range | kernel share | req/s (median) | errors |")
print("|---|---|---|---|---|---|")
for n, (m, lo, hi, rps, e, k) in res.items():
    f = lambda x: "-" if x is None else f"{x:.2f}"
    kf = "-" if k is None else f"{k:.0f}%"
    print(f"| {n} | {f(m)} | {f(lo)}–{f(hi)} | {kf} | {f(rps and round(rps))} | {e} |")
def ratio(a, b):
    if res.get(a) and res.get(b) and res[a][0] and res[b][0]:
        print(f"{a} / {b}: {res[a][0] / res[b][0]:.2f}x (per-core CPU per request)")
for a in ["forward", "base-forward", "relay", "base-relay"]:
    ratio(a, "haproxy-forward")
for c in ["forward", "relay", "relay-auth", "relay-auth-modern", "auth-hit", "401", "metadata"]:
    ratio(c, "base-" + c)
# 2026-07-28 against 2025 sessions, and MCP awareness against the plain forward.
ratio("relay-modern", "relay")
ratio("relay-auth-modern", "relay-auth")
ratio("relay-auth-modern", "forward")
ratio("relay-auth-modern", "forward-modern")
ratio("relay-auth-compat", "relay-auth")
ratio("relay-auth", "forward")
# Authorization against authentication alone: a call, and a 500-tool list filtered.
ratio("relay-authz", "relay-auth")
ratio("relay-authz-list", "relay-auth-list")
PY
