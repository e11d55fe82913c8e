import type { ChatMessage, ContentPart } from '../core/types.js';

/** OpenAI's explicit breakpoint marker (GPT-5.6 and later), on the last content block of a marked message. */
export const EXPLICIT_BREAKPOINT = { mode: 'explicit' } as const;

/**
 * Explicit breakpoints a request may carry besides the provider's implicit one: four cache writes
 * per request, one of them the implicit breakpoint's.
 */
export const MAX_EXPLICIT_BREAKPOINTS = 3;

/** True when the client already manages its own breakpoints (or cache options): then none is added. */
export function managesOwnBreakpoints(request: Record<string, unknown>): boolean {
  return request.prompt_cache_options !== undefined || JSON.stringify(request).includes('"prompt_cache_breakpoint"');
}

/** Content with the marker on its last text or image block (a string becomes one text block), or undefined when no block may carry it. */
export function markedContent(content: unknown, text: 'text' | 'input_text'): ContentPart[] | undefined {
  const blocks: Record<string, unknown>[] = typeof content === 'string' ? [{ type: text, text: content }] : Array.isArray(content) ? [...content] : [];
  const at = blocks.findLastIndex((block) => ['text', 'input_text', 'image_url', 'input_image'].includes(String(block?.type)));
  if (at < 0 || (typeof content === 'string' && content === '')) return undefined;
  blocks[at] = { ...blocks[at], prompt_cache_breakpoint: EXPLICIT_BREAKPOINT };
  return blocks as ContentPart[];
}

/** Chat messages with explicit markers at the breakpoints, each moved back to the nearest message that may carry one (not the assistant's). */
export function withExplicitBreakpoints(messages: ChatMessage[], breakpoints: readonly number[]): ChatMessage[] {
  const marked = new Set<number>();
  for (const breakpoint of [...breakpoints].sort((a, b) => b - a)) {
    for (let index = breakpoint; index >= 0; index--) {
      const message = messages[index]!;
      if (message.role === 'assistant' || marked.has(index)) continue;
      const content = markedContent(message.content, 'text');
      if (!content) continue;
      messages[index] = { ...message, content };
      marked.add(index);
      break;
    }
    if (marked.size >= MAX_EXPLICIT_BREAKPOINTS) break;
  }
  return messages;
}

/**
 * A message as the provider's prefix cache sees it: cache markers (`prompt_cache_breakpoint`,
 * Anthropic's `cache_control`) are not prompt tokens, and a lone text block reads as its text. Two
 * requests whose messages differ only in where they mark their breakpoints share their prefix.
 */
export function withoutCacheMarkers(message: ChatMessage): ChatMessage {
  if (!Array.isArray(message.content)) return message;
  let changed = false;
  const parts = message.content.map((part) => {
    if (typeof part !== 'object' || part === null || !('prompt_cache_breakpoint' in part || 'cache_control' in part)) return part;
    changed = true;
    const { prompt_cache_breakpoint: _marker, cache_control: _control, ...rest } = part as Record<string, unknown>;
    return rest as ContentPart;
  });
  if (!changed) return message;
  const only = parts.length === 1 ? (parts[0] as Record<string, unknown>) : undefined;
  const content = only && only.type === 'text' && Object.keys(only).length === 2 ? String(only.text) : parts;
  return { ...message, content };
}
