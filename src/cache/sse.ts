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

/** Content block types the Anthropic conversions carry both ways; any other makes them give up. */
const ANTHROPIC_BLOCKS = new Set(['text', 'tool_use', 'thinking', 'redacted_thinking']);

type AnthropicBlock = Record<string, unknown> & { type: string };

/**
 * Fold the events of an Anthropic Messages stream into the message a non-streamed request would
 * have received, or undefined when the stream holds something this fold does not know (a block
 * type other than text, tool_use, thinking and redacted_thinking, or an unknown delta), so a
 * caller never replays a message with parts missing.
 */
export function assembleAnthropicMessage(events: readonly SseEvent[]): Record<string, unknown> | undefined {
  let message: Record<string, unknown> | undefined;
  const blocks: AnthropicBlock[] = [];
  const partialJson = new Map<number, string>();
  for (const event of events) {
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(event.data) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    switch (data.type) {
      case 'message_start':
        message = { ...(data.message as Record<string, unknown>) };
        break;
      case 'content_block_start': {
        const block = data.content_block as AnthropicBlock | undefined;
        if (!block || !ANTHROPIC_BLOCKS.has(block.type)) return undefined;
        blocks[data.index as number] = { ...block };
        break;
      }
      case 'content_block_delta': {
        const index = data.index as number;
        const block = blocks[index];
        const delta = data.delta as Record<string, unknown> | undefined;
        if (!block || !delta) return undefined;
        if (delta.type === 'text_delta') block.text = `${(block.text as string | undefined) ?? ''}${delta.text as string}`;
        else if (delta.type === 'thinking_delta') block.thinking = `${(block.thinking as string | undefined) ?? ''}${delta.thinking as string}`;
        else if (delta.type === 'signature_delta') block.signature = `${(block.signature as string | undefined) ?? ''}${delta.signature as string}`;
        else if (delta.type === 'input_json_delta') partialJson.set(index, `${partialJson.get(index) ?? ''}${delta.partial_json as string}`);
        else return undefined;
        break;
      }
      case 'content_block_stop': {
        const index = data.index as number;
        const json = partialJson.get(index);
        if (json !== undefined && blocks[index]) {
          try {
            blocks[index]!.input = json === '' ? {} : JSON.parse(json);
          } catch {
            return undefined;
          }
        }
        break;
      }
      case 'message_delta': {
        if (!message) return undefined;
        Object.assign(message, data.delta as Record<string, unknown>);
        if (data.usage) message.usage = { ...(message.usage as Record<string, unknown> | undefined), ...(data.usage as Record<string, unknown>) };
        break;
      }
      case 'message_stop':
      case 'ping':
        break;
      default:
        return undefined;
    }
  }
  if (!message || blocks.some((block) => block === undefined)) return undefined;
  message.content = blocks;
  return message;
}

/**
 * The events of a stream that would have produced an Anthropic `message` (one delta per block),
 * or undefined when it holds a block type the conversion does not know.
 */
export function anthropicMessageEvents(message: Record<string, unknown>): SseEvent[] | undefined {
  const content = message.content;
  if (!Array.isArray(content) || content.some((block: AnthropicBlock) => !block || !ANTHROPIC_BLOCKS.has(block.type))) return undefined;
  const event = (type: string, payload: Record<string, unknown>): SseEvent => ({ event: type, data: JSON.stringify({ type, ...payload }) });
  const usage = (message.usage as Record<string, unknown> | undefined) ?? {};
  const events: SseEvent[] = [event('message_start', { message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 0 } } })];
  (content as AnthropicBlock[]).forEach((block, index) => {
    if (block.type === 'text') {
      events.push(event('content_block_start', { index, content_block: { ...block, text: '' } }));
      if (block.text) events.push(event('content_block_delta', { index, delta: { type: 'text_delta', text: block.text } }));
    } else if (block.type === 'thinking') {
      events.push(event('content_block_start', { index, content_block: { ...block, thinking: '', signature: '' } }));
      if (block.thinking) events.push(event('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: block.thinking } }));
      if (block.signature) events.push(event('content_block_delta', { index, delta: { type: 'signature_delta', signature: block.signature } }));
    } else if (block.type === 'tool_use') {
      events.push(event('content_block_start', { index, content_block: { ...block, input: {} } }));
      events.push(event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input ?? {}) } }));
    } else {
      events.push(event('content_block_start', { index, content_block: block }));
    }
    events.push(event('content_block_stop', { index }));
  });
  events.push(event('message_delta', { delta: { stop_reason: message.stop_reason ?? null, stop_sequence: message.stop_sequence ?? null }, usage: { output_tokens: usage.output_tokens ?? 0 } }));
  events.push(event('message_stop', {}));
  return events;
}
