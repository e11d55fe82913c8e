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
 * (the request was compacted and a block was affordable). Asserts nothing.
 *
 * Run: npm run build && node dist/bench/excerpt-gate.js [--model gpt-5] [--budgets 2000,4000] [--md]
 */
import { type Compactor, createCompactor } from '../src/core/compactor.js';
import type { ChatMessage } from '../src/core/types.js';
import { createRuntime } from '../src/runtime.js';
import { CACHE_AWARE_DEFAULTS } from '../strategies/cache-aware/index.js';
import { shippedData } from './harness/command.js';
import { loadDataset } from './harness/loaders.js';
import { Progress } from './harness/progress.js';
import { markdownTable, table } from './harness/stats.js';

interface Sample {
  conversation: string;
  kind: 'qa' | 'chat';
  /** The gate's score (0 when nothing outside the window matches). */
  score: number;
}

const argument = (name: string, fallback: string) => {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1]! : fallback;
};

function auc(positives: number[], negatives: number[]): number {
  let sum = 0;
  for (const p of positives) for (const n of negatives) sum += p > n ? 1 : p === n ? 0.5 : 0;
  return sum / Math.max(1, positives.length * negatives.length);
}

const share = (samples: Sample[], threshold: number) => samples.filter((sample) => sample.score > 0 && sample.score >= threshold).length / Math.max(1, samples.length);
const pct = (value: number) => `${(100 * value).toFixed(0)}%`;

async function gateScore(compactor: Compactor<false>, model: string, messages: ChatMessage[]): Promise<number | undefined> {
  const { stats } = await compactor.compact({ model, messages });
  const info = stats.strategies.find((strategy) => strategy.name === 'cache-aware')?.info as { excerptGate?: number } | undefined;
  return info?.excerptGate;
}

async function main(): Promise<void> {
  const model = argument('model', 'gpt-5');
  const budgets = argument('budgets', '2000,4000').split(',').map(Number);
  const [locomo] = shippedData();
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo');
  const threshold = CACHE_AWARE_DEFAULTS.excerptGate;
  const md = process.argv.includes('--md');
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
      const others = samples.filter((s) => s.conversation !== conversation.id && s.kind === 'qa').map((s) => s.score).sort((a, b) => a - b);
      // The threshold that lets `target` of the other conversations' QA through.
      const picked = others[Math.min(others.length - 1, Math.floor((1 - target) * others.length))]!;
      const qa = own.filter((s) => s.kind === 'qa');
      const chat = own.filter((s) => s.kind === 'chat');
      rows.push([conversation.id, pct(share(qa, threshold)), pct(share(chat, threshold)), auc(qa.map((s) => s.score), chat.map((s) => s.score)).toFixed(3), picked.toFixed(3), pct(share(qa, picked)), pct(share(chat, picked))]);
    }
    rows.push(['all', pct(share(all.qa, threshold)), pct(share(all.chat, threshold)), auc(all.qa.map((s) => s.score), all.chat.map((s) => s.score)).toFixed(3), '', '', '']);
    if (budget === budgets.at(-1)) progress.finish();
    console.log(`\nExcerpt gate at ${budget} tokens, ${model}, threshold ${threshold} (${all.qa.length} QA questions, ${all.chat.length} chat turns where the gate was consulted)`);
    console.log(table(rows));
    if (md) console.log(`\n${markdownTable(rows)}`);
  }
}

await main();
