import { CompactorError } from '../../core/errors.js';
import { openaiFormat } from '../openai.js';
import { validatedConversion } from '../converted.js';
import type { WireFormat } from '../wire-format.js';
import { fromResponses } from './convert.js';
import { completedResponse, responseEvents } from './stream.js';
import { isResponsesRequest, type ResponsesRequest } from './types.js';

/**
 * The OpenAI Responses API (`POST /v1/responses`), laid out like the Anthropic folder: request
 * types and item kinds (./types.ts), the conversion to the canonical shape and back
 * (./convert.ts), and the stream's fold and unfold (./stream.ts). This file is the wire format:
 * cacheability, replay and the error body (OpenAI's).
 */
export { fromResponses, type ResponsesConversion } from './convert.js';
export { completedResponse, responseEvents } from './stream.js';
export { isResponsesRequest, isStateful, type ResponsesItem, type ResponsesRequest } from './types.js';

const CALL = /_call$/;

function responseProblem(body: unknown, cacheToolCalls: boolean): string | null {
  if (typeof body !== 'object' || body === null) return 'incomplete';
  const response = body as { status?: unknown; error?: unknown; output?: { type?: unknown }[] };
  if (response.error !== undefined && response.error !== null) return 'error';
  if (response.status !== 'completed') return 'incomplete';
  // Function, custom and built-in tool calls act on the world (or ask the caller to).
  if (!cacheToolCalls && (response.output ?? []).some((item) => typeof item.type === 'string' && CALL.test(item.type))) return 'tool-calls';
  return null;
}

export const responsesFormat: WireFormat = {
  name: 'responses',
  detect: isResponsesRequest,
  toCanonical: (body, limits) => validatedConversion(body, (object) => fromResponses(object as ResponsesRequest), limits),
  uncacheableReason(response, cacheToolCalls) {
    if (!response.events) return responseProblem(response.body, cacheToolCalls);
    if (response.events.some((event) => event.event === 'error' || event.event === 'response.failed')) return 'error';
    return responseProblem(completedResponse(response.events), cacheToolCalls);
  },
  replayable(response, stream) {
    if (stream) return response.events !== undefined || (typeof response.body === 'object' && response.body !== null);
    return response.body !== undefined || completedResponse(response.events ?? []) !== undefined;
  },
  replay(response, stream) {
    if (stream) return { kind: 'sse', events: response.events ?? responseEvents(response.body as Record<string, unknown>) };
    const body = response.body ?? completedResponse(response.events ?? []);
    if (!body) throw new CompactorError('internal', 'cached Responses stream cannot be replayed as a response');
    return { kind: 'json', body };
  },
  errorBody: (error) => openaiFormat.errorBody(error),
  outputTokens(body) {
    const value = (body as { usage?: { output_tokens?: unknown } } | undefined)?.usage?.output_tokens;
    return typeof value === 'number' ? value : 0;
  },
};
