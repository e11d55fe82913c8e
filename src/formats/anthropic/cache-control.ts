import type { AnthropicBlock, AnthropicRequest } from './types.js';

/** Whether the client marked cache breakpoints of its own (then it manages its cache, and no hint is added). */
export function hasCacheControl(request: AnthropicRequest): boolean {
  const marked = (blocks: unknown) => Array.isArray(blocks) && blocks.some((block) => typeof block === 'object' && block !== null && 'cache_control' in block);
  // A top-level `cache_control` (Anthropic's automatic breakpoint, which moves forward with the conversation) is the client's too.
  return request.cache_control !== undefined || marked(request.system) || marked(request.tools) || request.messages.some((message) => marked(message.content));
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
export function addBreakpoints(request: AnthropicRequest, positions: (number | undefined)[]): void {
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
