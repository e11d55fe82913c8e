/**
 * What shadow mode adds to a request's latency, with and without its bounded wait. One request at a
 * time (an upstream that answers at once, so the figure is the proxy's own time) through a proxy
 * set up as `serve` runs it (the default preset, a memory cache, the encoders loaded before
 * listening), against the upstream called directly, in the same run:
 *   - enforce: a proxy key that compacts;
 *   - shadow: a key in shadow mode with the default wait (`shadowWaitMs` 50);
 *   - shadow, waiting: the same with a wait longer than any compaction (how shadow mode ran before
 *     the wait was bounded: the forward waited for the figures).
 * Requests are the last four steps of the shipped long agent runs (mini-swe-agent, OpenAI shape),
 * each sent once per path with every message salted, so no memo holds any of its text: a history
 * the process has never seen, the costly case. Then a few histories of megabytes (every run's last
 * step in one), where compaction outlasts the wait. The paths take turns going first. Prints figures; asserts nothing.
 * Run: npm run bench:shadow
 *
 * The proxy and this client share one process (the client is idle while a request is in flight).
 */
import { join } from 'node:path';
import pino from 'pino';
import { createResponseCache } from '../src/cache/response-cache.js';
import { warmUp } from '../src/cli/serve.js';
import { createProxy } from '../src/proxy/server.js';
import { defaultRuntime } from '../src/runtime.js';
import { loadAgentRuns } from './datasets/agent-traces.js';
import { fakeModel } from './harness/fake-model.js';
import { machine, markdownTable, ms, percentile, table } from './harness/stats.js';
import { runStudy, studyFlags } from './harness/study.js';
import { benchRoot } from './paths.js';

const flags = studyFlags('bench:shadow', { budget: { type: 'string', default: '8000' } });
const BUDGET = Number(flags.budget);
/** The last steps of each run that are sent (each a longer history than the one before). */
const STEPS = 4;
/** How many of the very long histories are sent per path. */
const HUGE = 4;

/** Every message's text with a suffix, so that nothing of it is memoized from another row. */
function salted(messages: readonly unknown[], salt: string): unknown[] {
  return messages.map((message) => {
    const record = message as { content?: unknown };
    if (typeof record.content === 'string') return { ...record, content: `${record.content} ${salt}` };
    if (Array.isArray(record.content))
      return {
        ...record,
        content: record.content.map((part: { type?: string; text?: string }) => (part.type === 'text' ? { ...part, text: `${part.text} ${salt}` } : part)),
      };
    return message;
  });
}

async function main(): Promise<void> {
  const runs = loadAgentRuns(join(benchRoot(), 'data', 'agent-traces')).filter((run) => run.group === 'long' && run.format === 'openai');
  const bodies = runs.flatMap((run) => run.steps.slice(-STEPS).map((step) => step.body));
  // A few very long histories too (every run's last step, one after the other: megabytes), where compaction outlasts the wait.
  const joined = { messages: runs.flatMap((run, index) => run.steps[run.steps.length - 1]!.body.messages.slice(index === 0 ? 0 : 1)) };
  for (let copy = 0; copy < HUGE; copy++) bodies.push(joined);
  const { server: upstream, port } = await fakeModel();
  const runtime = defaultRuntime();
  const cache = createResponseCache({ embeddings: runtime.embeddings });
  await warmUp(runtime, cache);
  const keys = [
    { key: 'pk-bench-enforce', tenant: 'enforce' },
    { key: 'pk-bench-shadow', tenant: 'shadow', mode: 'shadow' as const },
  ];
  const logger = pino({ level: 'silent' });
  const bounded = createProxy({ upstream: `http://127.0.0.1:${port}`, cache, runtime, logger, keys, routes: { defaults: { maxInputTokens: BUDGET } } });
  const waiting = createProxy({
    upstream: `http://127.0.0.1:${port}`,
    cache,
    runtime,
    logger,
    keys,
    routes: { defaults: { maxInputTokens: BUDGET, shadowWaitMs: 600_000 } },
  });
  const targets = {
    direct: `http://127.0.0.1:${port}`,
    bounded: `http://127.0.0.1:${await bounded.listen(0)}`,
    waiting: `http://127.0.0.1:${await waiting.listen(0)}`,
  };
  const rows: { name: string; base: string; key?: string }[] = [
    { name: 'direct (no proxy)', base: targets.direct },
    { name: 'enforce', base: targets.bounded, key: 'pk-bench-enforce' },
    { name: 'shadow (shadowWaitMs 50)', base: targets.bounded, key: 'pk-bench-shadow' },
    { name: 'shadow, waiting for the figures', base: targets.waiting, key: 'pk-bench-shadow' },
  ];
  const send = async (base: string, key: string | undefined, body: object) => {
    const started = performance.now();
    const response = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench', ...(key ? { 'x-compactor-key': key } : {}) },
      body: JSON.stringify(body),
    });
    await response.arrayBuffer();
    return { ms: performance.now() - started, status: response.status, pending: response.headers.get('x-compactor-shadow') === 'pending' };
  };
  // Warm the paths (JIT, connection pools) on a body no row sends.
  for (const row of rows) await send(row.base, row.key, { model: 'gpt-4o-mini', messages: salted(bodies[0]!.messages, 'warm') });
  const sizes = bodies.map((body) => JSON.stringify(body).length);
  const kb = (bytes: number) => `${Math.round(bytes / 1024).toLocaleString('en')} KB`;
  const outcomes = rows.map(() => [] as Awaited<ReturnType<typeof send>>[]);
  process.stderr.write(`${bodies.length} histories through ${rows.length} paths, one request at a time…\n`);
  for (const [step, body] of bodies.entries()) {
    // The paths take turns going first, so none is always the one after another's late work.
    for (let turn = 0; turn < rows.length; turn++) {
      const index = (step + turn) % rows.length;
      outcomes[index]!.push(await send(rows[index]!.base, rows[index]!.key, { model: 'gpt-4o-mini', messages: salted(body.messages, `r${index}s${step}`) }));
    }
    if ((step + 1) % 10 === 0) process.stderr.write(`  ${step + 1} of ${bodies.length}\n`);
  }
  const ordinary = bodies.length - HUGE;
  const span = (from: number, to: number) => {
    const slice = sizes.slice(from, to);
    return `${kb(Math.min(...slice))}${Math.min(...slice) === Math.max(...slice) ? '' : ` to ${kb(Math.max(...slice))}`}`;
  };
  const results = [...summarize(0, ordinary), ...summarize(ordinary, bodies.length)];
  function summarize(from: number, to: number): string[][] {
    return rows.map((row, index) => {
      const slice = outcomes[index]!.slice(from, to);
      const times = slice.map((outcome) => outcome.ms);
      const late = slice.filter((outcome) => outcome.pending).length;
      return [
        `${slice.length} histories of ${span(from, to)}`,
        row.name,
        ms(percentile(times, 50)),
        ms(percentile(times, 95)),
        ms(Math.max(...times)),
        row.key === 'pk-bench-shadow' ? `${slice.length - late} of ${slice.length}` : '',
        String(slice.filter((outcome) => outcome.status !== 200).length),
      ];
    });
  }
  const header = ['histories', 'path', 'p50', 'p95', 'max', 'shadow figures in the headers', 'errors'];
  console.log(flags.md ? markdownTable([header, ...results]) : table([header, ...results]));
  console.log(
    `\nRequests: the last ${STEPS} steps of each of the ${runs.length} long mini-swe-agent runs (${span(0, ordinary)}), and ${HUGE} times all ${runs.length} last steps in one history (${span(ordinary, bodies.length)}), every message salted per row so no memo holds it; budget ${BUDGET} tokens, the default preset, a memory response cache; upstream answers at once. Proxy and client in one process. ${machine()}`,
  );
  await bounded.close(200);
  await waiting.close(200);
  upstream.close();
}

runStudy('bench:shadow', main);
