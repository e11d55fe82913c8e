/**
 * Relevance study: QA mode on LoCoMo dev, categories 1–4, ER_verbatim and ER_fact, for each
 * embedder alone, BM25 alone, the hybrid, and the hybrid with neighbours and recency, side by side
 * with truncate. Prints figures; asserts nothing.
 *
 * Run: npm run build && node dist/bench/relevance.js [--budgets 1000,2000,4000] [--limit N] [--only a,b]
 */
import { createCompactor, type Compactor } from '../src/compose/compactor.js';
import { guardProblem, presetContender, type Contender } from './harness/contenders.js';
import { shippedData } from './harness/command.js';
import { loadDataset } from './harness/loaders.js';
import { runQa, type Violation } from './harness/run.js';
import { machine, markdownTable, ms, table } from './harness/stats.js';
import { createEmbeddingCache } from '../src/embedders/memo.js';
import { useLite } from '../src/embedders/use-lite.js';
import { buildGloveModel } from './glove-model.js';
import { transformersEmbedder } from '../src/embedders/transformers.js';
import { join } from 'node:path';
import { repositoryRoot as packageRoot } from './paths.js';
import { dot, type Embedder } from '../src/embedders/types.js';
import { bm25Scores } from '../src/text/bm25.js';
import { dotMany, simdAvailable } from '../src/embedders/dot-many.js';
import { relevance, type RelevanceOptions } from '../strategies/relevance/index.js';
import { runStudy, studyFlags } from './harness/study.js';

const flags = studyFlags('bench:relevance', {
  budgets: { type: 'string', default: '1000,2000,4000' },
  limit: { type: 'string' },
  only: { type: 'string' },
  'latency-only': { type: 'boolean' },
});
const budgets = flags.budgets.split(',').map(Number);
const limit = flags.limit === undefined ? undefined : Number(flags.limit);
const only = flags.only?.split(',');

function variant(name: string, options: RelevanceOptions): Contender {
  const compactors = new Map<number, Compactor<false>>();
  return {
    name,
    kind: 'preset',
    async run(request, budget) {
      let compactor = compactors.get(budget);
      if (!compactor) {
        // No deadline here: this study measures retention, with every vector computed.
        compactor = createCompactor({ maxInputTokens: budget, strategy: relevance({ embedTimeoutMs: 600_000, awaitDocuments: true, ...options }) });
        compactors.set(budget, compactor);
      }
      const started = performance.now();
      const { request: output, stats } = await compactor.compact(request);
      return { messages: output.messages, ms: performance.now() - started, failures: stats.failures.length, ...guardProblem(stats) };
    },
  };
}

async function main(): Promise<void> {
  if (flags['latency-only']) {
    await latency();
    return;
  }
  const glove = await buildGloveModel(join(packageRoot(), '.cache', 'models'));
  const embedders: Record<string, Embedder> = {
    'use-lite': useLite(),
    'glove-sif (transformers.js)': transformersEmbedder({ model: glove, quantized: false }),
  };
  const alone = { neighbours: 0, recencyShare: 0, previousContext: 0 } satisfies RelevanceOptions;
  const variants: Contender[] = [
    presetContender('truncate'),
    variant('bm25 alone', { ...alone, embedder: null }),
    ...Object.entries(embedders).map(([name, embedder]) => variant(`${name} alone`, { ...alone, embedder, sparseWeight: 0 })),
    ...Object.entries(embedders).map(([name, embedder]) => variant(`rrf(bm25, ${name})`, { ...alone, embedder })),
    ...Object.entries(embedders).map(([name, embedder]) => variant(`rrf(bm25, ${name}) + neighbours + 10% recency`, { embedder, previousContext: 0 })),
    ...Object.entries(embedders).map(([name, embedder]) => variant(`rrf(bm25, ${name}) + neighbours + 10% recency + previous message (default)`, { embedder })),
    variant('bm25 + neighbours + 10% recency + previous message', { embedder: null }),
    variant('default hybrid, without session headers', { embedder: embedders['use-lite']!, sessionHeader: null }),
    variant('default hybrid, with omission markers', { embedder: embedders['use-lite']!, markers: true }),
  ].filter((contender) => !only || only.includes(contender.name));
  const [locomo] = shippedData();
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo');
  const counter = await createCompactor().tokenCounter('gpt-4o');
  const violations: Violation[] = [];
  const rows = await runQa(conversations, variants, { budgets, model: 'gpt-4o', counter, ...(limit ? { limit } : {}) }, violations);
  const header = [
    'variant',
    ...budgets.map((budget) => `ER_v @${budget}`),
    ...budgets.map((budget) => `ER_f @${budget}`),
    `ms p50 @${budgets[1] ?? budgets[0]}`,
  ];
  const lines: string[][] = [header];
  for (const contender of variants) {
    const pick = (budget: number) => rows.find((row) => row.contender === contender.name && row.budget === budget && row.category === '1-4')!;
    lines.push([
      contender.name,
      ...budgets.map((budget) => pick(budget).erVerbatim!.toFixed(2)),
      ...budgets.map((budget) => pick(budget).erFact!.toFixed(2)),
      ms(pick(budgets[1] ?? budgets[0]!).msP50),
    ]);
  }
  const byCategory: string[][] = [['variant', 'budget', ...[1, 2, 3, 4, 5].map((category) => `cat ${category}`)]];
  for (const contender of variants) {
    for (const budget of budgets) {
      byCategory.push([
        contender.name,
        String(budget),
        ...[1, 2, 3, 4, 5].map(
          (category) =>
            rows.find((row) => row.contender === contender.name && row.budget === budget && row.category === String(category))?.erVerbatim?.toFixed(2) ?? '–',
        ),
      ]);
    }
  }
  console.log(
    `${machine()}\nLoCoMo dev (3 conversations), QA categories 1–4${limit ? `, ${limit} items per conversation` : ''}; violations: ${violations.length}\n`,
  );
  console.log(table(lines));
  console.log('\nER_verbatim by category');
  console.log(table(byCategory));
  if (flags.md) console.log(`\n${markdownTable(lines)}\n\n${markdownTable(byCategory)}`);
  await latency();
}

/**
 * Warm latency: a 700-message history already embedded, one new user message per request, with
 * USE-lite on onnxruntime (the default) and on TF.js (same vectors) in the same run.
 */
async function latency(): Promise<void> {
  const [locomo] = shippedData();
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo');
  const turns = conversations.flatMap((conversation) => conversation.messages.slice(1));
  const history = [conversations[2]!.messages[0]!, ...turns.slice(0, 699)];
  const budget = 2000;
  const questions = conversations.flatMap((conversation) => conversation.qa!.map((item) => item.question));
  const { percentile } = await import('./harness/stats.js');
  const rows = [['runtime', 'step', 'p50 ms', 'p99 ms']];
  for (const runtime of ['onnx', 'tfjs'] as const) {
    const embedder = useLite({ runtime });
    // Both runtimes share an id (same vectors): each gets its own memo so neither sees the other's work.
    const cache = createEmbeddingCache();
    const warmup = createCompactor({
      maxInputTokens: budget,
      strategy: relevance({ embedder, embeddings: cache, embedTimeoutMs: 600_000, awaitDocuments: true }),
    });
    await warmup.compact({ model: 'gpt-4o', messages: [...history, { role: 'user', content: 'warm-up question?' }] });
    const compactor = createCompactor({ maxInputTokens: budget, strategy: relevance({ embedder, embeddings: cache }) });
    const totals: number[] = [];
    const embeds: number[] = [];
    const scores: number[] = [];
    for (let run = 0; run < 60; run++) {
      // A text the memo has never seen, as a new turn brings.
      const messages = [...structuredClone(history), { role: 'user' as const, content: `${questions[run % questions.length]!} (asked at turn ${run})` }];
      const started = performance.now();
      const { stats } = await compactor.compact({ model: 'gpt-4o', messages });
      totals.push(performance.now() - started);
      const info = stats.strategies[0]!.info as { embedMs: number; scoreMs: number; dense: boolean };
      if (!info.dense) throw new Error('the warm run fell back to BM25');
      embeds.push(info.embedMs);
      scores.push(info.scoreMs);
    }
    rows.push(
      [`USE-lite on ${runtime}`, 'whole compaction (relevance preset)', ms(percentile(totals, 50)), ms(percentile(totals, 99))],
      ['', '  embedding the new text (memo hits for the rest)', ms(percentile(embeds, 50)), ms(percentile(embeds, 99))],
      ['', '  scoring: 699 cached vectors + BM25 (message and pair)', ms(percentile(scores, 50)), ms(percentile(scores, 99))],
    );
  }
  // The scoring step's two halves on their own: dense cosine over 1,000 cached vectors, and BM25
  // over the 699 history messages and their pairs, for a new query each run.
  const thousand = turns.slice(0, 1000).map((message) => String(message.content));
  const vectors = await useLite().embed(thousand);
  const denseTimes: number[] = [];
  const loopTimes: number[] = [];
  const sparseTimes: number[] = [];
  const historyTexts = history.slice(1).map((message) => String(message.content));
  for (let run = 0; run < 300; run++) {
    const query = vectors[(run * 7) % vectors.length]!;
    let started = performance.now();
    dotMany(query, vectors);
    denseTimes.push(performance.now() - started);
    started = performance.now();
    const scores = new Float64Array(vectors.length);
    for (let index = 0; index < vectors.length; index++) scores[index] = dot(query, vectors[index]!);
    loopTimes.push(performance.now() - started);
    // Freshly parsed strings, as a new request brings.
    const texts = structuredClone(historyTexts);
    started = performance.now();
    bm25Scores(`${questions[run % questions.length]!} (${run})`, texts, { previous: texts.map((_, index) => (index > 0 ? texts[index - 1] : undefined)) });
    sparseTimes.push(performance.now() - started);
  }
  rows.push(
    [
      'parts of scoring',
      `dense: cosine against ${vectors.length} cached vectors (dotMany, ${simdAvailable() ? 'WebAssembly SIMD' : 'JavaScript'})`,
      ms(percentile(denseTimes, 50)),
      ms(percentile(denseTimes, 99)),
    ],
    ['', `  the same with a plain JavaScript loop (dot)`, ms(percentile(loopTimes, 50)), ms(percentile(loopTimes, 99))],
    ['', `sparse: BM25 over ${historyTexts.length} messages and their pairs`, ms(percentile(sparseTimes, 50)), ms(percentile(sparseTimes, 99))],
  );
  console.log(`\nWarm latency, 700-message history, one new message, budget ${budget}`);
  console.log(table(rows));
  if (flags.md) console.log(`\n${markdownTable(rows)}`);

  // A cold history is embedded in the background: how long does that hold the event loop (every
  // other request waits that long), and how long does a query wait behind it?
  const stallRows = [['engine', 'history embed s', 'longest event-loop stall ms', 'query arriving 20 ms in waits ms']];
  const history700 = history.slice(1).map((message) => String(message.content));
  for (const [name, embedder] of [
    ['onnx on a worker thread (default)', useLite({ runtime: 'onnx' })],
    ['onnx on the event loop (mainThread: true)', useLite({ runtime: 'onnx', mainThread: true })],
    ['tfjs', useLite({ runtime: 'tfjs' })],
  ] as const) {
    await embedder.embed(['load the model first']);
    const cache = createEmbeddingCache();
    // Longest gap between ticks of a 1 ms timer: how long the event loop was held.
    let maxGap = 0;
    let lastTick = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - lastTick);
      lastTick = now;
    }, 1);
    const started = performance.now();
    cache.warm(embedder, history700);
    // A query arriving 20 ms after the background work started; its wait counts from then.
    const queryMs = await new Promise<number>((resolve) => {
      setTimeout(() => {
        cache.embed(embedder, [`${questions[0]!} (stall probe)`]).then(
          () => resolve(performance.now() - started - 20),
          () => resolve(NaN),
        );
      }, 20);
    });
    await cache.idle();
    const total = (performance.now() - started) / 1000;
    clearInterval(ticker);
    stallRows.push([name, total.toFixed(1), maxGap.toFixed(0), ms(queryMs)]);
  }
  console.log('\nEmbedding a cold 699-message history in the background (memo batches of 16)');
  console.log(table(stallRows));
  if (flags.md) console.log(`\n${markdownTable(stallRows)}`);
}

runStudy('bench:relevance', main);
