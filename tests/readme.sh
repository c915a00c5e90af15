#!/usr/bin/env bash
# Runs every shell command README.md shows, exactly as written, in a fresh clone of this
# repository, and checks each block's output against the `text` block that follows it.
#
#   tests/readme.sh [README.md]         (CI runs it as a step of .ci/run)
#
# Rules, so that README.md stays runnable:
# - Every ```sh block runs, in order, in one bash session from the clone's root: variables and
#   background jobs carry over from block to block, as they would in a reader's terminal.
# - A ```text block right after a ```sh block (blank lines between at most) is its expected
#   output: each of its lines must appear in the output, in that order, as a whole line; `…`
#   stands for any text, and a line that is only `…` is skipped.
# - An HTML comment right before a block steers it:
#     <!-- readme-test: background ready=URL -->  run it in the background, wait until URL
#                                                  answers 2xx (up to 20 minutes: a first build);
#     <!-- readme-test: skip REASON -->            do not run it (REASON is printed).
# - A block fails when its last command fails or its output does not match. Every process the
#   blocks started is stopped at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
readme=${1:-$here/README.md}
work=$(mktemp -d /tmp/portcullis-readme.XXXXXX)
clone=$work/repo

# The commit under test: the work tree's tracked changes when there are any, else HEAD.
commit=$(git -C "$here" stash create 2>/dev/null)
[ -n "$commit" ] || commit=$(git -C "$here" rev-parse HEAD)
if ! git clone -q --no-checkout "$here" "$clone" || ! git -C "$clone" checkout -q "$commit"; then
  echo "readme: cannot clone $here"
  exit 1
fi
echo "readme: fresh clone of $(git -C "$here" rev-parse --short "$commit") in $clone"

# Split README.md into blocks: blocks/N.sh (+ N.expect, N.mode).
mkdir -p "$work/blocks"
python3 - "$readme" "$work/blocks" <<'PY' || exit 1
import re, sys, pathlib
text = pathlib.Path(sys.argv[1]).read_text().splitlines()
out = pathlib.Path(sys.argv[2])
blocks, i, pending, last_sh = [], 0, None, None
while i < len(text):
    line = text[i]
    m = re.match(r"\s*<!-- readme-test: (.*?) -->\s*$", line)
    if m:
        pending = m.group(1)
        i += 1
        continue
    m = re.match(r"```(\w*)\s*$", line)
    if not m:
        if line.strip():
            last_sh = None  # prose between a command and a text block: not its output
        i += 1
        continue
    lang = m.group(1)
    j = i + 1
    body = []
    while j < len(text) and not text[j].startswith("```"):
        body.append(text[j])
        j += 1
    if lang == "sh":
        blocks.append({"sh": "\n".join(body) + "\n", "mode": pending or "run", "line": i + 1})
        last_sh = len(blocks) - 1
    elif lang == "text" and last_sh is not None:
        blocks[last_sh]["expect"] = "\n".join(body) + "\n"
        last_sh = None
    else:
        last_sh = None
    pending = None
    i = j + 1
for n, b in enumerate(blocks):
    (out / f"{n:03}.sh").write_text(b["sh"])
    (out / f"{n:03}.mode").write_text(b["mode"] + "\n")
    (out / f"{n:03}.line").write_text(str(b["line"]) + "\n")
    if "expect" in b:
        (out / f"{n:03}.expect").write_text(b["expect"])
print(f"readme: {len(blocks)} shell blocks")
PY

# Checks that every expected line appears, in order, in the output.
check_output() { # expect_file output_file
  python3 - "$1" "$2" <<'PY'
import re, sys
expect = open(sys.argv[1]).read().splitlines()
got = [l.rstrip("\r\n ").rstrip("\r") for l in open(sys.argv[2], errors="replace").read().splitlines()]
k = 0
for e in expect:
    e = e.rstrip()
    if not e or e == "…":
        continue
    pat = re.compile("^" + ".*".join(re.escape(p) for p in e.split("…")) + "$")
    while k < len(got) and not pat.match(got[k].rstrip()):
        k += 1
    if k == len(got):
        print(f"readme:   expected line not found (in order): {e}")
        sys.exit(1)
    k += 1
PY
}

bg_pids=()
bg_blocks=()
cleanup() {
  for p in "${bg_pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
  # Jobs the blocks themselves put in the background.
  local jobs_left
  mapfile -t jobs_left < <(jobs -p)
  for p in "${jobs_left[@]}"; do pkill -TERM -P "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in "${bg_pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'echo "readme: FAILED: a block ran over ${README_BLOCK_TIMEOUT:-900}s"; exit 1' TERM

cd "$clone" || exit 1
failed=0
passed=0
for sh in "$work"/blocks/*.sh; do
  n=${sh%.sh}
  mode=$(cat "$n.mode")
  line=$(cat "$n.line")
  first=$(head -n1 "$sh")
  case "$mode" in
  skip*)
    echo "readme: - README.md:$line skipped (${mode#skip }): $first"
    continue
    ;;
  background*)
    url=$(sed -n 's/.*ready=\([^ ]*\).*/\1/p' "$n.mode")
    echo "readme: & README.md:$line in the background: $first"
    setsid bash -c "source '$sh'" >"$n.out" 2>&1 &
    bg_pids+=($!)
    t0=$SECONDS
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
      if ! kill -0 "${bg_pids[-1]}" 2>/dev/null || ((SECONDS - t0 > 1200)); then
        echo "readme: FAILED README.md:$line: not ready at $url; its output:"
        tail -n 40 "$n.out"
        exit 1
      fi
      sleep 1
    done
    echo "readme:   ready after $((SECONDS - t0))s"
    bg_blocks+=("$n")
    continue
    ;;
  esac
  echo "readme: \$ README.md:$line: $first"
  t0=$SECONDS
  # As in a reader's shell: no nounset/pipefail, no stdin; a block that hangs is stopped.
  set +u +o pipefail
  (sleep "${README_BLOCK_TIMEOUT:-900}" && kill -TERM $$) 2>/dev/null &
  timeout_pid=$!
  # shellcheck disable=SC1090
  source "$sh" >"$n.out" 2>&1 </dev/null
  rc=$?
  pkill -P "$timeout_pid" 2>/dev/null
  kill "$timeout_pid" 2>/dev/null
  set -u -o pipefail
  ok=1
  if [ "$rc" -ne 0 ]; then
    echo "readme: FAILED README.md:$line: exit status $rc"
    ok=0
  elif [ -f "$n.expect" ] && ! check_output "$n.expect" "$n.out"; then
    echo "readme: FAILED README.md:$line: the output does not match the README"
    ok=0
  fi
  if [ $ok = 1 ]; then
    passed=$((passed + 1))
    echo "readme:   ok ($((SECONDS - t0))s)"
  else
    failed=$((failed + 1))
    echo "readme: --- its output:"
    tail -n 40 "$n.out"
    echo "readme: ---"
  fi
done
# What the background commands printed meanwhile (the quickstart's start-up lines).
for n in "${bg_blocks[@]}"; do
  [ -f "$n.expect" ] || continue
  if check_output "$n.expect" "$n.out"; then
    passed=$((passed + 1))
    echo "readme:   ok: README.md:$(cat "$n.line")'s output"
  else
    failed=$((failed + 1))
    echo "readme: FAILED README.md:$(cat "$n.line"): the output does not match the README"
    tail -n 40 "$n.out"
  fi
done
echo "readme: $passed passed, $failed failed"
cleanup
trap - EXIT
if [ "$failed" -eq 0 ]; then rm -rf "$work"; else echo "readme: outputs kept in $work/blocks"; fi
[ "$failed" -eq 0 ]
