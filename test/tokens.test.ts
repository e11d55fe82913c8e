import { describe, expect, test } from 'vitest';
import { createCompactor } from '../src/index.js';
import { countingSlices, messageKey } from '../src/tokens/counter.js';
import { builtinTokenizer } from '../src/tokens/tokenizer.js';
import { locomoRequest } from './helpers.js';
import { imageTokens, tilesTokens } from '../src/tokens/images.js';
import { wordTokenizer } from '../src/testing/index.js';

// The published examples from OpenAI's cookbook "How to count tokens with tiktoken", with the
// prompt_tokens the OpenAI API reported for them.
const cookbookMessages = [
  { role: 'system', content: 'You are a helpful, pattern-following assistant that translates corporate jargon into plain English.' },
  { role: 'system', name: 'example_user', content: 'New synergies will help drive top-line growth.' },
  { role: 'system', name: 'example_assistant', content: 'Things working well together will increase revenue.' },
  { role: 'system', name: 'example_user', content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage." },
  { role: 'system', name: 'example_assistant', content: "Let's talk later when we're less busy about how to do better." },
  { role: 'user', content: "This late pivot means we don't have time to boil the ocean for the client deliverable." },
];

const cookbookTools = [
  {
    type: 'function',
    function: {
      name: 'get_current_weather',
      description: 'Get the current weather in a given location',
      parameters: {
        type: 'object',
        properties: {
          location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
          unit: { type: 'string', description: 'The unit of temperature to return', enum: ['celsius', 'fahrenheit'] },
        },
        required: ['location'],
      },
    },
  },
];
const toolMessages = [
  { role: 'system', content: 'You are a helpful assistant that can answer to questions about the weather.' },
  { role: 'user', content: "What's the weather like in San Francisco?" },
];

describe.each(['js-tiktoken', 'gpt-tokenizer'] as const)('OpenAI cookbook counts with %s', (tokenizer) => {
  const compactor = createCompactor({ tokenizer });
  test.each([
    ['gpt-4o', 124],
    ['gpt-4o-mini', 124],
    ['gpt-4-0613', 129],
    ['gpt-4', 129],
    ['gpt-3.5-turbo', 129],
  ])('messages on %s', async (model, expected) => {
    expect(await compactor.countTokens({ model, messages: cookbookMessages })).toBe(expected);
  });
  test.each([
    ['gpt-4o', 101],
    ['gpt-4o-mini', 101],
    ['gpt-4', 105],
    ['gpt-3.5-turbo', 105],
  ])('tools on %s', async (model, expected) => {
    expect(await compactor.countTokens({ model, messages: toolMessages, tools: cookbookTools })).toBe(expected);
  });
});

describe('token accounting', () => {
  test('both backends agree on a real LoCoMo conversation', async () => {
    const { locomoRequest } = await import('./helpers.js');
    const request = locomoRequest(2);
    const a = await createCompactor({ tokenizer: 'js-tiktoken' }).countTokens(request);
    const b = await createCompactor({ tokenizer: 'gpt-tokenizer' }).countTokens(request);
    expect(a).toBe(b);
    expect(a).toBeGreaterThan(10_000);
  });

  test('encodings are chosen per model: o200k for gpt-4o/4.1/o-series/gpt-5, cl100k for gpt-4/3.5', async () => {
    const compactor = createCompactor({ maxInputTokens: 100_000 });
    const body = (model: string) => ({ model, messages: [{ role: 'user', content: 'hi' }] });
    for (const model of ['gpt-4o', 'gpt-4.1-mini', 'o3-mini', 'o1', 'gpt-5']) {
      expect((await compactor.compact(body(model))).stats.encoding).toBe('o200k_base');
    }
    for (const model of ['gpt-4', 'gpt-4-turbo', 'gpt-3.5-turbo']) {
      expect((await compactor.compact(body(model))).stats.encoding).toBe('cl100k_base');
    }
  });

  test('other providers use the documented approximation: o200k × multiplier, rounded up per message', async () => {
    const exact = await createCompactor().countTokens({ model: 'gpt-4o', messages: cookbookMessages });
    const claude = await createCompactor().countTokens({ model: 'claude-sonnet-4', messages: cookbookMessages });
    const tuned = await createCompactor({ approximateTokenMultiplier: 1 }).countTokens({ model: 'claude-sonnet-4', messages: cookbookMessages });
    expect(tuned).toBe(exact);
    expect(claude).toBeGreaterThanOrEqual(Math.floor(exact * 1.1));
    expect(claude).toBeLessThanOrEqual(Math.ceil(exact * 1.1) + cookbookMessages.length);
    const perModel = await createCompactor({ models: { 'claude-': { contextWindow: 200_000, tokenMultiplier: 2 } } }).countTokens({
      model: 'claude-x',
      messages: cookbookMessages,
    });
    expect(perModel).toBeGreaterThan(claude);
  });

  test('special-token text in content is counted as text, not rejected', async () => {
    const count = await createCompactor().countTokens({ model: 'gpt-4o', messages: [{ role: 'user', content: 'say <|endoftext|> now' }] });
    expect(count).toBeGreaterThan(7);
  });

  test('images: 85 tokens at low detail, tiles by size from data URLs, a documented default otherwise', () => {
    expect(imageTokens('https://x.test/a.png', 'low', 765)).toBe(85);
    expect(imageTokens('https://x.test/a.png', 'high', 765)).toBe(765);
    // OpenAI's published examples: 1024×1024 high → 765; 2048×4096 → 1105.
    expect(tilesTokens(1024, 1024)).toBe(765);
    expect(tilesTokens(2048, 4096)).toBe(1105);
    const png = Buffer.alloc(24);
    png.writeUInt32BE(0x89504e47, 0);
    png.writeUInt32BE(0x0d0a1a0a, 4);
    png.writeUInt32BE(512, 16);
    png.writeUInt32BE(512, 20);
    expect(imageTokens(`data:image/png;base64,${png.toString('base64')}`, 'auto', 765)).toBe(255);
  });

  test('tool calls, tool results and names all count', async () => {
    const compactor = createCompactor({ tokenizer: wordTokenizer });
    const plain = await compactor.countTokens({ messages: [{ role: 'user', content: 'a b' }] });
    const named = await compactor.countTokens({ messages: [{ role: 'user', name: 'zed', content: 'a b' }] });
    expect(named - plain).toBe(2); // the name's one word + 1
    const withCall = await compactor.countTokens({
      messages: [
        { role: 'user', content: 'a b' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x": 1}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'result' },
      ],
    });
    expect(withCall).toBeGreaterThan(plain + 6);
  });

  test('counts are memoized per message by content', async () => {
    let calls = 0;
    const compactor = createCompactor({
      tokenizer: (encoding) => ({
        encoding,
        count: (text) => {
          calls++;
          return text.length;
        },
      }),
    });
    const messages = Array.from({ length: 50 }, (_, index) => ({ role: 'user' as const, content: `message ${index}` }));
    await compactor.countTokens({ messages });
    const first = calls;
    // The same history plus one new message: only the new message is tokenized.
    await compactor.countTokens({ messages: [...structuredClone(messages), { role: 'assistant', content: 'new' }] });
    expect(calls - first).toBe(2); // role and content of the one new message
  });

  test('message keys are exact for short content and hashed for long content', () => {
    expect(messageKey({ role: 'user', content: 'hi' })).not.toBe(messageKey({ role: 'assistant', content: 'hi' }));
    const long = 'x'.repeat(10_000);
    expect(messageKey({ role: 'user', content: long })).toMatch(/^#/);
    expect(messageKey({ role: 'user', content: long }).length).toBeLessThan(40);
  });
});

describe('long texts are counted in slices, exactly', () => {
  // Real conversation text, a few hundred kilobytes of it, with its punctuation, digits and newlines.
  const text = locomoRequest(0)
    .messages.map((message) => String(message.content))
    .join('\n')
    .repeat(3);

  test.each(['o200k_base', 'cl100k_base'] as const)('%s: the slices add up to the whole text’s count', async (encoding) => {
    expect(text.length).toBeGreaterThan(200_000);
    const tokenizer = await builtinTokenizer('gpt-tokenizer')(encoding);
    const slices = countingSlices(text, 8 * 1024);
    expect(slices.length).toBeGreaterThan(20);
    expect(slices.join('')).toBe(text);
    expect(slices.reduce((sum, slice) => sum + tokenizer.count(slice), 0)).toBe(tokenizer.count(text));
  });

  test('a request with a multi-megabyte message counts the same through the yielding path as message by message', async () => {
    const compactor = createCompactor();
    const request = {
      model: 'gpt-4o',
      messages: [
        { role: 'user' as const, content: text.repeat(4) },
        { role: 'user' as const, content: 'and?' },
      ],
    };
    const direct = (await compactor.tokenCounter('gpt-4o')).request(request);
    const fresh = await createCompactor().tokenCounter('gpt-4o');
    await fresh.prewarm(request.messages);
    expect(fresh.request(request)).toBe(direct);
  });
});
