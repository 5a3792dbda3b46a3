// The TypeScript SDK v2 (@modelcontextprotocol/client) pinned to 2026-07-28 as a client of the
// hub: no initialize, per-request _meta, multi-round-trip input requests.
//
// Through the hub's /mcp with server-everything (a handshake-era stdio server) behind it as
// `everything` and the fixture as `fixture`:
//   - list tools; call everything__echo
//   - call everything__trigger-sampling-request: server-everything asks the hub for
//     sampling/createMessage; the hub turns that into an InputRequiredResult, the SDK answers it
//     through its sampling handler and retries, and the hub completes the parked upstream call
//   - the same for everything__trigger-elicitation-request (elicitation handler)
// Exits 0 when every check passed, 1 otherwise (each failure is printed).
//
// Usage: node ts_modern_test.mjs http://127.0.0.1:PORT/mcp
// (NODE_PATH or the working directory must resolve @modelcontextprotocol/client.)
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.MCP_HUB_TS_SDK_DIR || process.cwd(), 'x.js'));
const { Client, StreamableHTTPClientTransport } = require('@modelcontextprotocol/client');

const url = process.argv[2];
const failures = [];
const asked = [];
function check(cond, what) {
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
  if (!cond) failures.push(what);
}
const textOf = (r) => (r.content || []).map((c) => c.text || '').join(' ');

const client = new Client(
  { name: 'ts-modern-test', version: '1' },
  {
    capabilities: { sampling: {}, elicitation: { form: {} } },
    versionNegotiation: { mode: { pin: '2026-07-28' } },
  },
);
client.setRequestHandler('sampling/createMessage', async () => {
  asked.push('sampling');
  return {
    model: 'ts-modern-test',
    role: 'assistant',
    content: { type: 'text', text: 'a sampled answer' },
    stopReason: 'endTurn',
  };
});
client.setRequestHandler('elicitation/create', async () => {
  asked.push('elicitation');
  return { action: 'accept', content: { name: 'Ada', color: 'red' } };
});

try {
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  check(client.getProtocolEra() === 'modern', `era ${client.getProtocolEra()}`);
  check(
    client.getNegotiatedProtocolVersion() === '2026-07-28',
    `pinned to ${client.getNegotiatedProtocolVersion()}`,
  );
  const names = new Set((await client.listTools()).tools.map((t) => t.name));
  check(names.has('everything__echo'), 'everything__echo is listed');
  check(names.has('fixture__echo'), 'fixture__echo is listed');
  let r = await client.callTool({ name: 'everything__echo', arguments: { message: 'stateless hello' } });
  check(textOf(r).includes('stateless hello'), `everything__echo answered: ${JSON.stringify(textOf(r))}`);

  let tool = 'everything__trigger-sampling-request';
  check(names.has(tool), `${tool} is listed`);
  if (names.has(tool)) {
    r = await client.callTool({ name: tool, arguments: { prompt: 'Say hi', maxTokens: 20 } });
    check(asked.includes('sampling'), 'the sampling request reached the client as an input request');
    check(
      !r.isError && textOf(r).includes('a sampled answer'),
      `the sampling tool completed with the client's answer: ${JSON.stringify(textOf(r).slice(0, 120))}`,
    );
  }
  tool = 'everything__trigger-elicitation-request';
  check(names.has(tool), `${tool} is listed`);
  if (names.has(tool)) {
    r = await client.callTool({ name: tool, arguments: {} });
    check(asked.includes('elicitation'), 'the elicitation request reached the client as an input request');
    check(
      !r.isError && (textOf(r).includes('Ada') || textOf(r).includes('accept')),
      `the eliciting tool completed with the client's answer: ${JSON.stringify(textOf(r).slice(0, 160))}`,
    );
  }
} catch (e) {
  check(false, `no exception: ${e && e.stack ? e.stack : e}`);
} finally {
  await client.close().catch(() => {});
}
process.exit(failures.length ? 1 : 0);
