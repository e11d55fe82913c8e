import { isPlaceholder, keptValues } from '../../src/core/clearing.js';
import type { ChatMessage, Messages } from '../../src/core/types.js';

/** The tool name of each result, by index. */
export function toolNames(messages: Messages): Map<number, string> {
  const byId = new Map<string, string>();
  const names = new Map<number, string>();
  messages.forEach((message, index) => {
    for (const call of message.tool_calls ?? []) if (typeof call.id === 'string') byId.set(call.id, call.function?.name ?? '');
    if (message.role === 'tool' && typeof message.tool_call_id === 'string') names.set(index, byId.get(message.tool_call_id) ?? '');
    else if (message.role === 'function' && typeof message.name === 'string') names.set(index, message.name);
  });
  return names;
}

/** Replace the arguments of calls whose results are all cleared, keeping their values. */
export function clearInputs(
  messages: Messages,
  current: ChatMessage[],
  rewrites: Map<ChatMessage, ChatMessage>,
  tokensOf: (message: ChatMessage) => number,
): void {
  const clearedIds = new Set<string>();
  const openIds = new Set<string>();
  current.forEach((message, index) => {
    if (message.role !== 'tool' || typeof message.tool_call_id !== 'string') return;
    if (rewrites.has(message) && message !== messages[index] && isPlaceholder(message)) clearedIds.add(message.tool_call_id);
    else openIds.add(message.tool_call_id);
  });
  current.forEach((message, index) => {
    const calls = message.tool_calls;
    if (message.role !== 'assistant' || !calls || calls.length === 0) return;
    if (!calls.every((call) => clearedIds.has(call.id) && !openIds.has(call.id))) return;
    const replaced: ChatMessage = {
      ...message,
      tool_calls: calls.map((call) => {
        const values = keptValues(call.function.arguments);
        return {
          ...call,
          function: {
            ...call.function,
            arguments: JSON.stringify({ cleared: `arguments of about ${Math.ceil(call.function.arguments.length / 4)} tokens`, values }),
          },
        };
      }),
    };
    if (tokensOf(replaced) >= tokensOf(message)) return;
    current[index] = replaced;
    rewrites.set(replaced, messages[index]!);
  });
}
