/**
 * Issue 20, item 1: an agent step is never refused while its core fits. The core is the system
 * prompt, the latest user message and the latest tool exchange; older tool results of the current
 * turn are cleared (ids kept), and a huge result is cut to its head and tail.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CLEARED_MARK } from '../src/core/clearing.js';
import type { ChatMessage } from '../src/core/types.js';
import type { CompactionStats } from '../src/core/stats.js';
import { createCompactor, truncate } from '../src/index.js';
import { validToolChain } from '../src/testing/index.js';
import { compacted } from './helpers.js';

/** One task, then `calls` tool calls each with a result of `size` words: one user message in all. */
function agentRun(calls: number, size: number, system = 'You are a coding agent. Use the tools.'): { model: string; messages: ChatMessage[] } {
  const messages: ChatMessage[] = [
    { role: 'system', content: system },
    { role: 'user', content: 'Book the cheapest flight for user usr_4821 and pay with card pm_77312.' },
  ];
  for (let call = 0; call < calls; call++) {
    const id = `call_${call}`;
    messages.push({
      role: 'assistant',
      content: null,
      tool_calls: [{ id, type: 'function', function: { name: 'search', arguments: JSON.stringify({ step: call }) } }],
    });
    const filler = Array.from({ length: size }, (_, word) => `entry ${word} of the listing with status ok`).join('; ');
    messages.push({ role: 'tool', tool_call_id: id, content: `flight FL${1000 + call} reservation RSV-${call}A9 at /srv/data/run${call}.json; ${filler}` });
  }
  return { model: 'gpt-4o', messages };
}

/** Results cleared by the presets' tool-results stage, and by the guard as a last resort. */
const clearedBy = (stats: CompactionStats) =>
  (stats.guard.cleared ?? 0) + stats.strategies.reduce((sum, step) => sum + (step.name === 'tool-results' ? Number(step.info?.cleared ?? 0) : 0), 0);
const cutBy = (stats: CompactionStats) =>
  (stats.guard.cut ?? 0) + stats.strategies.reduce((sum, step) => sum + (step.name === 'tool-results' ? Number(step.info?.cut ?? 0) : 0), 0);

describe('an agent step whose core fits is never refused', () => {
  for (const strategy of ['truncate', 'cache-aware', 'relevance', 'summarize']) {
    test(`${strategy}: a 12-call chain after one user message fits 2,000 tokens, older results cleared with their ids`, async () => {
      const compactor = createCompactor({ maxInputTokens: 2000, strategy });
      const request = agentRun(12, 25);
      const counter = await compactor.tokenCounter('gpt-4o');
      expect(counter.request(request)).toBeGreaterThan(3000);
      const result = compacted(await compactor.compact(request));
      const out = result.request.messages;
      expect(result.stats.tokensAfter).toBeLessThanOrEqual(2000);
      expect(validToolChain(out)).toBe(true);
      expect(out[0]).toEqual(request.messages[0]);
      expect(out[1]).toEqual(request.messages[1]);
      // The latest exchange is as it came.
      expect(out.slice(-2)).toEqual(request.messages.slice(-2));
      const placeholders = out.filter((message) => typeof message.content === 'string' && message.content.startsWith(CLEARED_MARK));
      expect(placeholders.length).toBeGreaterThan(0);
      expect(clearedBy(result.stats)).toBe(placeholders.length);
      // The values a later call passes back survive in the placeholders.
      expect(String(placeholders[0]!.content)).toMatch(/FL1000/);
      expect(String(placeholders[0]!.content)).toMatch(/RSV-0A9/);
    });
  }

  test('a single tool result larger than the budget is cut to its head and tail, not refused', async () => {
    const compactor = createCompactor({ maxInputTokens: 1500, strategy: 'truncate' });
    const request = agentRun(1, 2000);
    const result = compacted(await compactor.compact(request));
    expect(result.stats.tokensAfter).toBeLessThanOrEqual(1500);
    expect(cutBy(result.stats)).toBe(1);
    const last = String(result.request.messages.at(-1)!.content);
    expect(last.startsWith('flight FL1000 reservation RSV-0A9')).toBe(true);
    expect(last).toContain(`${CLEARED_MARK} cut`);
    expect(last.endsWith('status ok')).toBe(true);
    expect(validToolChain(result.request.messages)).toBe(true);
  });

  test('refused only when the system prompt and the latest user message alone cannot fit', async () => {
    const compactor = createCompactor({ maxInputTokens: 300, strategy: 'truncate' });
    await expect(compactor.compact(agentRun(3, 20, 'Rules. '.repeat(400)))).rejects.toMatchObject({ code: 'budget.unreachable' });
  });

  test('Anthropic shape: cleared results keep their tool_use_id and stay tool_result blocks', async () => {
    const compactor = createCompactor({ maxInputTokens: 2000, strategy: 'truncate' });
    const run = agentRun(10, 30);
    const messages: unknown[] = [{ role: 'user', content: String(run.messages[1]!.content) }];
    for (let index = 2; index < run.messages.length; index += 2) {
      const call = run.messages[index]!.tool_calls![0]!;
      messages.push({ role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: 'search', input: { step: index } }] });
      messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: String(run.messages[index + 1]!.content) }] });
    }
    const body = { model: 'claude-sonnet-4-5', max_tokens: 100, system: 'You are a coding agent.', messages };
    const result = compacted(await compactor.compact(body));
    const out = result.request.messages as { role: string; content: { type: string; tool_use_id?: string; id?: string; content?: string }[] }[];
    expect(result.stats.tokensAfter).toBeLessThanOrEqual(2000);
    const uses = out.flatMap((message) =>
      Array.isArray(message.content) ? message.content.filter((block) => block.type === 'tool_use').map((block) => block.id) : [],
    );
    const results = out.flatMap((message) => (Array.isArray(message.content) ? message.content.filter((block) => block.type === 'tool_result') : []));
    expect(results.map((block) => block.tool_use_id)).toEqual(uses);
    // Older results are cleared in place, or their whole exchanges dropped (deep cuts).
    expect(results.some((block) => String(block.content).startsWith(CLEARED_MARK)) || results.length < run.messages.length / 2 - 1).toBe(true);
    expect(String(results.at(-1)!.content)).not.toContain(CLEARED_MARK);
  });

  test('property: generated tool chains are sent valid and within budget whenever the core fits', async () => {
    const compactor = createCompactor({ strategy: 'truncate' });
    const counter = await compactor.tokenCounter('gpt-4o');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 15 }),
        fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 15, maxLength: 15 }),
        fc.integer({ min: 300, max: 3000 }),
        fc.boolean(),
        async (calls, sizes, budget, parallel) => {
          const request = agentRun(calls, 1);
          // Varied result sizes, and sometimes two results for one call message.
          const messages = request.messages.map((message, index) =>
            message.role === 'tool' ? { ...message, content: `${String(message.content)} ${'more detail here '.repeat(sizes[index % 15]! * 3)}` } : message,
          );
          if (parallel && calls > 1) {
            const last = messages.length - 2;
            const assistant = messages[last]!;
            messages[last] = {
              ...assistant,
              tool_calls: [...assistant.tool_calls!, { id: 'extra', type: 'function', function: { name: 'search', arguments: '{}' } }],
            };
            messages.push({ role: 'tool', tool_call_id: 'extra', content: 'extra result id X-42' });
          }
          const body = { model: 'gpt-4o', messages };
          const core = counter.request({ messages: messages.slice(0, 2) }) + 300;
          try {
            const result = compacted(await createCompactor({ maxInputTokens: budget, strategy: 'truncate' }).compact(body));
            expect(validToolChain(result.request.messages)).toBe(true);
            expect(result.stats.tokensAfter).toBeLessThanOrEqual(budget);
          } catch (error) {
            expect(error).toMatchObject({ code: 'budget.unreachable' });
            // Refused only when little more than the system prompt and the task fit.
            expect(core).toBeGreaterThan(budget);
          }
        },
      ),
      { numRuns: 120 },
    );
  });

  test('clearing moves in deep steps: most consecutive steps of a run share the cleared prefix', async () => {
    const compactor = createCompactor({ maxInputTokens: 3000, strategy: 'truncate' });
    const run = { ...agentRun(60, 12), model: 'gpt-5' };
    let previous: ChatMessage[] | undefined;
    let moved = 0;
    let steps = 0;
    // One request per assistant step: everything before it.
    for (let end = 4; end <= run.messages.length; end += 2) {
      const result = compacted(await compactor.compact({ model: run.model, messages: run.messages.slice(0, end) }));
      const out = result.request.messages;
      // Below the model's minimum cacheable prefix (1,024 tokens on gpt-5) there is no cache to keep.
      if (previous && clearedBy(result.stats) > 0 && result.stats.tokensAfter >= 1024) {
        steps++;
        // The previous request's messages, but for its last exchange, are this one's start.
        const stable = previous.slice(0, -2);
        if (JSON.stringify(out.slice(0, stable.length)) !== JSON.stringify(stable)) moved++;
      }
      previous = out;
    }
    expect(steps).toBeGreaterThan(20);
    expect(moved / steps).toBeLessThan(0.25);
  });

  test('pass-through: with a strategy that cannot reach the budget, a step that fits the window is sent whole, as its cached prefix is cheaper', async () => {
    // A bare truncate (no tool-results stage) can drop nothing from a single-task chain.
    const compactor = createCompactor({ maxInputTokens: 2000, strategy: truncate(), onBudgetUnreachable: 'pass-through' });
    const request = agentRun(12, 25);
    const result = compacted(await compactor.compact(request));
    expect(result.request.messages).toEqual(request.messages);
    expect(result.stats.passThrough).toBe('budget-unreachable');
    // Over the model's window (gpt-4o: 128k), it is relieved instead.
    const huge = agentRun(40, 1200);
    const relieved = compacted(await compactor.compact(huge));
    expect(relieved.stats.guard.cleared).toBeGreaterThan(0);
    expect(relieved.stats.tokensAfter).toBeLessThanOrEqual(2000);
    // The preset's tool-results stage reaches the budget, so nothing is unreachable.
    const preset = compacted(await createCompactor({ maxInputTokens: 2000, strategy: 'truncate', onBudgetUnreachable: 'pass-through' }).compact(request));
    expect(preset.stats.passThrough).toBeUndefined();
    expect(preset.stats.reason).toBe('over-budget');
    expect(preset.stats.tokensAfter).toBeLessThanOrEqual(2000);
  });
});
