#!/usr/bin/env bash
# One-command auth-overhead benchmark. Starts an `mcp-load backend`, an `mcp-load jwks` server
# and Portcullis (one worker), then measures, side by side in one run:
#   direct          generator -> backend (tools/call, JSON)
#   noauth          through Portcullis, route without mcpAuthentication
#   auth-hit        through Portcullis, mcpAuthentication, one RS256 token (verified-token cache hits)
#   miss-rs256      unique RS256 tokens (a pool larger than the per-worker cache, used in order: misses)
#   miss-es256      the same with ES256
#   401             initialize without a token (the challenge path)
#   metadata        GET /.well-known/oauth-protected-resource/mcp
#   haproxy-rs256   HAProxy (nbthread 1) with jwt_verify on the same RS256 key, exp/iss/aud ACLs,
#                   when `haproxy` is on PATH
# Each case runs closed-loop to saturation, then open-loop at 50% of that rate (latency corrected
# for coordinated omission). Writes target/overhead-report.md and target/overhead-report.json.
#
#   benches/overhead.sh            # DURATION=5 s per measurement, WARMUP=1 s: about 2-3 minutes
#   DURATION=10 CONNS=64 benches/overhead.sh
#
# CPU layout: with >= 4 CPUs the proxy, the backend and the generator each get their own CPU;
# with 2 CPUs the generator gets CPU 1 and the proxy (or HAProxy) shares CPU 0 with the backend,
# so "direct" is the backend alone on CPU 0 and the ratios are per-core system throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
POOL=${POOL:-20000}
cargo build --release -q --bin portcullis --bin mcp-load
LOAD=$PWD/target/release/mcp-load
BIN=$PWD/target/release/portcullis
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
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }
BP=$(pick_port) JP=$(pick_port) PP=$(pick_port) SP=$(pick_port) RP=$(pick_port) HP=$(pick_port)

taskset -c "$BACKEND_CPU" "$LOAD" backend --port "$BP" >"$tmp/backend.log" 2>&1 &
pids+=($!)
"$LOAD" jwks --port "$JP" --sign-key "$KEYS/rsa-2048.pem" --sign-key "$KEYS/ec-p256.pem" >"$tmp/jwks.log" 2>&1 &
pids+=($!)
cat >"$tmp/portcullis.yaml" <<YAML
config:
  statsAddr: 127.0.0.1:$SP
  readinessAddr: 127.0.0.1:$RP
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
YAML
RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c "$PROXY_CPU" "$BIN" -f "$tmp/portcullis.yaml" --workers 1 >"$tmp/portcullis.log" 2>&1 &
pids+=($!)
wait_port "$BP"; wait_port "$JP"; wait_port "$PP"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$RP/healthz/ready" >/dev/null && break; sleep 0.1; done

HAVE_HAPROXY=0
if command -v haproxy >/dev/null && command -v openssl >/dev/null; then
  HAVE_HAPROXY=1
  openssl pkey -in "$KEYS/rsa-2048.pem" -pubout -out "$tmp/rsa-pub.pem" 2>/dev/null
  cat >"$tmp/haproxy.cfg" <<CFG
global
  nbthread 1
  cpu-map 1/1 $PROXY_CPU
  log stderr format raw local0 emerg
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
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
  taskset -c "$PROXY_CPU" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
  pids+=($!)
  wait_port "$HP"
fi

echo "minting token pools ($POOL RS256 and ES256 tokens, before any measurement)..." >&2
"$LOAD" token --sign-key "$KEYS/rsa-2048.pem" --iss "$ISS" --aud "$AUD" --count "$POOL" >"$tmp/rs256.txt"
"$LOAD" token --sign-key "$KEYS/ec-p256.pem" --iss "$ISS" --aud "$AUD" --count "$POOL" >"$tmp/es256.txt"
head -n1 "$tmp/rs256.txt" >"$tmp/rs256-one.txt"

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
if [ "$HAVE_HAPROXY" = 1 ]; then check haproxy "http://127.0.0.1:$HP/mcp"; fi

cases=()
measure() {
  local name=$1 url=$2; shift 2
  echo "== $name: saturation (closed loop, $CONNS connections, ${DURATION}s)" >&2
  "$LOAD" run --url "$url" -c "$CONNS" -d "${DURATION}s" -w "${WARMUP}s" --cpus "$GEN_CPUS" --json --quiet "$@" >"$tmp/$name.sat.json"
  local rate
  rate=$(python3 -c 'import json,sys; print(max(1.0, round(json.load(open(sys.argv[1]))["achieved_rps"] * 0.5, 1)))' "$tmp/$name.sat.json")
  echo "== $name: open loop at 50% ($rate req/s)" >&2
  "$LOAD" run --url "$url" -c "$CONNS" -d "${DURATION}s" -w "${WARMUP}s" --cpus "$GEN_CPUS" --json --quiet --rate "$rate" "$@" >"$tmp/$name.half.json"
  cases+=("$name")
}

measure direct "http://127.0.0.1:$BP/mcp" -s call
measure noauth "http://127.0.0.1:$PP/open" -s call
measure auth-hit "http://127.0.0.1:$PP/mcp" -s call --token-file "$tmp/rs256-one.txt"
measure miss-rs256 "http://127.0.0.1:$PP/mcp" -s call --token-file "$tmp/rs256.txt"
measure miss-es256 "http://127.0.0.1:$PP/mcp" -s call --token-file "$tmp/es256.txt"
measure 401 "http://127.0.0.1:$PP/mcp" -s unauth
measure metadata "http://127.0.0.1:$PP/mcp" -s metadata
if [ "$HAVE_HAPROXY" = 1 ]; then
  measure haproxy-rs256 "http://127.0.0.1:$HP/mcp" -s call --token-file "$tmp/rs256-one.txt"
fi

mkdir -p target
python3 - "$tmp" "$NCPU" "$PROXY_CPU" "$BACKEND_CPU" "$GEN_CPUS" "$DURATION" "$CONNS" "$POOL" "$HAVE_HAPROXY" "${cases[@]}" <<'PY'
import json, sys, datetime
tmp, ncpu, pcpu, bcpu, gcpu, dur, conns, pool, hap = sys.argv[1:10]
names = sys.argv[10:]
runs = {n: (json.load(open(f"{tmp}/{n}.sat.json")), json.load(open(f"{tmp}/{n}.half.json"))) for n in names}
direct = runs["direct"][0]["achieved_rps"]
noauth = runs["noauth"][0]["achieved_rps"]
what = {
    "direct": "generator -> backend",
    "noauth": "Portcullis, no auth",
    "auth-hit": "Portcullis, RS256, cache hit",
    "miss-rs256": "Portcullis, RS256, unique tokens",
    "miss-es256": "Portcullis, ES256, unique tokens",
    "401": "Portcullis, 401 challenge",
    "metadata": "Portcullis, PRM metadata",
    "haproxy-rs256": "HAProxy 1 thread, jwt_verify RS256",
}
rows, out = [], {"generated": datetime.datetime.now().isoformat(timespec="seconds"),
                  "cpus": int(ncpu), "layout": {"proxy_cpu": pcpu, "backend_cpu": bcpu, "generator_cpus": gcpu},
                  "duration_s": float(dur), "connections": int(conns), "token_pool": int(pool), "cases": {}}
for n in names:
    sat, half = runs[n]
    rps = sat["achieved_rps"]
    l = half["latency_us"]
    errs = sat["requests"]["errors"] + half["requests"]["errors"]
    out["cases"][n] = {
        "what": what.get(n, n), "saturation_rps": rps,
        "ratio_direct": round(rps / direct, 3) if direct else None,
        "ratio_noauth": round(rps / noauth, 3) if noauth else None,
        "half_offered_rps": half["offered_rps"], "half_achieved_rps": half["achieved_rps"],
        "half_latency_us": l, "saturation_latency_us": sat["latency_us"], "errors": errs,
        "errors_by_class": {k: sat["errors"][k] + half["errors"][k] for k in sat["errors"] if sat["errors"][k] + half["errors"][k]},
    }
    ms = lambda us: f"{us/1000:.3f}"
    rows.append(f"| {n} | {what.get(n, n)} | {rps:,.0f} | {rps/direct:.3f} | {rps/noauth:.3f} | {half['offered_rps']:,.0f} | {half['achieved_rps']:,.0f} | {ms(l['p50'])} | {ms(l['p99'])} | {ms(l['p999'])} | {errs} |")
d50 = runs["direct"][1]["latency_us"]["p50"]
md = [
    f"# Portcullis auth overhead ({out['generated']})", "",
    f"{ncpu} CPUs; proxy on CPU {pcpu}, backend on CPU {bcpu}, generator on CPU {gcpu}; one Portcullis worker; "
    f"{conns} connections; {dur} s per measurement; unique-token pools of {pool} (cache: 10000 per worker). "
    "Saturation = closed loop; latency = open loop at 50% of each case's saturation rate, "
    "corrected for coordinated omission.", "",
    "| case | what | saturation req/s | × direct | × no-auth | offered @50% | achieved @50% | p50 ms | p99 ms | p99.9 ms | errors |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    *rows, "",
]
if int(pool) < 20000:
    md.append(f"- **Caution:** the unique-token pool ({pool}) is under twice the per-worker cache (10000): the miss cases may hit the cache.")
if "auth-hit" in runs:
    md.append(f"- auth with cache hits ÷ no auth: **{runs['auth-hit'][0]['achieved_rps']/noauth:.3f}** (target ≥ 0.95)")
for n in ("miss-rs256", "miss-es256"):
    if n in runs:
        md.append(f"- {n} ÷ no auth: **{runs[n][0]['achieved_rps']/noauth:.3f}**")
if "haproxy-rs256" in runs and "auth-hit" in runs:
    md.append(f"- Portcullis auth-hit ÷ HAProxy jwt_verify: **{runs['auth-hit'][0]['achieved_rps']/runs['haproxy-rs256'][0]['achieved_rps']:.3f}**")
elif hap != "1":
    md.append("- HAProxy not measured: `haproxy` (and `openssl`) not on PATH (`apt-get install -y haproxy`).")
md.append(f"- p50 added at 50% load vs direct: " + ", ".join(
    f"{n} {(runs[n][1]['latency_us']['p50'] - d50)/1000:+.3f} ms" for n in names if n != "direct"))
open("target/overhead-report.md", "w").write("\n".join(md) + "\n")
json.dump(out, open("target/overhead-report.json", "w"), indent=2)
print("\n".join(md))
PY
echo "wrote target/overhead-report.md and target/overhead-report.json" >&2
