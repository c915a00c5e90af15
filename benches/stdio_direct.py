#!/usr/bin/env python3
"""The stdio half of benches/stdio.sh: drive an MCP stdio server over its own pipes, no proxy.

Starts SESSIONS copies of the server (`uv run src/main.py` in the fixture folder, pinned to
--cpu with taskset), initializes each, then runs a closed loop of tools/call (one request in
flight per copy, as a client session behind Portcullis has) for --warmup + --duration seconds
and prints one JSON line: calls per second in the measured window and the latency median/p99.
Every answer is checked (its id and a result carrying the echoed text).
"""

import argparse
import asyncio
import json
import statistics
import time


async def session(args, t_measure, t_end, lat, counts):
    cmd = ["taskset", "-c", str(args.cpu), args.uv, "run", "src/main.py"]
    p = await asyncio.create_subprocess_exec(
        *cmd, cwd=args.cwd, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        limit=16 * 1024 * 1024)

    async def call(msg):
        p.stdin.write((json.dumps(msg) + "\n").encode())
        await p.stdin.drain()
        while True:
            line = await p.stdout.readline()
            if not line:
                raise RuntimeError("the server exited")
            m = json.loads(line)
            if m.get("id") == msg.get("id"):
                return m

    init = await call({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "stdio-direct", "version": "1"}}})
    assert "result" in init, init
    p.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    await p.stdin.drain()
    i = 0
    try:
        while (now := time.monotonic()) < t_end:
            i += 1
            r = await call({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"message": "hi"}}})
            if r.get("result", {}).get("content", [{}])[0].get("text") != "echo: hi":
                counts["errors"] += 1
            elif now >= t_measure:
                counts["ok"] += 1
                lat.append(time.monotonic() - now)
    finally:
        p.stdin.close()
        try:
            await asyncio.wait_for(p.wait(), 5)
        except asyncio.TimeoutError:
            p.kill()
            await p.wait()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uv", required=True)
    ap.add_argument("--cwd", required=True)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--cpu", type=int, default=0)
    args = ap.parse_args()
    lat, counts = [], {"ok": 0, "errors": 0}
    # Start and initialize every copy before the clock starts (as mcp-load sets up sessions).
    start = time.monotonic() + 3.0
    t_measure, t_end = start + args.warmup, start + args.warmup + args.duration
    await asyncio.gather(*(session(args, t_measure, t_end, lat, counts) for _ in range(args.sessions)))
    lat.sort()
    print(json.dumps({
        "calls_per_s": round(counts["ok"] / args.duration, 1), "errors": counts["errors"],
        "p50_ms": round(statistics.median(lat) * 1e3, 3) if lat else None,
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1e3, 3) if lat else None,
    }))


asyncio.run(main())
