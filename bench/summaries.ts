/**
 * Summaries bench: replay LoCoMo dev turn by turn and report prefix stability, billed cost with
 * prompt caching (including an LLM summarizer's own tokens, served by a local fake
 * OpenAI-compatible server and priced as gpt-4o-mini), and request-path latency in background mode.
 * Prints figures; asserts nothing. Run: npm run build && node dist/bench/summaries.js [--md]
 */
import { createServer } from 'node:http';
import { createCompactor } from '../src/compose/compactor.js';
import { shippedData } from './harness/command.js';
import { noCompaction, presetContender, type Contender } from './harness/contenders.js';
import { loadPrices, priceFor } from './harness/cost.js';
import { loadDataset } from './harness/loaders.js';
import { runReplays } from './harness/replay.js';
import type { Violation } from './harness/run.js';
import { replayRows } from './harness/summary.js';
import { machine, markdownTable, ms, percentile, table } from './harness/stats.js';
import { pipeline } from '../src/core/strategy.js';
import { extractiveSummarizer } from '../src/summarizers/extractive.js';
import { llmSummarizer } from '../src/summarizers/llm.js';
import { memorySummaryStore, SummaryQueue } from '../src/summarizers/queue.js';
import { relevance } from '../strategies/relevance/index.js';
import { summarize, summaryFold } from '../strategies/summarize/index.js';
import { truncate } from '../strategies/truncate/index.js';
import { createEmbeddingCache } from '../src/embedders/memo.js';
import type { ChatMessage } from '../src/core/types.js';
import { runStudy, studyFlags } from './harness/study.js';

const BUDGET = 2000;
const flags = studyFlags('bench:summaries', { 'latency-only': { type: 'boolean' } });

async function main(): Promise<void> {
  if (flags['latency-only']) {
    const [locomo] = shippedData();
    const rows = await latency(loadDataset(locomo!.slice('locomo:'.length), 'locomo'));
    console.log(table(rows));
    if (flags.md) console.log(`\n${markdownTable(rows)}`);
    return;
  }
  const [locomo] = shippedData();
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo');
  const counter = await createCompactor().tokenCounter('gpt-4o');
  const prices = loadPrices();
  const price = priceFor(prices, 'gpt-4o');
  const summarizerPrice = priceFor(prices, 'gpt-4o-mini');

  // A fake OpenAI-compatible endpoint: it "summarizes" with the extractive summarizer and reports
  // usage counted with o200k, so the LLM path's own tokens are costed as a small model would bill.
  const extractive = extractiveSummarizer();
  let promptTokens = 0;
  let completionTokens = 0;
  const server = createServer(async (request, response) => {
    let text = '';
    for await (const chunk of request) text += chunk;
    const body = JSON.parse(text) as { messages: { role: string; content: string }[]; max_tokens: number };
    const transcript = body.messages[1]!.content.split('\n').filter((line) => /^(user|assistant|system): /.test(line));
    const messages: ChatMessage[] = transcript.map((line) => ({ role: 'user', content: line.replace(/^(user|assistant|system): /, '') }));
    const summary = await extractive.summarize(messages, { maxTokens: body.max_tokens, countTokens: (value) => counter.text(value) });
    const usage = {
      prompt_tokens: body.messages.reduce((sum, message) => sum + counter.text(message.content) + 4, 3),
      completion_tokens: counter.text(summary),
    };
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: summary } }], usage }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseURL = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`;

  const llm = llmSummarizer({
    baseURL,
    apiKey: 'local',
    model: 'gpt-4o-mini',
    onUsage: (usage) => {
      promptTokens += usage.prompt_tokens;
      completionTokens += usage.completion_tokens;
    },
  });
  const custom = (name: string, strategy: ReturnType<typeof pipeline>, extraCost?: () => number): Contender => {
    const compactor = createCompactor({ maxInputTokens: BUDGET, strategy });
    const contender: Contender = {
      name,
      kind: 'preset',
      async run(request) {
        const started = performance.now();
        const { request: output, stats } = await compactor.compact(request);
        return { messages: output.messages, ms: performance.now() - started, failures: stats.failures.length };
      },
    };
    if (extraCost) contender.extraCost = extraCost;
    return contender;
  };
  const inline = { mode: 'inline' as const, inlineTimeoutMs: 600_000 };
  const contenders: Contender[] = [
    noCompaction(),
    presetContender('truncate'),
    presetContender('relevance'),
    presetContender('summarize'),
    presetContender('balanced'),
    custom(
      'summarize (llm, gpt-4o-mini)',
      pipeline('summarize-llm', [summarize({ ...inline, summarizer: llm, store: memorySummaryStore(), queue: new SummaryQueue() }), truncate()]),
      () => (promptTokens * summarizerPrice.input + completionTokens * summarizerPrice.output) / 1e6,
    ),
    custom(
      'balanced (llm, gpt-4o-mini)',
      pipeline('balanced-llm', [
        summaryFold({ ...inline, summarizer: llm, summaryShare: 0.1, store: memorySummaryStore(), queue: new SummaryQueue() }),
        relevance({ recencyShare: 0.2, embedTimeoutMs: 600_000, awaitDocuments: true }),
      ]),
      () => (promptTokens * summarizerPrice.input + completionTokens * summarizerPrice.output) / 1e6,
    ),
  ];
  const violations: Violation[] = [];
  const runs = await runReplays(
    conversations,
    contenders,
    { budgets: [BUDGET], model: 'gpt-4o', counter, qa: false, coldTurns: 0, progress: true },
    violations,
  );
  const rows = replayRows(runs, { name: 'gpt-4o', price, cacheRule: 'openai' });
  const costRows: string[][] = [
    [
      'strategy',
      'requests',
      'tokens after',
      'cached share',
      'uncompacted prompt $',
      'compacted prompt $',
      'summarizer $',
      'total / uncompacted',
      'ms p50',
      'ms p99',
    ],
  ];
  for (const row of rows) {
    costRows.push([
      row.contender,
      String(row.requests),
      String(row.tokensAfter),
      row.cachedAfter.toFixed(2),
      row.promptBefore.toFixed(2),
      row.promptAfter.toFixed(2),
      row.extraCost.toFixed(4),
      `${(((row.promptAfter + row.extraCost) / row.promptBefore) * 100).toFixed(1)}%`,
      ms(row.msP50),
      ms(row.msP99),
    ]);
  }
  server.close();

  const latencyRows = await latency(conversations);

  console.log(
    `${machine()}\nReplay of LoCoMo dev (3 conversations, every user turn) at ${BUDGET} tokens, gpt-4o prices with OpenAI prompt caching; summarizer calls priced as gpt-4o-mini; violations: ${violations.length}\n`,
  );
  console.log(table(costRows));
  console.log('\nRequest-path latency, background summaries');
  console.log(table(latencyRows));
  if (flags.md) console.log(`\n${markdownTable(costRows)}\n\n${markdownTable(latencyRows)}`);
}

/**
 * Request-path latency in background mode: the default presets with summaries scheduled off the
 * path, and a fresh embedding memo so every new turn pays for embedding its new text. Between
 * turns (untimed) either 60 ms pass, which on a cold history leaves requests queued behind the
 * background embedding of the whole history, or the background work finishes first, as it does
 * when the model's answer takes longer than it (steady state).
 */
async function latency(conversations: ReturnType<typeof loadDataset>): Promise<string[][]> {
  const rows: string[][] = [['preset (background mode)', 'between turns', 'requests', 'added ms p50', 'added ms p99']];
  for (const preset of ['summarize', 'balanced']) {
    for (const drained of [false, true]) {
      const cache = createEmbeddingCache();
      const queue = new SummaryQueue();
      const compactor = createCompactor({
        maxInputTokens: BUDGET,
        strategy: preset,
        presetOptions: { relevance: { embeddings: cache }, summarize: { store: memorySummaryStore(), queue } },
      });
      const times: number[] = [];
      for (const conversation of conversations) {
        for (let index = 0; index < conversation.messages.length; index++) {
          if (conversation.messages[index]!.role !== 'user') continue;
          const started = performance.now();
          await compactor.compact({ model: 'gpt-4o', messages: conversation.messages.slice(0, index + 1) });
          times.push(performance.now() - started);
          // The model answers before the next turn: background work runs meanwhile.
          if (drained) await Promise.all([cache.idle(), queue.idle()]);
          else await new Promise((resolve) => setTimeout(resolve, 60));
        }
      }
      rows.push([preset, drained ? 'background work done' : '60 ms', String(times.length), ms(percentile(times, 50)), ms(percentile(times, 99))]);
    }
  }
  return rows;
}

runStudy('bench:summaries', main);
