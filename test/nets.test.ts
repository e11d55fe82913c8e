import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createPreset } from '../strategies/presets.js';
import type { Strategy, StrategyResult } from '../src/core/strategy.js';
import type { ChatMessage } from '../src/core/types.js';
import { memorySummaryStore, SummaryQueue } from '../src/summarizers/queue.js';
import { deepFreeze, hashEmbedder, strategyContext } from '../src/testing/index.js';
import { EXCERPTS_LABEL } from '../strategies/cache-aware/index.js';
import { history } from './helpers.js';
import { protectedIndices, toolUnits } from './invariants.js';

// The safety nets, over generated chats, on the path a server runs: nothing awaited, nothing
// embedded or summarized yet (every case meets a fresh process, which is the cold request).
const RUNS = Number(process.env.NET_RUNS ?? 300);

const live = (name: string) => (): Strategy =>
  createPreset(name, {
    relevance: { embedder: hashEmbedder() },
    'cache-aware': { embedder: hashEmbedder(), excerptShare: 0.2, excerptGate: 0, excerptSpend: 1000 },
    summarize: { store: memorySummaryStore(), queue: new SummaryQueue() },
  });

const presets = ['truncate', 'cache-aware', 'relevance', 'summarize', 'balanced'];
const budget = fc.integer({ min: 5, max: 400 });

/** The test's own reading of the input: units (a tool chain is one), what is protected. */
function unitsOf(messages: readonly ChatMessage[]): number[][] {
  const chained = new Map<number, number[]>();
  for (const unit of toolUnits(messages)) for (const index of unit) chained.set(index, unit);
  const units: number[][] = [];
  messages.forEach((_, index) => {
    const unit = chained.get(index);
    if (!unit) units.push([index]);
    else if (unit[0] === index) units.push(unit);
  });
  return units;
}

/** The newest assistant message before the latest user message, and the user message it answers (their units). */
function latestExchange(messages: readonly ChatMessage[]): number[] {
  const end = messages.findLastIndex((message) => message.role === 'user');
  if (end < 0) return [];
  const answer = messages.findLastIndex((message, index) => index < end && message.role === 'assistant');
  if (answer < 0) return [];
  const asked = messages.findLastIndex((message, index) => index < answer && message.role === 'user');
  const pinned = new Set(protectedIndices(messages));
  const members = new Set([answer, ...(asked >= 0 ? [asked] : [])]);
  return unitsOf(messages)
    .filter((unit) => unit.some((index) => members.has(index)))
    .flat()
    .filter((index) => !pinned.has(index));
}

async function run(make: () => Strategy, messages: ChatMessage[], limit: number) {
  const request = deepFreeze({ model: 'gpt-4o', messages });
  const context = await strategyContext(request, { budget: limit });
  const result: StrategyResult = await make().apply(request.messages, context);
  // A rewritten message (a cleared tool result) stands for its original.
  const kept = new Set(result.messages.map((message) => result.rewrites?.get(message) ?? message));
  const tokens = (list: readonly ChatMessage[]) => context.counter.messages(list);
  return { result, kept, tokens, fixed: context.fixedTokens };
}

/** Units left out whole that would fit in the budget the output leaves unused (none when the pinned messages alone overflow). */
function droppedThatFit(messages: ChatMessage[], limit: number, ran: Awaited<ReturnType<typeof run>>): number[][] {
  const { result, kept, tokens, fixed } = ran;
  const pinned = tokens(protectedIndices(messages).map((index) => messages[index]!));
  if (fixed + pinned > limit) return [];
  const free = limit - fixed - tokens(result.messages);
  // Older tool exchanges of the current turn are the tool-results stage's: over the budget it cuts
  // them deep (to 60% of it) on purpose, so the next steps append to a cached prefix.
  const latestUser = messages.findLastIndex((message) => message.role === 'user');
  const latestAssistant = messages.findLastIndex((message, index) => index > latestUser && message.role === 'assistant');
  const cutDeep = (unit: number[]) =>
    latestUser >= 0 &&
    unit[0]! > latestUser &&
    unit[0]! < latestAssistant &&
    (messages[unit[0]!]!.tool_calls !== undefined || messages[unit[0]!]!.function_call !== undefined);
  return unitsOf(messages).filter(
    (unit) => !cutDeep(unit) && unit.every((index) => !kept.has(messages[index]!)) && tokens(unit.map((index) => messages[index]!)) <= free,
  );
}

/** A strategy's info, for a strategy or a pipeline's first step that reports one. */
const infoOf = (result: StrategyResult): Record<string, unknown> =>
  (result.info ?? result.steps?.find((step) => step.info !== undefined)?.info ?? {}) as Record<string, unknown>;
const nets = (result: StrategyResult) => (infoOf(result).nets ?? {}) as Record<string, unknown>;

describe.each(presets)('nets: %s', (name) => {
  test('the latest answer and the message it answers are kept when they fit in half the budget', async () => {
    await fc.assert(
      fc.asyncProperty(history, budget, async (messages, limit) => {
        const exchange = latestExchange(messages);
        const { result, kept, tokens, fixed } = await run(live(name), messages, limit);
        if (exchange.length === 0) return;
        const exchangeTokens = tokens(exchange.map((index) => messages[index]!));
        const pinned = tokens(protectedIndices(messages).map((index) => messages[index]!));
        if (exchangeTokens > limit / 2 || fixed + pinned + exchangeTokens > limit) return;
        expect(exchange.filter((index) => !kept.has(messages[index]!))).toEqual([]);
        // When the net had to act, it says so.
        if (nets(result).latestAnswer !== undefined) expect(nets(result).latestAnswer).toBeGreaterThan(0);
      }),
      { numRuns: RUNS },
    );
  });
});

describe.each(['relevance', 'balanced'])('nets: %s, cold', (name) => {
  test('turns that score nothing still fill the budget: nothing is dropped that would fit in what is left', async () => {
    await fc.assert(
      fc.asyncProperty(history, budget, async (messages, limit) => {
        expect(droppedThatFit(messages, limit, await run(live(name), messages, limit))).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('nets: cache-aware, cold', () => {
  test('with nothing embedded, an open excerpts block still fills by recency when an earlier turn fits in it', async () => {
    await fc.assert(
      fc.asyncProperty(history, fc.integer({ min: 40, max: 400 }), async (messages, limit) => {
        const { result, kept, tokens, fixed } = await run(live('cache-aware'), messages, limit);
        const block = result.messages.find((message) => typeof message.content === 'string' && message.content.startsWith(EXCERPTS_LABEL));
        // Gate 0: the block opens whenever the latest message matches anything the window dropped.
        const gate = infoOf(result).excerptGate as number | undefined;
        if (block || gate === undefined || gate === 0) return;
        const label = tokens([{ role: 'system', content: EXCERPTS_LABEL }]);
        const room = Math.min(Math.floor(0.2 * limit), limit - fixed - tokens(result.messages));
        const quotable = unitsOf(messages).filter(
          (unit) =>
            unit.every((index) => !kept.has(messages[index]!)) &&
            unit.every((index) => {
              const message = messages[index]!;
              return (message.role === 'user' || message.role === 'assistant') && !message.tool_calls && !message.function_call;
            }),
        );
        // Slack for the newline that joins the label and the quote.
        const fitting = quotable.filter((unit) => label + tokens(unit.map((index) => messages[index]!)) + 2 <= room);
        expect(fitting).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });

  test('reports the nets it used', async () => {
    const messages: ChatMessage[] = [{ role: 'system', content: 'be brief' }];
    for (let turn = 0; turn < 30; turn++)
      messages.push({ role: 'user', content: `question${turn} `.repeat(5) }, { role: 'assistant', content: `answer${turn} `.repeat(5) });
    messages.push({ role: 'user', content: 'question3' });
    const { result } = await run(live('cache-aware'), messages, 400);
    expect(nets(result)).toMatchObject({ recencyFill: expect.any(Number), cold: true });
  });
});

describe('nets: summarize, cold', () => {
  test('summaries not made yet leave no budget unused that an earlier turn would fit in', async () => {
    await fc.assert(
      fc.asyncProperty(history, budget, async (messages, limit) => {
        const ran = await run(live('summarize'), messages, limit);
        // Only when some summary was not made yet (as on a fresh process): a window leaves room free by design.
        if (!((infoOf(ran.result).missing as number) > 0)) return;
        expect(droppedThatFit(messages, limit, ran)).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });
});
