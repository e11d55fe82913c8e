import { CompactorError } from '../../core/errors.js';
import type { ChatMessage, ChatRequest, ContentPart, Messages, ToolDefinition } from '../../core/types.js';
import { MAX_EXPLICIT_BREAKPOINTS, managesOwnBreakpoints, markedContent } from '../explicit-breakpoints.js';
import type { CacheHints, Conversion } from '../wire-format.js';
import { COMPACTION_ITEMS, isStateful, kindOf, type ResponsesItem, type ResponsesRequest } from './types.js';

/** Where a canonical message came from: the input items it carries, or the top-level `instructions`. */
type Origin = { items: number[] } | 'instructions';

export interface ResponsesConversion extends Conversion {
  /** Map a canonical pointer such as `messages[4].content` to the request's own path (`input[7]`). */
  pointer(canonicalPointer: string): string;
}

function invalid(pointer: string, message: string): never {
  throw new CompactorError('input.invalid', `${pointer}: ${message}`, { pointer });
}

/** Content parts as the canonical shape counts and scores them: text as text, images as images, the rest as they are. */
function toParts(content: unknown, pointer: string): string | ContentPart[] {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) invalid(pointer, 'must be a string or an array of content parts');
  return content.map((part, index) => {
    if (typeof part !== 'object' || part === null || typeof (part as { type?: unknown }).type !== 'string')
      invalid(`${pointer}[${index}]`, 'must be a content part with a type');
    const typed = part as Record<string, unknown> & { type: string };
    if ((typed.type === 'input_text' || typed.type === 'output_text') && typeof typed.text === 'string') return { type: 'text', text: typed.text };
    if (typed.type === 'refusal' && typeof typed.refusal === 'string') return { type: 'text', text: typed.refusal };
    if (typed.type === 'input_image' && typeof typed.image_url === 'string') return { type: 'image_url', image_url: { url: typed.image_url } };
    return typed as ContentPart;
  });
}

function outputContent(output: unknown, pointer: string): string | ContentPart[] {
  if (typeof output === 'string' || Array.isArray(output)) return toParts(output, pointer);
  return JSON.stringify(output ?? null);
}

const textOf = (message: ChatMessage): string =>
  typeof message.content === 'string'
    ? message.content
    : Array.isArray(message.content)
      ? message.content
          .map((part) => (part.type === 'text' ? String(part.text) : ''))
          .filter(Boolean)
          .join('\n')
      : '';

/** Responses tools in the chat shape the token counter reads; the request keeps its own. */
function chatTools(tools: unknown): ToolDefinition[] | undefined {
  if (tools === undefined) return undefined;
  if (!Array.isArray(tools)) invalid('tools', 'must be an array');
  return tools.map((tool, index) => {
    if (typeof tool !== 'object' || tool === null) invalid(`tools[${index}]`, 'must be an object');
    const { type, name, description, parameters, ...rest } = tool as Record<string, unknown>;
    if (typeof type !== 'string') invalid(`tools[${index}].type`, 'must be a string');
    if (type !== 'function') return { type, ...rest, ...(name === undefined ? {} : { name }) } as ToolDefinition;
    if (typeof name !== 'string') invalid(`tools[${index}].name`, 'must be a string');
    return {
      type: 'function',
      function: { name, ...(description === undefined ? {} : { description }), ...(parameters === undefined ? {} : { parameters }) },
    } as ToolDefinition;
  });
}

/**
 * Convert a Responses request to the canonical chat shape, and back. Assistant-side items of one
 * turn (reasoning, the assistant's message, its function and custom tool calls) become one
 * assistant message, so a call's output never parts from its call and reasoning stays with what
 * it preceded. Items the conversion cannot read (built-in tool calls, item references, compaction
 * items and triggers, anything newer) become pinned messages: kept, never dropped. A history that
 * holds a compaction item is compacted only after the last one: the provider drops what comes
 * before it, so that part is sent as it came and not counted.
 */
export function fromResponses(request: ResponsesRequest): ResponsesConversion {
  const stateful = isStateful(request);
  const input: ResponsesItem[] = typeof request.input === 'string' ? [{ role: 'user', content: request.input }] : (request.input ?? []);
  if (!Array.isArray(input)) invalid('input', 'must be a string or an array of items');
  input.forEach((item, index) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) invalid(`input[${index}]`, 'must be an object');
  });
  let start = 0;
  for (let index = input.length - 1; index >= 0; index--) {
    const type = input[index]!.type;
    if (typeof type === 'string' && COMPACTION_ITEMS.has(type)) {
      start = index;
      break;
    }
  }
  const messages: ChatMessage[] = [];
  const origins = new Map<ChatMessage, Origin>();
  if (typeof request.instructions === 'string' && request.instructions !== '') {
    const system: ChatMessage = { role: 'system', content: request.instructions };
    messages.push(system);
    origins.set(system, 'instructions');
  }
  const calls = new Set<string>();
  let pending: number[] = [];
  let turn: { message: ChatMessage; items: number[] } | undefined;
  const close = () => {
    if (!turn) return;
    messages.push(turn.message);
    origins.set(turn.message, { items: turn.items });
    turn = undefined;
  };
  const opaque = (items: number[]) => {
    const message: ChatMessage = { role: 'developer', content: JSON.stringify(items.map((index) => input[index])) };
    messages.push(message);
    origins.set(message, { items });
  };
  for (let index = start; index < input.length; index++) {
    const item = input[index]!;
    const at = `input[${index}]`;
    const kind = index === start && start > 0 ? 'opaque' : kindOf(item);
    if (kind === 'reasoning') {
      pending.push(index);
      continue;
    }
    if (kind === 'assistant' || kind === 'call') {
      turn ??= { message: { role: 'assistant', content: null }, items: [] };
      turn.items.push(...pending, index);
      pending = [];
      if (kind === 'assistant') {
        const text = textOf({ role: 'assistant', content: toParts(item.content ?? '', `${at}.content`) });
        turn.message.content = typeof turn.message.content === 'string' && turn.message.content !== '' ? `${turn.message.content}\n${text}` : text;
      } else {
        if (typeof item.call_id !== 'string' || item.call_id === '') invalid(`${at}.call_id`, 'must be a non-empty string');
        if (typeof item.name !== 'string') invalid(`${at}.name`, 'must be a string');
        const args = item.type === 'custom_tool_call' ? item.input : item.arguments;
        turn.message.tool_calls = [
          ...(turn.message.tool_calls ?? []),
          { id: item.call_id, type: 'function', function: { name: item.name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? '') } },
        ];
        calls.add(item.call_id);
      }
      continue;
    }
    close();
    if (kind === 'output' && typeof item.call_id === 'string' && calls.has(item.call_id) && pending.length === 0) {
      const message: ChatMessage = { role: 'tool', tool_call_id: item.call_id, content: outputContent(item.output, `${at}.output`) };
      messages.push(message);
      origins.set(message, { items: [index] });
      continue;
    }
    if (kind === 'message' && pending.length === 0) {
      const message: ChatMessage = { role: item.role as ChatMessage['role'], content: toParts(item.content, `${at}.content`) };
      messages.push(message);
      origins.set(message, { items: [index] });
      continue;
    }
    // An output whose call is not in this request, or anything this code cannot read.
    opaque([...pending, index]);
    pending = [];
  }
  close();
  if (pending.length > 0) opaque(pending);

  const tools = chatTools(request.tools);
  const { input: _input, instructions: _instructions, tools: _tools, ...rest } = request;
  const canonical: ChatRequest = { ...rest, messages, ...(tools ? { tools } : {}) } as ChatRequest;
  const firstItem = (message: ChatMessage | undefined): string => {
    const origin = message ? origins.get(message) : undefined;
    if (origin === 'instructions') return 'instructions';
    return origin ? `input[${origin.items[0]}]` : 'input';
  };

  return {
    canonical,
    passThrough: stateful ? 'stateful' : undefined,
    pointer(canonicalPointer) {
      const match = /^messages\[(\d+)\](.*)$/.exec(canonicalPointer);
      if (!match) return canonicalPointer;
      return firstItem(messages[Number(match[1])]);
    },
    restore(output: Messages, hints?: CacheHints, rewrites?: ReadonlyMap<ChatMessage, ChatMessage>) {
      const items: ResponsesItem[] = input.slice(0, start);
      // Where each output message's last item landed, for the explicit breakpoints.
      const landed = new Map<ChatMessage, number>();
      for (const message of output) {
        const original = rewrites?.get(message) ?? message;
        const origin = origins.get(original);
        if (origin === 'instructions') continue;
        if (origin === undefined) {
          // A message a strategy made (a summary, excerpts or a marker).
          const assistant = message.role === 'assistant';
          const role = message.role === 'system' || message.role === 'developer' ? message.role : assistant ? 'assistant' : 'user';
          items.push({
            type: 'message',
            role,
            content: [{ type: assistant ? 'output_text' : 'input_text', text: textOf(message), ...(assistant ? { annotations: [] } : {}) }],
          });
        } else if (original === message) {
          for (const index of origin.items) items.push(input[index]!);
        } else {
          // Rewritten (a cleared tool output, cleared call arguments): the items keep every other field.
          const texts = origin.items.filter((index) => kindOf(input[index]!) === 'assistant').length;
          for (const index of origin.items) items.push(rewrite(input[index]!, message, texts === 1));
        }
        landed.set(message, items.length - 1);
      }
      const restored: ResponsesRequest = { ...request };
      // Nothing dropped or rewritten: the input goes as it came (a string stays a string).
      const same = output.length === messages.length && output.every((message, index) => message === messages[index]);
      if (!(same && typeof request.input === 'string')) restored.input = items;
      if (hints?.key && request.prompt_cache_key === undefined) restored.prompt_cache_key = hints.key;
      if (hints?.explicit && hints.breakpoints.length > 0 && !managesOwnBreakpoints(request) && Array.isArray(restored.input))
        restored.input = withItemBreakpoints(
          items,
          hints.breakpoints.map((message) => landed.get(message) ?? -1),
          start,
        );
      return restored;
    },
  };
}

/** An item with what a strategy rewrote in its canonical message: a tool output's text, or a call's arguments. */
function rewrite(item: ResponsesItem, message: ChatMessage, soleText: boolean): ResponsesItem {
  const kind = kindOf(item);
  if (kind === 'output') return { ...item, output: typeof message.content === 'string' ? message.content : textOf(message) };
  if (kind === 'call') {
    const call = message.tool_calls?.find((candidate) => candidate.id === item.call_id);
    if (!call) return item;
    return item.type === 'custom_tool_call' ? { ...item, input: call.function.arguments } : { ...item, arguments: call.function.arguments };
  }
  if (kind === 'assistant' && soleText && typeof message.content === 'string')
    return { ...item, content: [{ type: 'output_text', text: message.content, annotations: [] }] };
  return item;
}

/** Items with explicit markers at the breakpoints, each on the nearest earlier message of the user, system or developer. */
function withItemBreakpoints(items: ResponsesItem[], positions: readonly number[], floor: number): ResponsesItem[] {
  const marked = new Set<number>();
  for (const position of [...positions].sort((a, b) => b - a)) {
    for (let index = position; index >= floor; index--) {
      const item = items[index];
      if (!item || marked.has(index) || kindOf(item) !== 'message') continue;
      const content = markedContent(item.content, 'input_text');
      if (!content) continue;
      items[index] = { ...item, content };
      marked.add(index);
      break;
    }
    if (marked.size >= MAX_EXPLICIT_BREAKPOINTS) break;
  }
  return items;
}
