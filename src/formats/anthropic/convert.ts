import { CompactorError } from '../../core/errors.js';
import type { ChatMessage, ChatRequest, ContentPart, Messages, ToolDefinition } from '../../core/types.js';
import type { CacheHints } from '../wire-format.js';
import { addBreakpoints, hasCacheControl } from './cache-control.js';
import type { AnthropicBlock, AnthropicMessage, AnthropicRequest } from './types.js';

interface Origin {
  /** Index of the Anthropic message, -1 for the top-level system prompt, -2 for the compaction block that ends the part the provider drops. */
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

  const prefixEnd = compactedPrefixEnd(request.messages);
  request.messages.forEach((message, index) => {
    const at = `messages[${index}]`;
    if (index <= prefixEnd) {
      // The provider drops what precedes its compaction block: sent as it came, and only the
      // message holding the block is counted (pinned, never dropped).
      if (Array.isArray(message?.content) && message.content.some((block) => block?.type === 'compaction'))
        push({ role: 'developer', content: JSON.stringify(message.content) }, { source: -2, blocks: null }, at);
      return;
    }
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
      const restored: AnthropicMessage[] = request.messages.slice(0, prefixEnd + 1);
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
        if (origin.source === -2) {
          // No cache breakpoint inside what the provider compacted: those messages go as they came.
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

function textOf(message: ChatMessage): string {
  if (typeof message.content === 'string') return message.content;
  if (!Array.isArray(message.content)) return '';
  return message.content
    .map((part) => (part.type === 'text' ? String(part.text) : ''))
    .filter((text) => text.length > 0)
    .join('\n');
}

/**
 * The last message index the provider no longer reads: the last message holding a `compaction`
 * block (Anthropic's compaction API), and the next message too when its tool results answer
 * calls made before it. -1 when there is none.
 */
function compactedPrefixEnd(messages: readonly AnthropicMessage[]): number {
  let end = -1;
  messages.forEach((message, index) => {
    if (Array.isArray(message?.content) && message.content.some((block) => block?.type === 'compaction')) end = index;
  });
  if (end < 0) return end;
  const calls = new Set<string>();
  for (const message of messages.slice(0, end + 1))
    if (Array.isArray(message?.content))
      for (const block of message.content) if (block?.type === 'tool_use' && typeof block.id === 'string') calls.add(block.id);
  const next = messages[end + 1];
  if (
    Array.isArray(next?.content) &&
    next.content.some((block) => block?.type === 'tool_result' && typeof block.tool_use_id === 'string' && calls.has(block.tool_use_id))
  )
    end++;
  return end;
}
