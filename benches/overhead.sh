#!/usr/bin/env bash
# One-command auth-overhead benchmark. Starts an `mcp-load backend`, an `mcp-load jwks` server,
# Portcullis (one worker), the minimal monoio responder and, when installed, HAProxy 2.6, then
# measures side by side in one run:
#   direct          generator -> backend (tools/call, JSON)
#   minimal-401     generator -> examples/minimal_responder --challenge: the same request answered
#                   with fixed 401 bytes (the floor of any HTTP server on this path)
#   noauth          through Portcullis, route without mcpAuthentication (requests without a token)
#   noauth-tok      the same route, requests carrying the same bearer token as auth-hit
#   auth-hit        mcpAuthentication, one RS256 token (verified-token cache hits)
#   miss-rs256      unique RS256 tokens (a pool larger than the per-worker cache, used in order)
#   miss-es256      the same with ES256
#   401             initialize without a token (the challenge path)
#   direct-401      the same request on a directResponse route answering the same 401 challenge
#   metadata        GET /.well-known/oauth-protected-resource/mcp
#   haproxy-rs256   HAProxy (nbthread 1), jwt_verify on the same RS256 key, exp/iss/aud ACLs
#   haproxy-unique  the same with the unique RS256 token pool
#   haproxy-401     HAProxy's 401 challenge for a request without a token
# Saturation (closed loop) is measured ROUNDS times, the cases interleaved, and the median is
# kept; then each case runs once open-loop at 50% of its saturation rate (latency corrected for
# coordinated omission). During every measurement mcp-load reads the CPU time (user + kernel,
# all threads, from /proc/<pid>/task/*/schedstat) of the server under test, of the backend and
# of itself: "µs/req" is CPU per answered request, the per-core cost that stays meaningful when
# two processes share a core. Writes target/overhead-report.md and target/overhead-report.json.
#
#   benches/overhead.sh                    # ROUNDS=3 DURATION=5 WARMUP=1: about 6 minutes
#   ROUNDS=5 DURATION=10 CONNS=64 benches/overhead.sh
#
# CPU layout: with >= 4 CPUs the server, the backend and the generator each get their own CPU;
# with 2 CPUs the generator gets CPU 1 and the server shares CPU 0 with the backend, so
# throughput ratios there are whole-system figures and the CPU-per-request columns are the
# per-core ones.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
POOL=${POOL:-20000}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin portcullis --bin mcp-load --example minimal_responder
LOAD=$PWD/target/release/mcp-load
BIN=$PWD/target/release/portcullis
MIN=$PWD/target/release/examples/minimal_responder
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
wait_port() {
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 did not open; the logs:" >&2; tail -n 5 "$tmp"/*.log >&2; exit 1
}
BP=$(pick_port) JP=$(pick_port) PP=$(pick_port) SP=$(pick_port) RP=$(pick_port) HP=$(pick_port) MP=$(pick_port)

taskset -c "$BACKEND_CPU" "$LOAD" backend --port "$BP" >"$tmp/backend.log" 2>&1 &
pids+=($!)
BACKEND_PID=$!
taskset -c "$PROXY_CPU" "$MIN" "$MP" --challenge >"$tmp/minimal.log" 2>&1 &
pids+=($!)
MIN_PID=$!
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
  HAPROXY_PID=$!
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

# A case: name, server pid, whether it uses the backend, URL, mcp-load arguments.
declare -A URL ARGS SERVER
cases=()
add() { cases+=("$1"); SERVER[$1]=$2; URL[$1]=$3; shift 3; ARGS[${cases[-1]}]="$*"; }
TOKS=$tmp/rs256-one.txt
add direct "$BACKEND_PID" "http://127.0.0.1:$BP/mcp" -s call
add minimal-401 "$MIN_PID" "http://127.0.0.1:$MP/mcp" -s unauth
add noauth "$PORTCULLIS_PID" "http://127.0.0.1:$PP/open" -s call
add noauth-tok "$PORTCULLIS_PID" "http://127.0.0.1:$PP/open" -s call --token-file "$TOKS"
add auth-hit "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s call --token-file "$TOKS"
add miss-rs256 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s call --token-file "$tmp/rs256.txt"
add miss-es256 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s call --token-file "$tmp/es256.txt"
add 401 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s unauth
add direct-401 "$PORTCULLIS_PID" "http://127.0.0.1:$PP/direct-401" -s unauth
add metadata "$PORTCULLIS_PID" "http://127.0.0.1:$PP/mcp" -s metadata
if [ "$HAVE_HAPROXY" = 1 ]; then
  add haproxy-rs256 "$HAPROXY_PID" "http://127.0.0.1:$HP/mcp" -s call --token-file "$TOKS"
  add haproxy-unique "$HAPROXY_PID" "http://127.0.0.1:$HP/mcp" -s call --token-file "$tmp/rs256.txt"
  add haproxy-401 "$HAPROXY_PID" "http://127.0.0.1:$HP/mcp" -s unauth
fi
run_case() { # name, output file, extra mcp-load arguments
  local n=$1 out=$2; shift 2
  # shellcheck disable=SC2086
  "$LOAD" run --url "${URL[$n]}" -c "$CONNS" -d "${DURATION}s" -w "${WARMUP}s" --cpus "$GEN_CPUS" --json --quiet \
    --watch "server=${SERVER[$n]}" --watch "backend=$BACKEND_PID" ${ARGS[$n]} "$@" >"$out"
}
ncases=${#cases[@]}
for r in $(seq "$ROUNDS"); do
  # Each round starts at another case, so that no case always follows the same one (a heavy
  # case leaves caches and the allocator in a state that the next one pays for).
  for i in $(seq 0 $((ncases - 1))); do
    n=${cases[$(((i + (r - 1) * ncases / ROUNDS) % ncases))]}
    echo "== round $r/$ROUNDS: $n (closed loop, $CONNS connections, ${DURATION}s)" >&2
    run_case "$n" "$tmp/$n.sat$r.json"
  done
done
for n in "${cases[@]}"; do
  rate=$(python3 - "$ROUNDS" "$tmp/$n" <<'PY'
import json, statistics, sys
rs = [json.load(open(f"{sys.argv[2]}.sat{r}.json"))["achieved_rps"] for r in range(1, int(sys.argv[1]) + 1)]
print(max(1.0, round(statistics.median(rs) * 0.5, 1)))
PY
)
  echo "== $n: open loop at 50% ($rate req/s)" >&2
  run_case "$n" "$tmp/$n.half.json" --rate "$rate"
done

mkdir -p target
python3 - "$tmp" "$NCPU" "$PROXY_CPU" "$BACKEND_CPU" "$GEN_CPUS" "$DURATION" "$CONNS" "$POOL" "$HAVE_HAPROXY" "$ROUNDS" "${cases[@]}" <<'PY'
import json, statistics, sys, datetime
tmp, ncpu, pcpu, bcpu, gcpu, dur, conns, pool, hap, rounds = sys.argv[1:11]
names = sys.argv[11:]
rounds = int(rounds)
what = {
    "direct": "generator -> backend",
    "minimal-401": "generator -> minimal monoio responder, fixed 401",
    "noauth": "Portcullis, no auth",
    "noauth-tok": "Portcullis, no auth, same token sent",
    "auth-hit": "Portcullis, RS256, cache hit",
    "miss-rs256": "Portcullis, RS256, unique tokens",
    "miss-es256": "Portcullis, ES256, unique tokens",
    "401": "Portcullis, 401 challenge",
    "direct-401": "Portcullis, directResponse 401",
    "metadata": "Portcullis, PRM metadata",
    "haproxy-rs256": "HAProxy 1 thread, jwt_verify RS256",
    "haproxy-unique": "HAProxy, jwt_verify, unique RS256 tokens",
    "haproxy-401": "HAProxy, 401 challenge",
}
def cpu_of(run, name):
    for c in run.get("cpu", []):
        if c["name"] == name:
            return c["us_per_request"]
    return None
med = lambda xs: statistics.median(xs) if xs else None
cases = {}
for n in names:
    sats = [json.load(open(f"{tmp}/{n}.sat{r}.json")) for r in range(1, rounds + 1)]
    half = json.load(open(f"{tmp}/{n}.half.json"))
    rps = [s["achieved_rps"] for s in sats]
    srv = [x for x in (cpu_of(s, "server") for s in sats) if x is not None]
    be = [x for x in (cpu_of(s, "backend") for s in sats) if x is not None]
    gen = [x for x in (cpu_of(s, "mcp-load") for s in sats) if x is not None]
    errs = sum(s["requests"]["errors"] for s in sats) + half["requests"]["errors"]
    classes = {}
    for s in sats + [half]:
        for k, v in s["errors"].items():
            if v:
                classes[k] = classes.get(k, 0) + v
    cases[n] = {
        "what": what.get(n, n),
        "saturation_rps": med(rps), "saturation_rps_rounds": rps,
        "server_cpu_us_per_req": med(srv), "server_cpu_us_rounds": srv,
        "backend_cpu_us_per_req": med(be) if n not in ("minimal-401", "401", "direct-401", "metadata", "haproxy-401") else None,
        "generator_cpu_us_per_req": med(gen),
        "half_offered_rps": half["offered_rps"], "half_achieved_rps": half["achieved_rps"],
        "half_latency_us": half["latency_us"], "errors": errs, "errors_by_class": classes,
    }
out = {"generated": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": int(ncpu),
       "layout": {"server_cpu": pcpu, "backend_cpu": bcpu, "generator_cpus": gcpu},
       "rounds": rounds, "duration_s": float(dur), "connections": int(conns), "token_pool": int(pool),
       "cases": cases, "ratios": {}}
rps = lambda n: cases[n]["saturation_rps"] if n in cases else None
cpu = lambda n: cases[n]["server_cpu_us_per_req"] if n in cases else None
def ratio(a, b, f):
    x, y = f(a), f(b)
    return round(x / y, 3) if x and y else None
# Throughput ratio a/b, and per-core ratio: b's CPU per request over a's. Each is the median of
# the per-round ratios (the two cases of a round ran minutes apart at most; the machine's speed
# drifts more than that between rounds), with their range; the ratio of the medians is kept too.
def paired(a, b, key, invert):
    xs, ys = cases[a][key], cases[b][key]
    rs = [(y / x if invert else x / y) for x, y in zip(xs, ys) if x and y]
    return (round(statistics.median(rs), 3), round(min(rs), 3), round(max(rs), 3)) if rs else (None, None, None)
def both(key, a, b, target, note=""):
    if a not in cases or b not in cases:
        return
    t, tlo, thi = paired(a, b, "saturation_rps_rounds", False)
    c, clo, chi = paired(a, b, "server_cpu_us_rounds", True)
    out["ratios"][key] = {"throughput": t, "throughput_range": [tlo, thi], "per_core": c, "per_core_range": [clo, chi],
                          "throughput_of_medians": ratio(a, b, rps), "per_core_of_medians": ratio(b, a, cpu),
                          "target": target, "note": note}
both("auth-hit / noauth", "auth-hit", "noauth", 0.95)
both("auth-hit / noauth-tok", "auth-hit", "noauth-tok", 0.95, "same request bytes on both sides")
both("miss-rs256 / noauth", "miss-rs256", "noauth", None)
both("miss-es256 / noauth", "miss-es256", "noauth", None)
both("401 / direct-401", "401", "direct-401", 0.95)
both("401 / minimal-401", "401", "minimal-401", 0.85, "same request, same 401 challenge")
both("auth-hit / haproxy-rs256", "auth-hit", "haproxy-rs256", 4.0)
both("miss-rs256 / haproxy-unique", "miss-rs256", "haproxy-unique", 1.5)
both("401 / haproxy-401", "401", "haproxy-401", None)
if "401" in cases and cases["401"]["generator_cpu_us_per_req"] and cpu("401"):
    g = cases["401"]["generator_cpu_us_per_req"]
    out["ratios"]["generator headroom on the 401 path"] = {
        "throughput": None, "per_core": round(cpu("401") / g, 3), "target": 2.0,
        "note": f"Portcullis worker {cpu('401'):.2f} µs/req vs mcp-load {g:.2f} µs/req: one generator core sustains this many times what one worker serves"}
f = lambda x, d=1: "-" if x is None else f"{x:,.{d}f}"
rows = []
for n, c in cases.items():
    l = c["half_latency_us"]
    cap = 1e6 / c["server_cpu_us_per_req"] if c["server_cpu_us_per_req"] else None
    rows.append(f"| {n} | {c['what']} | {f(c['saturation_rps'], 0)} | {f(c['server_cpu_us_per_req'], 2)} | {f(cap, 0)} | "
                f"{f(c['backend_cpu_us_per_req'], 2)} | {f(c['generator_cpu_us_per_req'], 2)} | {f(c['half_achieved_rps'], 0)} | "
                f"{l['p50']/1000:.3f} | {l['p99']/1000:.3f} | {l['p999']/1000:.3f} | {c['errors']} |")
md = [
    f"# Portcullis auth overhead ({out['generated']})", "",
    f"{ncpu} CPUs; server under test on CPU {pcpu}, backend on CPU {bcpu}, generator on CPU {gcpu}; one Portcullis worker; "
    f"{conns} connections; saturation = median of {rounds} interleaved closed-loop rounds of {dur} s; latency = one open-loop "
    f"run at 50% of that rate, corrected for coordinated omission. CPU = user + kernel time of all the process's threads "
    f"in the measured window, per answered request; per-core capacity = 10⁶ / server µs. Unique-token pools of {pool} "
    "(cache: 10000 per worker).", "",
    "| case | what | saturation req/s | server CPU µs/req | per-core capacity req/s | backend µs/req | generator µs/req | achieved @50% | p50 ms | p99 ms | p99.9 ms | errors |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    *rows, "",
    "Ratios: median over the rounds of each round's ratio (range in brackets).", "",
    "| ratio | throughput | per core (CPU) | target | note |", "|---|---:|---:|---:|---|",
]
for k, r in out["ratios"].items():
    if r["throughput"] is None and r["per_core"] is None:
        continue
    t = "-" if r["target"] is None else f"≥ {r['target']}"
    rng = lambda lo_hi: "" if lo_hi is None or None in lo_hi else f" [{lo_hi[0]:.2f}–{lo_hi[1]:.2f}]"
    md.append(f"| {k} | {f(r['throughput'], 3)}{rng(r.get('throughput_range'))} | **{f(r['per_core'], 3)}**{rng(r.get('per_core_range'))} | {t} | {r['note']} |")
md.append("")
if int(pool) < 20000:
    md.append(f"- **Caution:** the unique-token pool ({pool}) is under twice the per-worker cache (10000): the miss cases may hit the cache.")
if hap != "1":
    md.append("- HAProxy not measured: `haproxy` (and `openssl`) not on PATH (`apt-get install -y haproxy`).")
if "direct" in cases:
    d50 = cases["direct"]["half_latency_us"]
    md.append("- added latency at 50% load vs direct (p50 / p99): " + ", ".join(
        f"{n} {(c['half_latency_us']['p50'] - d50['p50'])/1000:+.3f} / {(c['half_latency_us']['p99'] - d50['p99'])/1000:+.3f} ms"
        for n, c in cases.items() if n != "direct" and c["backend_cpu_us_per_req"] is not None))
open("target/overhead-report.md", "w").write("\n".join(md) + "\n")
json.dump(out, open("target/overhead-report.json", "w"), indent=2)
print("\n".join(md))
PY
echo "wrote target/overhead-report.md and target/overhead-report.json" >&2
