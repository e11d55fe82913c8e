import { CompactorError } from '../core/errors.js';
import type { ChatMessage, ChatRequest, ContentPart, Messages, ToolDefinition } from '../core/types.js';
import { validateRequest } from '../core/validate.js';
import { shownMessage } from './openai.js';
import type { SseEvent } from './sse.js';
import type { CachedResponse, CacheHints, WireFormat } from './wire-format.js';

/** An Anthropic Messages API request body. Unknown fields pass through untouched. */
export interface AnthropicRequest {
  model?: string;
  system?: string | AnthropicBlock[];
  messages: AnthropicMessage[];
  tools?: { name: string; description?: string; input_schema?: Record<string, unknown>; [key: string]: unknown }[];
  max_tokens?: number;
  [key: string]: unknown;
}

export interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: string | AnthropicBlock[];
  [key: string]: unknown;
}

export interface AnthropicBlock {
  type: string;
  [key: string]: unknown;
}

const ANTHROPIC_ONLY_BLOCKS = new Set([
  'tool_use',
  'tool_result',
  'image',
  'document',
  'thinking',
  'redacted_thinking',
  'server_tool_use',
  'web_search_tool_result',
]);

/**
 * True when a body is an Anthropic Messages request rather than an OpenAI one: it has a top-level
 * `system`, or a content block only Anthropic uses. Bodies that are both (plain user/assistant
 * strings) convert identically either way.
 */
export function isAnthropicRequest(body: unknown): body is AnthropicRequest {
  if (typeof body !== 'object' || body === null) return false;
  const request = body as Record<string, unknown>;
  if ('system' in request) return true;
  if (!Array.isArray(request.messages)) return false;
  for (const message of request.messages as unknown[]) {
    const content = (message as { content?: unknown } | null)?.content;
    if (!Array.isArray(content)) continue;
    for (const block of content) {
      if (ANTHROPIC_ONLY_BLOCKS.has((block as { type?: string } | null)?.type as string)) return true;
    }
  }
  return false;
}

interface Origin {
  /** Index of the Anthropic message, or -1 for the top-level system prompt. */
  source: number;
  /** Indices of the content blocks this canonical message carries; null for all of them. */
  blocks: number[] | null;
}

export interface AnthropicConversion {
  readonly canonical: ChatRequest;
  /** Build the Anthropic request back from (a subset of) the canonical messages, with cache breakpoints where the hints say (unless the client marked its own). */
  restore(messages: Messages, hints?: CacheHints, rewrites?: ReadonlyMap<ChatMessage, ChatMessage>): AnthropicRequest;
  /** Map a canonical pointer such as `messages[4].content` to the Anthropic body's own path. */
  pointer(canonicalPointer: string): string;
}

function invalid(pointer: string, message: string): never {
  throw new CompactorError('input.invalid', `${pointer}: ${message}`, { pointer });
}

function toPart(block: AnthropicBlock): ContentPart {
  if (block.type === 'text') return block as ContentPart;
  if (block.type === 'image') {
    const source = (block.source ?? {}) as Record<string, unknown>;
    const url = source.type === 'base64' ? `data:${String(source.media_type)};base64,${String(source.data)}` : String(source.url ?? '');
    return { type: 'image_url', image_url: { url } };
  }
  return block;
}

/** Blocks as content parts, each checked to be a block with a type. */
function toParts(blocks: unknown[], pointer: string): ContentPart[] {
  return blocks.map((block, index) => {
    if (typeof block !== 'object' || block === null || Array.isArray(block) || typeof (block as AnthropicBlock).type !== 'string')
      invalid(`${pointer}[${index}]`, 'must be a content block with a type');
    return toPart(block as AnthropicBlock);
  });
}

function toolResultContent(block: AnthropicBlock, pointer: string): string | ContentPart[] {
  const content = block.content;
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) invalid(`${pointer}.content`, 'must be a string or an array of blocks');
  return toParts(content, `${pointer}.content`);
}

/** Convert an Anthropic Messages request to the canonical chat-completions shape. */
export function fromAnthropic(request: AnthropicRequest): AnthropicConversion {
  if (!Array.isArray(request.messages)) invalid('messages', request.messages === undefined ? 'is required' : 'must be an array');
  const origins = new Map<ChatMessage, Origin>();
  const pointers: string[] = [];
  const messages: ChatMessage[] = [];
  const push = (message: ChatMessage, origin: Origin, pointer: string): void => {
    origins.set(message, origin);
    pointers.push(pointer);
    messages.push(message);
  };

  if (request.system !== undefined) {
    const system = request.system;
    if (typeof system === 'string') push({ role: 'system', content: system }, { source: -1, blocks: null }, 'system');
    else if (Array.isArray(system)) push({ role: 'system', content: toParts(system, 'system') }, { source: -1, blocks: null }, 'system');
    else invalid('system', 'must be a string or an array of text blocks');
  }

  request.messages.forEach((message, index) => {
    const at = `messages[${index}]`;
    if (typeof message !== 'object' || message === null) invalid(at, 'must be an object');
    if (message.role !== 'user' && message.role !== 'assistant') invalid(`${at}.role`, 'must be user or assistant');
    const content = message.content;
    if (typeof content === 'string') {
      push({ role: message.role, content }, { source: index, blocks: null }, at);
      return;
    }
    if (!Array.isArray(content)) invalid(`${at}.content`, 'must be a string or an array of content blocks');
    content.forEach((block, blockIndex) => {
      if (typeof block !== 'object' || block === null || typeof block.type !== 'string') {
        invalid(`${at}.content[${blockIndex}]`, 'must be a content block with a type');
      }
    });
    if (message.role === 'assistant') {
      const parts: ContentPart[] = [];
      const calls: NonNullable<ChatMessage['tool_calls']> = [];
      content.forEach((block, blockIndex) => {
        if (block.type === 'tool_use') {
          if (typeof block.id !== 'string') invalid(`${at}.content[${blockIndex}].id`, 'must be a string');
          calls.push({
            id: block.id,
            type: 'function',
            function: { name: String(block.name ?? ''), arguments: JSON.stringify(block.input ?? {}) },
          });
        } else parts.push(toPart(block));
      });
      const converted: ChatMessage = { role: 'assistant', content: parts.length > 0 ? parts : null };
      if (calls.length > 0) converted.tool_calls = calls;
      else if (parts.length === 0) converted.content = '';
      push(converted, { source: index, blocks: null }, at);
      return;
    }
    // A user message: its tool results become tool messages, then the rest one user message.
    const rest: number[] = [];
    content.forEach((block, blockIndex) => {
      if (block.type !== 'tool_result') {
        rest.push(blockIndex);
        return;
      }
      const blockAt = `${at}.content[${blockIndex}]`;
      if (typeof block.tool_use_id !== 'string') invalid(`${blockAt}.tool_use_id`, 'must be a string');
      push({ role: 'tool', tool_call_id: block.tool_use_id, content: toolResultContent(block, blockAt) }, { source: index, blocks: [blockIndex] }, blockAt);
    });
    if (rest.length > 0 || content.length === 0) {
      push({ role: 'user', content: rest.map((blockIndex) => toPart(content[blockIndex]!)) }, { source: index, blocks: rest }, at);
    }
  });

  const { system: _system, messages: _messages, tools, ...others } = request;
  const canonical: ChatRequest = { ...others, messages };
  if (tools !== undefined && !Array.isArray(tools)) invalid('tools', 'must be an array');
  if (Array.isArray(tools)) {
    tools.forEach((tool, index) => {
      if (typeof tool !== 'object' || tool === null || Array.isArray(tool)) invalid(`tools[${index}]`, 'must be an object');
      for (const key of ['name', 'type'] as const) {
        if (tool[key] !== undefined && typeof tool[key] !== 'string') invalid(`tools[${index}].${key}`, 'must be a string');
      }
    });
    canonical.tools = tools.map(
      (tool): ToolDefinition =>
        typeof tool?.name === 'string'
          ? { type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.input_schema } }
          : { type: typeof tool.type === 'string' ? tool.type : 'unknown', ...tool },
    );
  }

  const blockCounts = request.messages.map((message) => (Array.isArray(message.content) ? message.content.length : 0));
  return {
    canonical,
    pointer(canonicalPointer) {
      const match = /^messages\[(\d+)\]/.exec(canonicalPointer);
      if (!match) return canonicalPointer;
      return pointers[Number(match[1])] ?? canonicalPointer;
    },
    restore(output, hints, rewrites) {
      // A rewritten message (a tool result the guard cleared or cut) lands where its original would, with its new text.
      const originOf = (message: ChatMessage) => origins.get(rewrites?.get(message) ?? message);
      const restored: AnthropicMessage[] = [];
      // Where each canonical message landed: an index into `restored`, or -1 for the system prompt.
      const landed = new Map<ChatMessage, number>();
      let position = 0;
      while (position < output.length) {
        const message = output[position]!;
        const origin = originOf(message);
        if (origin === undefined) {
          // A message a strategy made (a summary or a marker).
          landed.set(message, restored.length);
          restored.push({ role: message.role === 'assistant' ? 'assistant' : 'user', content: textOf(message) });
          position++;
          continue;
        }
        if (origin.source === -1) {
          landed.set(message, -1);
          position++;
          continue;
        }
        // Gather the consecutive canonical messages that came from the same Anthropic message.
        const blocks = new Set<number>();
        const replaced = new Map<number, ChatMessage>();
        let whole = origin.blocks === null;
        while (position < output.length) {
          const current = output[position]!;
          const next = originOf(current);
          if (next === undefined || next.source !== origin.source) break;
          if (next.blocks === null) whole = true;
          else for (const block of next.blocks) blocks.add(block);
          if (rewrites?.has(current) && next.blocks?.length === 1) replaced.set(next.blocks[0]!, current);
          landed.set(current, restored.length);
          position++;
        }
        const source = request.messages[origin.source]!;
        const original =
          replaced.size === 0
            ? source
            : {
                ...source,
                content: (source.content as AnthropicBlock[]).map((block, blockIndex) => {
                  const rewritten = replaced.get(blockIndex);
                  return rewritten ? { ...block, content: typeof rewritten.content === 'string' ? rewritten.content : textOf(rewritten) } : block;
                }),
              };
        if (whole || blocks.size === blockCounts[origin.source]) restored.push(original);
        else {
          const content = (original.content as AnthropicBlock[]).filter((_, blockIndex) => blocks.has(blockIndex));
          if (content.length > 0) restored.push({ ...original, content });
        }
      }
      const result: AnthropicRequest = { ...request, messages: restored };
      if (hints && hints.breakpoints.length > 0 && !hasCacheControl(request))
        addBreakpoints(
          result,
          hints.breakpoints.map((message) => landed.get(message)),
        );
      return result;
    },
  };
}

/** Whether the client marked cache breakpoints of its own (then it manages its cache, and no hint is added). */
function hasCacheControl(request: AnthropicRequest): boolean {
  const marked = (blocks: unknown) => Array.isArray(blocks) && blocks.some((block) => typeof block === 'object' && block !== null && 'cache_control' in block);
  return marked(request.system) || marked(request.tools) || request.messages.some((message) => marked(message.content));
}

/**
 * The block list of a content (a string becomes one text block), with `cache_control` on its last
 * block that may carry one (thinking blocks and empty text may not), or undefined when none may.
 */
function withBreakpoint(content: string | AnthropicBlock[]): AnthropicBlock[] | undefined {
  const blocks: AnthropicBlock[] = typeof content === 'string' ? [{ type: 'text', text: content }] : [...content];
  const at = blocks.findLastIndex(
    (block) =>
      block.type !== 'thinking' && block.type !== 'redacted_thinking' && !(block.type === 'text' && String((block as { text?: unknown }).text ?? '') === ''),
  );
  if (at < 0) return undefined;
  blocks[at] = { ...blocks[at]!, cache_control: { type: 'ephemeral' } };
  return blocks;
}

/** Anthropic takes at most 4 breakpoints; the last ones cover the most. `-1` is the system prompt. */
function addBreakpoints(request: AnthropicRequest, positions: (number | undefined)[]): void {
  const unique = [...new Set(positions.filter((position): position is number => position !== undefined))].sort((a, b) => a - b).slice(-4);
  for (const position of unique) {
    if (position === -1) {
      const system = request.system === undefined ? undefined : withBreakpoint(request.system);
      if (system) request.system = system;
      continue;
    }
    const message = request.messages[position];
    const content = message ? withBreakpoint(message.content) : undefined;
    if (message && content) request.messages[position] = { ...message, content };
  }
}

function textOf(message: ChatMessage): string {
  if (typeof message.content === 'string') return message.content;
  if (!Array.isArray(message.content)) return '';
  return message.content
    .map((part) => (part.type === 'text' ? String(part.text) : ''))
    .filter((text) => text.length > 0)
    .join('\n');
}

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

function stopProblem(stopReason: unknown, toolUse: boolean, cacheToolCalls: boolean): string | null {
  if ((toolUse || stopReason === 'tool_use') && !cacheToolCalls) return 'tool-calls';
  return stopReason === 'end_turn' || stopReason === 'stop_sequence' ? null : 'incomplete';
}

const isToolUse = (type: unknown): boolean => type === 'tool_use' || type === 'server_tool_use';

/** Anthropic Messages: converted to the canonical shape and back, keeping unchanged messages as they came. */
export const anthropicFormat: WireFormat = {
  name: 'anthropic',
  detect: isAnthropicRequest,
  toCanonical(body, limits) {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new CompactorError('input.invalid', 'body: must be a JSON object', { pointer: 'body' });
    const conversion = fromAnthropic(body as AnthropicRequest);
    try {
      validateRequest(conversion.canonical, limits);
    } catch (error) {
      if (CompactorError.isInstance(error) && error.pointer) {
        const pointer = conversion.pointer(error.pointer);
        throw new CompactorError(error.code, error.message.replace(error.pointer, pointer), { pointer, cause: error });
      }
      throw error;
    }
    return conversion;
  },
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

export type { CachedResponse };
