/**
 * cache-aware's excerpt gate, measured against the turns it must tell apart: the QA questions of
 * LoCoMo dev (asked at the end of their conversation, about something said long before) and the
 * conversation's own chat turns (which mostly answer the latest exchange). Each conversation is
 * replayed one request per user turn through the default preset, with the request's model, on one
 * runtime (early cuts recorded as on a server); the gate's score is BM25-only, so it does not
 * depend on which vectors are warm. Prints, per budget: the share of QA questions and of chat
 * turns the shipped threshold lets through, per conversation; the gate's AUC; and, leaving each
 * conversation out, the threshold the other two would pick to let the same share of their QA
 * through, with what it does on the one left out. Chat turns count where the gate was consulted
 * (the request was compacted and a block was affordable). Then the default preset's warm added
 * latency on a 700-message history, against truncate in the same run. Asserts nothing.
 *
 * Run: npm run build && node dist/bench/excerpt-gate.js [--model gpt-5] [--budgets 2000,4000] [--latency-only] [--md]
 */
import { type Compactor, createCompactor } from '../src/compose/compactor.js';
import type { ChatMessage } from '../src/core/types.js';
import { createRuntime } from '../src/runtime.js';
import { CACHE_AWARE_DEFAULTS } from '../strategies/cache-aware/index.js';
import { shippedData } from './harness/command.js';
import { loadDataset } from './harness/loaders.js';
import { Progress } from './harness/progress.js';
import { machine, markdownTable, percentile, table } from './harness/stats.js';
import { runStudy, studyFlags } from './harness/study.js';

interface Sample {
  conversation: string;
  kind: 'qa' | 'chat';
  /** The gate's score (0 when nothing outside the window matches). */
  score: number;
}

const flags = studyFlags('bench:gate', {
  model: { type: 'string', default: 'gpt-5' },
  budgets: { type: 'string', default: '2000,4000' },
  'latency-only': { type: 'boolean' },
});

function auc(positives: number[], negatives: number[]): number {
  let sum = 0;
  for (const p of positives) for (const n of negatives) sum += p > n ? 1 : p === n ? 0.5 : 0;
  return sum / Math.max(1, positives.length * negatives.length);
}

const share = (samples: Sample[], threshold: number) =>
  samples.filter((sample) => sample.score > 0 && sample.score >= threshold).length / Math.max(1, samples.length);
const pct = (value: number) => `${(100 * value).toFixed(0)}%`;

async function gateScore(compactor: Compactor<false>, model: string, messages: ChatMessage[]): Promise<number | undefined> {
  const { stats } = await compactor.compact({ model, messages });
  const info = stats.strategies.find((strategy) => strategy.name === 'cache-aware')?.info as { excerptGate?: number } | undefined;
  return info?.excerptGate;
}

/**
 * Warm latency: a 700-message LoCoMo history already embedded (as on a server a conversation has
 * been talking to), one new user message per request, QA questions (the gate mostly opens) and
 * chit-chat (it mostly stays shut) in turn; the default preset against truncate, same requests.
 */
async function latency(model: string, md: boolean): Promise<void> {
  const [locomo] = shippedData();
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo');
  const turns = conversations.flatMap((conversation) => conversation.messages.slice(1));
  const history = [conversations[2]!.messages[0]!, ...turns.slice(0, 699)];
  const questions = conversations.flatMap((conversation) => conversation.qa!.map((item) => item.question));
  const budget = 2000;
  const runtime = createRuntime();
  const warm = createCompactor({ maxInputTokens: budget, runtime, presetOptions: { 'cache-aware': { awaitDocuments: true, embedTimeoutMs: 600_000 } } });
  await warm.compact({ model, messages: [...history, { role: 'user', content: 'warm-up question?' }] });
  const compactors = {
    'cache-aware (default)': createCompactor({ maxInputTokens: budget, runtime }),
    truncate: createCompactor({ maxInputTokens: budget, strategy: 'truncate', runtime }),
  };
  const times = new Map<string, { open: number[]; shut: number[] }>(Object.keys(compactors).map((name) => [name, { open: [], shut: [] }]));
  const parts = { embed: [] as number[], score: [] as number[] };
  // Chit-chat: the conversation's own next turns, as the next request would bring them.
  const next = turns.slice(699).map((message) => String(message.content));
  for (let run = 0; run < 120; run++) {
    const content = run % 2 === 0 ? `${questions[run % questions.length]!} (asked at turn ${run})` : next[run % next.length]!;
    let open = false;
    for (const [name, compactor] of Object.entries(compactors)) {
      const started = performance.now();
      const { stats } = await compactor.compact({ model, messages: [...structuredClone(history), { role: 'user', content }] });
      const elapsed = performance.now() - started;
      const info = stats.strategies.find((strategy) => strategy.name === 'cache-aware')?.info as
        | { excerpts?: number; embedMs?: number; scoreMs?: number }
        | undefined;
      if (info) {
        open = (info.excerpts ?? 0) > 0;
        parts.embed.push(info.embedMs ?? 0);
        parts.score.push(info.scoreMs ?? 0);
      }
      // Truncate's requests are filed with what cache-aware did on the same message.
      times.get(name)![open ? 'open' : 'shut'].push(elapsed);
    }
  }
  const p = (values: number[], q: number) => (values.length === 0 ? '—' : percentile(values, q).toFixed(2));
  const rows = [['preset', 'all p50 ms', 'all p99 ms', 'block quoted p50', 'no block p50', 'requests']];
  for (const [name, bucket] of times) {
    const all = [...bucket.open, ...bucket.shut];
    rows.push([name, p(all, 50), p(all, 99), p(bucket.open, 50), p(bucket.shut, 50), String(all.length)]);
  }
  const base = percentile([...times.get('truncate')!.open, ...times.get('truncate')!.shut], 50);
  const ours = percentile([...times.get('cache-aware (default)')!.open, ...times.get('cache-aware (default)')!.shut], 50);
  console.log(`\nWarm latency, 700-message history, one new message, budget ${budget}, ${model} (${machine()})`);
  console.log(table(rows));
  console.log(
    `of which, p50: embedding the new message ${percentile(parts.embed, 50).toFixed(2)} ms, scoring (cached vectors + BM25) ${percentile(parts.score, 50).toFixed(2)} ms`,
  );
  console.log(`cache-aware adds ${(ours - base).toFixed(2)} ms p50 over truncate (${(ours / base).toFixed(1)}×)`);
  if (md) console.log(`\n${markdownTable(rows)}`);
  await runtime.close();
}

async function main(): Promise<void> {
  const model = flags.model;
  const budgets = flags.budgets.split(',').map(Number);
  const [locomo] = shippedData();
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo');
  const threshold = CACHE_AWARE_DEFAULTS.excerptGate;
  const md = flags.md;
  if (flags['latency-only']) return latency(model, md);
  const total = budgets.length * conversations.reduce((sum, c) => sum + c.messages.filter((m) => m.role === 'user').length + (c.qa?.length ?? 0), 0);
  const progress = new Progress('gate', total);
  for (const budget of budgets) {
    const samples: Sample[] = [];
    for (const conversation of conversations) {
      const runtime = createRuntime();
      const compactor = createCompactor({ maxInputTokens: budget, strategy: 'cache-aware', runtime, onBudgetUnreachable: 'pass-through' });
      for (let index = 0; index < conversation.messages.length; index++) {
        if (conversation.messages[index]!.role !== 'user') continue;
        // Only the requests where the gate was consulted: compacted, with a block affordable.
        const score = await gateScore(compactor, model, conversation.messages.slice(0, index + 1));
        if (score !== undefined) samples.push({ conversation: conversation.id, kind: 'chat', score });
        progress.tick();
      }
      for (const item of conversation.qa ?? []) {
        const score = await gateScore(compactor, model, [...conversation.messages, { role: 'user', content: item.question }]);
        samples.push({ conversation: conversation.id, kind: 'qa', score: score ?? 0 });
        progress.tick();
      }
      await runtime.close();
    }
    const rows = [['conversation', 'QA through', 'chat through', 'AUC', 'threshold from the others', 'QA through at it', 'chat through at it']];
    const all = { qa: samples.filter((s) => s.kind === 'qa'), chat: samples.filter((s) => s.kind === 'chat') };
    const target = share(all.qa, threshold);
    for (const conversation of conversations) {
      const own = samples.filter((s) => s.conversation === conversation.id);
      const others = samples
        .filter((s) => s.conversation !== conversation.id && s.kind === 'qa')
        .map((s) => s.score)
        .sort((a, b) => a - b);
      // The threshold that lets `target` of the other conversations' QA through.
      const picked = others[Math.min(others.length - 1, Math.floor((1 - target) * others.length))]!;
      const qa = own.filter((s) => s.kind === 'qa');
      const chat = own.filter((s) => s.kind === 'chat');
      rows.push([
        conversation.id,
        pct(share(qa, threshold)),
        pct(share(chat, threshold)),
        auc(
          qa.map((s) => s.score),
          chat.map((s) => s.score),
        ).toFixed(3),
        picked.toFixed(3),
        pct(share(qa, picked)),
        pct(share(chat, picked)),
      ]);
    }
    rows.push([
      'all',
      pct(share(all.qa, threshold)),
      pct(share(all.chat, threshold)),
      auc(
        all.qa.map((s) => s.score),
        all.chat.map((s) => s.score),
      ).toFixed(3),
      '',
      '',
      '',
    ]);
    if (budget === budgets.at(-1)) progress.finish();
    console.log(
      `\nExcerpt gate at ${budget} tokens, ${model}, threshold ${threshold} (${all.qa.length} QA questions, ${all.chat.length} chat turns where the gate was consulted)`,
    );
    console.log(table(rows));
    if (md) console.log(`\n${markdownTable(rows)}`);
  }
  await latency(model, md);
}

runStudy('bench:gate', main);
