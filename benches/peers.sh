#!/usr/bin/env bash
# What a cross-replica hop costs: a tools/call on a session this replica owns against one
# another replica owns (issue 14), in proxy CPU per call, side by side in one run.
#
# Two replicas of one config (relay + mcpAuthentication to an `mcp-load backend`, one RS256
# token), on 127.0.0.1 and 127.0.0.2 with the same ports and a shared peer key, one worker each,
# both pinned to CPU 0 with the backend; the generator on CPU 1.
#   local      sessions opened on A, calls sent to A: A's CPU per call
#   forwarded  sessions opened on A (`mcp-load --open-at`), calls sent to B, which forwards each
#              to A over the peer listener: A's + B's CPU per call (the whole cluster's cost)
# Rounds alternate the cases; the median and range over ROUNDS are shown, and the ratio.
#
#   benches/peers.sh                         # ROUNDS=5 DURATION=5: about 1 minute
#   ROUNDS=1 DURATION=2 benches/peers.sh     # smoke
# Knobs: CONNS (32), WARMUP (1), NO_BUILD=1, BIN_DIR, RATE (open loop at this many calls/s in
# both cases, e.g. 12000: the same load on the owner either way; without it the loop is closed
# and the forwarded case, with two proxies on CPU 0, runs at a lower rate with less batching).
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
BP=$(pick_port) JP=$(pick_port) PORT=$(pick_port) PEER=$(pick_port)

taskset -c "$PROXY_CPU" "$LOAD" backend --port "$BP" >"$tmp/backend.log" 2>&1 &
pids+=($!)
"$LOAD" jwks --port "$JP" --sign-key "$KEYS/rsa-2048.pem" >"$tmp/jwks.log" 2>&1 &
pids+=($!)
wait_port "$BP"; wait_port "$JP"
"$LOAD" token --sign-key "$KEYS/rsa-2048.pem" --iss "$ISS" --aud "$AUD" --count 1 >"$tmp/tok.txt"
head -c 32 /dev/urandom | base64 >"$tmp/peer-key"

# Replica $1 (a loopback address): its pid in REPLICA_PID.
start_replica() {
  local ip=$1 sp rp
  sp=$(pick_port) rp=$(pick_port)
  cat >"$tmp/$ip.yaml" <<YAML
config:
  statsAddr: 127.0.0.1:$sp
  readinessAddr: 127.0.0.1:$rp
  mcp: {maxSessionsPerSubject: 100000, maxSessionsPerWorker: 100000}
binds:
- port: $PORT
  listeners:
  - routes:
    - name: relay-auth
      matches: [{path: {exact: /auth/mcp}}]
      policies:
        mcpAuthentication:
          issuer: $ISS
          audiences: ['$AUD']
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata: {resource: 'http://localhost:$PORT/auth/mcp'}
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $BP, path: /mcp}}]}}]
YAML
  RUST_LOG=warn PORTCULLIS_BIND_ADDR=$ip ADMIN_ADDR=127.0.0.1:0 \
    PORTCULLIS_PEER_ADDR=$ip:$PEER PORTCULLIS_PEER_KEY_FILE=$tmp/peer-key \
    taskset -c "$PROXY_CPU" "$BIN_DIR/portcullis" -f "$tmp/$ip.yaml" --workers 1 >"$tmp/$ip.log" 2>&1 &
  pids+=($!)
  REPLICA_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$rp/healthz/ready" >/dev/null && return 0; sleep 0.1; done
  echo "replica $ip did not become ready:" >&2; cat "$tmp/$ip.log" >&2; exit 1
}
start_replica 127.0.0.1; A=$REPLICA_PID
start_replica 127.0.0.2; B=$REPLICA_PID

raw=$PWD/target/peers-raw
rm -rf "$raw"; mkdir -p "$raw"
cases=(local forwarded)
for r in $(seq "$ROUNDS"); do
  for i in 0 1; do
    n=${cases[$(((i + r - 1) % 2))]}
    echo "== round $r/$ROUNDS: $n" >&2
    if [ "$n" = local ]; then
      url=http://127.0.0.1:$PORT/auth/mcp extra=()
    else
      url=http://127.0.0.2:$PORT/auth/mcp extra=(--open-at "127.0.0.1:$PORT")
    fi
    "$LOAD" run --url "$url" -s call --token-file "$tmp/tok.txt" -c "$CONNS" -d "${DURATION}s" \
      -w "${WARMUP}s" --cpus "$GEN_CPUS" --json --quiet --watch "a=$A" --watch "b=$B" \
      ${RATE:+-r "$RATE"} "${extra[@]}" >"$raw/$n.$r.json"
  done
done

python3 - "$raw" "$ROUNDS" <<'PY'
import json, statistics, sys
raw, rounds = sys.argv[1], int(sys.argv[2])
def us(run, name):
    for c in run.get("cpu", []):
        if c["name"] == name:
            return c.get("us_per_request") or 0.0
    return 0.0
res = {}
for n, who in [("local", ["a"]), ("forwarded", ["a", "b"])]:
    runs = [json.load(open(f"{raw}/{n}.{r}.json")) for r in range(1, rounds + 1)]
    errs = sum(x["requests"]["errors"] for x in runs)
    tot = [sum(us(x, w) for w in who) for x in runs]
    a = [us(x, "a") for x in runs]
    b = [us(x, "b") for x in runs]
    rps = [x["achieved_rps"] for x in runs if x.get("achieved_rps")]
    res[n] = tot
    print(f"{n:10s} proxy µs/call {statistics.median(tot):6.2f} (range {min(tot):.2f}–{max(tot):.2f};"
          f" owner A {statistics.median(a):.2f}, edge B {statistics.median(b):.2f})"
          f" req/s {statistics.median(rps):.0f} errors {errs}")
ratios = [f / l for f, l in zip(res["forwarded"], res["local"]) if l]
print(f"forwarded / local: {statistics.median(res['forwarded']) / statistics.median(res['local']):.2f}x"
      f" (per round: {', '.join(f'{x:.2f}' for x in ratios)})")
PY
