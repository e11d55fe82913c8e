import { CompactorError } from '../core/errors.js';
import { FORMATS } from '../formats/registry.js';
import { encodeSse } from '../formats/sse.js';
import type { FormatName, Replay } from '../formats/wire-format.js';

/** Any error as a CompactorError: body-parser's errors keep their meaning, anything unknown is `internal`. */
export function asCompactorError(error: unknown): CompactorError {
  if (CompactorError.isInstance(error)) return error;
  const parserType = (error as { type?: unknown } | null)?.type;
  if (parserType === 'entity.too.large') return new CompactorError('input.too-large', 'body: request body is too large', { pointer: 'body', cause: error });
  if (parserType === 'entity.parse.failed') return new CompactorError('input.invalid', 'body: is not valid JSON', { pointer: 'body', cause: error });
  return new CompactorError('internal', error instanceof Error ? error.message : String(error), { cause: error });
}

/** A complete answer the adapter sends as is: a cached reply or an error. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_TYPE = 'application/json';
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };

/**
 * A cached answer as this request's own: a new `id`, `created` now, and a `usage` of zeros, since
 * nothing reached the model (`x-compactor-cache: hit` says where it came from). Streams get the
 * same in every chunk.
 */
export function freshReplay(replay: Replay, now: number): Replay {
  const suffix = `cached${now.toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const zero = (usage: unknown): unknown => {
    if (typeof usage === 'number') return 0;
    if (typeof usage !== 'object' || usage === null || Array.isArray(usage)) return usage;
    return Object.fromEntries(Object.entries(usage).map(([key, value]) => [key, zero(value)]));
  };
  const fresh = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    if (typeof copy.id === 'string') copy.id = `${/^[a-z]+[-_]/i.exec(copy.id)?.[0] ?? ''}${suffix}`;
    if (typeof copy.created === 'number') copy.created = Math.floor(now / 1000);
    if (copy.usage !== undefined && copy.usage !== null) copy.usage = zero(copy.usage);
    if (typeof copy.created_at === 'number') copy.created_at = Math.floor(now / 1000);
    // Anthropic's stream opens with the message itself, the Responses stream carries the response.
    if (typeof copy.message === 'object' && copy.message !== null) copy.message = fresh(copy.message);
    if (typeof copy.response === 'object' && copy.response !== null) copy.response = fresh(copy.response);
    return copy;
  };
  if (replay.kind === 'json') return { kind: 'json', body: fresh(replay.body) };
  return {
    kind: 'sse',
    events: replay.events.map((event) => {
      if (event.data.trim() === '[DONE]') return event;
      try {
        return { ...event, data: JSON.stringify(fresh(JSON.parse(event.data))) };
      } catch {
        return event;
      }
    }),
  };
}

/** A replay as bytes on the wire. */
export function replyOf(replay: Replay, headers: Record<string, string> = {}): Reply {
  if (replay.kind === 'sse') return { status: 200, headers: { ...headers, ...SSE_HEADERS }, body: encodeSse(replay.events) };
  return { status: 200, headers: { ...headers, 'content-type': JSON_TYPE }, body: JSON.stringify(replay.body) };
}

/** An error in the caller's wire format (OpenAI's when the format is not known yet). */
export function errorReply(error: unknown, format: FormatName | undefined, headers: Record<string, string> = {}): Reply {
  const failure = asCompactorError(error);
  const body = FORMATS[format ?? 'openai'].errorBody(failure);
  return { status: failure.status, headers: { ...headers, 'content-type': JSON_TYPE }, body: JSON.stringify(body) };
}
