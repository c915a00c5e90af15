#!/usr/bin/env bash
# How much does MCP auth cost? One command, one report that answers it first:
#   "auth adds X µs of proxy CPU per request (cache hit) / Y (fresh RS256) / Z (fresh ES256);
#    through the MCP relay: …"
# then the method and the full table. Which script to use:
#   benches/overhead.sh  (this one) auth's cost in isolation, on a plain `host` route, and the same
#                        through the MCP relay (`mcp` backend, the quickstart's kind of route).
#                        Start here.
#   benches/relay.sh     the relay's own cost (relay vs the MCP server directly) in several CPU
#                        placements, and its added latency; not needed for the auth answer.
#
# Starts an `mcp-load backend`, an `mcp-load jwks` server, Portcullis (one worker), the minimal
# monoio responder and, when installed, HAProxy 2.6, then measures side by side in one run:
#   direct            generator -> backend (tools/call, JSON)
#   minimal-401       generator -> examples/minimal_responder --challenge: the same request answered
#                     with fixed 401 bytes (the floor of any HTTP server on this path)
#   noauth            `host` route without mcpAuthentication (requests without a token)
#   noauth-tok        the same route, requests carrying the RS256 token of auth-hit (same bytes)
#   noauth-es256      the same route, requests carrying one ES256 token (the bytes of miss-es256)
#   auth-hit          mcpAuthentication, one RS256 token (verified-token cache hits)
#   miss-rs256        unique RS256 tokens (a pool larger than the per-worker cache, used in order)
#   miss-es256        the same with ES256
#   401               initialize without a token (the challenge path)
#   direct-401        the same request on a directResponse route answering the same 401 challenge
#   metadata          GET /.well-known/oauth-protected-resource/mcp
#   relay-noauth-tok  MCP relay route (`mcp` backend -> the same backend over streamable HTTP),
#                     no auth, requests carrying the RS256 token
#   relay-auth-hit    MCP relay route with mcpAuthentication, one RS256 token (cache hits)
#   relay-miss-rs256  the same with unique RS256 tokens
#   haproxy-rs256     HAProxy (nbthread 1), jwt_verify on the same RS256 key, exp/iss/aud ACLs
#   haproxy-unique    the same with the unique RS256 token pool
#   haproxy-401       HAProxy's 401 challenge for a request without a token
# The answer: auth's added CPU per request = the auth case's server CPU per request minus that of
# the no-auth case sending the same token bytes, paired within each round; median and range over
# the rounds (a range that includes 0 reads "no measurable difference").
# Saturation (closed loop) is measured ROUNDS times, the cases interleaved, and the median is
# kept; then every case runs open-loop at ONE common offered rate (LAT_RATE, default 50% of the
# slowest case's saturation), in LAT_ROUNDS (2) interleaved passes, so latencies compare like
# with like (corrected for coordinated omission; added latency = median and range of the
# per-pass differences). During every measurement mcp-load reads the CPU time (user + kernel,
# all threads, from /proc/<pid>/task/*/schedstat) of the server under test, of the backend and
# of itself: "µs/req" is CPU per answered request, the per-core cost that stays meaningful when
# two processes share a core. A row is flagged generator-bound when the generator's core was busy
# >= GEN_BOUND (0.85) of the time, or when the side under test costs less than twice the
# generator's CPU per request (the headroom target): its req/s may be the generator's ceiling.
# Writes target/overhead-report.md, target/overhead-report.json and the raw runs in
# target/overhead-raw/ (re-render with `python3 benches/overhead_report.py target/overhead-raw`).
#
#   benches/overhead.sh                    # ROUNDS=3 LAT_ROUNDS=2 DURATION=5 WARMUP=1: about 9 minutes
#   ROUNDS=1 LAT_ROUNDS=1 DURATION=2 WARMUP=1 benches/overhead.sh    # a smoke run, about 2 minutes
#   ROUNDS=5 DURATION=10 CONNS=64 benches/overhead.sh
# Other knobs: POOL (unique tokens, 20000), LAT_RATE (req/s), LAT_ROUNDS, RELAY=0 (skip the
# relay cases), HAPROXY=0 (skip HAProxy), GEN_BOUND, NO_BUILD=1, BIN_DIR (where the binaries are).
#
# CPU layout: with >= 4 CPUs the server, the backend and the generator each get their own CPU;
# with 2 CPUs the generator gets CPU 1 and the server shares CPU 0 with the backend, so
# throughput ratios there are whole-system figures and the CPU-per-request columns are the
# per-core ones.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}; DURATION=${DURATION%s}
WARMUP=${WARMUP:-1}; WARMUP=${WARMUP%s}
CONNS=${CONNS:-32}
POOL=${POOL:-20000}
RELAY=${RELAY:-1}
LAT_RATE=${LAT_RATE:-}
LAT_ROUNDS=${LAT_ROUNDS:-2}
GEN_BOUND=${GEN_BOUND:-0.85}
START_S=$SECONDS
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin portcullis --bin mcp-load --example minimal_responder
BIN_DIR=${BIN_DIR:-$PWD/target/release}
LOAD=$BIN_DIR/mcp-load
BIN=$BIN_DIR/portcullis
MIN=$BIN_DIR/examples/minimal_responder
[ -x "$MIN" ] || MIN=$BIN_DIR/minimal_responder
KEYS=$PWD/tests/data/load
NCPU=$(nproc)
if [ "$NCPU" -ge 4 ]; then
  PROXY_CPU=0 BACKEND_CPU=1 GEN_CPUS=2
elif [ "$NCPU" -ge 2 ]; then
  PROXY_CPU=0 BACKEND_CPU=0 GEN_CPUS=1
else
  PROXY_CPU=0 BACKEND_CPU=0 GEN_CPUS=0
fi
ISS=http://idp.bench/realms/mcp
AUD=http://localhost/mcp
. benches/lib.sh
BP=$(pick_port) JP=$(pick_port) PP=$(pick_port) SP=$(pick_port) RP=$(pick_port) HP=$(pick_port) MP=$(pick_port)

taskset -c "$BACKEND_CPU" "$LOAD" backend --port "$BP" >"$tmp/backend.log" 2>&1 &
pids+=($!)
BACKEND_PID=$!
taskset -c "$PROXY_CPU" "$MIN" "$MP" --challenge >"$tmp/minimal.log" 2>&1 &
pids+=($!)
MIN_PID=$!
"$LOAD" jwks --port "$JP" --sign-key "$KEYS/rsa-2048.pem" --sign-key "$KEYS/ec-p256.pem" >"$tmp/jwks.log" 2>&1 &
pids+=($!)
RELAY_BACKEND="backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $BP, path: /mcp}}]}}]"
cat >"$tmp/portcullis.yaml" <<YAML
config:
  statsAddr: 127.0.0.1:$SP
  readinessAddr: 127.0.0.1:$RP
  # Every virtual user is the same subject: lift the per-subject session cap (default 64).
  mcp: {maxSessionsPerSubject: 100000, maxSessionsPerWorker: 100000}
binds:
- port: $PP
  listeners:
  - routes:
    - name: open
      matches: [{path: {exact: /open}}]
      backends: [{host: '127.0.0.1:$BP'}]
    - name: mcp
      matches: [{path: {exact: /mcp}}]
      policies:
        mcpAuthentication:
          issuer: $ISS
          audiences: ['$AUD']
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata:
            resource: http://localhost:$PP/mcp
      backends: [{host: '127.0.0.1:$BP'}]
    - name: relay-open
      matches: [{path: {exact: /relay-open/mcp}}]
      $RELAY_BACKEND
    - name: relay
      matches: [{path: {exact: /relay/mcp}}]
      policies:
        mcpAuthentication:
          issuer: $ISS
          audiences: ['$AUD']
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata:
            resource: http://localhost:$PP/relay/mcp
      $RELAY_BACKEND
    - name: direct-401
      matches: [{path: {exact: /direct-401}}]
      policies:
        directResponse:
          status: 401
          body: '{"error":"unauthorized","error_description":"JWT token required"}'
        responseHeaderModifier:
          add:
            www-authenticate: 'Bearer resource_metadata="http://localhost:$PP/.well-known/oauth-protected-resource/mcp"'
            content-type: application/json
YAML
RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c "$PROXY_CPU" "$BIN" -f "$tmp/portcullis.yaml" --workers 1 >"$tmp/portcullis.log" 2>&1 &
pids+=($!)
PORTCULLIS_PID=$!
wait_port "$BP"; wait_port "$JP"; wait_port "$PP"; wait_port "$MP"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$RP/healthz/ready" >/dev/null && break; sleep 0.1; done

HAVE_HAPROXY=0
if [ "${HAPROXY:-1}" != 0 ] && command -v haproxy >/dev/null && command -v openssl >/dev/null; then
  HAVE_HAPROXY=1
  openssl pkey -in "$KEYS/rsa-2048.pem" -pubout -out "$tmp/rsa-pub.pem" 2>/dev/null
  { haproxy_global "$PROXY_CPU"; cat <<CFG
frontend mcp
  bind 127.0.0.1:$HP
  http-request return status 401 content-type application/json string '{"error":"unauthorized"}' hdr www-authenticate 'Bearer resource_metadata="http://localhost:$HP/.well-known/oauth-protected-resource/mcp"' unless { req.hdr(authorization) -m beg "Bearer " }
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('\$.iss')
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('\$.aud')
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  acl alg_ok var(txn.alg) -m str RS256
  acl sig_ok var(txn.bearer),jwt_verify(txn.alg,"$tmp/rsa-pub.pem") -m int 1
  acl iss_ok var(txn.iss) -m str $ISS
  acl aud_ok var(txn.aud) -m str $AUD
  acl expired var(txn.exp),sub(txn.now) -m int lt 0
  http-request return status 401 content-type application/json string '{"error":"invalid_token"}' hdr www-authenticate 'Bearer error="invalid_token"' unless alg_ok sig_ok iss_ok aud_ok !expired
  default_backend be
backend be
  server b1 127.0.0.1:$BP
CFG
  } >"$tmp/haproxy.cfg"
  taskset -c "$PROXY_CPU" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
  pids+=($!)
  HAPROXY_PID=$!
  wait_port "$HP"
fi

echo "minting token pools ($POOL RS256 and ES256 tokens, before any measurement)..." >&2
"$LOAD" token --sign-key "$KEYS/rsa-2048.pem" --iss "$ISS" --aud "$AUD" --count "$POOL" >"$tmp/rs256.txt"
"$LOAD" token --sign-key "$KEYS/ec-p256.pem" --iss "$ISS" --aud "$AUD" --count "$POOL" >"$tmp/es256.txt"
head -n1 "$tmp/rs256.txt" >"$tmp/rs256-one.txt"
head -n1 "$tmp/es256.txt" >"$tmp/es256-one.txt"

# Before measuring: each auth proxy must reject invalid and expired tokens and accept valid ones.
check() {
  local name=$1 url=$2
  "$LOAD" run --url "$url" -s call -c 4 -d 1s -w 0s --json --quiet --sign-key "$KEYS/rsa-2048.pem" \
    --iss "$ISS" --aud "$AUD" --invalid-share 0.3 --expired-share 0.2 >"$tmp/check-$name.json"
  python3 - "$tmp/check-$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
q = r["requests"]
if q["errors"] or not q["ok"] or not q["rejected"]:
    sys.exit(f"{sys.argv[2]}: validation check failed: {q} {r['errors']}")
print(f"{sys.argv[2]}: accepts valid tokens, rejects invalid and expired ones ({q})", file=sys.stderr)
PY
}
check portcullis "http://127.0.0.1:$PP/mcp"
if [ "$RELAY" != 0 ]; then check portcullis-relay "http://127.0.0.1:$PP/relay/mcp"; fi
if [ "$HAVE_HAPROXY" = 1 ]; then check haproxy "http://127.0.0.1:$HP/mcp"; fi

# A case: name, server pid, URL, mcp-load arguments.
declare -A URL ARGS SERVER
cases=()
add() { cases+=("$1"); SERVER[$1]=$2; URL[$1]=$3; shift 3; ARGS[${cases[-1]}]="$*"; }
TOKS=$tmp/rs256-one.txt
add direct "$BACKEND_PID" "http://127.0.0.1:$BP/mcp" -s call
add minimal-401 "$MIN_PID" "http://127.0.0.1:$MP/mcp" -s unauth
add noauth "$PORTCULLIS_PID" "http://127.0.0.1:$PP/open" -s call
add noauth-tok "$PORTCULLIS_PID" "http://127.0.0.1:$PP/open" -s call --token-file "$TOKS"
add noauth-es256 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/open" -s call --token-file "$tmp/es256-one.txt"
add auth-hit "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s call --token-file "$TOKS"
add miss-rs256 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s call --token-file "$tmp/rs256.txt"
add miss-es256 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s call --token-file "$tmp/es256.txt"
add 401 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s unauth
add direct-401 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/direct-401" -s unauth
add metadata "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s metadata
if [ "$RELAY" != 0 ]; then
  add relay-noauth-tok "$PORTCULLIS_PID" "http://127.0.0.1:$PP/relay-open/mcp" -s call --token-file "$TOKS"
  add relay-auth-hit "$PORTCULLIS_PID" "http://127.0.0.1:$PP/relay/mcp" -s call --token-file "$TOKS"
  add relay-miss-rs256 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/relay/mcp" -s call --token-file "$tmp/rs256.txt"
fi
if [ "$HAVE_HAPROXY" = 1 ]; then
  add haproxy-rs256 "$HAPROXY_PID" "http://127.0.0.1:$HP/mcp" -s call --token-file "$TOKS"
  add haproxy-unique "$HAPROXY_PID" "http://127.0.0.1:$HP/mcp" -s call --token-file "$tmp/rs256.txt"
  add haproxy-401 "$HAPROXY_PID" "http://127.0.0.1:$HP/mcp" -s unauth
fi
raw=$PWD/target/overhead-raw
rm -rf "$raw"; mkdir -p "$raw"
run_case() { # name, output file, extra mcp-load arguments
  local n=$1 out=$2; shift 2
  # shellcheck disable=SC2086
  "$LOAD" run --url "${URL[$n]}" -c "$CONNS" -d "${DURATION}s" -w "${WARMUP}s" --cpus "$GEN_CPUS" --json --quiet \
    --watch "server=${SERVER[$n]}" --watch "backend=$BACKEND_PID" ${ARGS[$n]} "$@" >"$out"
}
ncases=${#cases[@]}
echo "${ncases} cases x (${ROUNDS} closed-loop rounds + ${LAT_ROUNDS} open-loop passes); each run ${WARMUP}s + ${DURATION}s" >&2
for r in $(seq "$ROUNDS"); do
  # Each round starts at another case, so that no case always follows the same one (a heavy
  # case leaves caches and the allocator in a state that the next one pays for).
  for i in $(seq 0 $((ncases - 1))); do
    n=${cases[$(((i + (r - 1) * ncases / ROUNDS) % ncases))]}
    echo "== round $r/$ROUNDS: $n (closed loop, $CONNS connections, ${DURATION}s)" >&2
    run_case "$n" "$raw/$n.sat$r.json"
  done
done
# One offered rate for every case's latency run: LAT_RATE, or half the slowest case's saturation.
if [ -z "$LAT_RATE" ]; then
  LAT_RATE=$(python3 - "$raw" "$ROUNDS" "${cases[@]}" <<'PY'
import json, statistics, sys
raw, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = [statistics.median(json.load(open(f"{raw}/{n}.sat{r}.json"))["achieved_rps"] for r in range(1, rounds + 1))
       for n in names]
print(max(1, int(min(med) * 0.5)))
PY
)
  LAT_RULE="50% of the slowest case's saturation"
else
  LAT_RULE="set by LAT_RATE"
fi
for p in $(seq "$LAT_ROUNDS"); do
  for i in $(seq 0 $((ncases - 1))); do
    n=${cases[$(((i + (p - 1) * ncases / LAT_ROUNDS) % ncases))]}
    echo "== latency pass $p/$LAT_ROUNDS: $n (open loop at $LAT_RATE req/s: the common rate, $LAT_RULE)" >&2
    run_case "$n" "$raw/$n.lat$p.json" --rate "$LAT_RATE"
  done
done

python3 - "$raw/meta.json" <<PY
import json, sys
json.dump({"cpus": $NCPU, "server_cpu": "$PROXY_CPU", "backend_cpu": "$BACKEND_CPU", "generator_cpus": "$GEN_CPUS",
           "rounds": $ROUNDS, "duration_s": float("$DURATION"), "warmup_s": float("$WARMUP"), "connections": $CONNS,
           "token_pool": $POOL, "haproxy": $HAVE_HAPROXY, "relay": "$RELAY" != "0",
           "latency_rate_rps": float("$LAT_RATE"), "latency_rate_rule": "$LAT_RULE", "latency_rounds": $LAT_ROUNDS, "generator_bound": float("$GEN_BOUND"),
           "run_seconds": $SECONDS - $START_S, "cases": "${cases[*]}".split()}, open(sys.argv[1], "w"), indent=2)
PY
mkdir -p target
python3 benches/overhead_report.py "$raw"
echo "wrote target/overhead-report.md and target/overhead-report.json (raw runs: target/overhead-raw/); took $((SECONDS - START_S)) s" >&2
