import { describe, expect, test } from 'vitest';
import { createCompactor, CompactorError } from '../src/index.js';
import { wordTokenizer } from '../src/testing/index.js';

const compactor = createCompactor({ maxInputTokens: 1000, tokenizer: wordTokenizer, limits: { maxMessages: 50, maxPartsPerMessage: 4 } });

async function failure(body: unknown): Promise<CompactorError> {
  try {
    await compactor.compact(body as object);
  } catch (error) {
    if (CompactorError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a CompactorError');
}

describe('bad input gets input.invalid with a pointer to the field', () => {
  test.each([
    ['not an object', 'hello', 'input.invalid', 'body'],
    ['an array', [], 'input.invalid', 'body'],
    ['no messages', { model: 'gpt-4o' }, 'input.invalid', 'messages'],
    ['messages not an array', { messages: 'hi' }, 'input.invalid', 'messages'],
    ['an empty list', { messages: [] }, 'input.invalid', 'messages'],
    ['an unknown role', { messages: [{ role: 'robot', content: 'x' }] }, 'input.invalid', 'messages[0].role'],
    ['numeric content', { messages: [{ role: 'user', content: 3 }] }, 'input.invalid', 'messages[0].content'],
    ['object content', { messages: [{ role: 'user', content: { text: 'x' } }] }, 'input.invalid', 'messages[0].content'],
    ['missing user content', { messages: [{ role: 'user' }] }, 'input.invalid', 'messages[0].content'],
    ['a part without a type', { messages: [{ role: 'user', content: [{ text: 'x' }] }] }, 'input.invalid', 'messages[0].content[0].type'],
    [
      'an image without a url',
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] },
      'input.invalid',
      'messages[0].content[0].image_url.url',
    ],
    [
      'a tool result with no matching call',
      {
        messages: [
          { role: 'user', content: 'x' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'b', content: 'r' },
        ],
      },
      'input.invalid',
      'messages[2].tool_call_id',
    ],
    ['a tool result before any call', { messages: [{ role: 'tool', tool_call_id: 'a', content: 'r' }] }, 'input.invalid', 'messages[0].tool_call_id'],
    ['tool_calls on a user message', { messages: [{ role: 'user', content: 'x', tool_calls: [] }] }, 'input.invalid', 'messages[0].tool_calls'],
    ['a lone surrogate in content', { messages: [{ role: 'user', content: 'bad \ud800 text' }] }, 'input.invalid', 'messages[0].content'],
    [
      'a lone surrogate in a part',
      { messages: [{ role: 'user', content: [{ type: 'text', text: '\udc00' }] }] },
      'input.invalid',
      'messages[0].content[0].text',
    ],
    ['a lone surrogate in a name', { messages: [{ role: 'user', name: '\ud83d', content: 'x' }] }, 'input.invalid', 'messages[0].name'],
    [
      'a lone surrogate in tool arguments',
      {
        messages: [
          { role: 'user', content: 'x' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '\ud800' } }] },
        ],
      },
      'input.invalid',
      'messages[1].tool_calls[0].function.arguments',
    ],
    ['a function result with no call', { messages: [{ role: 'function', name: 'f', content: 'x' }] }, 'input.invalid', 'messages[0]'],
    ['too many messages', { messages: Array.from({ length: 51 }, () => ({ role: 'user', content: 'x' })) }, 'input.too-large', 'messages'],
    [
      'too many parts',
      { messages: [{ role: 'user', content: Array.from({ length: 5 }, () => ({ type: 'text', text: 'x' })) }] },
      'input.too-large',
      'messages[0].content',
    ],
    ['a non-string model', { model: 4, messages: [{ role: 'user', content: 'x' }] }, 'input.invalid', 'model'],
  ])('%s', async (_name, body, code, pointer) => {
    const error = await failure(body);
    expect(error.code).toBe(code);
    expect(error.pointer).toBe(pointer);
    expect(error.status).toBe(code === 'input.too-large' ? 413 : 400);
  });

  test('well-paired surrogates (emoji) are fine', async () => {
    const { request } = await compactor.compact({ messages: [{ role: 'user', content: 'smile 🙂' }] });
    expect(request.messages[0]!.content).toBe('smile 🙂');
  });

  test('unknown fields pass through untouched', async () => {
    const body = { model: 'gpt-4o', temperature: 0.2, metadata: { a: 1 }, messages: [{ role: 'user', content: 'x', extra: { keep: true } }] };
    const { request } = await compactor.compact(body);
    // The one field added is the provider's cache routing key (see omitCacheHints).
    expect(request).toEqual({ ...body, prompt_cache_key: expect.stringMatching(/^cc-/) });
    const plain = await createCompactor({ omitCacheHints: true }).compact(body);
    expect(plain.request).toEqual(body);
  });
});

describe('options are validated at construction, naming the option', () => {
  test.each([
    [{ maxInputTokens: 0 }, 'maxInputTokens'],
    [{ maxInputTokens: 1.5 }, 'maxInputTokens'],
    [{ reserveOutputTokens: -1 }, 'reserveOutputTokens'],
    [{ strategy: 'nope' }, 'strategy'],
    [{ strategy: 42 }, 'strategy'],
    [{ tokenizer: 'sentencepiece' }, 'tokenizer'],
    [{ onBudgetUnreachable: 'drop' }, 'onBudgetUnreachable'],
    [{ approximateTokenMultiplier: 0 }, 'approximateTokenMultiplier'],
    [{ models: { x: { contextWindow: -5 } } }, 'models.x.contextWindow'],
    [{ limits: { maxMessages: 0 } }, 'limits.maxMessages'],
    [{ strategy: 'truncate', presetOptions: { truncate: { keepFirstUserTurns: -1 } } }, 'keepFirstUserTurns'],
    [{ strategy: 'relevance', presetOptions: { relevance: { recencyShare: 3 } } }, 'recencyShare'],
  ])('%j', (options, option) => {
    try {
      createCompactor(options as never);
      expect.unreachable();
    } catch (error) {
      expect(CompactorError.isInstance(error)).toBe(true);
      expect((error as CompactorError).code).toBe('options.invalid');
      expect((error as CompactorError).pointer).toBe(option);
      expect((error as CompactorError).message).toContain(option);
    }
  });

  test('a per-call format that is not a wire format is options.invalid naming format, not a TypeError', async () => {
    const compactor = createCompactor({ maxInputTokens: 100 });
    await expect(compactor.compact({ messages: [{ role: 'user', content: 'hi' }] }, { format: 'gemini' as never })).rejects.toMatchObject({
      code: 'options.invalid',
      pointer: 'format',
    });
    await expect(compactor.compact({ messages: [{ role: 'user', content: 'hi' }] }, { format: 'toString' as never })).rejects.toMatchObject({
      code: 'options.invalid',
    });
  });

  test('isInstance works across copies of the class (Symbol.for marker)', () => {
    const foreign = Object.assign(new Error('x'), { [Symbol.for('context-compactor.error')]: true, code: 'input.invalid' });
    expect(CompactorError.isInstance(foreign)).toBe(true);
    expect(CompactorError.isInstance(new Error('x'))).toBe(false);
  });
});
