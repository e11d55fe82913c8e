import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { noCompaction, presetContender, trimMessagesContender, type Contender } from '../harness/contenders.js';
import { billRequests } from '../harness/bill.js';
import { loadPrices, priceFor, type ModelPrice } from '../harness/cost.js';
import { runReplays } from '../harness/replay.js';
import { breakEven, dollars, recommend } from '../harness/report.js';
import { replayRows, type ReplayRow } from '../harness/summary.js';
import { PRICES } from '../../src/prices.js';
import { normalizeEvidence } from '../harness/evidence.js';
import { loadDataset, loadJsonl, loadLocomo, loadMtBench101, loadTopicalChat, type BenchConversation } from '../harness/loaders.js';
import { contentWords, factRetention, verbatimRetention } from '../harness/metrics.js';
import { checkOutput, runQa, sharedPrefixTokens, type Violation } from '../harness/run.js';
import { createCompactor, type ChatMessage } from '../../src/index.js';
import { packageRoot } from '../../src/cli/package-root.js';

const data = (...parts: string[]) => join(packageRoot(), 'bench', 'data', ...parts);
const counterPromise = createCompactor().tokenCounter('gpt-4o');

describe('evidence-id normaliser', () => {
  test.each([
    ['D1:3', ['D1:3']],
    ['D8:6; D9:17', ['D8:6', 'D9:17']],
    ['D:11:26', ['D11:26']],
    ['D30:05', ['D30:5']],
    ['D12:3-D12:5', ['D12:3', 'D12:4', 'D12:5']],
    ['D12:3-5', ['D12:3', 'D12:4', 'D12:5']],
    ['D 2:18', ['D2:18']],
    ['D2:1, D2:1', ['D2:1']],
    ['', []],
    ['nowhere', []],
  ])('%j', (raw, expected) => {
    expect(normalizeEvidence(raw)).toEqual(expected);
  });
});

describe('loaders on real files', () => {
  test('LoCoMo: sessions with dates, QA with normalised evidence that points at turns', () => {
    const conversations = loadLocomo(data('locomo', 'locomo-dev.json'));
    expect(conversations.map((conversation) => conversation.id)).toEqual(['conv-26', 'conv-30', 'conv-44']);
    const turns = conversations.reduce((sum, conversation) => sum + conversation.messages.length - 1, 0);
    expect(turns).toBe(1463);
    expect(conversations.reduce((sum, conversation) => sum + conversation.qa!.length, 0)).toBe(462);
    const first = conversations[0]!;
    expect(first.messages[0]!.role).toBe('system');
    expect(first.messages[1]!.content).toMatch(/^\[Session 1, .*2023\]\nCaroline: /);
    // "D8:6; D9:17" is split into two evidence turns.
    const split = conversations.flatMap((conversation) => conversation.qa!).find((item) => item.evidence.includes('D8:6') && item.evidence.includes('D9:17'));
    expect(split).toBeDefined();
    for (const item of conversations.flatMap((conversation) => conversation.qa!)) {
      expect(item.evidenceTexts).toHaveLength(item.evidence.length);
      expect(item.category).toBeGreaterThanOrEqual(1);
      expect(item.category).toBeLessThanOrEqual(5);
    }
    const texts = first.messages.map((message) => String(message.content)).join('\n');
    for (const item of first.qa!) for (const text of item.evidenceTexts) expect(texts).toContain(text);
  });

  test('LoCoMo with roles swapped', () => {
    const [plain] = loadLocomo(data('locomo', 'locomo-dev.json'));
    const [swapped] = loadLocomo(data('locomo', 'locomo-dev.json'), { swapRoles: true });
    expect(plain!.messages[1]!.role).toBe('user');
    expect(swapped!.messages[1]!.role).toBe('assistant');
    expect(swapped!.messages[1]!.content).toBe(plain!.messages[1]!.content);
  });

  test('MT-Bench-101 JSON Lines', () => {
    const conversations = loadMtBench101(data('mtbench101', 'mtbench101-subset.jsonl'));
    expect(conversations).toHaveLength(130);
    const first = conversations[0]!;
    expect(first.messages.map((message) => message.role).slice(0, 3)).toEqual(['system', 'user', 'assistant']);
    expect(first.messages[1]!.content).toMatch(/A is taller than B/);
  });

  test('Topical-Chat JSON', () => {
    const conversations = loadTopicalChat(data('topical-chat', 'topical-chat-subset.json'));
    expect(conversations).toHaveLength(40);
    expect(conversations[0]!.messages.length).toBeGreaterThan(15);
    expect(new Set(conversations[0]!.messages.slice(1).map((message) => message.role))).toEqual(new Set(['user', 'assistant']));
  });

  test('generic JSON Lines, with the bad line reported by number', () => {
    const folder = mkdtempSync(join(tmpdir(), 'cc-bench-'));
    const good = join(folder, 'good.jsonl');
    writeFileSync(
      good,
      `${JSON.stringify({ id: 'a', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })}\n\n${JSON.stringify({ messages: [{ role: 'user', content: 'yo' }] })}\n`,
    );
    const conversations = loadJsonl(good);
    expect(conversations.map((conversation) => [conversation.id, conversation.model])).toEqual([
      ['a', 'gpt-4o-mini'],
      ['line-3', undefined],
    ]);
    expect(loadDataset(good).length).toBe(2);
    const bad = join(folder, 'bad.jsonl');
    writeFileSync(bad, `${JSON.stringify({ id: 'a', messages: [{ role: 'user', content: 'hi' }] })}\n{"id": "b", "messages": [{"role": "robot"}]}\n`);
    expect(() => loadJsonl(bad)).toThrow(expect.objectContaining({ code: 'input.invalid', pointer: 'line 2.messages[0].role' }));
  });

  test('kinds are guessed from content', () => {
    expect(loadDataset(data('locomo', 'locomo-dev.json'))[0]!.source).toBe('locomo');
    expect(loadDataset(data('mtbench101', 'mtbench101-subset.jsonl'))[0]!.source).toBe('mtbench101');
    expect(loadDataset(data('topical-chat', 'topical-chat-subset.json'))[0]!.source).toBe('topical-chat');
  });
});

describe('cost model', () => {
  test('the default price table ships in the npm package, with the proxy that reads it', async () => {
    const { readFileSync } = await import('node:fs');
    const manifest = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { files: string[] };
    expect(manifest.files).toContain('dist/src');
    expect(loadPrices()).toBe(PRICES);
    expect(Object.keys(loadPrices()).length).toBeGreaterThan(0);
  });

  const price: ModelPrice = { input: 2.5, cachedInput: 1.25, output: 10 };
  const request = (inputTokens: number, prefixTokens: number, breakpoints: number[] = [inputTokens], outputTokens = 0) => ({
    inputTokens,
    prefixTokens,
    breakpoints,
    outputTokens,
  });

  test('OpenAI rule: a shared prefix of at least 1,024 tokens is cached in 128-token steps', () => {
    const [under, at, over] = billRequests([request(2000, 1023), request(2000, 1024), request(2000, 1500, [2000], 100)], price, 'openai');
    expect(under!.cachedTokens).toBe(0);
    expect(at!.cachedTokens).toBe(1024);
    expect(over!.cachedTokens).toBe(1408);
    // 2,000 input tokens, 1,500 shared: 1,408 cached at $1.25, 592 at $2.50, 100 output at $10.
    expect(over!.prompt).toBeCloseTo((1408 * 1.25 + 592 * 2.5) / 1e6, 12);
    expect(over!.output).toBeCloseTo((100 * 10) / 1e6, 12);
    expect(billRequests([request(2000, 1500)], price, 'none')[0]!.prompt).toBeCloseTo((2000 * 2.5) / 1e6, 12);
  });

  test('Anthropic rule: written up to the breakpoints at 1.25×, read back by a request that repeats the prefix', () => {
    const claude: ModelPrice = { input: 3, cachedInput: 0.3, cacheWrite: 3.75, output: 15 };
    // First request: nothing cached; written up to its breakpoint at 1,800, the last 200 tokens at input.
    // Second: shares 1,900 tokens, so it reads the 1,800 written, writes up to its own breakpoint at 2,300, and the rest at input.
    // Third: under the 1,024-token minimum nothing is read or written.
    const [first, second, third] = billRequests([request(2000, 0, [1800]), request(2500, 1900, [2300]), request(900, 0, [900])], claude, 'anthropic');
    expect(first!.prompt).toBeCloseTo((1800 * 3.75 + 200 * 3) / 1e6, 12);
    expect(second!.cachedTokens).toBe(1800);
    expect(second!.writtenTokens).toBe(500);
    expect(second!.prompt).toBeCloseTo((1800 * 0.3 + 500 * 3.75 + 200 * 3) / 1e6, 12);
    expect(third!.prompt).toBeCloseTo((900 * 3) / 1e6, 12);
    // A prefix that stops short of every written breakpoint reads nothing.
    const [, cut] = billRequests([request(2000, 0, [1800]), request(2000, 1700, [2000])], claude, 'anthropic');
    expect(cut!.cachedTokens).toBe(0);
    // Without a write price, writes cost 1.25 × input.
    expect(billRequests([request(2000, 0, [2000])], { ...claude, cacheWrite: undefined }, 'anthropic')[0]!.prompt).toBeCloseTo((2000 * 3.75) / 1e6, 12);
  });

  test('the shipped price table is dated, sourced and editable', () => {
    const table = loadPrices();
    expect(priceFor(table, 'gpt-4o-mini-2024-07-18').input).toBe(table['gpt-4o-mini']!.input);
    for (const entry of Object.values(table)) {
      expect(entry.asOf).toMatch(/^\d{4}-\d{2}/);
      expect(entry.source).toMatch(/^https:\/\//);
    }
    const folder = mkdtempSync(join(tmpdir(), 'cc-prices-'));
    const file = join(folder, 'prices.json');
    writeFileSync(file, JSON.stringify({ models: { mine: { input: 1, cachedInput: 0.5, output: 2 } } }));
    expect(loadPrices(file).mine!.output).toBe(2);
  });
});

describe('retention metrics on a hand-made case', () => {
  const conversation: BenchConversation = {
    id: 'tiny',
    source: 'jsonl',
    messages: [
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'Ann: I adopted a dog named Biscuit in May.' },
      { role: 'assistant', content: 'Bob: Nice! I moved to Lisbon last week.' },
      { role: 'user', content: 'Ann: Biscuit loves the beach.' },
      { role: 'assistant', content: 'Bob: Lisbon has great beaches.' },
    ],
    qa: [
      {
        question: 'What is the name of Ann’s dog and where did Bob move?',
        answer: 'Biscuit; Lisbon',
        category: 1,
        evidence: ['D1:1', 'D1:2'],
        evidenceTexts: ['Ann: I adopted a dog named Biscuit in May.', 'Bob: Nice! I moved to Lisbon last week.'],
      },
    ],
  };

  test('ER_verbatim and ER_fact by hand', () => {
    const output = 'Ann: I adopted a dog named Biscuit in May.';
    expect(verbatimRetention(conversation.qa![0]!.evidenceTexts, output)).toBe(0.5);
    // Answer content words not in the question: biscuit, lisbon. The output has biscuit only;
    // the full history has both: (1/2) / (2/2) = 0.5.
    expect(contentWords('Biscuit; Lisbon')).toEqual(['biscuit', 'lisbon']);
    expect(factRetention('Biscuit; Lisbon', 'Where did Bob move?', output, 'Biscuit ... Lisbon')).toBe(0.5);
    expect(factRetention('Lisbon', 'Where is Lisbon?', output, 'Lisbon')).toBeUndefined();
  });

  test('runQa keeps exactly the last turns under a tiny budget, and ER follows', async () => {
    const counter = await counterPromise;
    const violations: Violation[] = [];
    const rows = await runQa(
      [conversation],
      [noCompaction(), presetContender('truncate')],
      { budgets: [10_000, 40], model: 'gpt-4o', counter, progress: false },
      violations,
    );
    expect(violations).toEqual([]);
    const row = (contender: string, budget: number) =>
      rows.find((entry) => entry.contender === contender && entry.budget === budget && entry.category === '1-4')!;
    expect(row('none', 40).erVerbatim).toBe(1);
    expect(row('truncate', 10_000).erVerbatim).toBe(1);
    // At 40 tokens only the system prompt, the question and nothing else fit.
    expect(row('truncate', 40).erVerbatim).toBe(0);
    expect(row('truncate', 40).erFact).toBe(0);
  });
});

describe('replay and correctness checks', () => {
  const conversation: BenchConversation = {
    id: 'chat',
    source: 'jsonl',
    messages: [
      { role: 'system', content: 'You are terse.' },
      ...Array.from({ length: 40 }, (_, index): ChatMessage => ({ role: index % 2 === 0 ? 'user' : 'assistant', content: `turn ${index} `.repeat(30) })),
    ],
  };

  test('shared prefix counts whole identical leading messages', async () => {
    const counter = await counterPromise;
    const a: ChatMessage[] = [
      { role: 'system', content: 'x' },
      { role: 'user', content: 'y' },
    ];
    const b: ChatMessage[] = [
      { role: 'system', content: 'x' },
      { role: 'user', content: 'y' },
      { role: 'user', content: 'z' },
    ];
    expect(sharedPrefixTokens(a, b, counter)).toBe(counter.message(a[0]!) + counter.message(a[1]!));
    expect(sharedPrefixTokens([{ role: 'system', content: 'other' }], b, counter)).toBe(0);
  });

  test('replay: no compaction keeps its prefix cached; truncate cut in steps keeps it better than a sliding window', async () => {
    const counter = await counterPromise;
    const violations: Violation[] = [];
    const sliding = presetContender('truncate', { name: 'sliding', live: true, options: { presetOptions: { truncate: { lowWater: 1 } } } });
    const runs = await runReplays(
      [conversation],
      [noCompaction(), presetContender('truncate', { live: true }), sliding],
      { budgets: [1500], model: 'gpt-5', counter, qa: false, coldTurns: 1, progress: false },
      violations,
    );
    expect(violations).toEqual([]);
    // Under gpt-4o's half-price cache: under a tenth, cutting a history only 2.4 times the budget costs more than it saves.
    const rule = { name: 'gpt-4o', price: priceFor(loadPrices(), 'gpt-4o'), cacheRule: 'openai' as const };
    const [none, truncate, slide] = replayRows(runs, rule);
    expect(none!.requests).toBe(20);
    expect(none!.saving).toBe(0);
    expect(runs[1]!.requests.every((record) => record.tokensAfter <= 1500)).toBe(true);
    expect(truncate!.tokensAfter).toBeLessThan(none!.tokensAfter);
    // Cut in steps, the prompt repeats its start between cuts; sliding, it never does.
    expect(truncate!.cachedAfter).toBeGreaterThan(slide!.cachedAfter);
    expect(truncate!.promptAfter).toBeLessThan(slide!.promptAfter);
    expect(truncate!.saving).toBeGreaterThan(0);
    expect(truncate!.savedPerThousand).toBeCloseTo((truncate!.promptBefore - truncate!.promptAfter) * 1000, 9);
    // A fresh process met the conversation once, and the latest answer always fit and survived.
    expect(runs[1]!.cold).toHaveLength(1);
    expect(truncate!.latestChecked).toBeGreaterThan(0);
    expect(truncate!.latestDropped).toBe(0);
  });

  test('a contender that breaks an invariant is caught and reported', async () => {
    const counter = await counterPromise;
    const dropsSystem: Contender = {
      name: 'drops-system',
      kind: 'preset',
      run: async (request) => ({ messages: request.messages.slice(1), ms: 0, failures: 0 }),
    };
    const violations: Violation[] = [];
    await runReplays([conversation], [dropsSystem], { budgets: [100_000], model: 'gpt-4o', counter, qa: false, coldTurns: 0, progress: false }, violations);
    expect(violations.length).toBe(20);
    expect(violations[0]!.problem).toMatch(/protected system/);
    expect(checkOutput(conversation.messages, conversation.messages, 100, counter)).toMatch(/over budget/);
    expect(checkOutput(conversation.messages, [...conversation.messages].reverse(), undefined, counter)).toBeDefined();
  });

  test('LangChain trimMessages runs on the same budget and counter and passes the checks', async () => {
    const counter = await counterPromise;
    const trim = await trimMessagesContender(counter);
    const request = { model: 'gpt-4o', messages: conversation.messages };
    const { messages } = await trim.run(request, 1000);
    expect(checkOutput(request.messages, messages, 1000, counter)).toBeUndefined();
    expect(messages[0]).toBe(request.messages[0]);
    expect(messages.length).toBeLessThan(request.messages.length);
  });
});

describe('break-even budget', () => {
  const rows = (savings: [number, number][]) => savings.map(([budget, saving]) => ({ contender: 'p', rule: 'r', budget, saving }) as ReplayRow);
  test('interpolated where the saving changes sign, else a bound', () => {
    expect(
      breakEven(
        rows([
          [1000, 0.2],
          [2000, 0.1],
          [4000, -0.1],
        ]),
        'p',
        'r',
      ),
    ).toBe('about 2800 tokens');
    expect(
      breakEven(
        rows([
          [2000, -0.1],
          [4000, -0.5],
        ]),
        'p',
        'r',
      ),
    ).toBe('costs more at every budget run (from 2000)');
    expect(
      breakEven(
        rows([
          [2000, 0.3],
          [8000, 0.1],
        ]),
        'p',
        'r',
      ),
    ).toBe('saves at every budget run (up to 8000)');
    expect(breakEven(rows([[2000, 0.3]]), 'q', 'r')).toBe('–');
  });
});

test('dollars print as people write them: −$1.67, never $-1.67', () => {
  expect(dollars(-1.666)).toBe('−$1.67');
  expect(dollars(3.714)).toBe('$3.71');
  expect(dollars(45.2)).toBe('$45');
  expect(dollars(-45.2)).toBe('−$45');
  expect(dollars(1943.4)).toBe('$1,943');
});

test('transcripts carry questions and facts that must survive; bad ones are input.invalid naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-quality-'));
  const file = join(dir, 'mine.jsonl');
  const messages = [
    { role: 'user', content: 'My order is A-7731.' },
    { role: 'assistant', content: 'Noted.' },
  ];
  writeFileSync(
    file,
    `${JSON.stringify({ id: 'c1', messages, questions: [{ question: 'Which order?', keep: ['A-7731'] }], facts: ['A-7731'] })}\n${JSON.stringify({ messages })}\n`,
  );
  const [first, second] = loadJsonl(file);
  expect(first!.qa!.map((item) => [item.question, item.evidenceTexts])).toEqual([
    ['Which order?', ['A-7731']],
    ['Go on.', ['A-7731']],
  ]);
  expect(second!.qa).toBeUndefined();
  writeFileSync(file, `${JSON.stringify({ messages, questions: [{ question: 'Which order?', keep: [] }] })}\n`);
  expect(() => loadJsonl(file)).toThrow(expect.objectContaining({ code: 'input.invalid', pointer: 'line 1.questions[0].keep' }));
});

test('the recommendation says when the replay had no quality signal, and then ranks on the bill alone', () => {
  const row = (contender: string, saving: number, erVerbatim: number | undefined) =>
    ({ contender, budget: 2000, rule: 'gpt-5', saving, savedPerThousand: saving * 10, erVerbatim }) as unknown as ReplayRow;
  const blind = recommend([row('truncate', 0.5, undefined), row('cache-aware', 0.4, undefined)], [2000], ['gpt-5'])!;
  expect(blind.preset).toBe('truncate');
  expect(blind.erVerbatim).toBeUndefined();
  expect(blind.reason).toMatch(/no quality signal/);
  const measured = recommend([row('truncate', 0.5, 0.1), row('cache-aware', 0.4, 0.7)], [2000], ['gpt-5'])!;
  expect(measured.preset).toBe('cache-aware');
  expect(measured.reason).toMatch(/keeps the most evidence/);
});
