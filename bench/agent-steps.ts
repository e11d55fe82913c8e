/**
 * Agent steps on the live path: each assistant step of a run is one request (the messages before
 * it), compacted as a server would (library default: `onBudgetUnreachable: 'error'`). Per preset
 * and budget it prints refusals (413 budget.unreachable), structurally broken requests, requests
 * over budget, the share of the values the next tool call passes back that the request still
 * holds, and the prompt bill against sending everything, under a 50% and a 10% cached-input rule
 * (a request's cached part is its run of messages shared, from the start, with the previous
 * request; no minimum prefix). Side by side: masking all but the last 3 tool results (no budget).
 * Prints figures; asserts nothing. Run: npm run bench:agents [-- --dir FOLDER]
 *
 * The step-1 measure of issue 20; the full agent suite (more sources, per-model rules, peers) is
 * still to come.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VALUE } from '../src/core/clearing.js';
import { createCompactor } from '../src/core/compactor.js';
import { validToolChain } from '../src/testing/index.js';
import { CompactorError } from '../src/core/errors.js';
import type { ChatMessage } from '../src/core/types.js';
import { Progress } from './harness/progress.js';
import { machine, markdownTable, ms, table } from './harness/stats.js';
import { packageRoot } from '../src/cli/package-root.js';

const markdown = process.argv.includes('--md');
const dirFlag = process.argv.indexOf('--dir');
const dir = dirFlag > 0 ? process.argv[dirFlag + 1]! : join(packageRoot(), 'bench', 'data', 'agent-traces', 'mini-swe-agent');
const BUDGETS = [4000, 8000, 16000];
const PRESETS = ['cache-aware', 'truncate'];

const textOf = (message: ChatMessage): string =>
  (typeof message.content === 'string'
    ? message.content
    : Array.isArray(message.content)
      ? message.content.map((part) => (typeof part.text === 'string' ? part.text : '')).join('\n')
      : '') + (message.tool_calls ?? []).map((call) => call.function.arguments).join('\n');

interface Step {
  before: ChatMessage[];
  values: string[];
}

const runs: Step[][] = readdirSync(dir)
  .filter((file) => file.endsWith('.json'))
  .sort()
  .map((file) => {
    const { messages } = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { messages: ChatMessage[] };
    const steps: Step[] = [];
    for (let index = 2; index < messages.length; index++) {
      if (messages[index]!.role !== 'assistant') continue;
      const before = messages.slice(0, index);
      const history = before.map(textOf).join('\n');
      const args = (messages[index]!.tool_calls ?? []).map((call) => call.function.arguments).join(' ');
      const values = [...new Set([...args.matchAll(VALUE)].map((match) => match[0]).filter((value) => value.length >= 4 && history.includes(value)))];
      steps.push({ before, values });
    }
    return steps;
  });

const counter = await createCompactor().tokenCounter('gpt-4o');
const key = (message: ChatMessage) => JSON.stringify(message);
function bill(requests: readonly ChatMessage[][], rate: number): number {
  let total = 0;
  let previous: ChatMessage[] = [];
  for (const messages of requests) {
    let at = 0;
    let shared = 0;
    while (at < messages.length && at < previous.length && key(messages[at]!) === key(previous[at]!)) shared += counter.message(messages[at++]!);
    let all = 0;
    for (const message of messages) all += counter.message(message);
    total += all - shared + shared * rate;
    previous = messages;
  }
  return total;
}
const retained = (steps: readonly Step[], requests: readonly (ChatMessage[] | undefined)[]): [number, number] => {
  let needed = 0;
  let kept = 0;
  steps.forEach((step, index) => {
    const text = (requests[index] ?? []).map(textOf).join('\n');
    needed += step.values.length;
    kept += step.values.filter((value) => text.includes(value)).length;
  });
  return [kept, needed];
};

const masked = (before: ChatMessage[]): ChatMessage[] => {
  const results = before.map((message, index) => (message.role === 'tool' ? index : -1)).filter((index) => index >= 0);
  const keep = new Set(results.slice(-3));
  return before.map((message, index) => (message.role === 'tool' && !keep.has(index) ? { ...message, content: '[cleared]' } : message));
};

const totalSteps = runs.reduce((sum, steps) => sum + steps.length, 0);
const whole50 = runs.reduce(
  (sum, steps) =>
    sum +
    bill(
      steps.map((step) => step.before),
      0.5,
    ),
  0,
);
const whole10 = runs.reduce(
  (sum, steps) =>
    sum +
    bill(
      steps.map((step) => step.before),
      0.1,
    ),
  0,
);
const rows: string[][] = [
  ['contender', 'budget', 'refused', 'broken', 'over budget', 'values kept', 'bill vs all, 50% rule', 'bill vs all, 10% rule', 'ms per step'],
];
const pct = (value: number) => `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)}%`;

{
  const requests = runs.map((steps) => steps.map((step) => masked(step.before)));
  let kept = 0;
  let needed = 0;
  runs.forEach((steps, index) => {
    const [k, n] = retained(steps, requests[index]!);
    kept += k;
    needed += n;
  });
  const b50 = requests.reduce((sum, list) => sum + bill(list, 0.5), 0);
  const b10 = requests.reduce((sum, list) => sum + bill(list, 0.1), 0);
  rows.push(['mask all but the last 3 results', 'none', '0', '0', '–', (kept / needed).toFixed(3), pct(b50 / whole50 - 1), pct(b10 / whole10 - 1), '–']);
}
for (const preset of PRESETS) {
  for (const budget of BUDGETS) {
    const compactor = createCompactor({ maxInputTokens: budget, strategy: preset });
    const bar = new Progress(`${preset} at ${budget}`, totalSteps);
    let refused = 0;
    let broken = 0;
    let over = 0;
    let kept = 0;
    let needed = 0;
    let b50 = 0;
    let b10 = 0;
    let elapsed = 0;
    for (const steps of runs) {
      const sent: (ChatMessage[] | undefined)[] = [];
      for (const step of steps) {
        const started = performance.now();
        try {
          const result = await compactor.compact({ model: 'gpt-4o', messages: step.before });
          if (result.kind !== 'compacted') throw new Error('no cache here');
          const messages = result.request.messages as ChatMessage[];
          if (!validToolChain(messages)) broken++;
          if (result.stats.tokensAfter > budget) over++;
          sent.push(messages);
        } catch (error) {
          if (!CompactorError.isInstance(error) || error.code !== 'budget.unreachable') throw error;
          refused++;
          sent.push(undefined);
        }
        elapsed += performance.now() - started;
        bar.tick();
      }
      const [k, n] = retained(steps, sent);
      kept += k;
      needed += n;
      // A refused step is billed as sent whole (a client that retries without the compactor).
      const billed = sent.map((messages, index) => messages ?? steps[index]!.before);
      b50 += bill(billed, 0.5);
      b10 += bill(billed, 0.1);
    }
    bar.finish();
    rows.push([
      preset,
      String(budget),
      `${refused} (${((100 * refused) / totalSteps).toFixed(1)}%)`,
      String(broken),
      String(over),
      (kept / needed).toFixed(3),
      pct(b50 / whole50 - 1),
      pct(b10 / whole10 - 1),
      ms(elapsed / totalSteps),
    ]);
  }
}
await createCompactor().close();
console.log(markdown ? markdownTable(rows) : table(rows));
console.log(`\n${runs.length} runs, ${totalSteps} steps, from ${dir}. A refused step keeps no values. ${machine()}`);
process.exit(0);
