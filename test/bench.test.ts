import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { noCompaction, presetContender, trimMessagesContender, type Contender } from '../bench/harness/contenders.js';
import { billedCost, cachedTokens, loadPrices, priceFor, type ModelPrice } from '../bench/harness/cost.js';
import { PRICES } from '../src/proxy/prices.js';
import { normalizeEvidence } from '../bench/harness/evidence.js';
import { loadDataset, loadJsonl, loadLocomo, loadMtBench101, loadTopicalChat, type BenchConversation } from '../bench/harness/loaders.js';
import { contentWords, factRetention, verbatimRetention } from '../bench/harness/metrics.js';
import { checkOutput, runQa, runReplay, sharedPrefixTokens, type Violation } from '../bench/harness/run.js';
import { createCompactor, type ChatMessage } from '../src/index.js';
import { packageRoot } from '../src/cli/package-root.js';
import { coded } from './helpers.js';

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
    expect(() => loadJsonl(bad)).toThrow(coded('input.invalid', 'line 2.messages[0].role'));
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
  test('OpenAI rule: a shared prefix of at least 1,024 tokens is cached in 128-token steps', () => {
    expect(cachedTokens(1023, 'openai')).toBe(0);
    expect(cachedTokens(1024, 'openai')).toBe(1024);
    expect(cachedTokens(1500, 'openai')).toBe(1408);
    // 2,000 input tokens, 1,500 shared: 1,408 cached at $1.25, 592 at $2.50, 100 output at $10.
    expect(billedCost({ inputTokens: 2000, prefixTokens: 1500, outputTokens: 100 }, price, 'openai')).toBeCloseTo(
      (1408 * 1.25 + 592 * 2.5 + 100 * 10) / 1e6,
      12,
    );
    expect(billedCost({ inputTokens: 2000, prefixTokens: 1000, outputTokens: 0 }, price, 'openai')).toBeCloseTo((2000 * 2.5) / 1e6, 12);
    expect(billedCost({ inputTokens: 2000, prefixTokens: 1500, outputTokens: 0 }, price, 'none')).toBeCloseTo((2000 * 2.5) / 1e6, 12);
  });

  test('Anthropic rule: the shared prefix is read at the cache rate, the rest written at 1.25×', () => {
    const claude: ModelPrice = { input: 3, cachedInput: 0.3, cacheWrite: 3.75, output: 15 };
    expect(billedCost({ inputTokens: 2000, prefixTokens: 1500, outputTokens: 10 }, claude, 'anthropic')).toBeCloseTo(
      (1500 * 0.3 + 500 * 3.75 + 10 * 15) / 1e6,
      12,
    );
    // Under the 1,024-token minimum nothing is cached or written.
    expect(billedCost({ inputTokens: 900, prefixTokens: 800, outputTokens: 0 }, claude, 'anthropic')).toBeCloseTo((900 * 3) / 1e6, 12);
    // No shared prefix: everything written at 1.25× input.
    expect(billedCost({ inputTokens: 2000, prefixTokens: 0, outputTokens: 0 }, { ...claude, cacheWrite: undefined }, 'anthropic')).toBeCloseTo(
      (2000 * 3.75) / 1e6,
      12,
    );
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

  test('no compaction keeps its prefix cached; truncate saves tokens but rewrites the prefix', async () => {
    const counter = await counterPromise;
    const price = priceFor(loadPrices(), 'gpt-4o');
    const violations: Violation[] = [];
    const { rows, turns } = await runReplay(
      [conversation],
      [noCompaction(), presetContender('truncate')],
      { budget: 1500, model: 'gpt-4o', counter, price, cacheRule: 'openai', progress: false },
      violations,
    );
    expect(violations).toEqual([]);
    const none = rows.find((row) => row.contender === 'none')!;
    const truncate = rows.find((row) => row.contender === 'truncate')!;
    expect(none.requests).toBe(20);
    expect(turns.filter((turn) => turn.contender === 'truncate').every((turn) => turn.tokensAfter <= 1500)).toBe(true);
    expect(truncate.tokensAfter).toBeLessThan(none.tokensAfter);
    expect(truncate.prefixShare).toBeLessThan(none.prefixShare);
    expect(none.costCompacted).toBeCloseTo(none.costUncompacted, 12);
    expect(truncate.netSaving).toBeCloseTo(truncate.costUncompacted - truncate.costCompacted, 12);
  });

  test('a contender that breaks an invariant is caught and reported', async () => {
    const counter = await counterPromise;
    const dropsSystem: Contender = {
      name: 'drops-system',
      kind: 'preset',
      run: async (request) => ({ messages: request.messages.slice(1), ms: 0, failures: 0 }),
    };
    const violations: Violation[] = [];
    await runReplay(
      [conversation],
      [dropsSystem],
      { budget: 100_000, model: 'gpt-4o', counter, price: priceFor(loadPrices(), 'gpt-4o'), cacheRule: 'openai', progress: false },
      violations,
    );
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
