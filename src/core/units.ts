import type { ChatMessage, Messages } from './types.js';

/**
 * A unit is the smallest set of messages that may be kept or dropped: a single message, or an
 * assistant message that calls tools (or a legacy function) together with all of its results.
 */
export interface Unit {
  /** Indices into the message list, ascending. */
  readonly indices: readonly number[];
  /** System and developer messages, and everything from the latest user message on (or the last unit, if no user message). */
  readonly protected: boolean;
  /** Conversation turn: 0 before the first user message, then +1 at each user message. */
  readonly turn: number;
  readonly tokens: number;
}

export interface Partition {
  readonly units: readonly Unit[];
  /** Unit index of each message. */
  readonly unitOf: Int32Array;
  /** Index of the latest user message, or -1. */
  readonly latestUser: number;
  /** Number of turns (highest turn number). */
  readonly turns: number;
  /** Tokens of all the messages (framing included, priming and tools not). */
  readonly tokens: number;
  /** Tokens of the protected units alone. */
  readonly protectedTokens: number;
  /** Tokens of the droppable units, by turn (index 0 … turns). */
  readonly turnTokens: Float64Array;
}

export function isPinnedRole(message: ChatMessage): boolean {
  return message.role === 'system' || message.role === 'developer';
}

/** Split a message list into units. `tokensOf` gives each message's token count. */
export function partition(messages: Messages, tokensOf: (message: ChatMessage) => number): Partition {
  const count = messages.length;
  let latestUser = -1;
  for (let index = count - 1; index >= 0; index--) {
    if (messages[index]!.role === 'user') {
      latestUser = index;
      break;
    }
  }
  const unitOf = new Int32Array(count).fill(-1);
  const units: Unit[] = [];
  // Open tool calls: id -> unit index.
  const openCalls = new Map<string, number>();
  let openFunctionUnit = -1;
  const members: number[][] = [];
  const meta: { protected: boolean; turn: number }[] = [];
  let turn = 0;
  for (let index = 0; index < count; index++) {
    const message = messages[index]!;
    if (message.role === 'user') turn++;
    let unit = -1;
    if (message.role === 'tool' && typeof message.tool_call_id === 'string') {
      unit = openCalls.get(message.tool_call_id) ?? -1;
    } else if (message.role === 'function') {
      unit = openFunctionUnit;
    }
    if (message.role !== 'function') openFunctionUnit = -1;
    if (unit < 0) {
      unit = members.length;
      members.push([]);
      meta.push({ protected: isPinnedRole(message) || (latestUser >= 0 && index >= latestUser), turn });
      if (message.role === 'assistant') {
        if (Array.isArray(message.tool_calls)) for (const call of message.tool_calls) openCalls.set(call.id, unit);
        if (message.function_call) openFunctionUnit = unit;
      }
    }
    members[unit]!.push(index);
    unitOf[index] = unit;
    if (latestUser >= 0 && index >= latestUser) meta[unit]!.protected = true;
  }
  // With no user message at all, the newest unit stands in for the latest turn, so the output is
  // never empty of conversation.
  if (latestUser < 0 && meta.length > 0) meta[meta.length - 1]!.protected = true;
  let total = 0;
  let protectedTokens = 0;
  const turnTokens = new Float64Array(turn + 1);
  for (let unit = 0; unit < members.length; unit++) {
    let tokens = 0;
    for (const index of members[unit]!) tokens += tokensOf(messages[index]!);
    units.push({ indices: members[unit]!, protected: meta[unit]!.protected, turn: meta[unit]!.turn, tokens });
    total += tokens;
    if (meta[unit]!.protected) protectedTokens += tokens;
    else turnTokens[meta[unit]!.turn]! += tokens;
  }
  return { units, unitOf, latestUser, turns: turn, tokens: total, protectedTokens, turnTokens };
}
