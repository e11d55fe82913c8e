import { CompactorError } from './errors.js';
import type { ChatMessage, Messages } from './types.js';
import { partition, type Partition } from './units.js';
import { isToolMessage } from './clearing.js';
import { type Entry, relieveCore } from './relief.js';

export type OnBudgetUnreachable = 'error' | 'pass-through';

export interface GuardInput {
  /** The request's messages as they arrived. */
  input: Messages;
  /** The partition of `input` (computed once per request and shared). */
  partition: Partition;
  /** What the strategies produced. */
  output: Messages;
  /** Messages of `output` that stand for an input message with new content, mapped to it (from the strategies). */
  rewrites?: ReadonlyMap<ChatMessage, ChatMessage> | undefined;
  /** Token budget for the whole prompt. */
  budget: number;
  /** Tokens outside the messages: reply priming and tool definitions. */
  fixedTokens: number;
  tokensOf: (message: ChatMessage) => number;
  onBudgetUnreachable: OnBudgetUnreachable;
  /**
   * Prompt tokens the model's window takes (after the reply's reserve), or null when unknown. With
   * `pass-through`, a request whose latest turn alone is over the budget but that fits the window
   * is sent whole, as before: its cached prefix is cheaper than any rewrite of it.
   */
  window?: number | null;
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
  /** Older tool results of the protected span replaced by a placeholder to fit the budget. */
  cleared: number;
  /** Tool results cut to their head and tail to fit the budget. */
  cut: number;
  /** Messages of older exchanges in the protected span dropped (whole calls with their results), after clearing was not enough. */
  droppedFromCore: number;
  /** Each rewritten message (a cleared or cut tool result) and the input message it stands for. */
  rewrites: Map<ChatMessage, ChatMessage>;
}

/**
 * The one place that holds the invariants every strategy relies on:
 * system and developer messages kept, the latest user turn kept, order kept, tool-call units kept
 * or dropped whole, and the output within budget. It repairs what a strategy got wrong, drops the
 * oldest droppable units while over budget, and never mutates its input. When the latest turn
 * alone is over the budget (an agent's tool chain after its one task), it clears older tool
 * results, then drops older exchanges, then cuts results to their head and tail; it refuses only
 * when the system prompt, the latest user message and the latest tool exchange cannot fit.
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
    const stands = options.rewrites?.get(message);
    const index = positions.get(stands ?? message);
    if (index === undefined) {
      if (isToolMessage(message)) {
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

  // An older exchange of the current turn (an assistant message, with its results, before the
  // latest one) is protected from the window strategies but may be dropped whole by a strategy
  // that handles tool chains (see toolResults); the core is the system prompt, the latest user
  // message and the latest exchange.
  let latestAssistantUnit = -1;
  for (let index = input.length - 1; index > parts.latestUser; index--) {
    if (input[index]!.role === 'assistant') {
      latestAssistantUnit = parts.unitOf[index]!;
      break;
    }
  }
  const olderExchange = (unit: number) =>
    unit < latestAssistantUnit && input[parts.units[unit]!.indices[0]!]!.role === 'assistant' && parts.units[unit]!.indices[0]! > parts.latestUser;
  // Protected units, and every member of a unit of which any member was kept.
  for (let unit = 0; unit < parts.units.length; unit++) {
    const current = parts.units[unit]!;
    if (current.protected && !keptUnit[unit] && olderExchange(unit)) continue;
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
  // Tokens of each unit as it stands in the output (a rewritten result counts as rewritten).
  const unitTokens = new Float64Array(parts.units.length);
  for (const entry of entries) {
    const count = tokensOf(entry.message);
    tokens += count;
    if (entry.index >= 0) unitTokens[parts.unitOf[entry.index]!]! += count;
  }

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
      tokens -= unitTokens[unit]!;
      droppedForBudget += parts.units[unit]!.indices.length;
    }
    for (let position = 0; position < entries.length; position++) {
      const entry = entries[position]!;
      if (entry.index >= 0 && unitDropped[parts.unitOf[entry.index]!]) dropped[position] = 1;
    }
    let cleared = 0;
    let cut = 0;
    let droppedFromCore = 0;
    const rewrites = new Map<ChatMessage, ChatMessage>();
    let inputTokens = fixedTokens;
    if (options.onBudgetUnreachable === 'pass-through') for (const message of input) inputTokens += tokensOf(message);
    const sendWhole =
      options.onBudgetUnreachable === 'pass-through' && (options.window === undefined || options.window === null || inputTokens <= options.window);
    if (tokens > budget && !sendWhole) {
      // The protected span alone is over the budget: in an agent run it is the whole tool chain
      // after the task. What the model reacts to (the system prompt, the latest user message, the
      // latest tool exchange) stays; older tool results in the span are cleared, oldest first,
      // then results are cut to their head and tail, largest first. Only a core that cannot fit
      // even so is refused.
      const relieved = relieveCore(entries, dropped, parts, tokens, budget, tokensOf);
      tokens = relieved.tokens;
      cleared = relieved.cleared;
      cut = relieved.cut;
      droppedFromCore = relieved.dropped;
      for (const [position, message] of relieved.replaced) {
        const was = entries[position]!.message;
        rewrites.set(message, options.rewrites?.get(was) ?? was);
        entries[position] = { ...entries[position]!, message };
      }
    }
    if (tokens > budget) {
      if (options.onBudgetUnreachable === 'error') {
        throw new CompactorError('budget.unreachable', `the protected messages alone need ${tokens} tokens, over the budget of ${budget}`, {
          details: { protectedTokens: tokens, budget },
        });
      }
      return {
        messages: [...input],
        tokens: inputTokens,
        repaired,
        droppedForBudget: 0,
        passThrough: true,
        violation,
        cleared: 0,
        cut: 0,
        droppedFromCore: 0,
        rewrites: new Map(),
      };
    }
    const kept: ChatMessage[] = [];
    for (let position = 0; position < entries.length; position++) if (!dropped[position]) kept.push(entries[position]!.message);
    for (const message of kept) {
      const stands = options.rewrites?.get(message);
      if (stands && !rewrites.has(message)) rewrites.set(message, stands);
    }
    return { messages: kept, tokens, repaired, droppedForBudget, passThrough: false, violation, cleared, cut, droppedFromCore, rewrites };
  }
  const messages = entries.map((entry) => entry.message);
  const rewrites = new Map<ChatMessage, ChatMessage>();
  for (const message of messages) {
    const stands = options.rewrites?.get(message);
    if (stands) rewrites.set(message, stands);
  }
  return { messages, tokens, repaired, droppedForBudget, passThrough: false, violation, cleared: 0, cut: 0, droppedFromCore: 0, rewrites };
}

export { partition };
