import { CompactorError } from './errors.js';
import { ROLES, type ChatMessage, type ChatRequest } from './types.js';

export interface InputLimits {
  /**
   * Most messages accepted in one request.
   * @default 10000
   */
  maxMessages: number;
  /**
   * Most content parts or tool calls accepted in one message.
   * @default 1000
   */
  maxPartsPerMessage: number;
}

export const DEFAULT_LIMITS: InputLimits = { maxMessages: 10_000, maxPartsPerMessage: 1_000 };

function invalid(pointer: string, message: string): never {
  throw new CompactorError('input.invalid', `${pointer}: ${message}`, { pointer });
}

function checkString(value: unknown, pointer: string): void {
  if (typeof value !== 'string') invalid(pointer, 'must be a string');
  if (!value.isWellFormed()) invalid(pointer, 'contains a lone surrogate (not valid UTF-16 text)');
}

function checkOptionalString(value: unknown, pointer: string): void {
  if (value !== undefined && value !== null) checkString(value, pointer);
}

/**
 * Validate every string inside an unknown part, so a lone surrogate anywhere is reported with its
 * path. Each object is walked once (a value shared by two fields is not walked twice), and one
 * that contains itself is refused: counting or hashing it would throw.
 */
function checkDeepStrings(value: unknown, pointer: string, depth = 0, ancestors = new Set<object>(), done = new WeakSet<object>()): void {
  if (depth > 32) invalid(pointer, 'is nested too deeply');
  if (typeof value === 'string') {
    if (!value.isWellFormed()) invalid(pointer, 'contains a lone surrogate (not valid UTF-16 text)');
    return;
  }
  if (typeof value !== 'object' || value === null || done.has(value)) return;
  if (ancestors.has(value)) invalid(pointer, 'contains itself (a cycle)');
  ancestors.add(value);
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) checkDeepStrings(value[index], `${pointer}[${index}]`, depth + 1, ancestors, done);
  } else for (const [key, item] of Object.entries(value)) checkDeepStrings(item, `${pointer}.${key}`, depth + 1, ancestors, done);
  ancestors.delete(value);
  done.add(value);
}

/**
 * Validate a chat-completions request. Throws `input.invalid` (or `input.too-large`) with a pointer
 * to the first offending field. Never mutates the request.
 */
export function validateRequest(request: unknown, limits: InputLimits = DEFAULT_LIMITS): asserts request is ChatRequest {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    invalid('body', 'must be a JSON object');
  }
  const messages = (request as { messages?: unknown }).messages;
  if (messages === undefined) invalid('messages', 'is required');
  if (!Array.isArray(messages)) invalid('messages', 'must be an array');
  if (messages.length === 0) invalid('messages', 'must not be empty');
  if (messages.length > limits.maxMessages) {
    throw new CompactorError('input.too-large', `messages: ${messages.length} messages is over the limit of ${limits.maxMessages}`, {
      pointer: 'messages',
    });
  }
  const model = (request as { model?: unknown }).model;
  if (model !== undefined) checkString(model, 'model');

  // Tool call ids seen so far, so a tool result must answer a call made before it.
  const callIds = new Set<string>();
  let functionCallPending = false;
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index] as ChatMessage;
    const at = `messages[${index}]`;
    if (typeof message !== 'object' || message === null || Array.isArray(message)) invalid(at, 'must be an object');
    if (typeof message.role !== 'string' || !ROLES.has(message.role)) {
      invalid(`${at}.role`, `must be one of ${[...ROLES].join(', ')}`);
    }
    checkOptionalString(message.name, `${at}.name`);
    const content = message.content;
    if (typeof content === 'string') {
      if (!content.isWellFormed()) invalid(`${at}.content`, 'contains a lone surrogate (not valid UTF-16 text)');
    } else if (Array.isArray(content)) {
      if (content.length > limits.maxPartsPerMessage) {
        throw new CompactorError('input.too-large', `${at}.content: ${content.length} parts is over the limit of ${limits.maxPartsPerMessage}`, {
          pointer: `${at}.content`,
        });
      }
      for (let partIndex = 0; partIndex < content.length; partIndex++) {
        const part = content[partIndex] as unknown as Record<string, unknown>;
        const partAt = `${at}.content[${partIndex}]`;
        if (typeof part !== 'object' || part === null || Array.isArray(part)) invalid(partAt, 'must be an object');
        if (typeof part.type !== 'string') invalid(`${partAt}.type`, 'must be a string');
        if (part.type === 'text') checkString(part.text, `${partAt}.text`);
        else if (part.type === 'image_url') {
          const image = part.image_url as Record<string, unknown> | undefined;
          if (typeof image !== 'object' || image === null) invalid(`${partAt}.image_url`, 'must be an object');
          checkString(image.url, `${partAt}.image_url.url`);
        } else checkDeepStrings(part, partAt);
      }
    } else if (content === null || content === undefined) {
      const mayBeEmpty = message.role === 'assistant' && (message.tool_calls !== undefined || message.function_call !== undefined);
      if (!mayBeEmpty) invalid(`${at}.content`, 'is required (a string or an array of content parts)');
    } else {
      invalid(`${at}.content`, 'must be a string, an array of content parts, or null');
    }

    if (message.tool_calls !== undefined) {
      if (message.role !== 'assistant') invalid(`${at}.tool_calls`, 'is only allowed on assistant messages');
      if (!Array.isArray(message.tool_calls)) invalid(`${at}.tool_calls`, 'must be an array');
      if (message.tool_calls.length > limits.maxPartsPerMessage) {
        throw new CompactorError('input.too-large', `${at}.tool_calls: over the limit of ${limits.maxPartsPerMessage}`, {
          pointer: `${at}.tool_calls`,
        });
      }
      message.tool_calls.forEach((call, callIndex) => {
        const callAt = `${at}.tool_calls[${callIndex}]`;
        if (typeof call !== 'object' || call === null) invalid(callAt, 'must be an object');
        checkString(call.id, `${callAt}.id`);
        if (typeof call.function !== 'object' || call.function === null) invalid(`${callAt}.function`, 'must be an object');
        checkString(call.function.name, `${callAt}.function.name`);
        checkString(call.function.arguments, `${callAt}.function.arguments`);
        callIds.add(call.id);
      });
    }
    if (message.function_call !== undefined) {
      if (message.role !== 'assistant') invalid(`${at}.function_call`, 'is only allowed on assistant messages');
      if (typeof message.function_call !== 'object' || message.function_call === null) invalid(`${at}.function_call`, 'must be an object');
      checkString(message.function_call.name, `${at}.function_call.name`);
      checkOptionalString(message.function_call.arguments, `${at}.function_call.arguments`);
      functionCallPending = true;
    }
    if (message.role === 'tool') {
      checkString(message.tool_call_id, `${at}.tool_call_id`);
      if (!callIds.has(message.tool_call_id as string)) {
        invalid(`${at}.tool_call_id`, `answers no earlier assistant tool call (id "${message.tool_call_id}")`);
      }
    } else if (message.tool_call_id !== undefined) {
      invalid(`${at}.tool_call_id`, 'is only allowed on tool messages');
    }
    if (message.role === 'function') {
      checkString(message.name, `${at}.name`);
      if (!functionCallPending) invalid(`${at}`, 'a function result must follow an assistant function_call');
    }
    for (const key of Object.keys(message)) {
      if (key === 'role' || key === 'content' || key === 'name' || key === 'tool_calls' || key === 'tool_call_id' || key === 'function_call') continue;
      checkDeepStrings(message[key], `${at}.${key}`);
    }
  }
  const request_ = request as ChatRequest;
  // Every other field goes upstream as it is; tools are counted, and the cache hashes the request.
  for (const key of Object.keys(request_)) if (key !== 'messages') checkDeepStrings(request_[key as keyof ChatRequest], key);
  if (request_.tools !== undefined) {
    if (!Array.isArray(request_.tools)) invalid('tools', 'must be an array');
    request_.tools.forEach((tool, index) => {
      const at = `tools[${index}]`;
      if (typeof tool !== 'object' || tool === null || Array.isArray(tool)) invalid(at, 'must be an object');
      const record = tool as unknown as Record<string, unknown>;
      if (record.type === 'function' || record.function !== undefined) {
        const fn = record.function as Record<string, unknown> | null | undefined;
        if (typeof fn !== 'object' || fn === null || Array.isArray(fn)) invalid(`${at}.function`, 'must be an object');
        checkString(fn.name, `${at}.function.name`);
      }
    });
  }
  if (request_.functions !== undefined) {
    if (!Array.isArray(request_.functions)) invalid('functions', 'must be an array');
    request_.functions.forEach((fn, index) => {
      if (typeof fn !== 'object' || fn === null || Array.isArray(fn)) invalid(`functions[${index}]`, 'must be an object');
      checkString((fn as { name?: unknown }).name, `functions[${index}].name`);
    });
  }
}
