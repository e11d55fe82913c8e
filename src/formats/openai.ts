import { managesOwnBreakpoints, withExplicitBreakpoints } from './explicit-breakpoints.js';
import type { CompactorError } from '../core/errors.js';
import type { ChatMessage, ChatRequest } from '../core/types.js';
import { validateRequest } from '../core/validate.js';
import type { CachedResponse, WireFormat } from './wire-format.js';

interface ChunkChoice {
  index?: number;
  delta?: {
    role?: string;
    content?: string | null;
    refusal?: string | null;
    tool_calls?: { index?: number; id?: string; type?: string; function?: { name?: string; arguments?: string } }[];
  };
  finish_reason?: string | null;
  logprobs?: unknown;
}

interface Completion {
  id?: string;
  object: 'chat.completion';
  created?: number;
  model?: string;
  system_fingerprint?: string | null;
  choices: { index: number; message: Record<string, unknown>; finish_reason: string | null; logprobs?: unknown }[];
  usage?: unknown;
}

/**
 * Fold OpenAI chat-completion chunks (the `data:` payloads of a stream, `[DONE]` excluded) into
 * the `chat.completion` object a non-streamed request would have received.
 */
export function assembleChatCompletion(chunks: readonly Record<string, unknown>[]): Completion {
  const first = chunks[0] ?? {};
  const choices = new Map<
    number,
    {
      message: Record<string, unknown>;
      finish_reason: string | null;
      tools: Map<number, { id?: string; type: string; function: { name: string; arguments: string } }>;
    }
  >();
  let usage: unknown;
  for (const chunk of chunks) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of (chunk.choices as ChunkChoice[] | undefined) ?? []) {
      const index = choice.index ?? 0;
      let state = choices.get(index);
      if (!state) {
        state = { message: { role: 'assistant', content: null }, finish_reason: null, tools: new Map() };
        choices.set(index, state);
      }
      const delta = choice.delta ?? {};
      if (delta.role) state.message.role = delta.role;
      if (typeof delta.content === 'string') state.message.content = `${(state.message.content as string | null) ?? ''}${delta.content}`;
      if (typeof delta.refusal === 'string') state.message.refusal = `${(state.message.refusal as string | undefined) ?? ''}${delta.refusal}`;
      for (const call of delta.tool_calls ?? []) {
        const position = call.index ?? 0;
        let tool = state.tools.get(position);
        if (!tool) {
          tool = { type: call.type ?? 'function', function: { name: '', arguments: '' } };
          state.tools.set(position, tool);
        }
        if (call.id) tool.id = call.id;
        if (call.function?.name) tool.function.name += call.function.name;
        if (call.function?.arguments) tool.function.arguments += call.function.arguments;
      }
      if (choice.finish_reason) state.finish_reason = choice.finish_reason;
    }
  }
  const completion: Completion = {
    id: first.id as string | undefined,
    object: 'chat.completion',
    created: first.created as number | undefined,
    model: first.model as string | undefined,
    choices: [...choices.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([index, state]) => {
        const message = { ...state.message };
        if (state.tools.size > 0) message.tool_calls = [...state.tools.entries()].sort((a, b) => a[0] - b[0]).map(([, tool]) => tool);
        return { index, message, finish_reason: state.finish_reason };
      }),
  };
  if (first.system_fingerprint !== undefined) completion.system_fingerprint = first.system_fingerprint as string | null;
  if (usage !== undefined) completion.usage = usage;
  return completion;
}

/** The chunks of a stream that would have produced `completion` (one content delta per choice). */
export function chatCompletionChunks(completion: Record<string, unknown>): Record<string, unknown>[] {
  const base = { id: completion.id, object: 'chat.completion.chunk', created: completion.created, model: completion.model };
  const chunks: Record<string, unknown>[] = [];
  const choices = (completion.choices as { index?: number; message?: Record<string, unknown>; finish_reason?: string | null }[] | undefined) ?? [];
  for (const choice of choices) {
    const index = choice.index ?? 0;
    const message = choice.message ?? {};
    chunks.push({ ...base, choices: [{ index, delta: { role: message.role ?? 'assistant', content: '' }, finish_reason: null }] });
    if (typeof message.content === 'string' && message.content.length > 0) {
      chunks.push({ ...base, choices: [{ index, delta: { content: message.content }, finish_reason: null }] });
    }
    const calls = (message.tool_calls as Record<string, unknown>[] | undefined) ?? [];
    calls.forEach((call, position) => {
      chunks.push({ ...base, choices: [{ index, delta: { tool_calls: [{ index: position, ...call }] }, finish_reason: null }] });
    });
    chunks.push({ ...base, choices: [{ index, delta: {}, finish_reason: choice.finish_reason ?? 'stop' }] });
  }
  if (completion.usage) chunks.push({ ...base, choices: [], usage: completion.usage });
  return chunks;
}

function completionProblem(body: Record<string, unknown>, cacheToolCalls: boolean): string | null {
  if (body.error !== undefined) return 'error';
  const choices = body.choices as { finish_reason?: unknown; message?: ChatMessage }[] | undefined;
  if (!Array.isArray(choices) || choices.length === 0) return 'incomplete';
  for (const choice of choices) {
    const calls = (choice.message?.tool_calls?.length ?? 0) > 0 || choice.message?.function_call !== undefined;
    if (calls && !cacheToolCalls) return 'tool-calls';
    const finish = choice.finish_reason;
    if (finish === 'tool_calls' || finish === 'function_call') {
      if (!cacheToolCalls) return 'tool-calls';
    } else if (finish !== 'stop') return 'incomplete';
  }
  return null;
}

/** The `data:` payloads of a stream's chunks, `[DONE]` excluded; undefined when one is not JSON. */
function streamChunks(response: CachedResponse): Record<string, unknown>[] | undefined {
  const chunks: Record<string, unknown>[] = [];
  for (const event of response.events ?? []) {
    if (event.data.trim() === '[DONE]') continue;
    try {
      chunks.push(JSON.parse(event.data) as Record<string, unknown>);
    } catch {
      return undefined;
    }
  }
  return chunks;
}

/** Codes whose message is shown although their status is 5xx: it says what went wrong upstream, or that the server is draining. */
const SHOWN_CODES = new Set(['upstream.failed', 'upstream.timeout', 'unavailable', 'loop.detected']);

/** Whether an error's message may reach the API caller. */
export function shownMessage(error: CompactorError): string {
  return error.expose || SHOWN_CODES.has(error.code) ? error.message : 'internal error';
}

/** OpenAI chat completions: the canonical shape itself. */
export const openaiFormat: WireFormat = {
  name: 'openai',
  detect: (body) => typeof body === 'object' && body !== null,
  toCanonical(body, limits) {
    validateRequest(body, limits);
    const canonical = body as ChatRequest;
    return {
      canonical,
      restore(messages, hints) {
        const restored: ChatRequest = { ...canonical, messages: [...messages] };
        // OpenAI routes requests with the same key to the same cache; a client's own key stays.
        if (hints?.key && canonical.prompt_cache_key === undefined) restored.prompt_cache_key = hints.key;
        // GPT-5.6 and later: explicit breakpoints at the stable boundary, unless the client sets its own.
        if (hints?.explicit && hints.breakpoints.length > 0 && !managesOwnBreakpoints(canonical))
          restored.messages = withExplicitBreakpoints(
            restored.messages,
            hints.breakpoints.map((message) => restored.messages.indexOf(message)).filter((index) => index >= 0),
          );
        return restored;
      },
    };
  },
  uncacheableReason(response, cacheToolCalls) {
    if (!response.events) {
      if (typeof response.body !== 'object' || response.body === null) return 'incomplete';
      return completionProblem(response.body as Record<string, unknown>, cacheToolCalls);
    }
    if (response.events[response.events.length - 1]?.data.trim() !== '[DONE]') return 'incomplete';
    const chunks = streamChunks(response);
    if (!chunks) return 'incomplete';
    if (chunks.some((chunk) => chunk.error !== undefined)) return 'error';
    return completionProblem(assembleChatCompletion(chunks) as unknown as Record<string, unknown>, cacheToolCalls);
  },
  replayable: () => true,
  replay(response, stream) {
    if (stream) {
      if (response.events) return { kind: 'sse', events: response.events };
      const chunks = chatCompletionChunks(response.body as Record<string, unknown>);
      return { kind: 'sse', events: [...chunks.map((chunk) => ({ data: JSON.stringify(chunk) })), { data: '[DONE]' }] };
    }
    if (response.body !== undefined) return { kind: 'json', body: response.body };
    return { kind: 'json', body: assembleChatCompletion(streamChunks(response) ?? []) };
  },
  errorBody(error) {
    const type =
      error.status === 401 ? 'authentication_error' : error.status === 429 ? 'rate_limit_error' : error.status < 500 ? 'invalid_request_error' : 'server_error';
    return { error: { message: shownMessage(error), type, code: error.code, param: error.pointer ?? null } };
  },
  outputTokens(body) {
    const value = (body as { usage?: { completion_tokens?: unknown } } | undefined)?.usage?.completion_tokens;
    return typeof value === 'number' ? value : 0;
  },
};
