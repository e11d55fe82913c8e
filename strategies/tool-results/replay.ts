import { isResult } from '../../src/core/clearing.js';
import type { StrategyContext } from '../../src/core/strategy.js';
import type { ChatMessage, Messages } from '../../src/core/types.js';
import { cacheTerms } from '../../src/prices.js';

/**
 * Steps still to come, as a share of the steps taken so far: the horizon over which a shorter
 * prompt is reused. A run that has taken n steps is, as often as not, about as far from its end as
 * from its start; half of that is the cautious guess the bill test uses.
 */
export const HORIZON_SHARE = 0.5;
/** Share of the budget cleared at least once the budget forces a clearing (as the guard and truncate's `lowWater`). */
export const CLEAR_SHARE = 0.6;

/** Characters of values the line for dropped exchanges keeps, per token of budget (about 4% of it), and at least. */
const NOTE_CHARS_PER_TOKEN = 0.16;
const MAX_NOTE_CHARS_MIN = 240;

export const noteChars = (budget: number) => Math.max(MAX_NOTE_CHARS_MIN, Math.floor(budget * NOTE_CHARS_PER_TOKEN));
/** Tokens the line for dropped exchanges may take at most (values at 3 characters a token, and its words). */
export const noteReserve = (budget: number) => Math.ceil(noteChars(budget) / 3) + 32;

export interface ReplayState {
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
export function replay(
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
