import { createParser } from 'eventsource-parser';

/** One server-sent event, as stored and replayed. */
export interface SseEvent {
  event?: string;
  data: string;
}

/** Incremental SSE reader over text chunks (eventsource-parser does the framing). */
export function sseCollector(): { push(text: string): void; events: SseEvent[] } {
  const events: SseEvent[] = [];
  const parser = createParser({
    onEvent: (message) => events.push(message.event ? { event: message.event, data: message.data } : { data: message.data }),
  });
  return { push: (text) => parser.feed(text), events };
}

/** Serialise events back to the wire format. */
export function encodeSse(events: readonly SseEvent[]): string {
  let text = '';
  for (const event of events) {
    if (event.event) text += `event: ${event.event}\n`;
    for (const line of event.data.split('\n')) text += `data: ${line}\n`;
    text += '\n';
  }
  return text;
}

interface ChunkChoice {
  index?: number;
  delta?: { role?: string; content?: string | null; refusal?: string | null; tool_calls?: { index?: number; id?: string; type?: string; function?: { name?: string; arguments?: string } }[] };
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
  const choices = new Map<number, { message: Record<string, unknown>; finish_reason: string | null; tools: Map<number, { id?: string; type: string; function: { name: string; arguments: string } }> }>();
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
    calls.forEach((call, position) => chunks.push({ ...base, choices: [{ index, delta: { tool_calls: [{ index: position, ...call }] }, finish_reason: null }] }));
    chunks.push({ ...base, choices: [{ index, delta: {}, finish_reason: choice.finish_reason ?? 'stop' }] });
  }
  if (completion.usage) chunks.push({ ...base, choices: [], usage: completion.usage });
  return chunks;
}
