import { readFile } from 'node:fs/promises';
import { createCompactor } from '../src/compose/compactor.js';
import { createRuntime } from '../src/runtime.js';
import { locomoMessages, parseLocomo } from './datasets/locomo.js';
import { Progress } from './harness/progress.js';
import { shippedLocomoPath } from './paths.js';
import type { ChatRequest } from '../src/core/types.js';

/**
 * The quick-start job: each shipped LoCoMo conversation becomes one request whose last message is
 * one of its real QA questions, compacted at several budgets. Prints tokens before and after and
 * checks the system prompt and the question survived.
 *
 * It runs as a server does (nothing awaited: a fresh process meets each conversation cold, then,
 * once its background work is done as it would be while a person types, the next turn); `--await`
 * waits for every embedding and summary instead.
 */
export async function runDemo(flags: { budgets: string; preset: string; await?: boolean }): Promise<void> {
  const budgets = flags.budgets.split(',').map((value) => Number(value.trim()));
  if (budgets.some((budget) => !Number.isInteger(budget) || budget < 1)) {
    throw new Error('--budgets must be a comma-separated list of whole numbers');
  }
  const conversations = parseLocomo(JSON.parse(await readFile(shippedLocomoPath(), 'utf8')));
  const rows: string[][] = [
    ['conversation', 'messages', 'tokens before', ...budgets.map((budget) => `after @${budget}`), 'kept prompt+question', 'ms (cold/next turn)'],
  ];
  // Progress on stderr: a cold process per conversation and budget takes a while.
  const progress = new Progress('demo', conversations.length * budgets.length);
  for (const conversation of conversations) {
    const { messages } = locomoMessages(conversation);
    const question = conversation.qa.find((item) => item.category !== 5)!;
    const request: ChatRequest = { model: 'gpt-4o', messages: [...messages, { role: 'user', content: question.question }] };
    const cells: string[] = [conversation.id, String(request.messages.length)];
    let before = 0;
    let keptAll = true;
    const times: string[] = [];
    for (const budget of budgets) {
      // A fresh process per conversation and budget: the first request is cold.
      const runtime = createRuntime();
      const awaited = { embedTimeoutMs: 60_000, awaitDocuments: true };
      const compactor = createCompactor({
        maxInputTokens: budget,
        strategy: flags.preset,
        runtime,
        presetOptions: flags.await ? { relevance: awaited, 'cache-aware': awaited, summarize: { mode: 'inline', inlineTimeoutMs: 60_000 } } : {},
      });
      const cold = await compactor.compact(request);
      await Promise.all([runtime.embeddings.idle(), runtime.summaryQueue.idle()]);
      // The next turn resends the same history plus one message: only that message is new work.
      const next: ChatRequest = {
        ...request,
        messages: [...request.messages, { role: 'assistant', content: 'Noted.' }, { role: 'user', content: 'And after that?' }],
      };
      const warm = await compactor.compact(next);
      before = cold.stats.tokensBefore;
      cells.push(`${cold.stats.tokensAfter} (${cold.stats.messagesAfter} msgs)`);
      const out = cold.request.messages;
      keptAll &&= out[0] === request.messages[0] && out[out.length - 1] === request.messages[request.messages.length - 1];
      times.push(`${cold.stats.ms.toFixed(1)}/${warm.stats.ms.toFixed(2)}`);
      progress.tick();
    }
    cells.splice(2, 0, String(before));
    cells.push(keptAll ? 'yes' : 'NO', times.join(' '));
    rows.push(cells);
  }
  progress.finish();
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ')}\n`);
  process.stdout.write(
    `\npreset: ${flags.preset}; path: ${flags.await ? 'idealised (every embedding and summary awaited)' : 'live, as a server runs (nothing awaited; background work done before the next turn)'}; tokens are OpenAI-billed o200k_base counts (gpt-4o), messages + framing + priming.\n`,
  );
}
