import { CompactorError } from '../../core/errors.js';
import { shownMessage } from '../openai.js';
import { validatedConversion } from '../converted.js';
import type { CachedResponse, WireFormat } from '../wire-format.js';
import { fromAnthropic } from './convert.js';
import { anthropicMessageEvents, assembleAnthropicMessage } from './stream.js';
import { type AnthropicRequest, isAnthropicRequest } from './types.js';

/**
 * Anthropic Messages, laid out as a provider: request types and detection (./types.ts), the
 * conversion to the canonical shape and back (./convert.ts), cache breakpoints
 * (./cache-control.ts), and the stream's fold and unfold (./stream.ts). This file is the wire
 * format itself: cacheability, replay and the error body.
 */
export { type AnthropicConversion, fromAnthropic } from './convert.js';
export { anthropicMessageEvents, assembleAnthropicMessage } from './stream.js';
export { type AnthropicBlock, type AnthropicMessage, type AnthropicRequest, isAnthropicRequest } from './types.js';
export type { CachedResponse };

function stopProblem(stopReason: unknown, toolUse: boolean, cacheToolCalls: boolean): string | null {
  if ((toolUse || stopReason === 'tool_use') && !cacheToolCalls) return 'tool-calls';
  return stopReason === 'end_turn' || stopReason === 'stop_sequence' ? null : 'incomplete';
}

const isToolUse = (type: unknown): boolean => type === 'tool_use' || type === 'server_tool_use';

/** Anthropic Messages: converted to the canonical shape and back, keeping unchanged messages as they came. */
export const anthropicFormat: WireFormat = {
  name: 'anthropic',
  detect: isAnthropicRequest,
  toCanonical: (body, limits) => validatedConversion(body, (object) => fromAnthropic(object as AnthropicRequest), limits),
  uncacheableReason(response, cacheToolCalls) {
    if (!response.events) {
      const body = response.body as Record<string, unknown> | null | undefined;
      if (typeof body !== 'object' || body === null) return 'incomplete';
      if (body.type === 'error' || body.error !== undefined) return 'error';
      if (body.type !== 'message') return 'incomplete';
      const toolUse = ((body.content as { type?: string }[] | undefined) ?? []).some((block) => isToolUse(block.type));
      return stopProblem(body.stop_reason, toolUse, cacheToolCalls);
    }
    // message_start … message_delta (stop_reason) … message_stop.
    if (response.events.some((event) => event.event === 'error')) return 'error';
    if (response.events[response.events.length - 1]?.event !== 'message_stop') return 'incomplete';
    let stopReason: unknown;
    let toolUse = false;
    for (const event of response.events) {
      try {
        const data = JSON.parse(event.data) as { type?: string; delta?: { stop_reason?: unknown }; content_block?: { type?: string } };
        if (data.type === 'message_delta' && data.delta?.stop_reason) stopReason = data.delta.stop_reason;
        if (data.type === 'content_block_start' && isToolUse(data.content_block?.type)) toolUse = true;
      } catch {
        return 'incomplete';
      }
    }
    return stopProblem(stopReason, toolUse, cacheToolCalls);
  },
  replayable(response, stream) {
    if (stream) return response.events !== undefined || anthropicMessageEvents(response.body as Record<string, unknown>) !== undefined;
    return response.body !== undefined || assembleAnthropicMessage(response.events ?? []) !== undefined;
  },
  replay(response, stream) {
    if (stream) {
      const events = response.events ?? anthropicMessageEvents(response.body as Record<string, unknown>);
      if (!events) throw new CompactorError('internal', 'cached Anthropic message cannot be replayed as a stream');
      return { kind: 'sse', events };
    }
    const body = response.body ?? assembleAnthropicMessage(response.events!);
    if (!body) throw new CompactorError('internal', 'cached Anthropic stream cannot be replayed as a message');
    return { kind: 'json', body };
  },
  errorBody(error) {
    const status = error.status;
    const type =
      status === 413
        ? 'request_too_large'
        : status === 401
          ? 'authentication_error'
          : status === 429
            ? 'rate_limit_error'
            : status === 404
              ? 'not_found_error'
              : status < 500
                ? 'invalid_request_error'
                : status === 504
                  ? 'timeout_error'
                  : 'api_error';
    return { type: 'error', error: { type, message: shownMessage(error), code: error.code } };
  },
  outputTokens(body) {
    const value = (body as { usage?: { output_tokens?: unknown } } | undefined)?.usage?.output_tokens;
    return typeof value === 'number' ? value : 0;
  },
};
