import { allValues, CLEARED_MARK, clearedResult, cutResult, isPlaceholder, isResult, keptValues } from '../../src/core/clearing.js';
import { defineOptions, rules } from '../../src/core/define-options.js';
import type { Strategy, StrategyContext } from '../../src/core/strategy.js';
import type { ChatMessage, Messages } from '../../src/core/types.js';
import { cacheTerms } from '../../src/prices.js';
import { messageText } from '../../src/text/message-text.js';

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
 * Steps still to come, as a share of the steps taken so far: the horizon over which a shorter
 * prompt is reused. A run that has taken n steps is, as often as not, about as far from its end as
 * from its start; half of that is the cautious guess the bill test uses.
 */
const HORIZON_SHARE = 0.5;
/** Share of the budget cleared at least once the budget forces a clearing (as the guard and truncate's `lowWater`). */
const CLEAR_SHARE = 0.6;

/** Characters of values the line for dropped exchanges keeps, per token of budget (about 4% of it), and at least. */
const NOTE_CHARS_PER_TOKEN = 0.16;
const MAX_NOTE_CHARS_MIN = 240;

const noteChars = (budget: number) => Math.max(MAX_NOTE_CHARS_MIN, Math.floor(budget * NOTE_CHARS_PER_TOKEN));
/** Tokens the line for dropped exchanges may take at most (values at 3 characters a token, and its words). */
const noteReserve = (budget: number) => Math.ceil(noteChars(budget) / 3) + 32;

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

interface ReplayState {
  /** Results cleared, oldest first. */
  cleared: number[];
  /** Messages of older exchanges dropped whole. */
  dropped: Set<number>;
  reason?: 'cheaper' | 'forced';
}

/**
 * What the run's own earlier steps would have cleared and dropped, replayed step by step, so that
 * every request (and every instance) derives the same layout from the history alone and a result
 * once cleared stays cleared. At each step, two rules:
 *
 * - Cheaper (under the budget, `underBudget: 'when-cheaper'`): the rewrite costs the tail after
 *   the first result it clears, billed in full (at the write price) instead of at the cached rate;
 *   keeping the results costs their cached reads on every step. Clear when the reads paid since the
 *   last cut reach the rewrite's cost and the steps still to come repay it.
 * - Forced (over the budget): clear the older results, then drop the older exchanges of the
 *   current turn, oldest first, until the request is down to `CLEAR_SHARE` of the budget (or
 *   `clearAtLeast` is cleared), so the following steps append to the same prefix until it is full again.
 */
function replay(
  messages: Messages,
  current: readonly ChatMessage[],
  results: readonly number[],
  clearable: readonly number[],
  saving: (index: number) => number,
  tokensOf: (message: ChatMessage) => number,
  context: StrategyContext,
  settings: { keep: number; clearAtLeast: number | undefined; underBudget: 'when-cheaper' | 'never' },
  excluded: ReadonlySet<string>,
  names: ReadonlyMap<number, string>,
): ReplayState {
  const budget = context.budget;
  const terms = settings.underBudget === 'when-cheaper' && context.price ? cacheTerms(context.price) : undefined;
  const low = Math.floor(budget * CLEAR_SHARE);
  const prefix = new Float64Array(messages.length + 1);
  for (let index = 0; index < messages.length; index++) prefix[index + 1] = prefix[index]! + tokensOf(current[index]!);
  const parts = context.partition(messages);
  const resultOrdinal = new Map(results.map((index, ordinal) => [index, ordinal]));

  const state: ReplayState = { cleared: [], dropped: new Set() };
  const isCleared = new Uint8Array(messages.length);
  let next = 0; // next clearable result, in order
  let removed = 0; // tokens removed so far by clearing and dropping
  let holding = 0;
  let previousEnd = 0;
  let steps = 0;
  let resultsBefore = 0;
  let latestUser = -1;
  let scan = 0;
  let nextUnit = 0; // next unit to consider dropping, in order

  // Exchanges are dropped only in the request's own current turn; an earlier turn's are the window strategies' to keep or drop.
  const finalUser = messages.findLastIndex((message) => message.role === 'user');
  const ends: number[] = [];
  for (let index = 1; index < messages.length; index++) if (messages[index]!.role === 'assistant') ends.push(index);
  ends.push(messages.length);
  const clearOne = () => {
    const index = clearable[next++]!;
    if (state.dropped.has(index)) return;
    isCleared[index] = 1;
    state.cleared.push(index);
    removed += saving(index);
  };

  for (const end of ends) {
    for (; scan < end; scan++) {
      if (isResult(messages[scan]!)) resultsBefore++;
      else if (messages[scan]!.role === 'user') latestUser = scan;
    }
    // Results of this step that may be cleared: all but its latest `keep`.
    const limit = resultsBefore - settings.keep;
    let open = next;
    while (open < clearable.length && resultOrdinal.get(clearable[open]!)! < limit) open++;
    const total = context.fixedTokens + prefix[end]! - removed;

    if (terms && open > next && total <= budget) {
      const first = clearable[next]!;
      let gain = 0;
      for (let ordinal = next; ordinal < open; ordinal++) if (!state.dropped.has(clearable[ordinal]!)) gain += saving(clearable[ordinal]!);
      const tail = prefix[end]! - prefix[first]!;
      const fresh = Math.min(tail, prefix[end]! - prefix[previousEnd]!);
      // Prices of a token in a prompt of `size`: read from the cache, and sent uncached (written).
      // Below the model's minimum nothing is cached or written.
      const read = (size: number) => (size >= terms.minTokens ? terms.cached : 1);
      const sent = (size: number) => (size >= terms.minTokens ? 1 + terms.write : 1);
      const horizon = Math.max(1, Math.floor(steps * HORIZON_SHARE));
      const extraNow = (tail - gain) * sent(total - gain) - ((tail - fresh) * read(total) + fresh * sent(total));
      // Each later step reads the shorter prompt instead (it may fall below the minimum and lose its cache).
      const perStep = total * read(total) - (total - gain) * read(total - gain);
      holding += Math.max(0, perStep);
      if (perStep > 0 && holding >= extraNow && horizon * perStep > extraNow) {
        while (next < open) clearOne();
        holding = 0;
        state.reason = 'cheaper';
      }
    }

    // Once exchanges are dropped, the line that stands for them takes room too.
    const reserve = state.dropped.size > 0 ? noteReserve(budget) : 0;
    if (context.fixedTokens + prefix[end]! - removed + reserve > budget) {
      // Forced: down to the low-water mark (or by clearAtLeast), clearing first, then dropping.
      const goal = settings.clearAtLeast === undefined ? low : Math.max(0, Math.min(low, context.fixedTokens + prefix[end]! - removed - settings.clearAtLeast));
      const over = () => context.fixedTokens + prefix[end]! - removed + (state.dropped.size > 0 ? noteReserve(budget) : 0) > goal;
      while (next < open && over()) clearOne();
      // The latest exchange always stays, even with keep: 0.
      const dropLimit = resultsBefore - Math.max(1, settings.keep);
      // Units before the first kept result's, or before the step's own latest message's.
      const lastUnit = dropLimit >= 0 && dropLimit < results.length && results[dropLimit]! < end ? parts.unitOf[results[dropLimit]!]! : parts.unitOf[end - 1]!;
      while (nextUnit < lastUnit && over()) {
        const members = parts.units[nextUnit]!.indices;
        const head = members[0]!;
        nextUnit++;
        // Only tool exchanges of the current turn (after its user message): a plain answer, or
        // anything before the latest question, is the window strategies' to keep or drop.
        const call = messages[head]!;
        if (latestUser < 0 || head <= finalUser || call.role !== 'assistant' || head >= end) continue;
        if (!(call.tool_calls && call.tool_calls.length > 0) && call.function_call === undefined) continue;
        if (members.some((index) => isResult(messages[index]!) && excluded.has(names.get(index) ?? ''))) continue;
        for (const index of members) {
          if (state.dropped.has(index)) continue;
          state.dropped.add(index);
          removed += isCleared[index] ? tokensOf(current[index]!) - saving(index) : tokensOf(current[index]!);
        }
      }
      state.reason = 'forced';
      holding = 0;
    }
    previousEnd = end;
    steps++;
  }
  return state;
}

/** The tool name of each result, by index. */
function toolNames(messages: Messages): Map<number, string> {
  const byId = new Map<string, string>();
  const names = new Map<number, string>();
  messages.forEach((message, index) => {
    for (const call of message.tool_calls ?? []) if (typeof call.id === 'string') byId.set(call.id, call.function?.name ?? '');
    if (message.role === 'tool' && typeof message.tool_call_id === 'string') names.set(index, byId.get(message.tool_call_id) ?? '');
    else if (message.role === 'function' && typeof message.name === 'string') names.set(index, message.name);
  });
  return names;
}

/** Replace the arguments of calls whose results are all cleared, keeping their values. */
function clearInputs(messages: Messages, current: ChatMessage[], rewrites: Map<ChatMessage, ChatMessage>, tokensOf: (message: ChatMessage) => number): void {
  const clearedIds = new Set<string>();
  const openIds = new Set<string>();
  current.forEach((message, index) => {
    if (message.role !== 'tool' || typeof message.tool_call_id !== 'string') return;
    if (rewrites.has(message) && message !== messages[index] && isPlaceholder(message)) clearedIds.add(message.tool_call_id);
    else openIds.add(message.tool_call_id);
  });
  current.forEach((message, index) => {
    const calls = message.tool_calls;
    if (message.role !== 'assistant' || !calls || calls.length === 0) return;
    if (!calls.every((call) => clearedIds.has(call.id) && !openIds.has(call.id))) return;
    const replaced: ChatMessage = {
      ...message,
      tool_calls: calls.map((call) => {
        const values = keptValues(call.function.arguments);
        return {
          ...call,
          function: {
            ...call.function,
            arguments: JSON.stringify({ cleared: `arguments of about ${Math.ceil(call.function.arguments.length / 4)} tokens`, values }),
          },
        };
      }),
    };
    if (tokensOf(replaced) >= tokensOf(message)) return;
    current[index] = replaced;
    rewrites.set(replaced, messages[index]!);
  });
}
