/**
 * Deterministic fakes for testing your own routes and strategies.
 *
 * @example
 * import { wordTokenizer, manualClock } from 'context-compactor/testing'
 * const compactor = createCompactor({ maxInputTokens: 50, tokenizer: wordTokenizer, clock: manualClock().now })
 */
import type { TextTokenizer, TokenizerFactory } from '../tokens/tokenizer.js';

/** Counts whitespace-separated words: one token per word. */
export const wordTokenizer: TokenizerFactory = (encoding): TextTokenizer => ({
  encoding: `words(${encoding})`,
  count(text) {
    let count = 0;
    let inWord = false;
    for (let index = 0; index < text.length; index++) {
      const code = text.charCodeAt(index);
      const space = code === 32 || code === 10 || code === 9 || code === 13;
      if (!space && !inWord) count++;
      inWord = !space;
    }
    return count;
  },
});

/** A clock that only moves when told to. */
export function manualClock(start = 0): { now: () => number; advance(ms: number): void } {
  let time = start;
  return {
    now: () => time,
    advance(ms) {
      time += ms;
    },
  };
}

/** Recursively freeze a value, so a test fails if anything mutates its input. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
