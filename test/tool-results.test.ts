import { withoutCacheMarkers } from '../src/formats/explicit-breakpoints.js';
/**
 * Issue 20, items 2 and 3: the tool-output stage. Older results cleared to placeholders that keep
 * ids and values, the latest `keep` whole, excluded tools never touched, huge results cut once at
 * ingestion, under the budget only where the request's price rule says it lowers the bill, and the
 * layout derived from the history so consecutive steps share their prefix.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CLEARED_MARK } from '../src/core/clearing.js';
import { fromAnthropic } from '../src/formats/anthropic/index.js';
import type { ChatMessage } from '../src/core/types.js';
import { createCompactor, pipeline, toolResults, truncate } from '../src/index.js';
import { cacheTerms, PRICES } from '../src/prices.js';
import { validToolChain } from '../src/testing/index.js';
import { compacted } from './helpers.js';

/** One task, then a call and a result per entry of `sizes` (words of filler), named by `tools`. */
function agentRun(sizes: readonly number[], tools: readonly string[] = ['search']): ChatMessage[] {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'You are an agent. Use the tools.' },
    { role: 'user', content: 'Rebook order ORD-5521 for user usr_4821.' },
  ];
  sizes.forEach((size, call) => {
    const id = `call_${call}`;
    const name = tools[call % tools.length]!;
    messages.push({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name, arguments: JSON.stringify({ page: call }) } }] });
    messages.push({ role: 'tool', tool_call_id: id, content: `item ITM-${call}7 at /data/p${call}.json; ${'listing row with several words '.repeat(size)}` });
  });
  return messages;
}

// Cache markers are not prompt tokens: a request that moves its breakpoint keeps its prefix.
const key = (message: ChatMessage) => JSON.stringify(withoutCacheMarkers(message));

/** The prompt bill of a run's requests under a cache rule (input-price units), as the agent bench bills it. */
async function bill(requests: readonly ChatMessage[][], model: string): Promise<number> {
  const counter = await createCompactor().tokenCounter('gpt-4o');
  const { cached, write, minTokens } = cacheTerms(PRICES[model]!);
  let previous: ChatMessage[] = [];
  let total = 0;
  for (const messages of requests) {
    let shared = 0;
    for (let at = 0; at < messages.length && at < previous.length && key(messages[at]!) === key(previous[at]!); at++) shared += counter.message(messages[at]!);
    const tokens = counter.messages(messages) + 3;
    const read = shared >= minTokens ? shared : 0;
    const rest = tokens - read;
    total += read * cached + (write > 0 && tokens >= minTokens ? rest * (1 + write) : rest);
    previous = messages;
  }
  return total;
}

/** Every step of a run through a compactor: the messages before each assistant message. */
async function replayRun(messages: readonly ChatMessage[], model: string, options: Parameters<typeof createCompactor>[0]) {
  const compactor = createCompactor(options);
  const sent: ChatMessage[][] = [];
  const whole: ChatMessage[][] = [];
  for (let end = 3; end <= messages.length; end++) {
    if (end < messages.length && messages[end]!.role !== 'assistant') continue;
    const before = messages.slice(0, end);
    whole.push(before);
    sent.push(compacted(await compactor.compact({ model, messages: before })).request.messages);
  }
  return { sent, whole };
}

describe('toolResults', () => {
  test('over the budget: older results become placeholders with their ids and values, the latest 3 stay whole', async () => {
    const request = { model: 'gpt-4o', messages: agentRun(Array.from({ length: 12 }, () => 20)) };
    const result = compacted(await createCompactor({ maxInputTokens: 1500, strategy: pipeline('t', [toolResults(), truncate()]) }).compact(request));
    const out = result.request.messages;
    expect(validToolChain(out)).toBe(true);
    expect(result.stats.tokensAfter).toBeLessThanOrEqual(1500);
    expect(out.slice(-6)).toEqual(request.messages.slice(-6));
    const placeholders = out.filter((message) => String(message.content).startsWith(CLEARED_MARK));
    expect(placeholders.length).toBeGreaterThan(0);
    for (const placeholder of placeholders.filter((message) => message.role === 'tool')) {
      const original = request.messages.find((message) => message.tool_call_id === placeholder.tool_call_id)!;
      const id = /ITM-\d+/.exec(String(original.content))![0];
      expect(String(placeholder.content)).toContain(id);
    }
  });

  test('excludeTools: a named tool’s results are never cleared; keep sets how many stay whole', async () => {
    const messages = agentRun(
      Array.from({ length: 12 }, () => 20),
      ['search', 'plan'],
    );
    const strategy = pipeline('t', [toolResults({ excludeTools: ['plan'], keep: 1 }), truncate()]);
    const { request } = compacted(await createCompactor({ maxInputTokens: 2500, strategy }).compact({ model: 'gpt-4o', messages }));
    const out = request.messages;
    const planIds = new Set(messages.flatMap((message) => (message.tool_calls ?? []).filter((call) => call.function.name === 'plan').map((call) => call.id)));
    for (const message of out)
      if (message.role === 'tool' && planIds.has(String(message.tool_call_id))) expect(String(message.content)).not.toContain(CLEARED_MARK);
    expect(out.at(-1)).toEqual(messages.at(-1));
    expect(out.filter((message) => message.role === 'tool' && String(message.content).startsWith(CLEARED_MARK)).length).toBeGreaterThan(0);
  });

  test('clearToolInputs replaces the arguments of calls whose results are cleared, keeping their values', async () => {
    // Calls with long arguments (a patch, say): clearing them pays; a short one is left as it is.
    const messages = agentRun(Array.from({ length: 10 }, () => 20)).map((message, index) =>
      message.tool_calls
        ? {
            ...message,
            tool_calls: [
              {
                ...message.tool_calls[0]!,
                function: { name: 'edit', arguments: JSON.stringify({ page: index, patch: 'replace this line with that line '.repeat(12) }) },
              },
            ],
          }
        : message,
    );
    const strategy = pipeline('t', [toolResults({ clearToolInputs: true }), truncate()]);
    const { request } = compacted(await createCompactor({ maxInputTokens: 2000, strategy }).compact({ model: 'gpt-4o', messages }));
    const cleared = request.messages.filter((message) => message.tool_calls?.[0]?.function.arguments.includes('"cleared"'));
    expect(cleared.length).toBeGreaterThan(0);
    expect(validToolChain(request.messages)).toBe(true);
    // Values survive: {"page":N} keeps N (of two digits or more; one digit is not a value).
    const last = cleared.at(-1)!.tool_calls![0]!.function.arguments;
    expect(JSON.parse(last)).toMatchObject({ values: [expect.stringMatching(/^\d{2,}$/)] });
  });

  test('a huge result is cut at ingestion, and to the same bytes on every later step', async () => {
    const messages = agentRun([5, 3000, 5, 5, 5]);
    // underBudget: 'never', so that no later bill test clears the result instead.
    const compactor = createCompactor({ maxInputTokens: 8000, strategy: 'truncate', presetOptions: { 'tool-results': { underBudget: 'never' } } });
    const first = compacted(await compactor.compact({ model: 'gpt-4o', messages: messages.slice(0, 6) }));
    const later = compacted(await compactor.compact({ model: 'gpt-4o', messages }));
    const cutOf = (list: ChatMessage[]) => list.find((message) => message.tool_call_id === 'call_1')!;
    expect(String(cutOf(first.request.messages).content)).toContain(`${CLEARED_MARK} cut`);
    expect(cutOf(later.request.messages)).toEqual(cutOf(first.request.messages));
    expect(first.stats.tokensBefore).toBeLessThanOrEqual(8000 * 4);
  });

  test('within the budget under gpt-5 (10% cached reads), nothing is cleared on a short run: the rewrite would cost more than it saves', async () => {
    // Results of ~500 tokens: above gpt-5's 1,024-token minimum from the fourth result on (below it nothing is cached, and clearing is free).
    const messages = agentRun(Array.from({ length: 8 }, () => 80));
    const { sent, whole } = await replayRun(messages, 'gpt-5', { maxInputTokens: 100_000 });
    expect(sent).toEqual(whole);
  });

  test('under the budget, over many generated runs, the stage never raises the bill by more than 0.5% under any rule, and saves where reads cost half', async () => {
    // The bill test guesses how many steps are still to come, so one run that ends right after a
    // cut can cost a little more; the promise is on the traffic as a whole, as the agent bench measures it.
    const runs = fc.sample(fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 6, maxLength: 60 }), { numRuns: 30, seed: 2020 });
    for (const model of ['gpt-4o', 'gpt-5', 'gpt-5.6-terra', 'claude-sonnet-4', 'claude-opus-4-5']) {
      let compactedBill = 0;
      let wholeBill = 0;
      for (const sizes of runs) {
        const { sent, whole } = await replayRun(agentRun(sizes), model, { maxInputTokens: 1_000_000 });
        for (const list of sent) expect(validToolChain(list)).toBe(true);
        compactedBill += await bill(sent, model);
        wholeBill += await bill(whole, model);
      }
      expect(compactedBill, model).toBeLessThanOrEqual(wholeBill * 1.005);
      if (model === 'gpt-4o') expect(compactedBill).toBeLessThan(wholeBill * 0.95);
    }
  }, 120_000);

  test('Anthropic breakpoints for agents: at the end of the part that stays until the next cut, and at the end; the first never moves back between cuts', async () => {
    const run = agentRun(Array.from({ length: 40 }, () => 30));
    // The Anthropic shape of the run: tool_use blocks and tool_result blocks.
    const anthropic: unknown[] = [{ role: 'user', content: String(run[1]!.content) }];
    for (let index = 2; index < run.length; index += 2) {
      const call = run[index]!.tool_calls![0]!;
      anthropic.push({ role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: call.function.name, input: JSON.parse(call.function.arguments) }] });
      anthropic.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: String(run[index + 1]!.content) }] });
    }
    const compactor = createCompactor({ maxInputTokens: 3000 });
    let previous: { stable: number; bytes: string; dropped: number } | undefined;
    let checked = 0;
    for (let end = 3; end <= anthropic.length; end += 2) {
      const { request, stats } = compacted(
        await compactor.compact({ model: 'claude-sonnet-4-5', max_tokens: 100, system: 'You are an agent.', messages: anthropic.slice(0, end) }),
      );
      const step = stats.strategies.find((entry) => entry.name === 'tool-results')!;
      const dropped = Number(step.info?.droppedExchanges ?? 0);
      if (dropped === 0) continue;
      expect(stats.breakpoints).toHaveLength(2);
      const [stable, last] = stats.breakpoints!;
      // Indices are of the canonical messages (an Anthropic tool_result block is one).
      expect(last).toBe(stats.messagesAfter - 1);
      const canonical = fromAnthropic(request as never).canonical.messages;
      const bytes = JSON.stringify(canonical.slice(0, stable! + 1), (key, value) => (key === 'cache_control' ? undefined : value));
      if (previous && previous.dropped === dropped) {
        // Between cuts: the same stable part, byte for byte, at the same place.
        expect(stable).toBe(previous.stable);
        expect(bytes).toBe(previous.bytes);
        checked++;
      }
      previous = { stable: stable!, bytes, dropped };
    }
    expect(checked).toBeGreaterThan(5);
  });

  test('property: generated chains over the budget stay valid, within budget when the core fits, and keep every id of the kept results', async () => {
    const counter = await createCompactor().tokenCounter('gpt-4o');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 400, max: 6000 }),
        fc.constantFrom('gpt-4o', 'gpt-5', 'claude-sonnet-4'),
        async (sizes, budget, model) => {
          const messages = agentRun(sizes);
          try {
            const result = compacted(await createCompactor({ maxInputTokens: budget, strategy: 'cache-aware' }).compact({ model, messages }));
            const out = result.request.messages;
            expect(validToolChain(out)).toBe(true);
            expect(result.stats.tokensAfter).toBeLessThanOrEqual(budget);
            // Every result still there (whole or as a placeholder) names the item it held.
            for (const message of out.filter((entry) => entry.role === 'tool')) {
              const original = messages.find((entry) => entry.tool_call_id === message.tool_call_id)!;
              if (!String(message.content).includes(' cut ')) expect(String(message.content)).toContain(/ITM-\d+/.exec(String(original.content))![0]);
            }
          } catch (error) {
            expect(error).toMatchObject({ code: 'budget.unreachable' });
            expect(counter.messages(messages.slice(0, 2)) + counter.messages(messages.slice(-2))).toBeGreaterThan(budget / 2);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
