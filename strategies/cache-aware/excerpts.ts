import type { ChatMessage, Messages } from '../../src/core/types.js';
import type { Partition } from '../../src/core/units.js';
import { messageText } from '../../src/text/message-text.js';
import type { sessions } from '../../src/text/sessions.js';
import type { TokenCounter } from '../../src/tokens/counter.js';

/** The label of cache-aware's excerpts block (its first line). */
export const EXCERPTS_LABEL = '[Earlier in this conversation, for the latest message]';

/**
 * The excerpts block's size in tokens: what it may cost (`spend` of what the dropped history would
 * have cost at the cached price `ratio`, spent at the full price), within `cap`.
 */
export function affordableExcerpts(droppedTokens: number, ratio: number, spend: number, cap: number): number {
  if (ratio >= 1) return cap;
  return Math.max(0, Math.min(cap, Math.floor((spend * ratio * droppedTokens) / (1 - ratio))));
}

/**
 * The gate's score: the best match outside the window over itself plus the best match among the
 * recent messages (0 when nothing outside matches).
 */
export function excerptGateScore(outside: number, recent: number): number {
  return outside > 0 ? outside / (outside + Math.max(0, recent)) : 0;
}

/**
 * The block's turns: the best-scoring candidates that fit in `room` (less the label), then, with
 * room left, the newest candidates (the recency-fill net). Returns the picks, best first, and how
 * many the net added.
 */
export function pickExcerpts(
  candidates: readonly number[],
  units: Partition['units'],
  score: ArrayLike<number>,
  room: number,
  labelTokens: number,
): { units: number[]; filled: number } {
  const picked: number[] = [];
  let estimate = labelTokens;
  const order = [...candidates].sort((a, b) => score[b]! - score[a]! || b - a);
  for (const unit of order) {
    if (score[unit]! <= 0) break;
    if (estimate + units[unit]!.tokens > room) continue;
    picked.push(unit);
    estimate += units[unit]!.tokens;
  }
  // Net: what the relevant turns leave of the block fills with the newest dropped turns.
  let filled = 0;
  const chosen = new Set(picked);
  for (let position = candidates.length - 1; position >= 0; position--) {
    const unit = candidates[position]!;
    if (chosen.has(unit) || estimate + units[unit]!.tokens > room) continue;
    picked.push(unit);
    estimate += units[unit]!.tokens;
    filled++;
  }
  return { units: picked, filled };
}

/**
 * The block as one system message: the picked turns in their order, each under its session's
 * header where that differs from the last one shown. It must fit in `room`, headers included: the
 * weakest picks go first (they are dropped from `picked` in place). Undefined with nothing picked.
 */
export function renderExcerpts(
  messages: Messages,
  units: Partition['units'],
  picked: number[],
  sessionOf: ReturnType<typeof sessions>,
  room: number,
  counter: TokenCounter,
): ChatMessage | undefined {
  const render = (chosen: readonly number[]): ChatMessage | undefined => {
    if (chosen.length === 0) return undefined;
    const lines = [EXCERPTS_LABEL];
    let shown = '';
    const indices = chosen.flatMap((unit) => units[unit]!.indices).sort((a, b) => a - b);
    for (const index of indices) {
      const header = sessionOf.header[index]!;
      if (header !== '' && header !== shown && sessionOf.first[index] !== index) lines.push(header);
      if (header !== '') shown = header;
      lines.push(messageText(messages[index]!));
    }
    return { role: 'system', content: lines.join('\n') };
  };
  let block = render(picked);
  while (block && counter.message(block) > room) {
    picked.pop();
    block = render(picked);
  }
  return block;
}
