import type { CompactorError } from '../core/errors.js';
import type { ChatMessage, ChatRequest, Messages } from '../core/types.js';
import type { InputLimits } from '../core/validate.js';
import type { SseEvent } from './sse.js';

export type { FormatName } from '../core/types.js';
import type { FormatName } from '../core/types.js';

/** What a cache stores and replays: an upstream's JSON body, or the events of a completed stream. */
export interface CachedResponse {
  format: FormatName;
  /** The upstream's JSON body (non-streamed). */
  body?: unknown;
  /** The upstream's server-sent events, in order (streamed). */
  events?: SseEvent[];
}

/** A cached response in the form a caller asked for: one JSON body, or a stream of events. */
export type Replay = { kind: 'json'; body: unknown } | { kind: 'sse'; events: SseEvent[] };

/**
 * Hints for the provider's prompt cache, added to a request that carries none of its own: where its
 * stable prefix ends, and a key that routes a conversation's requests to the same cache.
 */
export interface CacheHints {
  /** Messages of the compacted list after which a cache breakpoint belongs (Anthropic `cache_control`; at most 4 are used, the last ones). */
  breakpoints: readonly ChatMessage[];
  /** A key stable across a conversation's requests (OpenAI `prompt_cache_key`), for models known to take one. */
  key?: string | undefined;
  /** The model takes explicit `prompt_cache_breakpoint` markers (GPT-5.6 and later): the breakpoints go on the wire as such. */
  explicit?: boolean;
}

/** A wire request in the canonical (chat-completions) shape, and the way back. */
export interface Conversion {
  readonly canonical: ChatRequest;
  /**
   * `stateful`: the provider holds the history (a Responses request with `previous_response_id`
   * or `conversation`), so there is nothing to compact and no history to key a cached answer by:
   * the request is forwarded untouched and the cache is bypassed.
   */
  readonly passThrough?: 'stateful' | undefined;
  /** The request in its own wire shape, with these (a subset of the canonical, plus any new) messages, and the cache hints its format uses. */
  restore(messages: Messages, hints?: CacheHints, rewrites?: ReadonlyMap<ChatMessage, ChatMessage>): object;
}

/**
 * Everything one provider's wire format knows, in one place: how to recognise and convert its
 * requests, when one of its responses is complete enough to cache, how to replay a cached one
 * streamed or not, and what its error bodies look like.
 */
export interface WireFormat {
  readonly name: FormatName;
  /** True when a body is in this format (`format: 'auto'` asks each format in turn). */
  detect(body: unknown): boolean;
  /** Validate a request and convert it to the canonical shape. Throws `input.invalid` with a pointer into the wire body. */
  toCanonical(body: unknown, limits: InputLimits): Conversion;
  /** Why a response may not be cached (`incomplete`, `error`, `tool-calls`), or null when it may. */
  uncacheableReason(response: CachedResponse, cacheToolCalls: boolean): string | null;
  /** Whether `replay` can answer in the requested form. */
  replayable(response: CachedResponse, stream: boolean): boolean;
  /** A cached response in the requested form; check `replayable` first. */
  replay(response: CachedResponse, stream: boolean): Replay;
  /** An error as this provider's error body. Internal details stay hidden. */
  errorBody(error: CompactorError): unknown;
  /** Output tokens a response body reports (0 when it reports none), for metrics. */
  outputTokens(body: unknown): number;
}
