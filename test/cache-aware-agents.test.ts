import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../src/core/types.js';
import { deepFreeze, hashEmbedder, strategyContext } from '../src/testing/index.js';
import { cacheAware, EXCERPTS_LABEL } from '../strategies/cache-aware/index.js';

// cache-aware's 'auto' excerpts are for chat: in an agent run (tool calls in the history) they
// quote nothing, so the window gets the room (excerpts never quote tool exchanges).
function chat(): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'system', content: 'be brief' }];
  for (let turn = 0; turn < 40; turn++)
    messages.push(
      { role: 'user', content: `turn ${turn}: my locker code is ${1000 + turn} and the colour is teal ${turn}` },
      { role: 'assistant', content: `noted locker ${1000 + turn} in teal ${turn}` },
    );
  return messages;
}

async function compact(messages: ChatMessage[]) {
  const request = deepFreeze({ model: 'gpt-4o', messages });
  const context = await strategyContext(request, { budget: 300 });
  return cacheAware({ embedder: hashEmbedder() }).apply(request.messages, context);
}

const excerpts = (messages: readonly ChatMessage[]) =>
  messages.filter((message) => typeof message.content === 'string' && message.content.startsWith(EXCERPTS_LABEL));

describe('cache-aware in agent runs', () => {
  test('quotes earlier turns in a chat, and nothing once the conversation has tool calls', async () => {
    const question: ChatMessage = { role: 'user', content: 'what was my locker code in turn 3, the teal 3 one?' };
    const plain = await compact([...chat(), question]);
    expect(excerpts(plain.messages)).toHaveLength(1);
    expect(plain.info?.agentRun).toBeUndefined();

    const agent = [
      ...chat(),
      question,
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{"turn":3}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'locker 1003' },
    ] as ChatMessage[];
    const result = await compact(agent);
    expect(excerpts(result.messages)).toEqual([]);
    expect(result.info).toMatchObject({ agentRun: true, excerptShare: 0 });
    // The window took the room: at least as many earlier turns kept as in the chat request with its block.
    const kept = (messages: readonly ChatMessage[]) => messages.filter((message) => message.role === 'user').length;
    expect(kept(result.messages)).toBeGreaterThanOrEqual(kept(plain.messages));
  });

  test('an explicit excerptShare is honoured in agent runs too', async () => {
    const agent = [
      ...chat(),
      { role: 'user', content: 'what was my locker code in turn 3, the teal 3 one?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'no such turn' },
    ] as ChatMessage[];
    const request = deepFreeze({ model: 'gpt-4o', messages: agent });
    const context = await strategyContext(request, { budget: 300 });
    const result = await cacheAware({ embedder: hashEmbedder(), excerptShare: 0.3 }).apply(request.messages, context);
    expect(excerpts(result.messages)).toHaveLength(1);
    expect(result.info?.agentRun).toBeUndefined();
  });
});
