import { describe, expect, test } from 'vitest';
import { createCompactor, CompactorError, pipeline, truncate, type ChatMessage, type Strategy } from '../src/index.js';
import { deepFreeze, manualClock, wordTokenizer } from '../src/testing/index.js';
import { locomoRequest } from './helpers.js';

// With the word tokenizer every message costs 3 + 1 (role) + its words; the request adds 3.
const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });

function conversation(turns: number): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'system', content: 'be brief' }];
  for (let turn = 1; turn <= turns; turn++) messages.push(user(`question ${turn}`), assistant(`answer ${turn}`));
  messages.push(user('latest question'));
  return messages;
}

describe('truncate', () => {
  test('keeps the newest whole turns that fit, plus the system prompt and the latest question', async () => {
    const messages = deepFreeze(conversation(10));
    // system 3+1+2=6, each message 3+1+2=6, latest 6, priming 3: protected = 15; 3 turns = 36.
    // Cut one turn at a time (a plain sliding window) and nothing set aside for the latest turn.
    const compactor = createCompactor({
      maxInputTokens: 15 + 36 + 5,
      tokenizer: wordTokenizer,
      defaultModel: 'gpt-4o',
      strategy: truncate({ lowWater: 1, latestShare: 0 }),
    });
    const { request, stats } = await compactor.compact({ messages });
    expect(request.messages.map((message) => message.content)).toEqual([
      'be brief',
      'question 8',
      'answer 8',
      'question 9',
      'answer 9',
      'question 10',
      'answer 10',
      'latest question',
    ]);
    expect(stats.tokensBefore).toBe(15 + 10 * 12);
    expect(stats.tokensAfter).toBe(15 + 36);
    expect(stats.strategies[0]).toMatchObject({ name: 'truncate', messagesRemoved: 14, tokensRemoved: 84 });
  });

  test('optionally keeps the first N user turns, which often state the task', async () => {
    const compactor = createCompactor({
      maxInputTokens: 15 + 36,
      tokenizer: wordTokenizer,
      defaultModel: 'gpt-4o',
      strategy: 'truncate',
      presetOptions: { truncate: { keepFirstUserTurns: 1, lowWater: 1, latestShare: 0 } },
    });
    const { request } = await compactor.compact({ messages: conversation(10) });
    expect(request.messages.map((message) => message.content)).toEqual([
      'be brief',
      'question 1',
      'answer 1',
      'question 9',
      'answer 9',
      'question 10',
      'answer 10',
      'latest question',
    ]);
  });

  test('cuts in steps: between cuts, each request starts with the whole previous one, so its prompt cache keeps hitting', async () => {
    const full = conversation(60);
    const budget = 200;
    const compactor = createCompactor({ maxInputTokens: budget, tokenizer: wordTokenizer, defaultModel: 'gpt-4o', strategy: 'truncate' });
    const sliding = createCompactor({ maxInputTokens: budget, tokenizer: wordTokenizer, defaultModel: 'gpt-4o', strategy: truncate({ lowWater: 1 }) });
    const replay = async (target: typeof compactor) => {
      let previous: ChatMessage[] | undefined;
      let repeats = 0;
      let cuts = 0;
      for (let end = 3; end <= full.length; end += 2) {
        const { request, stats } = await target.compact({ messages: [...full.slice(0, end - 1), full.at(-1)!] });
        expect(stats.tokensAfter).toBeLessThanOrEqual(budget);
        if (previous && stats.tokensBefore > budget) {
          // The previous request, less its latest question, is where this one starts, or the window was cut.
          const prefix = previous.slice(0, -1);
          if (prefix.every((message, index) => request.messages[index] === message)) repeats++;
          else cuts++;
        }
        previous = request.messages;
      }
      return { repeats, cuts };
    };
    const stepped = await replay(compactor);
    const slid = await replay(sliding);
    expect(stepped.cuts).toBeGreaterThan(0);
    expect(stepped.repeats).toBeGreaterThan(3 * stepped.cuts);
    // A plain sliding window cuts on nearly every request once full.
    expect(slid.repeats).toBeLessThan(stepped.repeats);
    // No state: a fresh compactor computes the same request.
    const again = await createCompactor({ maxInputTokens: budget, tokenizer: wordTokenizer, defaultModel: 'gpt-4o', strategy: 'truncate' }).compact({
      messages: full,
    });
    expect(again.request.messages).toEqual((await compactor.compact({ messages: full })).request.messages);
  });

  test('a request within budget passes through unchanged', async () => {
    const messages = conversation(2);
    const { request, stats } = await createCompactor({ maxInputTokens: 1000, tokenizer: wordTokenizer }).compact({ messages });
    expect(request.messages).toEqual(messages);
    expect(stats.passThrough).toBe('within-budget');
  });

  test('a tool-call chain is kept or dropped as one unit', async () => {
    const messages: ChatMessage[] = [
      user('old question'),
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'a', type: 'function', function: { name: 'search', arguments: '{"q":"x"}' } },
          { id: 'b', type: 'function', function: { name: 'search', arguments: '{"q":"y"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'a', content: 'result a' },
      { role: 'tool', tool_call_id: 'b', content: 'result b' },
      assistant('old answer'),
      user('new question'),
    ];
    for (let budget = 10; budget < 80; budget++) {
      const compactor = createCompactor({ maxInputTokens: budget, tokenizer: wordTokenizer, onBudgetUnreachable: 'pass-through' });
      const { request } = await compactor.compact({ messages });
      const kept = request.messages;
      const ids = kept.filter((message) => message.role === 'tool').map((message) => message.tool_call_id);
      expect(ids.length === 0 || ids.length === 2).toBe(true);
      expect(kept.some((message) => message.tool_calls) === ids.length > 0).toBe(true);
    }
  });

  test('a turn still in progress (tool results after the latest user message) is protected', async () => {
    const messages: ChatMessage[] = [
      ...conversation(5),
      { role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'x', content: 'done' },
    ];
    const { request } = await createCompactor({ maxInputTokens: 40, tokenizer: wordTokenizer }).compact({ messages });
    expect(request.messages.slice(-3)).toEqual(messages.slice(-3));
    expect(request.messages[0]).toEqual(messages[0]);
  });

  test('budget unreachable: error with code and 413, or pass-through', async () => {
    const messages = [{ role: 'system' as const, content: 'a very long system prompt indeed with many words in it' }, user('hi')];
    try {
      await createCompactor({ maxInputTokens: 10, tokenizer: wordTokenizer }).compact({ messages });
      expect.unreachable();
    } catch (error) {
      expect(CompactorError.isInstance(error) && error.code).toBe('budget.unreachable');
      expect((error as CompactorError).status).toBe(413);
    }
    const { request, stats } = await createCompactor({ maxInputTokens: 10, tokenizer: wordTokenizer, onBudgetUnreachable: 'pass-through' }).compact({
      messages,
    });
    expect(request.messages).toEqual(messages);
    expect(stats.passThrough).toBe('budget-unreachable');
  });

  test('budget from the model window minus the reply reserve, or the request max tokens', async () => {
    const compactor = createCompactor({ tokenizer: wordTokenizer, models: { tiny: { contextWindow: 100, encoding: 'o200k_base' } }, reserveOutputTokens: 40 });
    const long = conversation(20);
    expect((await compactor.compact({ model: 'tiny', messages: long })).stats.budget).toBe(60);
    expect((await compactor.compact({ model: 'tiny', max_tokens: 10, messages: long })).stats.budget).toBe(90);
    expect((await compactor.compact({ model: 'tiny', max_completion_tokens: 20, messages: long })).stats.budget).toBe(80);
    const capped = createCompactor({
      tokenizer: wordTokenizer,
      maxInputTokens: 50,
      reserveOutputTokens: 40,
      models: { tiny: { contextWindow: 100, encoding: 'o200k_base' } },
    });
    expect((await capped.compact({ model: 'tiny', messages: long })).stats.budget).toBe(50);
    const unknown = await createCompactor({ tokenizer: wordTokenizer }).compact({ model: 'mystery-model', messages: long });
    expect(unknown.stats.passThrough).toBe('no-budget');
    expect(unknown.request.messages).toEqual(long);
  });
});

describe('pipeline and failures', () => {
  test('a failing strategy is counted and the request still goes through within budget', async () => {
    const broken: Strategy = {
      name: 'broken',
      async apply() {
        throw new Error('model server down');
      },
    };
    const compactor = createCompactor({ maxInputTokens: 40, tokenizer: wordTokenizer, strategy: pipeline('p', [broken]) });
    const { request, stats } = await compactor.compact({ messages: conversation(10) });
    expect(stats.failures).toEqual([{ strategy: 'broken', code: 'internal', message: 'model server down' }]);
    expect(stats.tokensAfter).toBeLessThanOrEqual(40);
    expect(request.messages.at(-1)!.content).toBe('latest question');
    expect(stats.guard.droppedForBudget).toBeGreaterThan(0);
  });

  test('an abort is never swallowed', async () => {
    const controller = new AbortController();
    const slow: Strategy = {
      name: 'slow',
      async apply(_messages) {
        controller.abort();
        const error = new Error('aborted');
        error.name = 'AbortError';
        throw error;
      },
    };
    const compactor = createCompactor({ maxInputTokens: 40, tokenizer: wordTokenizer, strategy: slow });
    await expect(compactor.compact({ messages: conversation(10) }, { signal: controller.signal })).rejects.toMatchObject({ code: 'aborted' });
    const aborted = new AbortController();
    aborted.abort();
    await expect(createCompactor({ maxInputTokens: 40 }).compact({ messages: conversation(1) }, { signal: aborted.signal })).rejects.toMatchObject({
      code: 'aborted',
    });
  });

  test('stats carry per-strategy timing from the injected clock', async () => {
    const clock = manualClock();
    const tick: Strategy = {
      name: 'tick',
      async apply(messages) {
        clock.advance(5);
        return { messages };
      },
    };
    const compactor = createCompactor({ maxInputTokens: 40, tokenizer: wordTokenizer, clock: clock.now, strategy: pipeline('p', [tick, truncate()]) });
    const { stats } = await compactor.compact({ messages: conversation(10) });
    expect(stats.strategies.map((step) => [step.name, step.ms])).toEqual([
      ['tick', 5],
      ['truncate', 0],
    ]);
    expect(stats.ms).toBe(5);
  });

  test('the context carries route and tenant to strategies', async () => {
    let seen: unknown;
    const spy: Strategy = {
      name: 'spy',
      async apply(messages, context) {
        seen = { route: context.route, tenant: context.tenant, budget: context.budget };
        return { messages };
      },
    };
    await createCompactor({ maxInputTokens: 40, tokenizer: wordTokenizer, strategy: spy }).compact(
      { messages: conversation(10) },
      { route: '/r', tenant: 't1' },
    );
    expect(seen).toEqual({ route: '/r', tenant: 't1', budget: 40 });
  });
});

describe('real LoCoMo conversation fixture', () => {
  test.each([false, true])('compacts to 2000 o200k tokens, keeping the system prompt and the question (roles swapped: %s)', async (swap) => {
    const body = locomoRequest(0, swap);
    const compactor = createCompactor({ maxInputTokens: 2000, strategy: 'truncate' });
    const { request, stats } = await compactor.compact(deepFreeze(body));
    expect(stats.tokensBefore).toBeGreaterThan(10_000);
    expect(await createCompactor().countTokens(request)).toBeLessThanOrEqual(2000);
    // The recent turns sit between the window's low-water mark and its room (the budget less 10% for the latest turn).
    expect(stats.tokensAfter).toBeGreaterThan(0.6 * 0.9 * 2000);
    expect(request.messages[0]).toEqual(body.messages[0]);
    expect(request.messages.at(-1)).toEqual(body.messages.at(-1));
  });
});
