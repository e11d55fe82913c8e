/**
 * Heavy bodies against the proxy's responsiveness: `/healthz` latency while three ~3.8 MB chat
 * requests are in flight, next to `/healthz` on an idle proxy in the same run. The proxy runs in a
 * child process with its defaults (the default preset, memory cache, heavy-request admission of
 * one at a time); this process only sends and times. Prints figures; asserts nothing.
 * Run: npm run bench:heavy
 *
 * Four shapes: one giant message of 3.8 MB (a pasted log), 4,000 turns of ~950 bytes (a long
 * history), and one word of 100 KB and of 3.8 MB (a single BPE pre-token: a blob with no spaces,
 * which counted in quadratic time before the bounded count). Each row starts a fresh proxy and sends it one small request first (modules and the
 * sentence encoder loaded, as on a server that has answered before); no memo holds any of the
 * heavy text, as for a body the server has never seen.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { createResponseCache } from '../src/cache/response-cache.js';
import { warmUp } from '../src/cli/serve.js';
import { createProxy } from '../src/proxy/server.js';
import { defaultRuntime } from '../src/runtime.js';
import { fakeModel } from './harness/fake-model.js';
import { machine, markdownTable, ms, table } from './harness/stats.js';
import { runStudy, studyFlags } from './harness/study.js';

const flags = studyFlags('bench:heavy', {});
const markdown = flags.md;
const self = fileURLToPath(import.meta.url);
const CONCURRENT = 3;
const TARGET_BYTES = 3.8e6;

async function runProxy(): Promise<void> {
  const { port: upstreamPort } = await fakeModel();
  // As `serve` runs it: a memory cache, and the encoders loaded before listening.
  const runtime = defaultRuntime();
  const cache = createResponseCache({ embeddings: runtime.embeddings });
  await warmUp(runtime, cache);
  const proxy = createProxy({ upstream: `http://127.0.0.1:${upstreamPort}`, cache, runtime, logger: pino({ level: 'silent' }) });
  // An orderly exit on SIGTERM, so that a --cpu-prof run (HEAVY_EXEC_ARGV) writes its profile.
  process.once('SIGTERM', () => process.exit(0));
  process.send!({ port: await proxy.listen(0) });
}

/** Words from a fixed vocabulary, deterministic, so every run sends the same text. */
function prose(bytes: number, seed: number): string {
  const words = ['the', 'server', 'log', 'shows', 'a', 'timeout', 'after', 'retry', 'number', 'with', 'status', 'code', 'and', 'latency', 'of', 'request'];
  let state = seed;
  const out: string[] = [];
  let size = 0;
  while (size < bytes) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const word = `${words[state % words.length]}${state % 7 === 0 ? ` ${state % 1000}.` : ''}`;
    out.push(word);
    size += word.length + 1;
  }
  return out.join(' ');
}

function giant(seed: number): string {
  return JSON.stringify({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'You are a support engineer.' },
      { role: 'user', content: prose(TARGET_BYTES, seed) },
      { role: 'assistant', content: 'I see the log.' },
      { role: 'user', content: 'What failed first?' },
    ],
  });
}

/** One word of `bytes` letters and nothing else: a single BPE pre-token (a pasted blob, a long id). */
function oneWord(bytes: number): (seed: number) => string {
  return (seed) =>
    JSON.stringify({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'user', content: String.fromCharCode(97 + (seed % 26)).repeat(bytes) },
        { role: 'assistant', content: 'I see it.' },
        { role: 'user', content: 'What is it?' },
      ],
    });
}

function history(seed: number): string {
  const messages: { role: string; content: string }[] = [{ role: 'system', content: 'You are a helpful assistant.' }];
  for (let turn = 0; turn < 4000; turn++) messages.push({ role: turn % 2 === 0 ? 'user' : 'assistant', content: prose(950, seed * 10_000 + turn) });
  messages.push({ role: 'user', content: 'What did we decide?' });
  return JSON.stringify({ model: 'gpt-4o-mini', messages });
}

async function pings(base: string, until: Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  let done = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    const started = performance.now();
    await (await fetch(`${base}/healthz`)).text();
    latencies.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return latencies;
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};

async function main(): Promise<void> {
  const rows: string[][] = [];
  const shapes = [
    ['one 3.8 MB message', giant],
    ['4,000 turns of ~950 B', history],
    ['one 100 KB word', oneWord(100_000)],
    ['one 3.8 MB word', oneWord(TARGET_BYTES)],
  ] as const;
  // SHAPES=3 (1-based, comma-separated) runs some rows only: on a build where one shape cannot finish.
  const chosen = process.env.SHAPES ? process.env.SHAPES.split(',').map((index) => shapes[Number(index) - 1]!) : shapes;
  for (const [shape, make] of chosen) {
    // A fresh proxy per shape: cold memos, as for a body never seen.
    const child = fork(self, ['proxy'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: process.env.HEAVY_EXEC_ARGV ? process.env.HEAVY_EXEC_ARGV.split(' ') : [],
    });
    const [{ port }] = (await once(child, 'message')) as [{ port: number }];
    const base = `http://127.0.0.1:${port}`;
    // One small request first, as a server has answered before its first heavy one: modules and the encoder are loaded.
    await (
      await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-heavy' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello?' }] }),
      })
    ).text();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const idle = await pings(base, new Promise((resolve) => setTimeout(resolve, 1000)));
    const bodies = Array.from({ length: CONCURRENT }, (_, index) => make(index + 1));
    process.stderr.write(`${shape}: ${CONCURRENT} × ${(bodies[0]!.length / 1e6).toFixed(1)} MB…\n`);
    const started = performance.now();
    const heavy = Promise.all(
      bodies.map(async (body) => {
        const response = await fetch(`${base}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer sk-heavy' },
          body,
        });
        await response.text();
        return { status: response.status, ms: performance.now() - started };
      }),
    );
    const busy = await pings(base, heavy);
    const results = await heavy;
    child.kill('SIGTERM');
    await once(child, 'exit');
    rows.push([
      shape,
      `${ms(quantile(idle, 0.5))} / ${ms(Math.max(...idle))}`,
      `${ms(quantile(busy, 0.5))} / ${ms(quantile(busy, 0.99))} / ${ms(Math.max(...busy))}`,
      String(busy.length),
      results.map((result) => `${result.status} in ${ms(result.ms)}`).join(', '),
    ]);
  }
  const header = ['bodies', '/healthz idle p50 / max', '/healthz busy p50 / p99 / max', 'pings while busy', `${CONCURRENT} heavy requests`];
  console.log(markdown ? markdownTable([header, ...rows]) : table([header, ...rows]));
  console.log(
    `\nProxy defaults (default preset, 8,000-token budget, memory cache), fresh process per row, warmed by one small request; heavy bodies never seen before. ${machine()}`,
  );
}

// The forked child runs the proxy; the parent sends and times.
if (flags.positionals[0] === 'proxy') void runProxy();
else runStudy('bench:heavy', main);
