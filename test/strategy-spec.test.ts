import { describe, expect, test } from 'vitest';
import { CompactorError } from '../src/core/errors.js';
import type { Strategy } from '../src/core/strategy.js';
import { createCompactor, pipeline } from '../src/index.js';

const passThrough = (name: string, extra: Partial<Strategy> = {}): Strategy => ({ name, apply: async (messages) => ({ messages }), ...extra });
const long = {
  model: 'gpt-4o',
  messages: Array.from({ length: 40 }, (_, turn) => ({ role: turn % 2 ? ('assistant' as const) : ('user' as const), content: `turn ${turn} `.repeat(20) })),
};

describe('the Strategy specification version', () => {
  test('a strategy of an unknown version is refused, naming the option; v1 and none are run', async () => {
    const future = passThrough('future', { specificationVersion: 'v2' as unknown as 'v1' });
    const refused = (() => {
      try {
        createCompactor({ strategy: future });
      } catch (error) {
        return error;
      }
    })();
    expect(CompactorError.isInstance(refused) && refused.code).toBe('options.invalid');
    expect(String((refused as Error).message)).toContain('"strategy"');
    expect(() => pipeline('p', [passThrough('ok'), future])).toThrow(/strategies\[1\]/);
    for (const strategy of [passThrough('v1', { specificationVersion: 'v1' }), passThrough('none')]) {
      const { stats } = await createCompactor({ strategy, maxInputTokens: 100, onBudgetUnreachable: 'pass-through' }).compact(long);
      expect(stats.strategies.map((step) => step.name)).toContain(strategy.name);
    }
  });

  test('the context is frozen: a strategy that writes to it fails alone, and the next one sees the budget unchanged', async () => {
    const seen: number[] = [];
    const vandal: Strategy = {
      name: 'vandal',
      apply: async (messages, context) => {
        (context as { budget: number }).budget = 1_000_000;
        return { messages };
      },
    };
    const witness: Strategy = {
      name: 'witness',
      apply: async (messages, context) => {
        seen.push(context.budget);
        return { messages };
      },
    };
    const { stats } = await createCompactor({ strategy: pipeline('p', [vandal, witness]), maxInputTokens: 100, onBudgetUnreachable: 'pass-through' }).compact(
      long,
    );
    expect(seen).toEqual([100]);
    expect(stats.failures.map((failure) => failure.strategy)).toContain('vandal');
  });
});
