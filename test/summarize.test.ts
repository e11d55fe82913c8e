import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCompactor, pipeline, truncate, type ChatMessage } from '../src/index.js';
import { extractiveSummarizer } from '../src/summarizers/extractive.js';
import { llmSummarizer, SUMMARY_PROMPT } from '../src/summarizers/llm.js';
import { memorySummaryStore, SummaryQueue } from '../src/summarizers/queue.js';
import type { Summarizer } from '../src/summarizers/types.js';
import { summarize, summaryFold, SUMMARY_LABEL } from '../strategies/summarize/index.js';
import { strategyContext } from '../src/testing/index.js';
import { locomoRequest } from './helpers.js';

const isSummary = (message: ChatMessage) => typeof message.content === 'string' && message.content.startsWith(SUMMARY_LABEL);

function fresh(extra: Partial<Parameters<typeof summarize>[0]> = {}) {
  return summarize({ store: memorySummaryStore(), queue: new SummaryQueue(), mode: 'inline', inlineTimeoutMs: 10_000, ...extra });
}

describe('extractive summarizer', () => {
  test('keeps the session header, dates, numbers and names, within maxTokens, in order', async () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: '[Session 3, 8 May 2023]\nCaroline: I went to the support group on 7 May. It was powerful.' },
      { role: 'assistant', content: 'Melanie: Wow! That sounds great.' },
      { role: 'user', content: 'Caroline: My flight is UA-1234 at 9:15, booked on https://example.test/trip.' },
      { role: 'assistant', content: 'Melanie: Cool.' },
    ];
    const count = (text: string) => text.split(/\s+/).length;
    const text = await extractiveSummarizer().summarize(messages, { maxTokens: 40, countTokens: count });
    expect(text.split('\n')[0]).toBe('[Session 3, 8 May 2023]');
    expect(text).toContain('UA-1234');
    expect(text).toContain('7 May');
    expect(text).not.toContain('Cool.');
    expect(count(text)).toBeLessThanOrEqual(40 + 4);
    expect(text.indexOf('7 May')).toBeLessThan(text.indexOf('UA-1234'));
  });
});

describe('summarize strategy', () => {
  test('folds the oldest chunks into labelled summaries and fits the budget', async () => {
    const body = locomoRequest(0);
    const compactor = createCompactor({ maxInputTokens: 4000, strategy: pipeline('s', [fresh(), truncate()]) });
    const { request, stats } = await compactor.compact(body);
    expect(stats.tokensAfter).toBeLessThanOrEqual(4000);
    const summaries = request.messages.filter(isSummary);
    expect(summaries.length).toBeGreaterThan(0);
    expect(summaries.every((message) => message.role === 'system')).toBe(true);
    expect(request.messages[0]).toEqual(body.messages[0]);
    expect(request.messages.at(-1)).toEqual(body.messages.at(-1));
    expect(String(summaries[0]!.content)).toContain('[Session 1,');
  });

  test('the prompt only grows between steps: summaries are appended, and the recent turns are cut in steps', async () => {
    const body = locomoRequest(1);
    const budget = 3000;
    const replay = async (strategy: ReturnType<typeof fresh>) => {
      const compactor = createCompactor({ maxInputTokens: budget, strategy });
      let previous: string[] | undefined;
      let repeats = 0;
      let cuts = 0;
      let summaries = 0;
      for (let end = 120; end <= 260; end += 2) {
        const messages: ChatMessage[] = [...body.messages.slice(0, end), { role: 'user', content: `question ${end}?` }];
        const { request, stats } = await compactor.compact({ ...body, messages });
        expect(stats.tokensAfter).toBeLessThanOrEqual(budget);
        expect(stats.guard.repaired).toBe(0);
        const bytes = request.messages.map((message) => JSON.stringify(message));
        summaries = Math.max(summaries, request.messages.filter(isSummary).length);
        if (previous) {
          // The previous request, less its latest question, is where this one starts, unless a step cut it.
          if (previous.slice(0, -1).every((message, index) => bytes[index] === message)) repeats++;
          else cuts++;
        }
        previous = bytes;
      }
      return { repeats, cuts, summaries };
    };
    const stepped = await replay(fresh());
    expect(stepped.summaries).toBeGreaterThan(0);
    expect(stepped.cuts).toBeGreaterThan(0);
    expect(stepped.repeats).toBeGreaterThan(3 * stepped.cuts);
    // Cut one turn at a time, the recent turns rewrite the prompt's front on most requests.
    const sliding = await replay(fresh({ lowWater: 1 }));
    expect(sliding.repeats).toBeLessThan(stepped.repeats);
  });

  test('background mode summarizes the chunks the next step will drop ahead of it', async () => {
    const body = locomoRequest(1);
    const store = memorySummaryStore();
    const queue = new SummaryQueue();
    const compactor = createCompactor({ maxInputTokens: 3000, strategy: pipeline('s', [summarize({ store, queue }), truncate()]) });
    let missing = 0;
    let steps = 0;
    for (let end = 120; end <= 260; end += 2) {
      const messages: ChatMessage[] = [...body.messages.slice(0, end), { role: 'user', content: `question ${end}?` }];
      const { stats } = await compactor.compact({ ...body, messages });
      const step = [...stats.strategies, ...stats.strategies.flatMap((entry) => entry.steps ?? [])].find((entry) => entry.name === 'summarize' && entry.info);
      const info = (step?.info ?? { missing: 0 }) as { missing: number };
      // The first request meets the conversation cold: nothing was summarized yet.
      if (end > 120) missing += info.missing;
      steps++;
      await queue.idle();
    }
    // After it, every step finds its summaries made ahead of time.
    expect(steps).toBeGreaterThan(10);
    expect(missing).toBe(0);
  });

  test('token chunking works without session headers and never splits a tool-call unit', async () => {
    const messages: ChatMessage[] = [{ role: 'system', content: 'sys' }];
    for (let turn = 0; turn < 40; turn++) {
      messages.push(
        { role: 'user', content: `Question ${turn}: what is the status of ticket T-${turn}? `.repeat(6) },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: `c${turn}`, type: 'function', function: { name: 'lookup', arguments: `{"ticket":"T-${turn}"}` } }],
        },
        { role: 'tool', tool_call_id: `c${turn}`, content: `Ticket T-${turn} is open since ${turn} May.` },
        { role: 'assistant', content: `Ticket T-${turn} is still open.` },
      );
    }
    messages.push({ role: 'user', content: 'And now?' });
    const compactor = createCompactor({ maxInputTokens: 1500, strategy: pipeline('s', [fresh({ chunkTokens: 400 }), truncate()]) });
    const { request } = await compactor.compact({ model: 'gpt-4o', messages });
    const out = request.messages;
    expect(out.filter(isSummary).length).toBeGreaterThan(0);
    const results = new Set(out.filter((message) => message.role === 'tool').map((message) => message.tool_call_id));
    for (const message of out) for (const call of message.tool_calls ?? []) expect(results.has(call.id)).toBe(true);
    for (const message of out)
      if (message.role === 'tool') expect(out.some((other) => other.tool_calls?.some((call) => call.id === message.tool_call_id))).toBe(true);
  });

  test('background mode: the first request does not wait; the next turn uses the summaries', async () => {
    let calls = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // Summaries wait for the gate: if a request waited for its summaries, it would never return.
    const gated: Summarizer = {
      id: 'gated',
      summarize: async (messages) => {
        calls++;
        await gate;
        return `- ${messages.length} messages`;
      },
    };
    const queue = new SummaryQueue();
    const strategy = pipeline('s', [summarize({ summarizer: gated, store: memorySummaryStore(), queue, mode: 'background' }), truncate()]);
    const compactor = createCompactor({ maxInputTokens: 3000, strategy });
    const body = locomoRequest(2);
    const first = await compactor.compact(body);
    expect(first.request.messages.filter(isSummary)).toHaveLength(0);
    expect(first.stats.tokensAfter).toBeLessThanOrEqual(3000);
    expect(queue.stats().scheduled).toBeGreaterThan(0);
    release();
    await queue.idle();
    const second = await compactor.compact(body);
    expect(second.request.messages.filter(isSummary).length).toBeGreaterThan(0);
    expect(calls).toBeGreaterThan(0);
  });

  test('inline mode falls back when the summarizer hangs or throws, and counts the failure', async () => {
    const hanging: Summarizer = { id: 'hang', summarize: () => new Promise(() => undefined) };
    const throwing: Summarizer = { id: 'throw', summarize: async () => Promise.reject(new Error('model down')) };
    for (const summarizer of [hanging, throwing]) {
      const strategy = pipeline('s', [
        summarize({ summarizer, store: memorySummaryStore(), queue: new SummaryQueue({ jobTimeoutMs: 200 }), mode: 'inline', inlineTimeoutMs: 50 }),
        truncate(),
      ]);
      const { request, stats } = await createCompactor({ maxInputTokens: 2000, strategy }).compact(locomoRequest(0));
      expect(stats.failures.length).toBeGreaterThan(0);
      expect(stats.failures[0]!.strategy).toBe('summarize');
      expect(stats.tokensAfter).toBeLessThanOrEqual(2000);
      expect(request.messages.filter(isSummary)).toHaveLength(0);
    }
  });

  test("summaryFold puts each complete chunk's summary before it and keeps its messages; summarize({ keepSource }) is the same layout", async () => {
    const body = locomoRequest(0);
    const run = async (strategy: ReturnType<typeof summarize>) => (await strategy.apply(body.messages, await strategyContext(body, { budget: 4000 }))).messages;
    const options = { store: memorySummaryStore(), queue: new SummaryQueue(), mode: 'inline' as const, inlineTimeoutMs: 10_000, summaryShare: 0.1 };
    const messages = await run(summaryFold(options));
    const summaries = messages.filter(isSummary);
    expect(summaries.length).toBeGreaterThan(0);
    // Every source message is still there, in order, with summaries between them.
    expect(messages.filter((message) => !isSummary(message))).toEqual(body.messages);
    const legacy = await run(summarize({ ...options, keepSource: true }));
    expect(legacy).toEqual(messages);
  });

  test('many chunks are summarized hierarchically within the summary share', async () => {
    const strategy = pipeline('s', [fresh({ summaryShare: 0.3 }), truncate()]);
    const compactor = createCompactor({ maxInputTokens: 2000, strategy });
    const { request, stats } = await compactor.compact(locomoRequest(2));
    const summaries = request.messages.filter(isSummary);
    expect(summaries.length).toBeGreaterThan(0);
    const info = stats.strategies[0]!.info as { chunks: number; summaries: number; levels: number };
    // Summaries of summaries: more than one level, and fewer summaries than the chunks they cover.
    expect(info.levels).toBeGreaterThanOrEqual(2);
    expect(info.summaries).toBe(summaries.length);
    expect(info.summaries).toBeLessThan(info.chunks - 1);
    const counter = await compactor.tokenCounter('gpt-4o');
    expect(counter.messages(summaries)).toBeLessThanOrEqual(2000 * 0.3);
  });
});

describe('summary queue', () => {
  test('is bounded and deduplicated, and survives jobs that throw or hang', async () => {
    const queue = new SummaryQueue({ maxPending: 2, jobTimeoutMs: 50 });
    let runs = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const a = queue.schedule('a', async () => {
      runs++;
      await gate;
    });
    expect(queue.schedule('a', async () => void runs++)).toBe(a);
    queue.schedule('b', async () => Promise.reject(new Error('boom')));
    queue.schedule('c', () => new Promise(() => undefined));
    expect(queue.schedule('d', async () => undefined)).toBeUndefined();
    release();
    await queue.idle();
    const stats = queue.stats();
    expect(runs).toBe(1);
    expect(stats).toMatchObject({ scheduled: 3, completed: 1, failed: 2, dropped: 1, pending: 0, running: 0 });
    await expect(queue.schedule('e', async () => undefined)).resolves.toBeUndefined();
  });
});

describe('LLM summarizer against a local fake server', () => {
  let server: Server;
  let url: string;
  const received: { model: string; messages: { role: string; content: string }[]; max_tokens: number }[] = [];
  let failures = 0;
  beforeAll(async () => {
    server = createServer(async (request, response) => {
      let text = '';
      for await (const chunk of request) text += chunk;
      received.push(JSON.parse(text));
      if (failures > 0) {
        failures--;
        response.writeHead(500).end('oops');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          choices: [{ message: { role: 'assistant', content: '- Caroline went to a support group on 7 May 2023.' } }],
          usage: { prompt_tokens: 321, completion_tokens: 17 },
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`;
  });
  afterAll(() => server.close());

  test('sends the structured-bullet prompt and the transcript, and reports usage', async () => {
    received.length = 0;
    const usage: unknown[] = [];
    const summarizer = llmSummarizer({ baseURL: url, model: 'cheap-model', onUsage: (value) => usage.push(value) });
    const text = await summarizer.summarize(
      [
        { role: 'user', content: 'Caroline: I went to the LGBTQ support group yesterday.' },
        { role: 'assistant', content: 'Melanie: That is great!' },
      ],
      { maxTokens: 100, previousSummary: '- earlier facts' },
    );
    expect(text).toContain('7 May 2023');
    expect(received).toHaveLength(1);
    expect(received[0]!.model).toBe('cheap-model');
    expect(received[0]!.max_tokens).toBe(100);
    expect(received[0]!.messages[0]!.content).toBe(SUMMARY_PROMPT);
    expect(received[0]!.messages[1]!.content).toContain('Caroline: I went to the LGBTQ support group');
    expect(received[0]!.messages[1]!.content).toContain('- earlier facts');
    expect(SUMMARY_PROMPT).toMatch(/numbers, dates, times, IDs, URLs/);
    expect(usage).toEqual([{ prompt_tokens: 321, completion_tokens: 17 }]);
  });

  test('retries a 5xx, then works inside the summarize strategy', async () => {
    received.length = 0;
    failures = 1;
    const strategy = pipeline('s', [
      summarize({
        summarizer: llmSummarizer({ baseURL: url }),
        store: memorySummaryStore(),
        queue: new SummaryQueue(),
        mode: 'inline',
        inlineTimeoutMs: 10_000,
      }),
      truncate(),
    ]);
    const { request } = await createCompactor({ maxInputTokens: 3000, strategy }).compact(locomoRequest(0));
    expect(received.length).toBeGreaterThan(1);
    expect(request.messages.some((message) => String(message.content).includes('7 May 2023'))).toBe(true);
  });
});
