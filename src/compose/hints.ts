import { createHash } from 'node:crypto';
import type { ChatMessage, ChatRequest, Messages } from '../core/types.js';
import { messageKey } from '../tokens/counter.js';

/**
 * Where the provider's cache breakpoints go: where the strategy says its stable part ends, else
 * at the end of the prompt, as clients mark it: the next request of the conversation repeats it
 * all before its new turn.
 */
export function breakpointsOf(messages: Messages, chosen: readonly ChatMessage[] | undefined): ChatMessage[] {
  const present = new Set(messages);
  const marks = (chosen ?? []).filter((message) => present.has(message));
  if (marks.length > 0) return marks;
  return messages.length > 0 ? [messages[messages.length - 1]!] : [];
}

/** A key stable across a conversation's requests: its tenant, system prompt and first user message. */
export function cacheKey(request: ChatRequest, tenant: string | undefined): string {
  const hash = createHash('sha256').update(tenant ?? '');
  for (const message of request.messages) {
    if (message.role === 'system' || message.role === 'developer') hash.update(`\u0000s${messageKey(message)}`);
    else if (message.role === 'user') {
      hash.update(`\u0000u${messageKey(message)}`);
      break;
    }
  }
  return `cc-${hash.digest('base64url').slice(0, 22)}`;
}

/** The marks whose prefix (everything up to and including the marked message) holds at least `minimum` tokens. */
export function reaching(
  messages: Messages,
  marks: readonly ChatMessage[],
  fixed: number,
  tokensOf: (message: ChatMessage) => number,
  minimum: number,
): ChatMessage[] {
  const wanted = new Set(marks);
  const kept: ChatMessage[] = [];
  let tokens = fixed;
  for (const message of messages) {
    tokens += tokensOf(message);
    if (wanted.has(message) && tokens >= minimum) kept.push(message);
  }
  return kept;
}
