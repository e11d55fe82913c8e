import type {
  LanguageModelV3Content,
  LanguageModelV3FinishReason,
  LanguageModelV3Message,
  LanguageModelV3Prompt,
  LanguageModelV3Text,
  LanguageModelV3ToolCall,
} from '@ai-sdk/provider';
import type { ChatMessage, ContentPart } from '../core/types.js';
import type { CachedResponse } from './wire-format.js';

/**
 * The AI SDK's prompt (LanguageModelV3) as a third wire format: to the canonical messages and
 * back, keeping every message the compaction left alone as it came, and cached chat completions
 * to and from AI SDK content. The middleware in adapters/ai-sdk.ts is a thin shell over it.
 */
export function toCanonical(prompt: LanguageModelV3Prompt): { messages: ChatMessage[]; origin: Map<ChatMessage, number> } {
  const messages: ChatMessage[] = [];
  const origin = new Map<ChatMessage, number>();
  const add = (message: ChatMessage, index: number) => {
    messages.push(message);
    origin.set(message, index);
  };
  prompt.forEach((message, index) => {
    switch (message.role) {
      case 'system':
        add({ role: 'system', content: message.content }, index);
        break;
      case 'user':
        add(
          {
            role: 'user',
            content: message.content.map(
              (part): ContentPart =>
                part.type === 'text' ? { type: 'text', text: part.text } : { type: part.type, mediaType: part.mediaType, filename: part.filename },
            ),
          },
          index,
        );
        break;
      case 'assistant': {
        const text = message.content.flatMap((part) => (part.type === 'text' || part.type === 'reasoning' ? [part.text] : [])).join('\n');
        const calls = message.content.flatMap((part) =>
          part.type === 'tool-call'
            ? [
                {
                  id: part.toolCallId,
                  type: 'function',
                  function: { name: part.toolName, arguments: typeof part.input === 'string' ? part.input : JSON.stringify(part.input ?? {}) },
                },
              ]
            : [],
        );
        const canonical: ChatMessage = { role: 'assistant', content: text.length > 0 ? text : null };
        if (calls.length > 0) canonical.tool_calls = calls;
        add(canonical, index);
        break;
      }
      case 'tool':
        for (const part of message.content) {
          if (part.type !== 'tool-result') continue;
          add({ role: 'tool', tool_call_id: part.toolCallId, content: JSON.stringify(part.output) }, index);
        }
        break;
    }
  });
  return { messages, origin };
}

export function fromCanonical(compacted: readonly ChatMessage[], origin: Map<ChatMessage, number>, prompt: LanguageModelV3Prompt): LanguageModelV3Prompt {
  const result: LanguageModelV3Message[] = [];
  const seen = new Set<number>();
  for (const message of compacted) {
    const index = origin.get(message);
    if (index !== undefined) {
      if (!seen.has(index)) result.push(prompt[index]!);
      seen.add(index);
      continue;
    }
    // A message a strategy wrote (a summary, an omission marker): plain text.
    const text =
      typeof message.content === 'string' ? message.content : (message.content ?? []).map((part) => (part.type === 'text' ? String(part.text) : '')).join('');
    if (message.role === 'system' || message.role === 'developer') result.push({ role: 'system', content: text });
    else if (message.role === 'assistant') result.push({ role: 'assistant', content: [{ type: 'text', text }] });
    else result.push({ role: 'user', content: [{ type: 'text', text }] });
  }
  return result;
}

/** A cached chat completion (replayed as JSON by the OpenAI format) as AI SDK content. */
export function cachedContent(body: unknown): { content: (LanguageModelV3Text | LanguageModelV3ToolCall)[]; finishReason: LanguageModelV3FinishReason } {
  const choice = (body as { choices?: { message?: ChatMessage; finish_reason?: string }[] } | undefined)?.choices?.[0];
  const content: (LanguageModelV3Text | LanguageModelV3ToolCall)[] = [];
  const text = typeof choice?.message?.content === 'string' ? choice.message.content : '';
  if (text.length > 0) content.push({ type: 'text', text });
  for (const call of choice?.message?.tool_calls ?? [])
    content.push({ type: 'tool-call', toolCallId: call.id, toolName: call.function.name, input: call.function.arguments });
  const raw = choice?.finish_reason ?? 'stop';
  return { content, finishReason: { unified: raw === 'tool_calls' ? 'tool-calls' : raw === 'length' ? 'length' : 'stop', raw } };
}

/** An AI SDK answer as the chat completion the cache stores, or undefined when it holds more than text and tool calls. */
export function asCompletion(content: readonly LanguageModelV3Content[], finishReason: LanguageModelV3FinishReason): CachedResponse | undefined {
  let text = '';
  const calls: NonNullable<ChatMessage['tool_calls']> = [];
  for (const part of content) {
    if (part.type === 'text') text += part.text;
    else if (part.type === 'tool-call') calls.push({ id: part.toolCallId, type: 'function', function: { name: part.toolName, arguments: part.input } });
    else return undefined;
  }
  const message: ChatMessage = { role: 'assistant', content: text.length > 0 || calls.length === 0 ? text : null };
  if (calls.length > 0) message.tool_calls = calls;
  const finish = finishReason.unified === 'tool-calls' ? 'tool_calls' : finishReason.unified === 'stop' ? 'stop' : (finishReason.raw ?? finishReason.unified);
  return { format: 'openai', body: { object: 'chat.completion', choices: [{ index: 0, message, finish_reason: finish }] } };
}
