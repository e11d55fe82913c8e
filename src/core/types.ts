/** Roles accepted in an OpenAI chat-completions request (`function` is the legacy tool role). */
export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool' | 'function';

export const ROLES: ReadonlySet<string> = new Set<Role>(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

export interface TextPart {
  type: 'text';
  text: string;
  [key: string]: unknown;
}

export interface ImagePart {
  type: 'image_url';
  image_url: { url: string; detail?: 'low' | 'high' | 'auto'; [key: string]: unknown };
  [key: string]: unknown;
}

/** Any other part type (input_audio, file, refusal…) passes through and is counted as its JSON. */
export interface OtherPart {
  type: string;
  [key: string]: unknown;
}

export type ContentPart = TextPart | ImagePart | OtherPart;

export interface ToolCall {
  id: string;
  type: 'function' | string;
  function: { name: string; arguments: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface ChatMessage {
  role: Role;
  content?: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  /** Legacy function calling. */
  function_call?: { name: string; arguments: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface FunctionDefinition {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ToolDefinition {
  type: 'function' | string;
  function?: FunctionDefinition;
  [key: string]: unknown;
}

/** The canonical request shape: an OpenAI chat-completions body. Unknown fields pass through. */
export interface ChatRequest {
  model?: string;
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  functions?: FunctionDefinition[];
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  [key: string]: unknown;
}

export type Messages = readonly ChatMessage[];

/** The wire formats the compactor speaks (one per provider API). */
export type FormatName = 'openai' | 'anthropic' | 'responses';
