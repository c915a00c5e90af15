#!/usr/bin/env bash
# Soak: does Portcullis stay flat under steady load? Runs DURATION (default 600 s) of MCP session
# churn through the relay with authentication — every virtual user initializes a session with a
# valid ES256 token, lists tools, makes K tools/call, DELETEs, and starts over — at LOAD_SHARE
# (default 0.8) of the saturation rate measured first, open loop. Every SAMPLE seconds it records
# the proxy's RSS, open file descriptors and child processes. Report (target/soak-report.md):
# errors (target 0), RSS drift after warm-up (target within ±5%), fds and children at the end
# against the baseline before the load (target: back to it).
#
#   benches/soak.sh                      # 10 minutes
#   DURATION=60 benches/soak.sh          # a short run
# Knobs: DURATION (s), WARMUP (s, default 60; RSS drift is measured after it), LOAD_SHARE,
# CONNS (virtual users, 32), CALLS (tools/call per session, 5), SAMPLE (s, 10), NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}; DURATION=${DURATION%s}
WARMUP=${WARMUP:-60}; WARMUP=${WARMUP%s}
LOAD_SHARE=${LOAD_SHARE:-0.8}
CONNS=${CONNS:-32}
CALLS=${CALLS:-5}
SAMPLE=${SAMPLE:-10}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin portcullis --bin mcp-load
BIN_DIR=${BIN_DIR:-$PWD/target/release}
LOAD=$BIN_DIR/mcp-load
BIN=$BIN_DIR/portcullis
KEYS=$PWD/tests/data/load
ISS=http://127.0.0.1/mcp-load AUD=mcp-load

. benches/lib.sh
BP=$(pick_port) JP=$(pick_port) PP=$(pick_port) SP=$(pick_port) RP=$(pick_port)
"$LOAD" backend --port "$BP" >"$tmp/backend.log" 2>&1 &
pids+=($!)
"$LOAD" jwks --port "$JP" --sign-key "$KEYS/ec-p256.pem" >"$tmp/jwks.log" 2>&1 &
pids+=($!)
cat >"$tmp/portcullis.yaml" <<YAML
config:
  statsAddr: 127.0.0.1:$SP
  readinessAddr: 127.0.0.1:$RP
  # Every virtual user is the same subject: lift the per-subject session cap.
  # Sessions the generator leaves open when it stops end 5 s later (expiry runs every 5 s).
  mcp: {maxSessionsPerSubject: 100000, sessionTtl: 5s}
  # Idle upstream connections are closed after 2 s, so that the final count of open fds shows
  # what is left over, not the keep-alive pool.
  backend: {poolIdleTimeout: 2s}
binds:
- port: $PP
  listeners:
  - routes:
    - name: relay
      matches: [{path: {exact: /mcp}}]
      policies:
        mcpAuthentication:
          issuer: $ISS
          audiences: ['$AUD']
          jwks: {url: 'http://127.0.0.1:$JP/jwks.json'}
          resourceMetadata:
            resource: http://localhost:$PP/mcp
      backends: [{mcp: {targets: [{name: be, mcp: {host: 127.0.0.1, port: $BP, path: /mcp}}]}}]
YAML
wait_port "$BP"; wait_port "$JP"
PORTCULLIS_BIND_ADDR=127.0.0.1 "$BIN" -f "$tmp/portcullis.yaml" >"$tmp/portcullis.log" 2>&1 &
pids+=($!)
PROXY=$!
wait_port "$PP"
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$RP/healthz/ready" >/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$PP/mcp
run() { "$LOAD" run --url "$URL" -s session -k "$CALLS" --sign-key "$KEYS/ec-p256.pem" --iss "$ISS" --aud "$AUD" --json --quiet "$@"; }

sample() { # seconds since start, RSS KiB, fds, children
  local rss fds kids
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PROXY/status")
  fds=$(ls "/proc/$PROXY/fd" | wc -l)
  kids=$(cat /proc/"$PROXY"/task/*/children 2>/dev/null | wc -w)
  echo "$1 $rss $fds $kids"
}
base=$(sample 0)
echo "baseline (s rss_kib fds children): $base"
run -c "$CONNS" -d 10s -w 2s >"$tmp/saturation.json"
SAT=$(python3 -c "import json; print(json.load(open('$tmp/saturation.json'))['achieved_rps'])")
RATE=$(python3 -c "print(int($SAT * $LOAD_SHARE))")
echo "saturation: $SAT req/s; soaking at $RATE req/s for $DURATION s"
sleep 14
idle=$(sample 0)
run -c "$CONNS" -r "$RATE" -d "${DURATION}s" -w 0s --timeout 10s >"$tmp/soak.json" &
LOADER=$!
start=$SECONDS
: >"$tmp/samples.txt"
while kill -0 "$LOADER" 2>/dev/null; do
  sample $((SECONDS - start)) >>"$tmp/samples.txt"
  sleep "$SAMPLE"
done
wait "$LOADER" || true
sleep 14
end=$(sample $((SECONDS - start)))
fd_kinds() { ls -l "/proc/$PROXY/fd" 2>/dev/null | awk 'NR>1 {print $NF}' | sed 's/:\[.*//; s/^\/.*$/file/' | sort | uniq -c | tr '\n' ' '; }
echo "fds by kind at the end: $(fd_kinds)"
ss -tanp 2>/dev/null | grep "pid=$PROXY," | awk -v pp=":$PP" -v bp=":$BP" '{s=$1; if (index($4, pp)) s=s" client"; else if (index($5, bp)) s=s" upstream"; else s=s" other"; print s}' | sort | uniq -c | sed 's/^/  tcp /'
mkdir -p target
python3 - "$tmp/soak.json" "$tmp/samples.txt" "$idle" "$end" "$WARMUP" "$SAT" "$RATE" <<'PY'
import json, sys
rep, samples, idle, end, warm, sat, rate = sys.argv[1:8]
r = json.load(open(rep))
rows = [list(map(int, l.split())) for l in open(samples) if l.strip()]
idle = list(map(int, idle.split())); end = list(map(int, end.split()))
after = [x for x in rows if x[0] >= int(warm)] or rows
rss = [x[1] for x in after]
first, lo, hi, last = rss[0], min(rss), max(rss), rss[-1]
drift = (last - first) / first * 100 if first else 0
spread = (hi - lo) / first * 100 if first else 0
errs = r["requests"]["errors"]
ok_rss = abs(drift) <= 5
ok = errs == 0 and ok_rss and end[2] <= idle[2] and end[3] <= idle[3]
lines = [
    "# Soak",
    "",
    f"{'PASS' if ok else 'FAIL'}: {r['requests']['ok']:,} requests and {r['sessions_completed']:,} sessions in "
    f"{r['duration_s']:.0f} s at {r['achieved_rps']:,.0f} req/s ({float(rate)/float(sat)*100:.0f}% of the "
    f"{float(sat):,.0f} req/s saturation), {errs} errors {dict((k, v) for k, v in r['errors'].items() if v)}.",
    "",
    f"- RSS after the {warm} s warm-up: {first} KiB at first, {last} KiB at the end ({drift:+.1f}%; "
    f"range {lo}–{hi} KiB, {spread:.1f}% of the first) — target within ±5%.",
    f"- Open fds: {idle[2]} before the load, {end[2]} after it. Child processes: {idle[3]} before, {end[3]} after.",
    f"- Latency µs: p50 {r['latency_us']['p50']}, p99 {r['latency_us']['p99']}, max {r['latency_us']['max']}.",
    "",
    "| t (s) | RSS KiB | fds | children |",
    "|---|---|---|---|",
    *[f"| {t} | {a} | {b} | {c} |" for t, a, b, c in rows],
    "",
]
text = "\n".join(lines)
print(text)
open("target/soak-report.md", "w").write(text)
PY
