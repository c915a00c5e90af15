#!/usr/bin/env python3
"""Call the Portcullis quickstart's MCP route with the official Python SDK (PyPI `mcp` 2.3.0).

    TOKEN=<access token> python examples/clients/python_client.py [url] [message]

url defaults to $MCP_URL, else http://localhost:3000/mcp; message to "hello". The token is sent as
`Authorization: Bearer $TOKEN` on every request. The client connects in the SDK's default
mode="auto": it first probes `server/discover` at protocol 2026-07-28 and speaks that revision
when the answer says so (Portcullis does, for any server behind it); when a server answers that it
only speaks the 2025 protocol versions, the SDK falls back to `initialize`.
Then tools/list and tools/call echo {message}. Prints four short lines, exits 0 iff all worked.
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


seen: list[str] = []  # "<JSON-RPC method or HTTP method> <HTTP status>", one per HTTP exchange


async def main(url: str, token: str, message: str) -> None:
    async def on_request(req: httpx2.Request) -> None:
        try:
            req.extensions["rpc"] = json.loads(req.content).get("method") or "response"
        except Exception:
            req.extensions["rpc"] = req.method

    async def on_response(resp: httpx2.Response) -> None:
        seen.append(f"{resp.request.extensions.get('rpc')} {resp.status_code}")

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30, read=300),
        event_hooks={"request": [on_request], "response": [on_response]},
    )
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        probe = next((s for s in seen if s.startswith("server/discover")), None)
        fell_back = any(s.startswith("initialize") for s in seen)
        if probe and fell_back:
            how = f" (server/discover -> HTTP {probe.split()[1]}, fell back to initialize)"
        elif probe:
            how = " (server/discover, no initialize)"
        else:
            how = ""
        print(f"connected: {client.server_info.name} {client.server_info.version}, protocol {client.protocol_version}{how}")
        tools = await client.list_tools()
        print("tools:", ", ".join(t.name for t in tools.tools))
        result = await client.call_tool("echo", {"message": message})
        text = next((c.text for c in result.content if c.type == "text"), None)
        print("echo:", text)
        if result.is_error or not (text or "").endswith(f"echo: {message}"):
            raise RuntimeError(f"unexpected echo result: {result!r}")
    print("ok")


if __name__ == "__main__":
    token = os.environ.get("TOKEN")
    if not token:
        sys.exit("python_client.py: set TOKEN to an access token (see examples/clients/README.md)")
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MCP_URL") or "http://localhost:3000/mcp"
    message = sys.argv[2] if len(sys.argv) > 2 else "hello"
    try:
        asyncio.run(main(url, token, message))
    except BaseException as e:  # report the root cause in one line, not a task-group traceback
        if isinstance(e, KeyboardInterrupt):
            raise
        while isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        http = f" (HTTP: {', '.join(seen)})" if seen else ""
        sys.exit(f"python_client.py: {type(e).__name__}: {e}{http}")
