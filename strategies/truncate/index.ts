import { invalidOption } from '../../src/core/errors.js';
import { selectMessages, type Strategy } from '../../src/core/strategy.js';

export interface TruncateOptions {
  /**
   * Also keep the first N user turns (a turn is a user message and the replies and tool calls
   * that follow it), which often state the task. They are kept before any recent turn, if they fit.
   * @default 0
   */
  keepFirstUserTurns?: number;
}

export const TRUNCATE_DEFAULTS = { keepFirstUserTurns: 0 } satisfies Required<TruncateOptions>;

/**
 * Recency truncation: keeps the newest whole turns that fit the budget, plus the protected
 * messages (system and developer prompts, the latest user turn) and optionally the first turns.
 * It stops at the first turn that does not fit, so what it keeps is one contiguous recent span.
 *
 * @example
 * createCompactor({ maxInputTokens: 4000, strategy: truncate({ keepFirstUserTurns: 1 }) })
 */
export function truncate(options: TruncateOptions = {}): Strategy {
  const settings = { ...TRUNCATE_DEFAULTS, ...options } satisfies Required<TruncateOptions>;
  if (!Number.isInteger(settings.keepFirstUserTurns) || settings.keepFirstUserTurns < 0) {
    invalidOption('keepFirstUserTurns', 'an integer >= 0', settings.keepFirstUserTurns);
  }
  return {
    name: 'truncate',
    async apply(messages, context) {
      const parts = context.partition(messages);
      if (context.fixedTokens + parts.tokens <= context.budget) return { messages };
      const turnTokens = parts.turnTokens;
      let remaining = context.budget - context.fixedTokens - parts.protectedTokens;
      const keepTurn = new Uint8Array(parts.turns + 1);
      for (let turn = 1; turn <= Math.min(settings.keepFirstUserTurns, parts.turns); turn++) {
        if (turnTokens[turn]! > remaining) break;
        keepTurn[turn] = 1;
        remaining -= turnTokens[turn]!;
      }
      for (let turn = parts.turns; turn >= 0; turn--) {
        if (keepTurn[turn] || turnTokens[turn] === 0) continue;
        if (turnTokens[turn]! > remaining) break;
        keepTurn[turn] = 1;
        remaining -= turnTokens[turn]!;
      }
      const keepIndex = new Uint8Array(messages.length);
      for (const unit of parts.units) {
        if (unit.protected || keepTurn[unit.turn]) for (const index of unit.indices) keepIndex[index] = 1;
      }
      return { messages: selectMessages(messages, keepIndex) };
    },
  };
}
