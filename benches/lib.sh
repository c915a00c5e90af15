# Shared by the bench scripts (sourced, not run): a temporary directory `$tmp` removed on exit,
# `pids` (every process started is appended and killed on exit), a free loopback port, and a
# wait for a port to open.
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
# The global and defaults sections every HAProxy comparison uses: one thread pinned to CPU $1,
# keep-alive to the backend (`http-reuse always`), logging off.
haproxy_global() {
  cat <<CFG
global
  nbthread 1
  cpu-map 1/1 $1
  log stderr format raw local0 emerg
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
CFG
}
