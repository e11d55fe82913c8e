/** An OpenAI Responses API request body (`POST /v1/responses`). Unknown fields pass through untouched. */
export interface ResponsesRequest {
  model?: string;
  input?: string | ResponsesItem[];
  instructions?: string | null;
  tools?: Record<string, unknown>[];
  /** Stateful: the provider holds the history. Such a request is forwarded untouched. */
  previous_response_id?: string | null;
  conversation?: string | { id: string } | null;
  stream?: boolean;
  prompt_cache_key?: string;
  [key: string]: unknown;
}

/** One input item. Every field is kept; the conversion reads only what it needs. */
export interface ResponsesItem {
  type?: string;
  role?: string;
  content?: unknown;
  call_id?: string;
  [key: string]: unknown;
}

/** What the conversion makes of an item. */
export type ItemKind = 'message' | 'assistant' | 'reasoning' | 'call' | 'output' | 'opaque';

/** Items that end the history the provider still reads: everything before the last one is dropped upstream. */
export const COMPACTION_ITEMS = new Set(['compaction', 'compaction_summary']);

export function kindOf(item: ResponsesItem): ItemKind {
  const type = typeof item.type === 'string' ? item.type : item.type === undefined && typeof item.role === 'string' ? 'message' : undefined;
  if (type === 'message') {
    if (item.role === 'assistant') return 'assistant';
    if (item.role === 'user' || item.role === 'system' || item.role === 'developer') return 'message';
    return 'opaque';
  }
  if (type === 'reasoning') return 'reasoning';
  if (type === 'function_call' || type === 'custom_tool_call') return 'call';
  if (type === 'function_call_output' || type === 'custom_tool_call_output') return 'output';
  // Compaction items, compaction triggers, item references, built-in tool calls and their outputs,
  // and anything newer than this code: kept as they are.
  return 'opaque';
}

/**
 * True for a Responses request: an `input` (string or items) and no chat `messages`. A body with
 * both is taken for chat completions, whose validation then names the stray field.
 */
export function isResponsesRequest(body: unknown): body is ResponsesRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const request = body as Record<string, unknown>;
  return 'input' in request && !('messages' in request);
}

/** A stateful request: the provider has the history (`previous_response_id` or `conversation`), the body carries only the new turn. */
export function isStateful(request: ResponsesRequest): boolean {
  return (
    (typeof request.previous_response_id === 'string' && request.previous_response_id !== '') ||
    (request.conversation !== undefined && request.conversation !== null)
  );
}
