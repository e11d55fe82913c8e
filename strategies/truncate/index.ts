import { defineOptions, rules } from '../../src/core/define-options.js';
import type { Strategy } from '../../src/core/strategy.js';
import { stableHistory } from '../../src/core/window.js';
import { keepLatestExchange } from '../../src/core/nets.js';

export interface TruncateOptions {
  /**
   * Also keep the first N user turns (a turn is a user message and the replies and tool calls
   * that follow it), which often state the task. They are kept before any recent turn, if they fit.
   * @default 0
   */
  keepFirstUserTurns?: number;
  /**
   * When the recent turns outgrow their room, they are cut down to this share of it at once, then
   * grow by appending until the room is full again: between cuts each prompt starts with the
   * previous one's bytes, which providers bill at their cached rate. `1` cuts one turn at a time,
   * as a plain sliding window does, and rewrites the start of the prompt on every request.
   * @default 0.6
   */
  lowWater?: number;
  /**
   * Share of the budget set aside for the latest turn, so that the room of the recent turns (and
   * so the points where they are cut) does not change with the length of each new question.
   * @default 0.1
   */
  latestShare?: number;
}

export const TRUNCATE_DEFAULTS = { keepFirstUserTurns: 0, lowWater: 0.6, latestShare: 0.1 } satisfies Required<TruncateOptions>;

export const TRUNCATE_OPTIONS = defineOptions<TruncateOptions, typeof TRUNCATE_DEFAULTS>({
  factory: 'truncate',
  defaults: TRUNCATE_DEFAULTS,
  rules: { keepFirstUserTurns: rules.int(0), lowWater: rules.number(0, 1, { min: true }), latestShare: rules.number(0, 1, { max: true }) },
  docs: [['strategies/truncate/index.ts', 'TruncateOptions']],
});

/**
 * Recency truncation that keeps the provider's prompt cache: the protected messages (system and
 * developer prompts, the latest turn), optionally the first turns, and the most recent turns in a
 * window that is cut in steps (see `lowWater`) at points derived from the history alone, so every
 * request and every instance computes the same ones. The latest answer and the message it answers
 * are kept when they fit in half the budget.
 *
 * @example
 * createCompactor({ maxInputTokens: 4000, strategy: truncate({ keepFirstUserTurns: 1 }) })
 */
export function truncate(options: TruncateOptions = {}): Strategy {
  const settings = TRUNCATE_OPTIONS.parse(options);
  return {
    name: 'truncate',
    async apply(messages, context) {
      const parts = context.partition(messages);
      if (context.fixedTokens + parts.tokens <= context.budget) return { messages };
      const layout = stableHistory(messages, parts, {
        budget: context.budget,
        fixedTokens: context.fixedTokens,
        reserve: Math.ceil(settings.latestShare * context.budget),
        lowWater: settings.lowWater,
        firstTurns: settings.keepFirstUserTurns,
      });
      const nets: Record<string, unknown> = {};
      const net = keepLatestExchange(messages, parts, layout.keep, layout.left, context.budget);
      if (net.added > 0) nets.latestAnswer = net.added;
      const output = messages.filter((_, index) => layout.keep[parts.unitOf[index]!]);
      // The whole prompt is stable: the next request repeats it before its new turn.
      const breakpoints = [layout.prefixEnd, output[output.length - 1]].filter((message) => message !== undefined);
      const info: Record<string, unknown> = { trimmed: layout.trimmed };
      if (Object.keys(nets).length > 0) info.nets = nets;
      return { messages: output, breakpoints, info };
    },
  };
}
