#!/usr/bin/env bash
# Loopback throughput of Portcullis's directResponse path against a minimal monoio responder,
# measured side by side in one run (alternating, several rounds), one worker each pinned to
# CPU 0 and wrk pinned to CPU 1. Prints per-round numbers and the median ratio.
#
#   benches/direct_vs_minimal.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Needs wrk (apt-get install wrk). Target: Portcullis ≥ 0.85× the minimal responder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${3:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --bin portcullis --example minimal_responder
BIN=target/release/portcullis
MIN=target/release/examples/minimal_responder
tmp=$(mktemp -d)
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PP=$(pick_port); MP=$(pick_port); SP=$(pick_port); RP=$(pick_port)
cat >"$tmp/direct.yaml" <<YAML
config:
  statsAddr: 127.0.0.1:$SP
  readinessAddr: 127.0.0.1:$RP
binds:
- port: $PP
  listeners:
  - routes:
    - name: direct
      policies:
        directResponse: {body: hello, status: 200}
YAML
RUST_LOG=warn PORTCULLIS_BIND_ADDR=127.0.0.1 taskset -c 0 "$BIN" -f "$tmp/direct.yaml" --workers 1 >"$tmp/p.log" 2>&1 &
P1=$!
taskset -c 0 "$MIN" "$MP" >"$tmp/m.log" 2>&1 &
P2=$!
trap 'kill $P1 $P2 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PP/" >/dev/null && curl -sf "http://127.0.0.1:$MP/" >/dev/null && break; sleep 0.1; done
rate() { taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print $2}'; }
ratios=()
echo "round  portcullis_rps  minimal_rps  ratio"
for r in $(seq "$ROUNDS"); do
  a=$(rate "$PP"); b=$(rate "$MP")
  ratio=$(python3 -c "print(f'{$a/$b:.3f}')")
  ratios+=("$ratio")
  echo "$r  $a  $b  $ratio"
done
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print(f"median ratio portcullis/minimal = {statistics.median(r):.3f} (rounds: {', '.join(map(str, r))})")
PY
