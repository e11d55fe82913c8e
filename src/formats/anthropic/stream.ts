import type { SseEvent } from '../sse.js';

/** Content block types the Anthropic conversions carry both ways; any other makes them give up. */
const ANTHROPIC_BLOCKS = new Set(['text', 'tool_use', 'thinking', 'redacted_thinking']);

type StreamBlock = Record<string, unknown> & { type: string };

/**
 * Fold the events of an Anthropic Messages stream into the message a non-streamed request would
 * have received, or undefined when the stream holds something this fold does not know (a block
 * type other than text, tool_use, thinking and redacted_thinking, or an unknown delta), so a
 * caller never replays a message with parts missing.
 */
export function assembleAnthropicMessage(events: readonly SseEvent[]): Record<string, unknown> | undefined {
  let message: Record<string, unknown> | undefined;
  const blocks: StreamBlock[] = [];
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
        const block = data.content_block as StreamBlock | undefined;
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
  if (!Array.isArray(content) || content.some((block: StreamBlock) => !block || !ANTHROPIC_BLOCKS.has(block.type))) return undefined;
  const event = (type: string, payload: Record<string, unknown>): SseEvent => ({ event: type, data: JSON.stringify({ type, ...payload }) });
  const usage = (message.usage as Record<string, unknown> | undefined) ?? {};
  const events: SseEvent[] = [
    event('message_start', { message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 0 } } }),
  ];
  (content as StreamBlock[]).forEach((block, index) => {
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
  events.push(
    event('message_delta', {
      delta: { stop_reason: message.stop_reason ?? null, stop_sequence: message.stop_sequence ?? null },
      usage: { output_tokens: usage.output_tokens ?? 0 },
    }),
  );
  events.push(event('message_stop', {}));
  return events;
}
