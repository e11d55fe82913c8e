import { clearedResult, cutResult, isPlaceholder, isResult } from './clearing.js';
import type { ChatMessage } from './types.js';
import { isPinnedRole, type Partition } from './units.js';

/** A message of the guard's working list. */
export interface Entry {
  message: ChatMessage;
  /** Input index, or -1 for a message a strategy made (a summary, a marker). */
  index: number;
  key: number;
  sub: number;
}

/**
 * The guard's relief for an agent step whose core does not fit: older tool results are cleared in
 * deep steps, then older exchanges dropped whole, then the largest results cut, so that the system
 * prompt, the latest user message and the latest tool exchange reach the model (see `enforce`).
 */
/** Share of the budget cleared at a time, at least, so the point where the prompt changes moves rarely. */
const CLEAR_SHARE = 0.6;
/** Older exchanges dropped at a time, for the same reason. */
const CLEAR_STEP = 8;

/** Clear, then cut, tool results of the kept entries until they fit (see `enforce`). */
export function relieveCore(
  entries: readonly Entry[],
  dropped: Uint8Array,
  parts: Partition,
  total: number,
  budget: number,
  tokensOf: (message: ChatMessage) => number,
): { tokens: number; cleared: number; cut: number; dropped: number; replaced: Map<number, ChatMessage> } {
  let tokens = total;
  const replaced = new Map<number, ChatMessage>();
  const results: number[] = [];
  let latestExchange = -1;
  for (let position = 0; position < entries.length; position++) {
    const entry = entries[position]!;
    if (dropped[position] || entry.index < 0 || !isResult(entry.message)) continue;
    results.push(position);
    latestExchange = Math.max(latestExchange, parts.unitOf[entry.index]!);
  }
  // Oldest first, in deep steps: clearing stops only where the cleared results' own tokens cross a
  // multiple of CLEAR_SHARE of the budget, points that depend on the history alone. The next
  // requests of the run append to the same cleared prefix (billed at the cached rate) until the
  // chain has grown by another such step.
  const step = Math.max(1, Math.floor(budget * CLEAR_SHARE));
  let cleared = 0;
  let clearedTokens = 0;
  let atStep = true;
  for (const position of results) {
    if (tokens <= budget && atStep) break;
    const entry = entries[position]!;
    if (parts.unitOf[entry.index]! === latestExchange || isPlaceholder(entry.message)) continue;
    const before = tokensOf(entry.message);
    const placeholder = clearedResult(entry.message, before);
    const after = tokensOf(placeholder);
    if (after >= before) continue;
    replaced.set(position, placeholder);
    tokens -= before - after;
    cleared++;
    atStep = Math.floor((clearedTokens + before) / step) > Math.floor(clearedTokens / step);
    clearedTokens += before;
  }
  // Still over: the older exchanges go whole (a call with its results, or a text message of the
  // span), oldest first; the system prompt, the latest user message and the latest exchange stay.
  const current = (position: number) => replaced.get(position) ?? entries[position]!.message;
  let droppedUnits = 0;
  if (tokens > budget) {
    const unitDone = new Set<number>();
    for (let position = 0; position < entries.length && (tokens > budget || unitDone.size % CLEAR_STEP !== 0); position++) {
      const entry = entries[position]!;
      if (dropped[position] || entry.index < 0) continue;
      const unit = parts.unitOf[entry.index]!;
      if (unit >= latestExchange || unitDone.has(unit)) continue;
      if (isPinnedRole(entry.message) || entry.index === parts.latestUser) continue;
      unitDone.add(unit);
      for (let member = position; member < entries.length; member++) {
        const other = entries[member]!;
        if (dropped[member] || other.index < 0 || parts.unitOf[other.index] !== unit) continue;
        tokens -= tokensOf(current(member));
        dropped[member] = 1;
        droppedUnits++;
      }
    }
  }
  let cut = 0;
  if (tokens > budget) {
    const bySize = results.filter((position) => !dropped[position]).sort((a, b) => tokensOf(current(b)) - tokensOf(current(a)));
    for (const position of bySize) {
      if (tokens <= budget) break;
      const message = current(position);
      const before = tokensOf(message);
      const excess = tokens - budget;
      const shorter = cutResult(message, before, (candidate) => tokensOf(candidate) <= Math.max(32, before - excess), before - excess);
      if (!shorter) continue;
      replaced.set(position, shorter);
      tokens -= before - tokensOf(shorter);
      cut++;
    }
  }
  return { tokens, cleared, cut, dropped: droppedUnits, replaced };
}
