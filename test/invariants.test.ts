import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createPreset } from '../strategies/presets.js';
import { pipeline, truncate, type ChatMessage, type Strategy } from '../src/index.js';
import { hashEmbedder } from '../src/testing/index.js';
import { memorySummaryStore, SummaryQueue } from '../src/summarizers/queue.js';
import { history } from './helpers.js';
import { guardRepair, protectedIndices, strategyViolation, toolUnits } from './invariants.js';

// At least 10k generated cases in CI, split across the strategies below.
const RUNS = Number(process.env.INVARIANT_RUNS ?? 1450);

/** Each preset as shipped, with deterministic parts: a hash embedder, inline summaries of small chunks. */
const preset = (name: string) => () =>
  createPreset(name, {
    relevance: { embedder: hashEmbedder(), awaitDocuments: true },
    'cache-aware': { embedder: hashEmbedder(), awaitDocuments: true },
    summarize: { mode: 'inline', chunkTokens: 50, summaryTokens: 20 },
  });

const strategies: Record<string, () => Strategy> = {
  truncate: preset('truncate'),
  relevance: preset('relevance'),
  'cache-aware': preset('cache-aware'),
  summarize: preset('summarize'),
  balanced: preset('balanced'),
  // The live path: nothing awaited, so scores and summaries depend on what a fresh process has.
  'cache-aware live': () => createPreset('cache-aware', { 'cache-aware': { embedder: hashEmbedder() } }),
  'summarize background': () => createPreset('summarize', { summarize: { store: memorySummaryStore(), queue: new SummaryQueue(), summaryTokens: 20 } }),
  'truncate keepFirstUserTurns=2': () => truncate({ keepFirstUserTurns: 2 }),
  'relevance with markers': () => createPreset('relevance', { relevance: { embedder: hashEmbedder(), markers: true, awaitDocuments: true } }),
  'nested pipeline': () => pipeline('nested', [pipeline('inner', [truncate({ keepFirstUserTurns: 1 })]), truncate()]),
};

const budget = fc.integer({ min: 5, max: 400 });

describe.each(Object.keys(strategies))('invariants: %s', (name) => {
  test('its own output is valid, within budget, keeps protected messages and tool units whole and in order, and is idempotent', async () => {
    await fc.assert(
      fc.asyncProperty(history, budget, async (messages, limit) => {
        expect(await strategyViolation(strategies[name]!, messages, limit)).toBeUndefined();
      }),
      { numRuns: RUNS },
    );
  });

  test('through the compactor, the guard has nothing to repair', async () => {
    await fc.assert(
      fc.asyncProperty(history, budget, async (messages, limit) => {
        expect(await guardRepair(strategies[name]!, messages, limit)).toBeUndefined();
      }),
      { numRuns: Math.ceil(RUNS / 4) },
    );
  });
});

/** Strategies that each break one rule. */
const broken: Record<string, Strategy> = {
  'drops the latest user message': { name: 'drops-latest', apply: async (messages) => ({ messages: messages.slice(0, -1) }) },
  'drops system prompts': {
    name: 'drops-system',
    apply: async (messages) => ({ messages: messages.filter((message) => message.role !== 'system' && message.role !== 'developer') }),
  },
  'reverses the order': { name: 'reverses', apply: async (messages) => ({ messages: [...messages].reverse() }) },
  'drops tool results but keeps their calls': {
    name: 'orphans',
    apply: async (messages) => ({ messages: messages.filter((message, index) => message.role !== 'tool' || index === messages.length - 1) }),
  },
  'ignores the budget': { name: 'ignores-budget', apply: async (messages) => ({ messages }) },
  'makes a tool message of its own': {
    name: 'forges',
    apply: async (messages) => ({ messages: [{ role: 'tool', tool_call_id: 'forged', content: 'x' } as ChatMessage, ...messages] }),
  },
  'is not idempotent': {
    name: 'adds-a-note',
    apply: async (messages) => ({
      messages: [
        { role: 'system', content: 'note' },
        ...messages
          .slice(Math.floor(messages.length / 2))
          .filter((message) => message.role !== 'tool' && !message.tool_calls && message.role !== 'function' && !message.function_call),
      ],
    }),
  },
  'mutates its input': {
    name: 'mutates',
    apply: async (messages) => {
      (messages[0] as { content: unknown }).content = 'changed';
      return { messages };
    },
  },
};

describe('the invariant suite can fail', () => {
  test.each(Object.keys(broken))('it catches a strategy that %s', async (name) => {
    const result = await fc.check(
      fc.asyncProperty(history, budget, async (messages, limit) => (await strategyViolation(() => broken[name]!, messages, limit)) === undefined),
      { numRuns: 300 },
    );
    expect(result.failed).toBe(true);
  });

  test('and through the compactor, it sees the guard repair a broken strategy', async () => {
    const result = await fc.check(
      fc.asyncProperty(history, budget, async (messages, limit) => (await guardRepair(() => broken['reverses the order']!, messages, limit)) === undefined),
      { numRuns: 100 },
    );
    expect(result.failed).toBe(true);
  });

  test('its own reading of protected messages and tool units agrees with a hand-made case', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 's' },
      { role: 'user', content: 'u1' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'a', content: 'r' },
      { role: 'user', content: 'u2' },
      { role: 'assistant', content: null, function_call: { name: 'g', arguments: '{}' } },
      { role: 'function', name: 'g', content: 'r2' },
    ];
    expect(protectedIndices(messages)).toEqual([0, 4, 5, 6]);
    expect(toolUnits(messages)).toEqual([
      [2, 3],
      [5, 6],
    ]);
  });
});
