import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../src/core/types.js';
import { partition } from '../src/core/units.js';
import { windowStart } from '../src/core/window.js';
import { history } from './helpers.js';

const RUNS = Number(process.env.NET_RUNS ?? 300);
const words = (message: ChatMessage) => 4 + JSON.stringify(message.content ?? message.tool_calls ?? '').split(/\s+/).length;

/** Each request a chat client would send for this history: every prefix that ends at a user message. */
function requests(messages: readonly ChatMessage[]): ChatMessage[][] {
  return messages.flatMap((message, index) => (message.role === 'user' ? [messages.slice(0, index + 1)] : []));
}

describe('the stepped window', () => {
  test('only moves forward, stays within its room (or one turn), and is the same for every instance', async () => {
    await fc.assert(
      fc.property(history, fc.integer({ min: 5, max: 300 }), fc.double({ min: 0.1, max: 1, noNaN: true }), (messages, high, lowWater) => {
        let previous: ChatMessage | undefined;
        let previousIndex = -1;
        for (const request of requests(messages)) {
          const parts = partition(request, words);
          const start = windowStart(parts, { high, low: high * lowWater });
          const again = windowStart(partition([...request], words), { high, low: high * lowWater });
          expect(again).toBe(start);
          // In message terms: the first message of the window never moves back.
          const first = start < parts.units.length ? parts.units[start]!.indices[0]! : request.length;
          if (previous !== undefined) {
            const index = request.indexOf(previous);
            expect(first).toBeGreaterThanOrEqual(index >= 0 ? index : previousIndex);
          }
          previous = request[first];
          previousIndex = first;
          // What it holds fits in `high`, unless it is a single turn.
          const inside = parts.units.slice(start).filter((unit) => !unit.protected);
          const size = inside.reduce((sum, unit) => sum + unit.tokens, 0);
          if (new Set(inside.map((unit) => unit.turn)).size > 1) expect(size).toBeLessThanOrEqual(high);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('early cuts and the shortest cached prefix', () => {
  const turns = (count: number): ChatMessage[] =>
    Array.from({ length: count }, (_, turn) => [
      { role: 'user' as const, content: `u${turn} a b c d e` },
      { role: 'assistant' as const, content: `a${turn} a b c d e` },
    ]).flat();
  const tokens = () => 10;

  test('a claim cuts the window before its unit, and the replay keeps that cut', () => {
    const messages = [...turns(10), { role: 'user' as const, content: 'latest' }];
    const parts = partition(messages, tokens);
    const plain = windowStart(parts, { high: 200, low: 120 });
    expect(plain).toBe(0);
    // On the request whose latest message was unit 12 (turn 7's user message), room was made for 100 tokens.
    const cut = windowStart(parts, { high: 200, low: 120, claims: new Map([[12, 100]]) });
    // Before unit 12 the window held units 0–11 (120 tokens): it drops whole turns until 120 + 100 fits in 200 less…
    expect(cut).toBeGreaterThan(plain);
    expect((12 - cut) * 10 + 100).toBeLessThanOrEqual(200);
    // …and is still a turn boundary.
    expect(parts.units[cut]!.indices.map((index) => messages[index]!.role)).toEqual(['user']);
  });

  test('the window is not cut below the shortest cached prefix the budget can hold', async () => {
    const { stableHistory } = await import('../src/core/window.js');
    const messages = [{ role: 'system' as const, content: 'sys' }, ...turns(40), { role: 'user' as const, content: 'latest' }];
    const options = { budget: 500, fixedTokens: 0, reserve: 50, lowWater: 0.2, firstTurns: 0 };
    // The smallest window over every request once it has first filled (a cut has happened).
    const smallest = (minCachedPrefix: number | undefined) => {
      let least = Infinity;
      let filled = false;
      for (let end = 1; end < messages.length; end++) {
        if (messages[end]!.role !== 'user') continue;
        const request = messages.slice(0, end + 1);
        const requestParts = partition(request, tokens);
        const layout = stableHistory(request, requestParts, minCachedPrefix === undefined ? options : { ...options, minCachedPrefix });
        const size = layout.keep.reduce((sum, flag, unit) => sum + (flag && !requestParts.units[unit]!.protected ? requestParts.units[unit]!.tokens : 0), 0);
        if (layout.dropped.length > 0) filled = true;
        if (filled) least = Math.min(least, size);
      }
      return least;
    };
    // Room 440, lowWater 0.2: cut to 88 tokens. With a 300-token minimum (the system prompt's 10
    // included), to at most 290 and no less than one turn under it.
    expect(smallest(undefined)).toBeLessThan(100);
    expect(smallest(300)).toBeGreaterThanOrEqual(270);
    // A budget too small to hold the minimum caches nothing anyway: no floor.
    expect(smallest(10_000)).toBe(smallest(undefined));
  });
});
