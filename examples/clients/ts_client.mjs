#!/usr/bin/env node
// Call the Portcullis quickstart's MCP route with the official TypeScript SDK
// (@modelcontextprotocol/sdk 1.32.2, Node >= 20).
//
//   npm ci --prefix examples/clients
//   TOKEN=<access token> node examples/clients/ts_client.mjs [url] [message]
//
// url defaults to $MCP_URL, else http://localhost:3000/mcp; message to "hello". The token is sent as
// `Authorization: Bearer $TOKEN` on every request. initialize -> tools/list -> tools/call echo
// {message} -> DELETE (ends the session). Prints four short lines, exits 0 iff all worked.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const token = process.env.TOKEN;
if (!token) {
  console.error("ts_client.mjs: set TOKEN to an access token (see examples/clients/README.md)");
  process.exit(1);
}
const url = new URL(process.argv[2] || process.env.MCP_URL || 'http://localhost:3000/mcp');
const message = process.argv[3] ?? 'hello';

const transport = new StreamableHTTPClientTransport(url, {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: 'portcullis-example-ts', version: '1.0.0' });
try {
  await client.connect(transport);
  const server = client.getServerVersion();
  console.log(`connected: ${server.name} ${server.version}, protocol ${transport.protocolVersion}`);
  const { tools } = await client.listTools();
  console.log(`tools: ${tools.map((t) => t.name).join(', ')}`);
  const result = await client.callTool({ name: 'echo', arguments: { message } });
  const text = result.content?.find((c) => c.type === 'text')?.text;
  console.log(`echo: ${text}`);
  if (result.isError || !text?.endsWith(`echo: ${message}`)) throw new Error(`unexpected echo result: ${JSON.stringify(result)}`);
  await transport.terminateSession();
  await client.close();
  console.log('ok');
} catch (e) {
  console.error(`ts_client.mjs: ${e?.message ?? e}`);
  process.exit(1);
}
