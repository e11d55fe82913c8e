import { generateText, streamText, wrapLanguageModel, type ModelMessage } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';
import type { LanguageModelV3CallOptions } from '@ai-sdk/provider';
import { describe, expect, test } from 'vitest';
import { compaction } from '../src/adapters/ai-sdk.js';
import { cosineVerifier } from '../src/cache/verifier.js';
import { createCompactor, createResponseCache } from '../src/index.js';
import { hashEmbedder } from '../src/testing/index.js';
import { compacted, locomoRequest } from './helpers.js';

const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };

function mockModel() {
  const calls: LanguageModelV3CallOptions[] = [];
  const model = new MockLanguageModelV3({
    modelId: 'gpt-4o-mini',
    doGenerate: async (options) => {
      calls.push(options);
      return {
        content: [{ type: 'text', text: `Saw ${options.prompt.length} messages.` }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage,
        warnings: [],
      };
    },
    doStream: async (options) => {
      calls.push(options);
      return {
        stream: convertArrayToReadableStream([
          { type: 'stream-start', warnings: [] },
          { type: 'text-start', id: '1' },
          { type: 'text-delta', id: '1', delta: 'Saw ' },
          { type: 'text-delta', id: '1', delta: `${options.prompt.length} messages.` },
          { type: 'text-end', id: '1' },
          { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage },
        ]),
      };
    },
  });
  return { model, calls };
}

/** A real LoCoMo conversation as AI SDK messages. */
function conversation(question: string): { system: string; messages: ModelMessage[] } {
  const request = locomoRequest(0);
  const messages = request.messages
    .slice(1, -1)
    .map(
      (message): ModelMessage =>
        message.role === 'assistant' ? { role: 'assistant', content: String(message.content) } : { role: 'user', content: String(message.content) },
    );
  return { system: String(request.messages[0]!.content), messages: [...messages, { role: 'user', content: question }] };
}

describe('AI SDK middleware', () => {
  test('transformParams compacts the prompt and keeps the system prompt and the question', async () => {
    const { model, calls } = mockModel();
    const wrapped = wrapLanguageModel({ model, middleware: compaction({ maxInputTokens: 2000, strategy: 'truncate' }) });
    const { system, messages } = conversation('What did Caroline research?');
    const result = await generateText({ model: wrapped, system, messages });
    const sent = calls[0]!.prompt;
    expect(sent.length).toBeLessThan(messages.length + 1);
    expect(sent[0]).toEqual({ role: 'system', content: system });
    expect(sent.at(-1)).toMatchObject({ role: 'user', content: [{ type: 'text', text: 'What did Caroline research?' }] });
    expect(result.text).toBe(`Saw ${sent.length} messages.`);
    expect(
      await createCompactor().countTokens({
        model: 'gpt-4o-mini',
        messages: sent.map((message) => ({
          role: message.role,
          content: typeof message.content === 'string' ? message.content : message.content.map((part) => ('text' in part ? part.text : '')).join(''),
        })) as never,
      }),
    ).toBeLessThanOrEqual(2000);
  });

  test('tool calls and their results are kept together, or dropped together', async () => {
    const filler: ModelMessage[] = Array.from(
      { length: 30 },
      (_, index): ModelMessage => ({ role: index % 2 ? 'assistant' : 'user', content: `filler turn ${index} `.repeat(10) }),
    );
    const messages: ModelMessage[] = [
      ...filler,
      { role: 'user', content: 'Weather in Oslo?' },
      { role: 'assistant', content: [{ type: 'tool-call', toolCallId: 'c1', toolName: 'weather', input: { city: 'Oslo' } }] },
      { role: 'tool', content: [{ type: 'tool-result', toolCallId: 'c1', toolName: 'weather', output: { type: 'json', value: { sky: 'clear' } } }] },
      { role: 'user', content: 'And tomorrow?' },
    ];
    const send = async (maxInputTokens: number) => {
      const { model, calls } = mockModel();
      await generateText({ model: wrapLanguageModel({ model, middleware: compaction({ maxInputTokens, strategy: 'truncate' }) }), messages });
      const sent = calls[0]!.prompt;
      return {
        sent,
        call: sent.findIndex((message) => message.role === 'assistant' && message.content.some((part) => part.type === 'tool-call')),
        result: sent.findIndex((message) => message.role === 'tool'),
      };
    };
    // Room for the newest turns: the chain is sent whole, the result right after its call.
    const roomy = await send(300);
    expect(roomy.sent.length).toBeLessThan(messages.length);
    expect(roomy.call).toBeGreaterThan(0);
    expect(roomy.result).toBe(roomy.call + 1);
    expect(roomy.sent.at(-1)).toMatchObject({ role: 'user', content: [{ type: 'text', text: 'And tomorrow?' }] });
    // Room for the question alone: the chain goes, both halves of it.
    const tight = await send(20);
    expect(tight.sent).toHaveLength(1);
    expect(tight.call).toBe(-1);
    expect(tight.result).toBe(-1);
  });

  test('with a cache, wrapGenerate and wrapStream answer a repeated prompt without the model', async () => {
    const { model, calls } = mockModel();
    const cache = createResponseCache({ embedder: hashEmbedder(128), verifier: cosineVerifier(), threshold: 0.97 });
    const wrapped = wrapLanguageModel({ model, middleware: compaction({ maxInputTokens: 2000, strategy: 'truncate', cache }, { tenant: () => 'acme' }) });
    const { system, messages } = conversation('Where does Melanie live?');
    const first = await generateText({ model: wrapped, system, messages });
    await cache.idle();
    const second = await generateText({ model: wrapped, system, messages });
    expect(second.text).toBe(first.text);
    expect(calls).toHaveLength(1);
    const streamed = streamText({ model: wrapped, system, messages });
    expect(await streamed.text).toBe(first.text);
    expect(calls).toHaveLength(1);
    // A streamed answer to a new question is stored too.
    const fresh = conversation('What is Melanie painting?');
    const one = streamText({ model: wrapped, system: fresh.system, messages: fresh.messages });
    const text = await one.text;
    await cache.idle();
    expect((await generateText({ model: wrapped, system: fresh.system, messages: fresh.messages })).text).toBe(text);
    expect(calls).toHaveLength(2);
    expect(cache.stats().hits.exact).toBe(3);
  });

  test('an answer another adapter stored as a stream is replayed through the same wire format', async () => {
    const cache = createResponseCache({ embedder: hashEmbedder(128), verifier: cosineVerifier(), threshold: 0.97 });
    const compactor = createCompactor({ maxInputTokens: 2000, strategy: 'truncate', cache });
    // What the proxy would store for the same call: the chunks of a completed stream.
    const question = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'Name a colour.' }] }] };
    const stored = compacted(await compactor.compact(question, { format: 'openai', route: 'ai-sdk', tenant: 'acme' }));
    const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
      data: JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] }),
    });
    const events = [chunk({ role: 'assistant', content: 'Te' }, null), chunk({ content: 'al.' }, null), chunk({}, 'stop'), { data: '[DONE]' }];
    expect(await stored.commit!({ format: 'openai', events })).toBe(true);
    const { model, calls } = mockModel();
    const wrapped = wrapLanguageModel({ model, middleware: compaction(compactor, { tenant: () => 'acme' }) });
    expect((await generateText({ model: wrapped, prompt: 'Name a colour.' })).text).toBe('Teal.');
    expect(await streamText({ model: wrapped, prompt: 'Name a colour.' }).text).toBe('Teal.');
    expect(calls).toHaveLength(0);
  });
});
