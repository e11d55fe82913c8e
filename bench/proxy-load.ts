/**
 * Load bench for the proxy: throughput and latency through the proxy (truncate, cache off, proxy-key
 * authentication and the path allow-list on, as a proxy holding the upstream key runs) against
 * the same fake upstream called directly, at 50 and 200 connections, then RSS of the proxy before
 * and after a 60-second soak at 200 connections. Upstream, proxy and load generator each run in
 * their own process. Prints figures; asserts nothing. Run: npm run bench:proxy
 *
 * The fake upstream answers after UPSTREAM_DELAY_MS (default: 0 and 200). With 0 it costs almost
 * nothing, so the comparison is the proxy's CPU against none; with 200 ms (still faster than any
 * model's answer) throughput is bounded by latency, as it is in production.
 */
import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { locomoMessages, parseLocomo } from './datasets/locomo.js';
import { readFileSync } from 'node:fs';
import { shippedLocomoPath } from './paths.js';
import { createProxy } from '../src/proxy/server.js';
import { createRouteTable } from '../src/compose/routes.js';
import { fakeModel } from './harness/fake-model.js';
import { machine, markdownTable, ms, table } from './harness/stats.js';
import { runStudy, studyFlags } from './harness/study.js';

const DURATION = Number(process.env.DURATION ?? 10);
const SOAK = Number(process.env.SOAK ?? 60);
const DELAYS = (process.env.UPSTREAM_DELAY_MS ?? '0,200').split(',').map(Number);
const CONNECTIONS = (process.env.CONNECTIONS ?? '50,200').split(',').map(Number);
const flags = studyFlags('bench:proxy', {});
const markdown = flags.md;
const self = fileURLToPath(import.meta.url);
const PROXY_KEY = 'pk-load-bench-key';
/** The same proxy, for a key in shadow mode: compaction runs, the request goes as it came. */
const SHADOW_KEY = 'pk-load-bench-shadow';

async function runUpstream(delay: number): Promise<void> {
  const { port } = await fakeModel(delay);
  process.send!({ port });
}

async function runProxy(upstreamPort: number): Promise<void> {
  const proxy = createProxy({
    upstream: `http://127.0.0.1:${upstreamPort}`,
    routes: createRouteTable({ defaults: { maxInputTokens: 1000, strategy: 'truncate', onBudgetUnreachable: 'pass-through' } }),
    cache: false,
    // As deployed with the server's key: callers authenticate with a proxy key, and only the chat endpoint is served.
    apiKey: 'sk-upstream-load',
    keys: [
      { key: PROXY_KEY, tenant: 'load' },
      { key: SHADOW_KEY, tenant: 'load-shadow', mode: 'shadow' },
    ],
    logger: pino({ level: 'silent' }),
  });
  const port = await proxy.listen(0);
  process.on('message', (message: { rss?: boolean; exit?: boolean }) => {
    if (message.rss) process.send!({ rss: process.memoryUsage().rss });
    // A clean exit (not a kill) lets --cpu-prof write its profile.
    if (message.exit) process.exit(0);
  });
  process.send!({ port });
}

async function child(role: string, ...args: string[]): Promise<{ process: ChildProcess; port: number }> {
  const spawned = fork(self, [role, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [message] = (await once(spawned, 'message')) as [{ port: number }];
  return { process: spawned, port: message.port };
}

async function rss(proxy: ChildProcess): Promise<number> {
  proxy.send({ rss: true });
  for (;;) {
    const [message] = (await once(proxy, 'message')) as [{ rss?: number }];
    if (message.rss !== undefined) return message.rss;
  }
}

function body(): string {
  // A real conversation: the first 60 turns of a LoCoMo dev conversation, about 2,300 tokens.
  const conversation = parseLocomo(JSON.parse(readFileSync(shippedLocomoPath(), 'utf8')))[0]!;
  const messages = locomoMessages(conversation).messages.slice(0, 61);
  return JSON.stringify({ model: 'gpt-4o-mini', messages: [...messages, { role: 'user', content: 'What did we talk about?' }] });
}

async function load(url: string, connections: number, duration: number, payload: string, key = PROXY_KEY) {
  const result = await autocannon({
    url: `${url}/v1/chat/completions`,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: payload,
    connections,
    duration,
  });
  const errors = result.errors + result.timeouts + result.non2xx;
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors };
}

async function main(): Promise<void> {
  const payload = body();
  const rows: string[][] = [];
  let soak: { before: number; after: number; requests: number; errors: number } | undefined;
  for (const delay of DELAYS) {
    const upstream = await child('upstream', String(delay));
    const proxy = await child('proxy', String(upstream.port));
    const direct = `http://127.0.0.1:${upstream.port}`;
    const through = `http://127.0.0.1:${proxy.port}`;
    // Warm both paths (JIT, connection pools, token memo).
    await load(through, 10, 2, payload);
    await load(through, 10, 2, payload, SHADOW_KEY);
    await load(direct, 10, 2, payload);
    for (const connections of CONNECTIONS) {
      process.stderr.write(`upstream delay ${delay} ms, ${connections} connections…\n`);
      const baseline = await load(direct, connections, DURATION, payload);
      const proxied = await load(through, connections, DURATION, payload);
      const shadowed = await load(through, connections, DURATION, payload, SHADOW_KEY);
      rows.push([
        `${delay} ms`,
        String(connections),
        baseline.rps.toFixed(0),
        proxied.rps.toFixed(0),
        `${(proxied.rps / baseline.rps).toFixed(2)}×`,
        `${ms(baseline.p50)} / ${ms(baseline.p99)}`,
        `${ms(proxied.p50)} / ${ms(proxied.p99)}`,
        `${(shadowed.rps / baseline.rps).toFixed(2)}×`,
        `${ms(shadowed.p50)} / ${ms(shadowed.p99)}`,
        `${baseline.errors} / ${proxied.errors} / ${shadowed.errors}`,
      ]);
    }
    if (delay === DELAYS[DELAYS.length - 1] && SOAK > 0) {
      process.stderr.write(`soak: ${SOAK} s at 200 connections…\n`);
      const before = await rss(proxy.process);
      const result = await autocannon({
        url: `${through}/v1/chat/completions`,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${PROXY_KEY}` },
        body: payload,
        connections: 200,
        duration: SOAK,
      });
      const after = await rss(proxy.process);
      soak = { before, after, requests: result.requests.total, errors: result.errors + result.timeouts + result.non2xx };
    }
    proxy.process.kill();
    upstream.process.kill();
  }
  const header = [
    'upstream delay',
    'connections',
    'direct req/s',
    'proxy req/s',
    'proxy / direct',
    'direct p50 / p99',
    'proxy p50 / p99',
    'shadow / direct',
    'shadow p50 / p99',
    'errors (direct / proxy / shadow)',
  ];
  console.log(markdown ? markdownTable([header, ...rows]) : table([header, ...rows]));
  if (soak) {
    const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
    console.log(
      `\nSoak: ${SOAK} s at 200 connections through the proxy: ${soak.requests.toLocaleString('en')} requests, ${soak.errors} errors; proxy RSS ${mib(soak.before)} before, ${mib(soak.after)} after.`,
    );
  }
  console.log(
    `\nRequest: 62 real LoCoMo messages (~2,300 tokens) compacted to 1,000 tokens with truncate; cache off; "shadow" is a proxy key in shadow mode (compacted, then sent as it came); proxy-key authentication and the path allow-list on (the proxy holds the upstream key). ${DURATION} s per run. ${machine()}`,
  );
}

// Forked children run the upstream or the proxy; the parent drives the load.
const [role, argument] = flags.positionals;
if (role === 'upstream') void runUpstream(Number(argument));
else if (role === 'proxy') void runProxy(Number(argument));
else runStudy('bench:proxy', main);
