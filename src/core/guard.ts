import { CompactorError } from './errors.js';
import type { ChatMessage, Messages } from './types.js';
import { partition, type Partition } from './units.js';

export type OnBudgetUnreachable = 'error' | 'pass-through';

export interface GuardInput {
  /** The request's messages as they arrived. */
  input: Messages;
  /** The partition of `input` (computed once per request and shared). */
  partition: Partition;
  /** What the strategies produced. */
  output: Messages;
  /** Token budget for the whole prompt. */
  budget: number;
  /** Tokens outside the messages: reply priming and tool definitions. */
  fixedTokens: number;
  tokensOf: (message: ChatMessage) => number;
  onBudgetUnreachable: OnBudgetUnreachable;
}

export interface GuardResult {
  messages: ChatMessage[];
  tokens: number;
  /** Messages the guard put back (protected, or the rest of a tool-call unit) or removed as invalid. */
  repaired: number;
  /** Messages the guard dropped to meet the budget. */
  droppedForBudget: number;
  /** Set when the budget could not be met and `onBudgetUnreachable` is `pass-through`. */
  passThrough: boolean;
  /** Whether the strategies' output broke an invariant the guard had to repair. */
  violation: string | undefined;
}

interface Entry {
  message: ChatMessage;
  /** Input index, or -1 for a message a strategy made (a summary, a marker). */
  index: number;
  key: number;
  sub: number;
}

/**
 * The one place that holds the invariants every strategy relies on:
 * system and developer messages kept, the latest user turn kept, order kept, tool-call units kept
 * or dropped whole, and the output within budget. It repairs what a strategy got wrong, drops the
 * oldest droppable units while over budget, and never mutates its input.
 */
export function enforce(options: GuardInput): GuardResult {
  const { input, output, budget, fixedTokens, tokensOf } = options;
  const parts = options.partition;
  const positions = new Map<ChatMessage, number>();
  for (let index = 0; index < input.length; index++) {
    if (!positions.has(input[index]!)) positions.set(input[index]!, index);
  }

  let violation: string | undefined;
  let repaired = 0;
  const keptIndex = new Uint8Array(input.length);
  const keptUnit = new Uint8Array(parts.units.length);
  const entries: Entry[] = [];
  let anchor = -1;
  let last = -1;
  for (let position = 0; position < output.length; position++) {
    const message = output[position]!;
    const index = positions.get(message);
    if (index === undefined) {
      if (message.role === 'tool' || message.role === 'function' || message.tool_calls !== undefined || message.function_call !== undefined) {
        violation ??= 'a strategy made a tool message or tool call of its own';
        repaired++;
        continue;
      }
      entries.push({ message, index: -1, key: anchor + 0.5, sub: position });
      continue;
    }
    if (keptIndex[index]) {
      violation ??= 'a message appeared twice';
      repaired++;
      continue;
    }
    if (index < last) violation ??= 'messages were reordered';
    last = Math.max(last, index);
    anchor = index;
    keptIndex[index] = 1;
    keptUnit[parts.unitOf[index]!] = 1;
    entries.push({ message, index, key: index, sub: 0 });
  }

  // Protected units, and every member of a unit of which any member was kept.
  for (let unit = 0; unit < parts.units.length; unit++) {
    const current = parts.units[unit]!;
    if (current.protected) {
      if (!keptUnit[unit]) violation ??= 'a protected message was dropped';
      keptUnit[unit] = 1;
    }
    if (!keptUnit[unit]) continue;
    for (const index of current.indices) {
      if (keptIndex[index]) continue;
      if (!current.protected) violation ??= 'a tool-call unit was split';
      keptIndex[index] = 1;
      repaired++;
      entries.push({ message: input[index]!, index, key: index, sub: 0 });
    }
  }
  if (violation !== undefined || repaired > 0) entries.sort((a, b) => a.key - b.key || a.sub - b.sub);

  let tokens = fixedTokens;
  for (const entry of entries) tokens += tokensOf(entry.message);

  let droppedForBudget = 0;
  if (tokens > budget) {
    const dropped = new Uint8Array(entries.length);
    const unitDropped = new Uint8Array(parts.units.length);
    for (let position = 0; position < entries.length && tokens > budget; position++) {
      const entry = entries[position]!;
      if (dropped[position]) continue;
      if (entry.index < 0) {
        dropped[position] = 1;
        tokens -= tokensOf(entry.message);
        droppedForBudget++;
        continue;
      }
      const unit = parts.unitOf[entry.index]!;
      if (parts.units[unit]!.protected || unitDropped[unit]) continue;
      unitDropped[unit] = 1;
      tokens -= parts.units[unit]!.tokens;
      droppedForBudget += parts.units[unit]!.indices.length;
    }
    for (let position = 0; position < entries.length; position++) {
      const entry = entries[position]!;
      if (entry.index >= 0 && unitDropped[parts.unitOf[entry.index]!]) dropped[position] = 1;
    }
    if (tokens > budget) {
      if (options.onBudgetUnreachable === 'error') {
        throw new CompactorError('budget.unreachable', `the protected messages alone need ${tokens} tokens, over the budget of ${budget}`, {
          details: { protectedTokens: tokens, budget },
        });
      }
      let inputTokens = fixedTokens;
      for (const message of input) inputTokens += tokensOf(message);
      return { messages: [...input], tokens: inputTokens, repaired, droppedForBudget: 0, passThrough: true, violation };
    }
    const kept: ChatMessage[] = [];
    for (let position = 0; position < entries.length; position++) if (!dropped[position]) kept.push(entries[position]!.message);
    return { messages: kept, tokens, repaired, droppedForBudget, passThrough: false, violation };
  }
  return { messages: entries.map((entry) => entry.message), tokens, repaired, droppedForBudget, passThrough: false, violation };
}

export { partition };
