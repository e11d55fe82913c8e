/** Canonical messages to LangChain's and back, for the peers that run LangChain's own code (trimMessages, ClearToolUsesEdit). */
import { AIMessage, type BaseMessage, HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import type { ChatMessage } from '../../src/core/types.js';
import { messageText } from '../../src/text/message-text.js';

const ROLE_OF: Record<string, ChatMessage['role']> = { human: 'user', ai: 'assistant', system: 'system', tool: 'tool', developer: 'developer' };

/** A call's arguments as an object (a text that is not a JSON object is kept under `input`). */
export function argumentsObject(text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text || '{}') as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : { value };
  } catch {
    return { input: text };
  }
}

export function toLangChain(message: ChatMessage): BaseMessage {
  const content = typeof message.content === 'string' ? message.content : messageText(message);
  switch (message.role) {
    case 'system':
    case 'developer':
      return new SystemMessage(content);
    case 'assistant':
      return new AIMessage({
        content,
        tool_calls: (message.tool_calls ?? []).map((call) => ({
          id: call.id,
          name: call.function.name,
          args: argumentsObject(call.function.arguments),
          type: 'tool_call' as const,
        })),
      });
    case 'tool':
      return new ToolMessage({ content, tool_call_id: message.tool_call_id ?? '' });
    default:
      return new HumanMessage(content);
  }
}

export function fromLangChain(message: BaseMessage): ChatMessage {
  const chat: ChatMessage = {
    role: ROLE_OF[message.getType()] ?? 'user',
    content: typeof message.content === 'string' ? message.content : JSON.stringify(message.content),
  };
  if (message instanceof ToolMessage) chat.tool_call_id = message.tool_call_id;
  const calls = message instanceof AIMessage ? message.tool_calls : undefined;
  if (calls && calls.length > 0) {
    chat.tool_calls = calls.map((call) => ({ id: call.id ?? '', type: 'function', function: { name: call.name, arguments: JSON.stringify(call.args) } }));
  }
  return chat;
}
