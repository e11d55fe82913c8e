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
