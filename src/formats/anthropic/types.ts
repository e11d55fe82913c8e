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
