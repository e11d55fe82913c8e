import { LRUCache } from 'lru-cache';
import { messageText } from '../text/message-text.js';
import type { ChatMessage } from './types.js';

/**
 * What the guard does to a tool result when the budget leaves no other way to send an agent's
 * step: clear an older result (its call and result ids stay, so the structure is valid for every
 * provider), or cut a huge one to its head and tail. Either way the placeholder says what was
 * removed and keeps the values a later tool call may pass back (ids, numbers, paths).
 */

/** How every placeholder starts, so a result is never cleared twice. */
export const CLEARED_MARK = '[context-compactor:';

/** Most values a placeholder keeps, and most characters they take: the line is billed on every later request. */
const MAX_VALUES = 12;
const MAX_VALUE_CHARS = 240;

// Tokens that look like something a later call passes back: anything with a digit (ids, numbers,
// codes, dates), and paths or URLs.
export const VALUE = /(?:[A-Za-z]+:\/\/[^\s"'<>()]+|(?:\.{0,2}\/)?[\w.-]+(?:\/[\w.-]+)+|[A-Za-z_-]*\d[\w.:-]*)/g;

// Every distinct value of a text, memoized by the text (bounded by its characters): a new step
// rescans only its new messages.
const valueMemo = new LRUCache<string, readonly string[]>({ maxSize: 8_000_000, sizeCalculation: (values, text) => text.length + values.length * 16 + 1 });

/** Every distinct value of a text, first seen first (memoized). */
export function allValues(text: string): readonly string[] {
  let values = valueMemo.get(text);
  if (values === undefined) {
    const seen = new Set<string>();
    for (const match of text.matchAll(VALUE)) {
      const value = match[0].replace(/[.:,-]+$/, '');
      if (value.length >= 2 && value.length <= 80) seen.add(value);
    }
    values = [...seen];
    valueMemo.set(text, values);
  }
  return values;
}

/** The first distinct values of a text, within the placeholder's bounds (or the given ones). */
export function keptValues(text: string, maxValues = MAX_VALUES, maxChars = MAX_VALUE_CHARS): string[] {
  const kept: string[] = [];
  let chars = 0;
  for (const value of allValues(text)) {
    if (chars + value.length > maxChars || kept.length === maxValues) break;
    kept.push(value);
    chars += value.length + 2;
  }
  return kept;
}

export const isResult = (message: ChatMessage): boolean => message.role === 'tool' || message.role === 'function';

/** A tool result or a message that makes tool calls: part of a tool chain. */
export const isToolMessage = (message: ChatMessage): boolean => isResult(message) || message.tool_calls !== undefined || message.function_call !== undefined;

export function isPlaceholder(message: ChatMessage): boolean {
  return typeof message.content === 'string' && message.content.startsWith(CLEARED_MARK);
}

/** A tool result with its content replaced by a placeholder: same role, same ids. */
export function clearedResult(message: ChatMessage, tokens: number): ChatMessage {
  const values = keptValues(messageText(message));
  const kept = values.length > 0 ? `; it held ${values.join(', ')}` : '';
  return { ...message, content: `${CLEARED_MARK} older tool result of ${tokens} tokens cleared${kept}]` };
}

/**
 * A tool result cut to its head and tail, with a notice in the middle of what was cut, sized by
 * `fits` (true when a candidate is small enough). Undefined when even a short head and tail do not fit.
 */
export function cutResult(message: ChatMessage, tokens: number, fits: (candidate: ChatMessage) => boolean, targetTokens: number): ChatMessage | undefined {
  const text = messageText(message);
  if (text.length < 64) return undefined;
  let keep = Math.floor(text.length * Math.max(0.01, targetTokens / Math.max(1, tokens)) * 0.9);
  // Shorter and shorter head and tail; near the end, a notice without the values, so that a tight
  // budget still gets a cut result rather than a refusal.
  for (let attempt = 0; attempt < 12 && keep >= 8; attempt++) {
    const head = text.slice(0, Math.ceil(keep * 0.6));
    const tail = text.slice(text.length - Math.floor(keep * 0.4));
    const values = keptValues(text.slice(head.length, text.length - tail.length));
    for (const held of values.length > 0 ? [values, []] : [values]) {
      const notice = `\n${CLEARED_MARK} cut ${text.length - head.length - tail.length} of ${text.length} characters (about ${tokens} tokens) from the middle of this tool result to fit the budget${held.length > 0 ? `; the cut part held ${held.join(', ')}` : ''}]\n`;
      const candidate: ChatMessage = { ...message, content: `${head}${notice}${tail}` };
      if (fits(candidate)) return candidate;
    }
    keep = Math.floor(keep * 0.6);
  }
  return undefined;
}
