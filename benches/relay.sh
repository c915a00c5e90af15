#!/usr/bin/env bash
# Which script: for "how much does MCP auth cost me", run benches/overhead.sh: it answers that
# first, on a plain `host` route and through the MCP relay. This script measures the relay
# itself: tools/call through Portcullis's MCP relay (`mcp` backend -> the mcp-load backend over
# streamable HTTP) against the backend directly, with and without mcpAuthentication (one RS256
# token: verified-token cache hits). Interleaved rounds in one run; prints medians and ratios,
# and first the relay's auth cost: relay+auth CPU per call minus relay's (both send the same
# token, so the request bytes match), paired per round. A range that includes 0 (or 1.0 for a
# ratio) is printed as "no measurable difference".
#
#   benches/relay.sh [ROUNDS] [DURATION]          # e.g. benches/relay.sh 5 4s
#
# Layouts on 2 CPUs (the generator always has a CPU it shares with at most the backend):
#   relay      Portcullis alone on CPU 0; generator and backend on CPU 1.
#   direct-1   generator and backend on CPU 1, CPU 0 idle: the same placement without the proxy
#              (the proxy-on-its-own-cores layout of agentgateway's published benchmark).
#   direct-2   backend on CPU 0, generator on CPU 1: the direct path's best use of both CPUs.
#   shared     Portcullis and backend on CPU 0, generator on CPU 1 (as `direct-2` plus the proxy).
#   one-cpu    generator, backend and a second Portcullis all on CPU 1 (latency floor only: no
#              cross-CPU wakeups, which cost tens of microseconds each on virtual machines).
# Throughput: closed loop, 32 connections. CPU per call from /proc schedstat (`--watch`).
# Latency: open loop at 25% and 50% of the relay+auth saturation of two layouts (dedicated: the
# relay layout against direct-1; shared: the shared layout against direct-2), ROUNDS times; plus
# one connection in a closed loop (the added hop's floor with nothing queued).
# First, the machine's own scheduling noise: a busy loop on each CPU records how often and how
# long it is stopped (timer ticks, host preemption on VMs); latency percentiles cannot be better.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DUR=${2:-4s}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin portcullis --bin mcp-load
BIN_DIR=${BIN_DIR:-target/release}
L=$BIN_DIR/mcp-load; B=$BIN_DIR/portcullis; K=tests/data/load/rsa-2048.pem
pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
B0=$(pick); B1=$(pick); JP=$(pick); PP=$(pick); SP=$(pick); RP=$(pick); P1=$(pick)
tmp=$(mktemp -d)
hiccups() {
  taskset -c "$1" python3 - "$1" <<'PY'
import sys, time
t = time.perf_counter_ns; dur = 3e9; start = last = t(); gaps = []
while last - start < dur:
    now = t()
    if now - last > 20_000: gaps.append(now - last)
    last = now
n = lambda us: sum(1 for g in gaps if g > us * 1000)
print(f"  CPU {sys.argv[1]} noise (3 s busy loop): {n(20) / 3:.0f}/s stops >20 us, {n(100) / 3:.1f}/s >100 us,"
      f" {n(1000) / 3:.1f}/s >1 ms, longest {max(gaps, default=0) / 1000:.0f} us, {sum(gaps) / dur * 100:.2f}% of the time")
PY
}
hiccups 0 >"$tmp/noise0" & hiccups 1 >"$tmp/noise1"; wait
taskset -c 0 "$L" backend --port "$B0" >"$tmp/backend0.log" 2>&1 & B0PID=$!
taskset -c 1 "$L" backend --port "$B1" >"$tmp/backend1.log" 2>&1 & B1PID=$!
"$L" jwks --sign-key "$K" --port "$JP" >"$tmp/jwks.log" 2>&1 & JPID=$!
auth() {
  cat <<YAML
      policies:
        mcpAuthentication:
          issuer: http://idp.bench/realms/mcp
          audiences: [http://localhost:$PP/mcp]
          jwks: {url: http://127.0.0.1:$JP/jwks.json}
          resourceMetadata: {resource: http://localhost:$PP$1}
YAML
}
be() { echo "      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $1, path: /mcp}}]}}]"; }
{
  # One subject for every virtual user: the per-subject session cap (default 64) is lifted.
  echo "config: {statsAddr: 127.0.0.1:$SP, readinessAddr: 127.0.0.1:$RP, mcp: {maxSessionsPerSubject: 100000, maxSessionsPerWorker: 100000}}"
  echo "binds:"
  echo "- port: $PP"
  echo "  listeners:"
  echo "  - routes:"
  route() { printf '    - name: %s\n      matches: [{path: {exact: %s}}]\n' "$1" "$2"; }
  route open /open/mcp; be "$B1"
  route auth /mcp; auth /mcp; be "$B1"
  route shared /shared/mcp; auth /shared/mcp; be "$B0"
} >"$tmp/relay.yaml"
RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c 0 "$B" -f "$tmp/relay.yaml" --workers 1 >"$tmp/proxy.log" 2>&1 & PPID2=$!
# The one-cpu layout's proxy: the auth route only, on CPU 1 next to generator and backend.
sed -e "s/- port: $PP/- port: $P1/" -e "s/127.0.0.1:$SP/127.0.0.1:$(pick)/" -e "s/127.0.0.1:$RP/127.0.0.1:$(pick)/" \
  "$tmp/relay.yaml" >"$tmp/relay1.yaml"
RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c 1 "$B" -f "$tmp/relay1.yaml" --workers 1 >"$tmp/proxy1.log" 2>&1 & PPID3=$!
trap 'kill $B0PID $B1PID $JPID $PPID2 $PPID3 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$SP/metrics" && break; sleep 0.1; done
sleep 1
TOK=$("$L" token --sign-key "$K" --iss http://idp.bench/realms/mcp --aud "http://localhost:$PP/mcp")
# One closed-loop run; prints "rps server_us backend_us" (CPU per request from --watch).
rate() {
  local url=$1 server=$2 backend=$3
  "$L" run --url "$url" --scenario call --connections 32 --duration "$DUR" --warmup 1s --cpus 1 --json \
    --watch "server=$server" --watch "backend=$backend" "${@:4}" 2>/dev/null |
    python3 -c 'import json,sys
d=json.load(sys.stdin); e=sum(d["errors"].values()); c={x["name"]: x["us_per_request"] for x in d["cpu"]}
print(d["achieved_rps"], c["server"], c["backend"]) if e == 0 else print(f"0 0 0 errors:{e}")'
}
rows=()
echo "round | req/s: direct-1 direct-2 relay relay+auth shared+auth | CPU us/call: backend(direct-1) backend(direct-2) relay relay+auth shared+auth" >&2
for r in $(seq "$ROUNDS"); do
  cases=(d1 d2 open auth shared)
  # Rotate the order each round so that drift does not favour a case.
  cases=("${cases[@]:$(( (r - 1) % 5 ))}" "${cases[@]:0:$(( (r - 1) % 5 ))}")
  declare -A got=()
  for c in "${cases[@]}"; do
    case $c in
      d1) got[$c]=$(rate "http://127.0.0.1:$B1/mcp" "$B1PID" "$B1PID") ;;
      d2) got[$c]=$(rate "http://127.0.0.1:$B0/mcp" "$B0PID" "$B0PID") ;;
      # The same token as relay+auth (ignored by this route): the same request bytes.
      open) got[$c]=$(rate "http://127.0.0.1:$PP/open/mcp" "$PPID2" "$B1PID" --token "$TOK") ;;
      auth) got[$c]=$(rate "http://127.0.0.1:$PP/mcp" "$PPID2" "$B1PID" --token "$TOK") ;;
      shared) got[$c]=$(rate "http://127.0.0.1:$PP/shared/mcp" "$PPID2" "$B0PID" --token "$TOK") ;;
    esac
  done
  read -r d1 d1b _ <<<"${got[d1]}"; read -r d2 d2b _ <<<"${got[d2]}"
  read -r o op _ <<<"${got[open]}"; read -r a ap _ <<<"${got[auth]}"; read -r s sp _ <<<"${got[shared]}"
  echo "$r | $d1 $d2 $o $a $s | $d1b $d2b $op $ap $sp" >&2
  rows+=("$d1 $d2 $o $a $s $d1b $op $ap $sp $d2b")
  unset got
done
sat_a=$(python3 -c 'import statistics,sys; print(round(statistics.median(float(r.split()[3]) for r in sys.argv[1:])))' "${rows[@]}")
sat_s=$(python3 -c 'import statistics,sys; print(round(statistics.median(float(r.split()[4]) for r in sys.argv[1:])))' "${rows[@]}")
# Open loop at a fixed offered rate, relay+auth against the same backend directly; p50 p99.
lat() {
  "$L" run --url "$1" --scenario call --connections 32 --duration "$DUR" --warmup 1s --cpus 1 --json --quiet \
    --rate "$2" "${@:3}" | python3 -c 'import json,sys; l=json.load(sys.stdin)["latency_us"]; print(l["p50"], l["p99"])'
}
# One connection, closed loop: the round trip with nothing queued (the extra hop's floor).
single() {
  "$L" run --url "$1" --scenario call --connections 1 --duration "$DUR" --warmup 1s --cpus 1 --json --quiet \
    "${@:2}" | python3 -c 'import json,sys; l=json.load(sys.stdin)["latency_us"]; print(l["p50"], l["p99"])'
}
# Layouts: dedicated (relay route -> backend on CPU 1, direct = the same backend) and shared
# (relay route on CPU 0 -> backend on CPU 0, direct = that backend); at 25% and 50% of the
# layout's relay+auth saturation, and with one connection.
lrows=()
for r in $(seq "$ROUNDS"); do
  for lay in dedicated shared; do
    if [ $lay = dedicated ]; then d="http://127.0.0.1:$B1/mcp"; v="http://127.0.0.1:$PP/mcp"; sat=$sat_a
    else d="http://127.0.0.1:$B0/mcp"; v="http://127.0.0.1:$PP/shared/mcp"; sat=$sat_s; fi
    for pct in 25 50; do
      q=$((sat * pct / 100))
      if [ $((r % 2)) = 1 ]; then dl=$(lat "$d" $q); vl=$(lat "$v" $q --token "$TOK")
      else vl=$(lat "$v" $q --token "$TOK"); dl=$(lat "$d" $q); fi
      echo "latency round $r, $lay, $pct% ($q req/s): direct p50/p99 $dl us, relay+auth $vl us" >&2
      lrows+=("$lay $pct $q $dl $vl")
    done
    ds=$(single "$d"); vs=$(single "$v" --token "$TOK")
    echo "latency round $r, $lay, one connection: direct p50/p99 $ds us, relay+auth $vs us" >&2
    lrows+=("$lay 0 0 $ds $vs")
  done
  ds=$(single "http://127.0.0.1:$B1/mcp"); vs=$(single "http://127.0.0.1:$P1/mcp" --token "$TOK")
  echo "latency round $r, one-cpu, one connection: direct p50/p99 $ds us, relay+auth $vs us" >&2
  lrows+=("one-cpu 0 0 $ds $vs")
done
cat "$tmp/noise0" "$tmp/noise1"
python3 - "${#rows[@]}" "${rows[@]}" "${lrows[@]}" <<'PY'
import statistics as st, sys
from collections import defaultdict
n = int(sys.argv[1])
rows = [list(map(float, r.split())) for r in sys.argv[2:2 + n]]
def med(xs): return st.median(xs)
def ratio(i, j):
    r = [x[i] / x[j] for x in rows if x[j] > 0]
    if len(r) >= 2 and min(r) <= 1.0 <= max(r):
        return f"no measurable difference [{min(r):.3f}-{max(r):.3f}]"
    return f"{med(r):.3f} [{min(r):.3f}-{max(r):.3f}]"
d1, d2, o, a, s, d1b, op, ap, sp, d2b = (med(c) for c in zip(*rows))
diff = [x[7] - x[6] for x in rows if x[6] > 0 and x[7] > 0]
if diff:
    lo, hi, m = min(diff), max(diff), med(diff)
    rng = f"[{lo:+.2f} .. {hi:+.2f} over {len(diff)} rounds]" if len(diff) >= 2 else "(1 round: no noise range)"
    if len(diff) >= 2 and lo <= 0 <= hi:
        print(f"auth through the MCP relay (cache hit): no measurable difference in proxy CPU per tools/call {rng}")
    else:
        print(f"auth through the MCP relay (cache hit): adds {m:+.2f} us of proxy CPU per tools/call {rng},"
              f" on top of {op:.2f} us for the relay without auth")
print(f"medians of {n} rounds (ratios: median of per-round ratios [range]):")
print(f"  req/s: direct-1 {d1:,.0f}, direct-2 {d2:,.0f}, relay {o:,.0f}, relay+auth {a:,.0f}, shared+auth {s:,.0f}")
print(f"  relay+auth / direct-1 (proxy on its own core, CPU 0 idle when direct): {ratio(3, 0)}")
print(f"  relay      / direct-1: {ratio(2, 0)}")
print(f"  relay+auth / direct-2 (both CPUs used by the direct path): {ratio(3, 1)}")
print(f"  shared+auth / direct-2 (proxy and backend on one CPU): {ratio(4, 1)}")
print(f"  CPU per tools/call: backend {d1b:.2f} us (next to the generator), {d2b:.2f} us (alone on CPU 0);"
      f" Portcullis relay {op:.2f} us, relay+auth {ap:.2f} us (alone on CPU 0), shared+auth {sp:.2f} us (next to the backend)")
print(f"  per core, both alone on CPU 0 with the generator on CPU 1: relay+auth = {d2b / ap:.3f}x the backend's calls per CPU-second")
groups = defaultdict(list)
for r in sys.argv[2 + n:]:
    lay, pct, q, d50, d99, v50, v99 = r.split()
    groups[(lay, int(pct), int(q))].append(tuple(map(float, (d50, d99, v50, v99))))
print("  latency (open loop, paced per request, corrected for coordinated omission; medians, added = median of per-round differences [range]):")
for (lay, pct, q), xs in groups.items():
    d50, d99, v50, v99 = (med(c) for c in zip(*xs))
    a50 = [x[2] - x[0] for x in xs]
    a99 = [x[3] - x[1] for x in xs]
    what = "one connection, closed loop" if pct == 0 else f"{pct}% of saturation, {q:,} req/s"
    print(f"    {lay:9} {what:36} direct p50 {d50:5.0f} p99 {d99:5.0f} | relay+auth p50 {v50:5.0f} p99 {v99:5.0f} | added p50 {med(a50):+5.0f} [{min(a50):+.0f}..{max(a50):+.0f}] p99 {med(a99):+5.0f} [{min(a99):+.0f}..{max(a99):+.0f}] us")
PY
