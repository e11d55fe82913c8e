import { allValues, CLEARED_MARK, clearedResult, cutResult, isPlaceholder, isResult } from '../../src/core/clearing.js';
import { defineOptions, rules } from '../../src/core/define-options.js';
import type { Strategy } from '../../src/core/strategy.js';
import type { ChatMessage } from '../../src/core/types.js';
import { messageText } from '../../src/text/message-text.js';

import { clearInputs, toolNames } from './calls.js';
import { noteChars, replay } from './replay.js';

export interface ToolResultsOptions {
  /** The latest N tool results are never cleared (what the agent is working from). @default 3 */
  keep?: number;
  /**
   * When the budget forces a clearing, clear at least this many tokens of results at once (their
   * size before clearing), so the point where the prompt changes moves rarely. Default: 60% of the
   * budget.
   */
  clearAtLeast?: number;
  /** Names of tools whose results are never cleared (a plan, a memory file). @default [] */
  excludeTools?: readonly string[];
  /** Also replace the arguments of a call whose results are all cleared, keeping the values they held. @default false */
  clearToolInputs?: boolean;
  /**
   * A result larger than this many tokens is cut to its head and tail (with a notice and the values
   * of the cut part) the first time it is seen, and the same way on every later request, so its
   * bytes never change. Default: half the budget. `0` turns the cut off.
   */
  maxResultTokens?: number;
  /**
   * Under the budget, clear older results only when that lowers the bill under the request's own
   * price rule (the cached reads the rewrite throws away, its cache write, and the steps that will
   * reuse the shorter prompt), or never.
   * @default 'when-cheaper'
   */
  underBudget?: 'when-cheaper' | 'never';
}

export const TOOL_RESULTS_DEFAULTS = {
  keep: 3,
  excludeTools: [] as readonly string[],
  clearToolInputs: false,
  underBudget: 'when-cheaper',
} satisfies Partial<ToolResultsOptions>;

const stringList = {
  expected: 'an array of strings',
  test: (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === 'string'),
  invalid: [1],
};

export const TOOL_RESULTS_OPTIONS = defineOptions<ToolResultsOptions, typeof TOOL_RESULTS_DEFAULTS>({
  factory: 'toolResults',
  defaults: TOOL_RESULTS_DEFAULTS,
  rules: {
    keep: rules.int(0),
    clearAtLeast: rules.int(1),
    excludeTools: stringList,
    clearToolInputs: rules.boolean,
    maxResultTokens: rules.int(0),
    underBudget: rules.oneOf('when-cheaper', 'never'),
  },
  docs: [['strategies/tool-results/index.ts', 'ToolResultsOptions']],
});

/**
 * Tool-output clearing for agent histories, alone or as the first stage of every preset. Older
 * tool results become a placeholder that keeps their call and result ids (valid for every
 * provider), says what was removed and how large it was, and keeps the values a later call may
 * pass back (ids, numbers, paths). The latest `keep` results stay whole.
 *
 * Where it clears is derived from the history alone, so every request and every instance computes
 * the same bytes: the decisions are replayed over the run's own earlier steps, and a result once
 * cleared stays cleared. Under the budget it clears only when the request's price rule says the
 * rewrite pays for itself over the steps that follow; over the budget it clears in deep steps
 * (`clearAtLeast`). A huge result is cut at ingestion (`maxResultTokens`).
 *
 * @example
 * createCompactor({ maxInputTokens: 16000, strategy: pipeline('agents', [toolResults({ keep: 5 }), truncate()]) })
 */
export function toolResults(options: ToolResultsOptions = {}): Strategy {
  const settings = TOOL_RESULTS_OPTIONS.parse(options);
  const excluded = new Set(settings.excludeTools);
  return {
    name: 'tool-results',
    withinBudget: true,
    async apply(messages, context) {
      const results: number[] = [];
      for (let index = 0; index < messages.length; index++) if (isResult(messages[index]!)) results.push(index);
      if (results.length === 0) return { messages };
      const tokensOf = (message: ChatMessage) => context.counter.message(message);
      const budget = context.budget;
      const current = [...messages];
      const rewrites = new Map<ChatMessage, ChatMessage>();
      const info: Record<string, unknown> = {};

      // Cut at ingestion: deterministic in the result and the cap alone.
      const cap = settings.maxResultTokens ?? Math.floor(budget / 2);
      let cut = 0;
      if (cap > 0) {
        for (const index of results) {
          const message = messages[index]!;
          const tokens = tokensOf(message);
          if (tokens <= cap || isPlaceholder(message)) continue;
          const shorter = cutResult(message, tokens, (candidate) => tokensOf(candidate) <= cap, cap);
          if (!shorter) continue;
          current[index] = shorter;
          rewrites.set(shorter, message);
          cut++;
        }
      }
      if (cut > 0) info.cut = cut;

      const names = toolNames(messages);
      const placeholders = new Map<number, ChatMessage>();
      const placeholderOf = (index: number): ChatMessage => {
        let placeholder = placeholders.get(index);
        if (placeholder === undefined) {
          placeholder = clearedResult(messages[index]!, tokensOf(messages[index]!));
          placeholders.set(index, placeholder);
        }
        return placeholder;
      };
      const saving = (index: number) => Math.max(0, tokensOf(current[index]!) - tokensOf(placeholderOf(index)));
      // A result is cleared only where its placeholder is shorter (never a short one, never twice).
      const clearable = results.filter((index) => !excluded.has(names.get(index) ?? '') && !isPlaceholder(messages[index]!) && saving(index) > 0);
      const state = replay(messages, current, results, clearable, saving, tokensOf, context, settings, excluded, names);
      if (state.reason) info.reason = state.reason;
      if (settings.underBudget === 'when-cheaper' && !context.price) info.underBudget = 'no price for the model';
      if (state.cleared.length === 0 && state.dropped.size === 0 && cut === 0) return { messages, info };

      for (const index of state.cleared) {
        if (state.dropped.has(index)) continue;
        const placeholder = placeholderOf(index);
        current[index] = placeholder;
        rewrites.set(placeholder, messages[index]!);
      }
      if (state.cleared.length > 0) info.cleared = state.cleared.filter((index) => !state.dropped.has(index)).length;
      if (settings.clearToolInputs) clearInputs(messages, current, rewrites, tokensOf);
      if (state.dropped.size === 0) return { messages: current, rewrites, info };
      info.droppedExchanges = state.dropped.size;
      // One compact line where they were, with the values they held, so a later call can still
      // pass them back: the ones the dropped steps used most first (then the newest), leaving out
      // what the messages before the line already hold. It depends on the dropped steps and what
      // precedes them alone, so it changes only when a deeper cut drops more.
      const droppedIndices = [...state.dropped].sort((a, b) => a - b);
      const before = new Set<string>();
      for (let index = 0; index < droppedIndices[0]!; index++) for (const value of allValues(messageText(messages[index]!))) before.add(value);
      const uses = new Map<string, { count: number; last: number }>();
      droppedIndices.forEach((index, order) => {
        const message = messages[index]!;
        const text = `${messageText(message)} ${(message.tool_calls ?? []).map((call) => call.function.arguments).join(' ')}`;
        for (const value of allValues(text)) {
          // Short bare numbers (line numbers, counts) identify nothing; the line has no room for them.
          if (before.has(value) || /^\d{1,3}$/.test(value)) continue;
          const entry = uses.get(value) ?? { count: 0, last: 0 };
          entry.count++;
          entry.last = order;
          uses.set(value, entry);
        }
      });
      const room = noteChars(budget);
      const values: string[] = [];
      let used = 0;
      for (const [value] of [...uses].sort((a, b) => b[1].count - a[1].count || b[1].last - a[1].last || (a[0] < b[0] ? -1 : 1))) {
        if (used + value.length + 2 > room) continue;
        values.push(value);
        used += value.length + 2;
      }
      const steps = droppedIndices.filter((index) => messages[index]!.role === 'assistant').length;
      const noteOf = (held: readonly string[]): ChatMessage => ({
        role: 'system',
        content: `${CLEARED_MARK} ${steps} earlier tool ${steps === 1 ? 'call' : 'calls'} and ${steps === 1 ? 'its results were' : 'their results were'} removed to fit the budget${held.length > 0 ? `; they held ${held.join(', ')}` : ''}]`,
      });
      const kept = current.filter((_, index) => !state.dropped.has(index));
      const keptTokens = context.fixedTokens + context.counter.messages(kept);
      // The line must not be what puts the request over: shorter, or none.
      let note: ChatMessage | undefined = noteOf(values);
      if (keptTokens + tokensOf(note) > budget) note = noteOf([]);
      if (keptTokens + tokensOf(note) > budget) note = undefined;
      const output: ChatMessage[] = [];
      current.forEach((message, index) => {
        if (note && index === droppedIndices[0]) output.push(note);
        if (!state.dropped.has(index)) output.push(message);
      });
      // Cache breakpoints: the end of the part that stays until the next deeper cut (through the
      // line), and the end of what the steps since have appended.
      const stableEnd = note ? note : output[output.indexOf(current[droppedIndices[0]! - 1]!)];
      const breakpoints = [stableEnd, output.at(-1)].filter(
        (message, at, list): message is ChatMessage => message !== undefined && list.indexOf(message) === at,
      );
      return { messages: output, rewrites, info, breakpoints };
    },
  };
}
