import { createHash } from 'node:crypto';
import { invalidOption } from '../core/errors.js';
import type { BypassReason, CacheAccess } from '../core/stats.js';
import { timeSlicer } from '../core/turns.js';
import type { ChatMessage, ChatRequest } from '../core/types.js';
import type { Embedder } from '../embedders/types.js';
import { messageText } from '../text/message-text.js';
import type { ResolvedCacheOptions } from './options.js';
import type { CacheLookupOptions, CacheTicket } from './types.js';

/** Fields that never change the answer. Every other field (known or not) is part of the scope. */
const NEUTRAL_FIELDS = new Set(['messages', 'system', 'stream', 'stream_options', 'metadata', 'store', 'service_tier', 'prompt_cache_key']);

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${stableJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export const sha = (text: string): string => createHash('sha256').update(text).digest('base64url');

/**
 * A user's words as the exact layer compares them: Unicode NFKC, case, runs of whitespace and
 * trailing punctuation do not make another question.
 */
export function normalQuestion(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[\s.?!;:,…。？！]+$/u, '');
}

/** Longest question normalized for the exact layer; a longer one (a pasted log) is compared as sent. */
const NORMALIZED_CHARS = 4096;

/**
 * A message as the keys see it. The question (the latest user message, `question` true) is
 * normalized per `normalQuestion`; the rest of the conversation is its context and is matched as
 * sent, which also keeps a long history cheap to key (no pass over megabytes of text).
 */
function keyedMessage(message: ChatMessage, question = false): string {
  let content: string;
  if (question && typeof message.content === 'string' && message.content.length <= NORMALIZED_CHARS) content = normalQuestion(message.content);
  else if (question && hasOnlyText(message) && Array.isArray(message.content))
    content = normalQuestion(
      message.content
        .map((part) => String(part.text ?? ''))
        .join('\n')
        .slice(0, NORMALIZED_CHARS * 2),
    );
  else content = typeof message.content === 'string' ? message.content : stableJson(message.content ?? null);
  const rest: Record<string, unknown> = {};
  for (const key of ['name', 'tool_calls', 'tool_call_id', 'function_call']) if (message[key] !== undefined) rest[key] = message[key];
  return `${message.role}\u0001${content}\u0001${stableJson(rest)}`;
}

function hasOnlyText(message: ChatMessage): boolean {
  return typeof message.content === 'string' || (Array.isArray(message.content) && message.content.every((part) => part.type === 'text'));
}

/** A lookup's cache access, from `access` or the deprecated `bypass` and `writeOnly`. */
export function accessOf(lookup: CacheLookupOptions): CacheAccess {
  if (lookup.access !== undefined) {
    if (lookup.access !== 'read-write' && lookup.access !== 'write-only' && lookup.access !== 'none')
      invalidOption('access', '"read-write", "write-only" or "none"', lookup.access);
    return lookup.access;
  }
  return lookup.bypass ? 'none' : lookup.writeOnly ? 'write-only' : 'read-write';
}

/** Turns a request into its cache keys: scope, exact key, semantic namespace and question. */
export function createKeyer({ settings, routes, fallbackRoute, verifier }: ResolvedCacheOptions, embedder: Embedder | null) {
  // Digests of the messages before the question, by identity: `prepareDigests` computes a long
  // history's in slices that yield to the event loop, and the (synchronous) ticket then finds them.
  const digests = new WeakMap<ChatMessage, string>();
  function digestOf(message: ChatMessage, question: boolean): string {
    if (question) return sha(keyedMessage(message, true));
    let digest = digests.get(message);
    if (digest === undefined) {
      digest = sha(keyedMessage(message));
      digests.set(message, digest);
    }
    return digest;
  }
  async function prepareDigests(messages: readonly ChatMessage[]): Promise<void> {
    if (messages.length < 256) return;
    const pause = timeSlicer();
    for (const message of messages) {
      digestOf(message, false);
      await pause();
    }
  }

  function ticketOf(request: ChatRequest, lookup: CacheLookupOptions): CacheTicket | BypassReason {
    const route = lookup.route !== undefined ? (routes.get(lookup.route) ?? fallbackRoute) : fallbackRoute;
    if (accessOf(lookup) === 'none') return 'header';
    if (route.mode === 'off') return 'route-off';
    if (settings.requireTenant && !lookup.tenant) return 'no-tenant';
    const messages = request.messages;
    const last = messages[messages.length - 1];
    if (!last) return 'no-user-message';
    if ((last.role === 'tool' || last.role === 'function') && !settings.cacheToolCalls) return 'tool-results';
    if (last.role !== 'user') return 'no-user-message';
    if (
      settings.skipSampled &&
      ((typeof request.temperature === 'number' && request.temperature > 0) || (typeof request.top_p === 'number' && request.top_p < 1))
    )
      return 'sampled';
    const format = lookup.format ?? 'openai';
    const system: string[] = [];
    const conversation: ChatMessage[] = [];
    for (const message of messages) {
      if (message.role === 'system' || message.role === 'developer') system.push(keyedMessage(message));
      else conversation.push(message);
    }
    const params: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(request)) if (!NEUTRAL_FIELDS.has(key)) params[key] = value;
    // The end user the request is for (OpenAI's `user`, Anthropic's `metadata.user_id`) scopes it too: one user's answer is never another's.
    const userId = (request.metadata as { user_id?: unknown } | undefined)?.user_id;
    if (userId !== undefined) params['metadata.user_id'] = userId;
    // Streamed and non-streamed requests share entries: replay converts between the two forms.
    const streamed = request.stream === true;
    const scope = sha(stableJson({ v: 1, format, tenant: lookup.tenant ?? '', route: lookup.route ?? '', system, params }));
    // One digest per message, shared by the exact key and the context's.
    const digests = conversation.map((message, index) => digestOf(message, index === conversation.length - 1));
    const exactKey = sha(`${scope}\u0002${digests.join('\u0002')}`);
    let namespace: string | undefined;
    let question: string | undefined;
    if (route.mode === 'semantic' && embedder && hasOnlyText(last)) {
      const history = conversation.slice(0, -1);
      let start = 0;
      if (settings.contextTurns !== 'all') {
        let turns = 0;
        start = history.length;
        while (start > 0 && turns < settings.contextTurns) {
          start--;
          if (history[start]!.role === 'user') turns++;
        }
      }
      const context = sha(digests.slice(start, history.length).join('\u0002'));
      namespace = sha(`${scope}\u0002${context}\u0002${embedder.id}\u0002${verifier.id}`);
      question = messageText(last).normalize('NFKC').trim();
    }
    return { scope, exactKey, namespace, question, vector: undefined, ttlMs: route.ttlMs, format, streamed };
  }
  return { ticketOf, prepareDigests };
}
