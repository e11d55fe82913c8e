import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createCompactor, CompactorError, pipeline, truncate, validateRequest, type ChatMessage, type Strategy } from '../src/index.js';
import { deepFreeze, hashEmbedder, wordTokenizer } from '../src/testing/index.js';
import { relevance } from '../strategies/relevance/index.js';
import { summarize } from '../strategies/summarize/index.js';
import { memorySummaryStore, SummaryQueue } from '../src/summarizers/queue.js';
import { history } from './helpers.js';

// At least 10k generated cases in CI, split across the strategies below.
const RUNS = Number(process.env.INVARIANT_RUNS ?? 1450);

/** A strategy that breaks every rule, to prove the guard repairs what strategies get wrong. */
const vandal: Strategy = {
  name: 'vandal',
  async apply(messages) {
    // Drop every other message (splitting tool units and dropping protected ones), reverse the
    // order, and add a note of its own.
    const kept = messages.filter((_, index) => index % 2 === 1).reverse();
    return { messages: [{ role: 'assistant', content: 'note from a strategy' }, ...kept] };
  },
};

const strategies: Record<string, () => Strategy> = {
  truncate: () => truncate(),
  'truncate keepFirstUserTurns=2': () => truncate({ keepFirstUserTurns: 2 }),
  pipeline: () => pipeline('nested', [pipeline('inner', [truncate({ keepFirstUserTurns: 1 })]), truncate()]),
  relevance: () => relevance({ embedder: hashEmbedder(), markers: true }),
  summarize: () => pipeline('summarize', [summarize({ mode: 'inline', chunkTokens: 50, summaryTokens: 20, store: memorySummaryStore(), queue: new SummaryQueue() }), truncate()]),
  balanced: () =>
    pipeline('balanced', [
      summarize({ mode: 'inline', chunkTokens: 50, summaryTokens: 20, keepSource: true, summaryShare: 0.2, store: memorySummaryStore(), queue: new SummaryQueue() }),
      relevance({ embedder: hashEmbedder(), recencyShare: 0.2 }),
    ]),
  'misbehaving strategy + guard': () => vandal,
};

const counter = createCompactor({ tokenizer: wordTokenizer, defaultModel: 'gpt-4o' });

function protectedIndices(messages: readonly ChatMessage[]): number[] {
  let latestUser = -1;
  messages.forEach((message, index) => {
    if (message.role === 'user') latestUser = index;
  });
  // With no user message, the last unit (an assistant message and its tool results) is protected.
  let from = latestUser;
  if (from < 0) {
    from = messages.length - 1;
    while (from > 0 && (messages[from]!.role === 'tool' || messages[from]!.role === 'function')) from--;
  }
  return messages.flatMap((message, index) => (message.role === 'system' || message.role === 'developer' || index >= from ? [index] : []));
}

function checkToolUnits(output: readonly ChatMessage[]): void {
  const answered = new Set(output.filter((message) => message.role === 'tool').map((message) => message.tool_call_id));
  for (const message of output) {
    for (const call of message.tool_calls ?? []) expect(answered.has(call.id), `tool call ${call.id} lost its result`).toBe(true);
  }
  output.forEach((message, index) => {
    if (message.role === 'function') expect(output[index - 1]?.function_call ?? output[index - 1]?.role === 'function').toBeTruthy();
  });
}

describe.each(Object.keys(strategies))('invariants: %s', (name) => {
  test('output is valid, within budget, keeps protected messages in order, and is idempotent', async () => {
    await fc.assert(
      fc.asyncProperty(history, fc.integer({ min: 5, max: 400 }), async (messages, budget) => {
        const request = deepFreeze({ model: 'gpt-4o', messages });
        const compactor = createCompactor({ maxInputTokens: budget, tokenizer: wordTokenizer, strategy: strategies[name]!() });
        const pinned = protectedIndices(messages).map((index) => messages[index]!);
        const protectedTokens = pinned.length === 0 ? 3 : await counter.countTokens({ messages: pinned });
        let result;
        try {
          result = await compactor.compact(request);
        } catch (error) {
          expect(CompactorError.isInstance(error) && error.code).toBe('budget.unreachable');
          expect(protectedTokens).toBeGreaterThan(budget);
          return;
        }
        const output = result.request.messages;
        // Within budget, by an independent count.
        expect(await counter.countTokens(result.request)).toBeLessThanOrEqual(budget);
        expect(result.stats.tokensAfter).toBe(await counter.countTokens(result.request));
        // Structurally valid: no orphaned tool results, no call without its results.
        validateRequest(result.request);
        checkToolUnits(output);
        // Protected messages kept; input messages appear in their original order.
        const positions = output.map((message) => messages.indexOf(message)).filter((index) => index >= 0);
        for (const index of protectedIndices(messages)) expect(positions).toContain(index);
        expect([...positions].sort((a, b) => a - b)).toEqual(positions);
        // Idempotent: compacting the output again changes nothing.
        const again = await compactor.compact(deepFreeze(result.request));
        expect(again.request.messages).toEqual(output);
      }),
      { numRuns: RUNS },
    );
  });
});
