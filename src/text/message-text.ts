import type { ChatMessage } from '../core/types.js';

/** The plain text of a message: its content (text parts joined), tool call arguments, name. */
export function messageText(message: ChatMessage): string {
  const parts: string[] = [];
  if (typeof message.content === 'string') parts.push(message.content);
  else if (Array.isArray(message.content)) {
    for (const part of message.content) if (part.type === 'text' && typeof part.text === 'string') parts.push(part.text);
  }
  for (const call of message.tool_calls ?? []) parts.push(call.function.arguments);
  return parts.join('\n');
}
