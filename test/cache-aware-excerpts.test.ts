import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../src/core/types.js';
import { createRuntime } from '../src/runtime.js';
import { memoryStore } from '../src/stores/memory.js';
import { deepFreeze, hashEmbedder, strategyContext } from '../src/testing/index.js';
import { affordableExcerpts, cacheAware, EXCERPTS_LABEL, excerptGateScore } from '../strategies/cache-aware/index.js';
import type { Runtime } from '../src/runtime.js';

// Issue 21: excerpts are gated (a question about what the window dropped opens the gate, chit-chat
// about the latest exchange does not), sized from what they save, and make room by an early cut
// that later requests derive from the layout store.
function chat(turns = 40): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'system', content: 'be brief' }];
  for (let turn = 0; turn < turns; turn++)
    messages.push(
      { role: 'user', content: `day ${turn}: we talked about the ${['harbour', 'violin', 'garden', 'marathon'][turn % 4]} and item${turn} today` },
      { role: 'assistant', content: `lovely, tell me more about item${turn} and how it went` },
    );
  return messages;
}

async function compact(messages: ChatMessage[], options: { runtime?: Runtime; budget?: number; model?: string } = {}, strategyOptions = {}) {
  const request = deepFreeze({ model: options.model ?? 'gpt-4o', messages });
  const context = await strategyContext(request, { budget: options.budget ?? 300, runtime: options.runtime ?? createRuntime() });
  return cacheAware({ embedder: hashEmbedder(), ...strategyOptions }).apply(request.messages, context);
}

const block = (messages: readonly ChatMessage[]) =>
  messages.find((message) => typeof message.content === 'string' && message.content.startsWith(EXCERPTS_LABEL));

describe('cache-aware excerpts', () => {
  test('the block is sized from what the dropped history would have cost at the cached price', () => {
    // A tenth-price cache: half of 18,000 dropped tokens at 0.1 is 900 input tokens, 1,000 at 0.9 of the full price.
    expect(affordableExcerpts(18_000, 0.1, 0.5, 5_000)).toBe(1000);
    expect(affordableExcerpts(1_800, 0.1, 0.5, 5_000)).toBe(100);
    // Capped by the share; no cache discount (a cached token costs a full one): the cap.
    expect(affordableExcerpts(18_000, 0.5, 0.5, 700)).toBe(700);
    expect(affordableExcerpts(10, 1, 0.5, 700)).toBe(700);
    expect(affordableExcerpts(0, 0.1, 0.5, 700)).toBe(0);
  });

  test('the gate compares the best match outside the window with the best among the recent messages', () => {
    expect(excerptGateScore(0, 5)).toBe(0);
    expect(excerptGateScore(3, 0)).toBe(1);
    expect(excerptGateScore(3, 1)).toBe(0.75);
    expect(excerptGateScore(1, 3)).toBe(0.25);
  });

  test('a question about a dropped turn opens the gate and quotes it; chit-chat about the latest exchange does not', async () => {
    const question = await compact([...chat(), { role: 'user', content: 'what happened with item3?' }]);
    expect(question.info?.excerptGate).toBeGreaterThanOrEqual(0.75);
    expect(String(block(question.messages)?.content)).toContain('item3 today');

    const chitChat = await compact([...chat(), { role: 'user', content: 'haha item39 sounds lovely, more about item39 please' }]);
    expect(chitChat.info?.excerptGate).toBeLessThan(0.75);
    expect(block(chitChat.messages)).toBeUndefined();
    expect(chitChat.info?.excerpts).toBe(0);
  });

  test('a short dropped history affords no block under a tenth-price cache', async () => {
    // gpt-5: cached at a tenth. A few dropped turns are worth too little to pay for any quote.
    const result = await compact([...chat(8), { role: 'user', content: 'what was item1 again?' }], { model: 'gpt-5', budget: 200 });
    expect(block(result.messages)).toBeUndefined();
  });

  test('an early cut is recorded: the next request derives the same window, so only the block and the new turn are new', async () => {
    const runtime = createRuntime();
    // 41 turns: the window is nearly full, so the block's free room is under half of it.
    const history = chat(41);
    const first = [...history, { role: 'user' as const, content: 'what happened with item3?' }];
    const one = await compact(first, { runtime });
    expect(one.info?.nets).toMatchObject({ earlyCut: expect.any(Number) });
    const next = [...first, { role: 'assistant' as const, content: 'item3 was the marathon day' }, { role: 'user' as const, content: 'ok thanks' }];
    const two = await compact(next, { runtime });
    const sent = one.messages.filter((message) => message !== block(one.messages));
    expect(two.messages.slice(0, sent.length)).toEqual(sent);

    // A fresh runtime (a cold instance without a shared store) derives the window without the cut: one miss.
    const cold = await compact(next, { runtime: createRuntime() });
    expect(cold.messages.slice(0, sent.length)).not.toEqual(sent);
    // Two instances sharing a store lay it out byte for byte alike.
    const store = memoryStore();
    const a = createRuntime({ store });
    const b = createRuntime({ store });
    await compact(first, { runtime: a });
    expect(JSON.stringify((await compact(next, { runtime: b })).messages)).toBe(JSON.stringify(two.messages));
  });

  test('a failing layout store costs the early cuts, never the request', async () => {
    const runtime = createRuntime();
    const broken = { ...runtime, layoutStore: { get: () => Promise.reject(new Error('down')), set: () => Promise.reject(new Error('down')) } };
    const result = await compact([...chat(), { role: 'user', content: 'what happened with item3?' }], { runtime: broken });
    expect(result.failures?.map((failure) => failure.code)).toContain('upstream.failed');
    expect(result.messages.at(-1)).toMatchObject({ role: 'user' });
    expect(String(block(result.messages)?.content)).toContain('item3 today');
  });
});
